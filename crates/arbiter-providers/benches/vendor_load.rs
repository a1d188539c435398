//! Vendor load: what Arbiter spends on analyses that wait on a vendor. Three measures, in one run,
//! against the fake Reality Defender (its own thread and runtime, so its CPU can be told apart):
//!
//! 1. Memory and threads with 10, then 1,000 analyses in flight at once, the fake answering each
//!    2 s after its upload: RSS growth per analysis in flight (from before the analyses start to
//!    the peak sampled while they wait) and the process's thread count. Goal: flat memory per
//!    analysis, no thread per analysis.
//! 2. CPU per vendor analysis (process CPU less the fake's thread, from `/proc`), against the
//!    local detector's time on the same image. Goal: under 5%.
//! 3. A cascade `local,reality_defender` over 100 images of which local decides half (PNGs with
//!    AUTOMATIC1111 parameters): vendor calls made. Goal: exactly the other half.
//!
//! Run with `cargo bench -p arbiter-providers --bench vendor_load`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_core::net::AddressGuard;
use arbiter_core::{AnalyzeOptions, Detector, MediaInput, VerdictLabel};
use arbiter_detect::{IntakeLimits, LocalDetector, intake};
use arbiter_providers::fake::reality_defender::{self as fake_rd, FakeRealityDefender, Script};
use arbiter_providers::reality_defender::RealityDefenderConfig;
use arbiter_providers::{DetectorConfig, Detectors, RouteSpec, Secret};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/*/stat` CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    // A photo-sized JPEG, and a small PNG whose upload costs little (so that what an analysis
    // holds while it waits is not hidden behind its upload).
    // The small image first: memory the allocator keeps after the photo's uploads would hide
    // the small one's growth.
    let images = [
        ("128x128 PNG", media(plain_png(0))),
        ("1024x768 JPEG", media(photo_jpeg(1024, 768))),
    ];
    println!(
        "images: 128x128 PNG {} bytes, 1024x768 JPEG {} bytes; {} cores",
        images[0].1.info.file_size_bytes,
        images[1].1.info.file_size_bytes,
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // The fake answers 2 s after each upload, on its own thread.
    let (fake, fake_tid) = fake_on_own_thread(Script {
        pending_polls: 0,
        analysis_time: Duration::from_secs(2),
        ..Script::answering(&fake_rd::final_body(
            "FAKE",
            Some(91.0),
            &[("rd-elm-img", "FAKE", 0.93)],
        ))
    });
    let detectors = rd_detectors(&fake, "reality_defender");
    let rd = detectors.default_detector().clone();

    // Warm-up: the client's connection pool, the allocator's first arenas.
    rd.analyze(&images[0].1, &AnalyzeOptions::default())
        .await
        .unwrap();

    println!();
    println!(
        "1. analyses in flight at once (fake answers 2 s after upload, polls 250 ms -> 1 s; the \
         fake runs in this process, so RSS includes the upload bodies it buffers)"
    );
    println!(
        "{:>14} {:>10} {:>8} {:>12} {:>12} {:>13} {:>10} {:>12} {:>10} {:>9}",
        "image",
        "in flight",
        "wall s",
        "RSS before",
        "RSS peak",
        "growth/each",
        "waiting@pk",
        "threads b/p",
        "CPU/each",
        "fake CPU"
    );
    let mut cpu_per_analysis = Vec::new();
    for (name, image) in &images {
        for n in [10usize, 1000] {
            let row = in_flight(&rd, image, n, fake_tid).await;
            println!(
                "{:>14} {:>10} {:>8.2} {:>8} KiB {:>8} KiB {:>9.1} KiB {:>10} {:>5}/{:<6} {:>7.3} ms {:>7.2} s",
                name,
                n,
                row.wall.as_secs_f64(),
                row.rss_before,
                row.rss_peak,
                row.rss_peak.saturating_sub(row.rss_before) as f64 / n as f64,
                row.waiting_at_peak,
                row.threads_before,
                row.threads_peak,
                row.arbiter_cpu_secs / n as f64 * 1e3,
                row.fake_cpu_secs,
            );
            assert_eq!(
                row.verdicts, n,
                "every analysis ends with the fake's verdict"
            );
            if n == 1000 {
                cpu_per_analysis.push(row.arbiter_cpu_secs / n as f64);
            }
        }
    }

    println!();
    println!(
        "2. CPU per vendor analysis (1,000 in flight, the fake's thread taken out) against the \
         local detector on the same image (50 runs one at a time)"
    );
    println!(
        "{:>14} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "image", "vendor CPU", "local CPU", "local wall", "CPU ratio", "goal"
    );
    for ((name, image), vendor) in images.iter().zip(cpu_per_analysis) {
        let local = local_time(image, 50).await;
        println!(
            "{:>14} {:>9.3} ms {:>9.2} ms {:>9.2} ms {:>9.2}% {:>10}",
            name,
            vendor * 1e3,
            local.cpu_ms,
            local.wall_ms,
            vendor * 1e3 / local.cpu_ms * 100.0,
            "< 5%"
        );
    }

    println!();
    println!("3. cascade local,reality_defender over 100 images, local decides half");
    let quick = FakeRealityDefender::start(Script {
        pending_polls: 0,
        ..Script::answering(&fake_rd::final_body("AUTHENTIC", Some(5.0), &[]))
    })
    .await
    .unwrap();
    let cascade = rd_detectors(&quick, "local,reality_defender");
    let images: Vec<(bool, MediaInput)> = (0..100u32)
        .map(|i| {
            let declared = i % 2 == 0;
            let png = if declared { a1111_png(i) } else { plain_png(i) };
            (declared, media(png))
        })
        .collect();
    let options = AnalyzeOptions::default();
    let route = cascade.default_detector();
    let results = futures_util::future::join_all(
        images
            .iter()
            .map(|(_, image)| route.analyze(image, &options)),
    )
    .await;
    let mut decided_locally = 0;
    for ((declared, _), result) in images.iter().zip(results) {
        let analysis = result.unwrap();
        let vendor_ran = analysis.detectors_ran().contains(&"reality_defender");
        if !vendor_ran {
            decided_locally += 1;
            assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated);
        }
        assert_eq!(
            vendor_ran, !declared,
            "the vendor runs only where local cannot decide"
        );
    }
    let counts = quick.counts();
    println!(
        "   images: 100; decided by local: {decided_locally}; vendor calls (fake's presign \
         requests): {}; uploads: {} (goal: exactly 50)",
        counts.presign_attempts, counts.uploads
    );
}

/// What one load step measured.
struct InFlight {
    wall: Duration,
    rss_before: u64,
    rss_peak: u64,
    threads_before: u64,
    threads_peak: u64,
    waiting_at_peak: usize,
    arbiter_cpu_secs: f64,
    fake_cpu_secs: f64,
    verdicts: usize,
}

/// Starts `n` analyses at once and samples memory and threads every 20 ms until they end.
async fn in_flight(
    rd: &Arc<dyn Detector>,
    image: &MediaInput,
    n: usize,
    fake_tid: u64,
) -> InFlight {
    let rss_before = status_field("VmRSS:");
    let threads_before = status_field("Threads:");
    let (cpu_before, fake_before) = (process_cpu(), thread_cpu(fake_tid));
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (rd, image, done) = (rd.clone(), image.clone(), done.clone());
            tokio::spawn(async move {
                let result = rd.analyze(&image, &AnalyzeOptions::default()).await;
                done.fetch_add(1, Ordering::Relaxed);
                result
            })
        })
        .collect();
    let (mut rss_peak, mut threads_peak, mut waiting_at_peak) = (rss_before, threads_before, n);
    while done.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let rss = status_field("VmRSS:");
        threads_peak = threads_peak.max(status_field("Threads:"));
        if rss > rss_peak {
            rss_peak = rss;
            waiting_at_peak = n - done.load(Ordering::Relaxed);
        }
    }
    let mut verdicts = 0;
    for task in tasks {
        if task.await.unwrap().is_ok() {
            verdicts += 1;
        }
    }
    let wall = started.elapsed();
    let (cpu, fake_cpu) = (
        process_cpu() - cpu_before,
        thread_cpu(fake_tid) - fake_before,
    );
    InFlight {
        wall,
        rss_before,
        rss_peak,
        threads_before,
        threads_peak,
        waiting_at_peak,
        arbiter_cpu_secs: cpu - fake_cpu,
        fake_cpu_secs: fake_cpu,
        verdicts,
    }
}

struct LocalTime {
    wall_ms: f64,
    cpu_ms: f64,
}

/// The local detector's time on `image`, one analysis at a time.
async fn local_time(image: &MediaInput, runs: u32) -> LocalTime {
    let local = LocalDetector::default();
    local
        .analyze(image, &AnalyzeOptions::default())
        .await
        .unwrap();
    let (cpu_before, started) = (process_cpu(), Instant::now());
    for _ in 0..runs {
        local
            .analyze(image, &AnalyzeOptions::default())
            .await
            .unwrap();
    }
    LocalTime {
        wall_ms: started.elapsed().as_secs_f64() * 1e3 / f64::from(runs),
        cpu_ms: (process_cpu() - cpu_before) * 1e3 / f64::from(runs),
    }
}

/// Starts the fake on a thread of its own with a single-threaded runtime; returns it and the
/// thread's id (for its CPU time).
fn fake_on_own_thread(script: Script) -> (FakeRealityDefender, u64) {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fake-rd".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let fake = FakeRealityDefender::start(script).await.unwrap();
                let me = std::fs::read_link("/proc/thread-self").unwrap();
                let tid: u64 = me
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse().ok())
                    .unwrap();
                sender.send((fake, tid)).unwrap();
                std::future::pending::<()>().await;
            });
        })
        .unwrap();
    receiver.recv().unwrap()
}

/// The detectors with Reality Defender pointed at `fake`, polling from 250 ms to 1 s, and the
/// default route `route`.
fn rd_detectors(fake: &FakeRealityDefender, route: &str) -> Detectors {
    let mut config = DetectorConfig {
        route: RouteSpec::parse(route).unwrap(),
        ..DetectorConfig::default()
    };
    let mut rd = RealityDefenderConfig {
        base_url: fake.base_url.clone(),
        api_key: Secret::new(fake_rd::API_KEY),
        timeout_secs: 30,
        deadline_secs: 60,
        poll_initial_ms: 250,
        poll_max_ms: 1000,
        ..RealityDefenderConfig::default()
    };
    rd.calls.max_concurrency = 2000;
    config.providers.reality_defender = rd;
    let guard = AddressGuard::new(vec!["127.0.0.0/8".parse().unwrap()]);
    match Detectors::build(&config, guard) {
        Ok(detectors) => detectors,
        Err(err) => panic!("{err}"),
    }
}

fn media(bytes: Vec<u8>) -> MediaInput {
    intake(bytes, &IntakeLimits::default()).unwrap()
}

/// A photo-sized JPEG with gradients and noise (so that it compresses like a photo, not a flat
/// colour).
fn photo_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_f491u32;
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3u32 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let base = (x * (c + 1) / 5 + y * (3 - c) / 4) % 256;
                pixels.push(((base + (state % 24)) % 256) as u8);
            }
        }
    }
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90),
        &pixels,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// A plain 128x128 PNG; `seed` changes its pixels.
fn plain_png(seed: u32) -> Vec<u8> {
    let pixels: Vec<u8> = (0..128u32 * 128 * 3)
        .map(|i| (i.wrapping_mul(7).wrapping_add(seed.wrapping_mul(131)) % 251) as u8)
        .collect();
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &pixels,
        128,
        128,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// A plain PNG with AUTOMATIC1111's `parameters` text chunk right after its header.
fn a1111_png(seed: u32) -> Vec<u8> {
    let plain = plain_png(seed);
    let text =
        b"parameters\0a photo of a duck\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, \
                 Size: 512x512, Model: sd15";
    let ihdr_end = 8 + 25;
    let mut out = plain[..ihdr_end].to_vec();
    out.extend((text.len() as u32).to_be_bytes());
    let mut chunk = b"tEXt".to_vec();
    chunk.extend_from_slice(text);
    let mut crc = 0xffff_ffffu32;
    for byte in &chunk {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    out.extend(chunk);
    out.extend((!crc).to_be_bytes());
    out.extend_from_slice(&plain[ihdr_end..]);
    out
}

/// A `kB`/count field of `/proc/self/status` (`VmRSS:`, `Threads:`).
fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
fn cpu_of(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = &text[text.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / TICKS_PER_SEC
}

fn process_cpu() -> f64 {
    cpu_of("/proc/self/stat")
}

fn thread_cpu(tid: u64) -> f64 {
    cpu_of(&format!("/proc/self/task/{tid}/stat"))
}
