//! Speed and memory of the local detector, next to the cost of decoding and hashing the same
//! image in the same run (the baseline every figure is divided by).
//!
//! `cargo bench -p arbiter-detect --features c2pa --bench ensemble` (pin it to one core with
//! `taskset -c 0` to measure one core). Generates its own images with the `image` crate:
//! a 12 MP JPEG, a 1 MP PNG, and a ~5 MB JPEG for metadata + provenance. Peak memory is measured
//! in a child process (this binary again) from the kernel's high-water mark of resident memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_core::{AnalyzeOptions, ImageFormat, ModelKind};
use arbiter_detect::decode::{Pixels, decode};
use arbiter_detect::provenance::ProvenanceReader;
use arbiter_detect::{
    IntakeLimits, LocalDetector, LocalDetectorConfig, frequency, intake, metadata, noise, splicing,
};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--peak") {
        peak_child(&args[at + 1], &args[at + 2]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let dir = tempfile::tempdir().unwrap();

    let jpeg12 = make_jpeg(4000, 3000, 90);
    let png1 = make_png(1000, 1000);
    let jpeg_path = dir.path().join("12mp.jpg");
    std::fs::write(&jpeg_path, &jpeg12).unwrap();

    println!(
        "arbiter-detect ensemble benchmark (median of runs; ratio = time / (decode + SHA-256))"
    );
    let runs = if quick { 3 } else { 7 };
    report("12 MP JPEG (4000x3000)", &jpeg12, runs);
    report("1 MP PNG (1000x1000)", &png1, runs * 3);

    // Metadata and provenance alone on a ~5 MB JPEG, without and with a C2PA manifest.
    let big = make_jpeg(3600, 2700, 98);
    let provenance = ProvenanceReader::untrusted();
    let mut cases = vec![("no manifest", big.clone())];
    if let Some(signed) = sign(&big) {
        cases.push(("a valid C2PA manifest (hashes the whole file)", signed));
    }
    for (what, bytes) in cases {
        let input = intake(bytes, &IntakeLimits::default()).unwrap();
        let time = median(runs * 5, || {
            black_box(metadata::read_metadata(ImageFormat::Jpeg, &input.bytes));
            black_box(provenance.read(ImageFormat::Jpeg, &input.bytes));
        });
        let hash = median(runs * 5, || {
            black_box(Sha256::digest(&input.bytes[..]));
        });
        println!(
            "metadata + provenance, {:.1} MB JPEG with {what}: {:.2} ms (target < 5 ms; SHA-256 of the same bytes {:.2} ms; C2PA {})",
            input.bytes.len() as f64 / 1e6,
            ms(time),
            ms(hash),
            if ProvenanceReader::available() {
                "built in"
            } else {
                "NOT built in: run with --features c2pa"
            }
        );
    }

    // Peak memory, each in a fresh process.
    let me = std::env::current_exe().unwrap();
    let decoded = 4000u64 * 3000 * 3;
    for what in ["decode", "ensemble"] {
        let output = std::process::Command::new(&me)
            .args(["--peak", what, jpeg_path.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let peak: u64 = text.trim().parse().unwrap_or(0);
        println!(
            "peak memory above the file's bytes, 12 MP JPEG, {what}: {:.1} MB = {:.2}x its decoded RGB size ({:.1} MB; target < 4x)",
            peak as f64 / 1e6,
            peak as f64 / decoded as f64,
            decoded as f64 / 1e6
        );
    }
}

fn report(name: &str, bytes: &[u8], runs: usize) {
    let input = intake(bytes.to_vec(), &IntakeLimits::default()).unwrap();
    let config = LocalDetectorConfig::default();
    let baseline = median(runs, || {
        black_box(image::load_from_memory(bytes).unwrap());
        black_box(Sha256::digest(bytes));
    });
    let pixels: Pixels = decode(&input, &config).unwrap();
    let is_jpeg = input.info.format == ImageFormat::Jpeg;
    let provenance = ProvenanceReader::untrusted();
    let rows: Vec<(&str, Duration)> = vec![
        (
            "decode to luminance (ours)",
            median(runs, || {
                black_box(decode(&input, &config).unwrap());
            }),
        ),
        (
            "metadata",
            median(runs, || {
                black_box(metadata::read_metadata(input.info.format, &input.bytes));
            }),
        ),
        (
            "provenance (C2PA)",
            median(runs, || {
                black_box(provenance.read(input.info.format, &input.bytes));
            }),
        ),
        (
            "noise",
            median(runs, || {
                black_box(noise::analyze(&pixels));
            }),
        ),
        (
            "frequency",
            median(runs, || {
                black_box(frequency::analyze(&pixels, is_jpeg));
            }),
        ),
        (
            "splicing",
            median(runs, || {
                if is_jpeg {
                    black_box(splicing::analyze(&input.bytes, &pixels, true));
                }
            }),
        ),
        (
            "full ensemble (all six models)",
            median(runs, || {
                black_box(
                    LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default()),
                );
            }),
        ),
        (
            "full ensemble + SHA-256 (intake's hash)",
            median(runs, || {
                black_box(Sha256::digest(&input.bytes[..]));
                black_box(
                    LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default()),
                );
            }),
        ),
    ];
    println!(
        "\n{name}, {:.1} MB: baseline decode + SHA-256 = {:.1} ms",
        bytes.len() as f64 / 1e6,
        ms(baseline)
    );
    for (what, time) in rows {
        println!(
            "  {what:<42} {:>8.1} ms  {:>5.2}x",
            ms(time),
            time.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    let _ = ModelKind::ALL;
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[cfg(feature = "c2pa")]
fn sign(jpeg: &[u8]) -> Option<Vec<u8>> {
    let signer = c2pa::EphemeralSigner::new("arbiter-bench.local").ok()?;
    let definition = r#"{"claim_generator_info": [{"name": "arbiter bench"}], "assertions": [{"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}]}"#;
    let mut builder = c2pa::Builder::from_context(c2pa::Context::new())
        .with_definition(definition)
        .ok()?;
    let mut dest = std::io::Cursor::new(Vec::new());
    builder
        .sign(
            &signer,
            "image/jpeg",
            &mut std::io::Cursor::new(jpeg),
            &mut dest,
        )
        .ok()?;
    Some(dest.into_inner())
}

#[cfg(not(feature = "c2pa"))]
fn sign(_: &[u8]) -> Option<Vec<u8>> {
    None
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A photo-like image: smooth shading, edges, and per-pixel noise.
fn rgb(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((width * height * 3) as usize);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % 17) as f64 - 8.0;
            let (fx, fy) = (f64::from(x), f64::from(y));
            let base = 110.0 + 60.0 * (fx / 310.0).sin() * (fy / 170.0).cos();
            let edge = if (x / 400 + y / 300) % 2 == 0 {
                25.0
            } else {
                -25.0
            };
            for c in 0..3 {
                let v = base + edge + n + f64::from(c) * 12.0;
                out.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

fn make_jpeg(width: u32, height: u32, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    image::ImageEncoder::write_image(
        encoder,
        &rgb(width, height),
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

fn make_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(
        encoder,
        &rgb(width, height),
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// In a fresh process: the rise of the resident-memory high-water mark while doing `what`.
fn peak_child(what: &str, path: &str) {
    let bytes = std::fs::read(path).unwrap();
    let input = intake(bytes, &IntakeLimits::default()).unwrap();
    let detector = LocalDetector::default();
    // Warm the detector's lazily built parts, then reset the high-water mark.
    let _ = detector.analyze_sync(
        &intake(make_png(128, 128), &IntakeLimits::default()).unwrap(),
        &AnalyzeOptions::default(),
    );
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kb("VmRSS");
    match what {
        "decode" => {
            black_box(image::load_from_memory(&input.bytes).unwrap());
        }
        _ => {
            black_box(detector.analyze_sync(&input, &AnalyzeOptions::default()));
        }
    }
    let peak = status_kb("VmHWM");
    println!("{}", peak.saturating_sub(before) * 1024);
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
