//! Hostile files against plain ones, in the same run: the time the detector spends per MiB of
//! input on each generated hostile file (`tests/common/hostile.rs`: text-chunk floods, huge
//! dimensions, tiled and truncated TIFFs, nested C2PA boxes, deep EXIF chains), next to its time
//! per MiB on plain images. The goal: the worst hostile file costs at most 3x a plain image per
//! MiB.
//!
//! `cargo bench -p arbiter-detect --features c2pa --bench hostile` (add `taskset -c 0` for one
//! core). Each figure is the median of several runs of intake (with its SHA-256) and the full
//! ensemble. A file smaller than 1 MiB is counted as 1 MiB: a fixed cost spread over a few bytes
//! says nothing about cost per byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use arbiter_core::AnalyzeOptions;
use arbiter_detect::{IntakeLimits, LocalDetector, intake};
use std::hint::black_box;
use std::time::{Duration, Instant};

const MIB: f64 = (1 << 20) as f64;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 7 };
    let limits = IntakeLimits {
        min_dimension: 1,
        ..IntakeLimits::default()
    };
    let time = |bytes: &[u8]| -> Duration {
        median(runs, || {
            if let Ok(input) = intake(bytes.to_vec(), &limits) {
                black_box(
                    LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default()),
                );
            }
        })
    };
    let per_mib = |bytes: &[u8], t: Duration| ms(t) / (bytes.len() as f64 / MIB).max(1.0);

    println!("arbiter-detect hostile benchmark (median of {runs} runs; intake + full ensemble)");
    let plain = [
        ("plain PNG, 1400x1000 photo-like", make_png(1400, 1000)),
        ("plain JPEG, 4000x3000 q90", make_jpeg(4000, 3000, 90)),
    ];
    let mut baselines = Vec::new();
    for (name, bytes) in &plain {
        let t = time(bytes);
        let rate = per_mib(bytes, t);
        println!(
            "{name:<44} {:>6.2} MiB {:>9.1} ms {:>8.2} ms/MiB",
            bytes.len() as f64 / MIB,
            ms(t),
            rate
        );
        baselines.push((*name, rate));
    }
    println!();
    let mut worst: Option<(String, f64)> = None;
    for (name, bytes) in common::hostile::hostile_files() {
        let t = time(&bytes);
        let rate = per_mib(&bytes, t);
        println!(
            "{name:<44} {:>6.2} MiB {:>9.1} ms {:>8.2} ms/MiB",
            bytes.len() as f64 / MIB,
            ms(t),
            rate
        );
        if worst.as_ref().is_none_or(|(_, w)| rate > *w) {
            worst = Some((name, rate));
        }
    }
    let (worst_name, worst_rate) = worst.unwrap();
    println!("\nworst hostile file: {worst_name}, {worst_rate:.2} ms/MiB");
    for (name, rate) in baselines {
        println!(
            "  against {name} ({rate:.2} ms/MiB): {:.2}x (goal <= 3x)",
            worst_rate / rate
        );
    }
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
            for c in 0..3 {
                let v = base + n + f64::from(c) * 12.0;
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
