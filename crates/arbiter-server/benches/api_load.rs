//! Load benchmark of `POST /v1/analyze` on loopback against a release build, next to the
//! detector's own time per image measured in the same run.
//!
//! `cargo bench -p arbiter-server --bench api_load`. Bounded: a fixed number of requests per
//! scenario. Reports requests per second and p50/p99 latency for a 1 MP and a 12 MP JPEG
//! (detector on every request: cache off), the cache-hit path, and the HTTP overhead at p50
//! (`(HTTP p50 − detector p50) / detector p50`, one request at a time, each HTTP request right
//! after a detector run on the same image in this process, so both see the machine alike).
//! Beside the overhead it reports the machine's floor: the p50 of a bare `GET /healthz` sent
//! after the same idle as each upload, which every request pays. The cache-hit path is also
//! measured by `wrk` (Debian's package), which keeps the client's own cost out of the server's
//! two cores, when it is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_config::Config;
use arbiter_core::{AnalyzeOptions, Detector};
use arbiter_detect::{IntakeLimits, LocalDetector, intake};
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::{self, NewKey, Scope};
use arbiter_server::{Server, build_state};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed & 0x1f) as u8;
        image::Rgb([
            (x % 256) as u8 ^ noise,
            (y % 256) as u8,
            ((x + y) % 256) as u8 ^ noise,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&pixels)
        .unwrap();
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// The multipart body of one upload (a `file` part), encoded once: each request sends the same
/// bytes, as a load tool replaying a body file does, so the client's cost stays small.
fn multipart(image: &[u8]) -> (String, axum::body::Bytes) {
    let boundary = "arbiter-bench-boundary-7d3c1e";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"image.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(image);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into(),
    )
}

/// Sends one upload, checks that it is answered 200, and returns how long it took.
async fn upload(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    content_type: &str,
    body: &axum::body::Bytes,
) -> Duration {
    let sent = Instant::now();
    let response = client
        .post(url)
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.bytes().await.unwrap();
    sent.elapsed()
}

async fn load(url: &str, key: &str, image: &[u8], requests: usize, concurrency: usize) -> Run {
    let client = reqwest::Client::new();
    let (content_type, body) = multipart(image);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, key, content_type, body, next) = (
            client.clone(),
            url.to_owned(),
            key.to_owned(),
            content_type.clone(),
            body.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                latencies.push(upload(&client, &url, &key, &content_type, &body).await);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Run {
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

/// The same load from `wrk` (Debian's package `wrk`), a separate process with a small footprint,
/// for `seconds` over `connections` connections: requests/s, p50, p99. `None` when `wrk` is not
/// installed. Every response must be a 200.
fn wrk(
    url: &str,
    key: &str,
    image: &[u8],
    connections: usize,
    seconds: u32,
    dir: &std::path::Path,
) -> Option<(f64, String, String)> {
    let (content_type, body) = multipart(image);
    let body_path = dir.join("body.bin");
    std::fs::write(&body_path, &body).unwrap();
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.headers[\"Authorization\"] = \"Bearer {key}\"\n\
             wrk.headers[\"Content-Type\"] = \"{content_type}\"\n\
             local f = io.open(\"{}\", \"rb\")\n\
             wrk.body = f:read(\"*all\")\n\
             f:close()\n",
            body_path.display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && !text.contains("Non-2xx"),
        "{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(|rest| rest.trim().to_owned())
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
    };
    let rps = field("Requests/sec:").parse().unwrap();
    Some((rps, field("50%"), field("99%")))
}

async fn serve(cache_ttl_secs: u64, dir: &std::path::Path) -> (String, String, CancellationToken) {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.cache.ttl_secs = cache_ttl_secs;
    let plan = config.rate_limits.plans.get_mut("enterprise").unwrap();
    plan.per_minute = u32::MAX;
    plan.per_day = u32::MAX;
    let state = build_state(config, Arc::new(SystemClock)).await.unwrap();
    let txn = arbiter_db::sea_orm::TransactionTrait::begin(state.pipeline.db().conn())
        .await
        .unwrap();
    let new = NewKey {
        tenant: "bench".into(),
        name: "bench".into(),
        plan: "enterprise".into(),
        scopes: Scope::DEFAULT.to_vec(),
        allow_ips: vec![],
        flow: None,
    };
    let (_, secret) = keys::create(&txn, new, "bench", chrono::Utc::now())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let server = Server::bind_state(state, "127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/analyze", server.local_addr().unwrap());
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move { server.run(token).await.unwrap() });
    (url, secret.expose().to_owned(), stop)
}

/// The detector's own time for one image: intake (hash, sniff), then analysis.
async fn detect(image: &[u8]) -> Duration {
    let started = Instant::now();
    let media = intake(image.to_vec(), &IntakeLimits::default()).unwrap();
    LocalDetector::default()
        .analyze(&media, &AnalyzeOptions::default())
        .await
        .unwrap();
    started.elapsed()
}

/// The detector's own time per image ([`detect`]) and the time of the
/// same image sent over HTTP, one request at a time, measured alternately so that both see the
/// machine in the same state: their p50s, and the HTTP requests per second.
async fn one_at_a_time(url: &str, key: &str, image: &[u8], runs: usize) -> (Duration, Run) {
    let client = reqwest::Client::new();
    let (content_type, body) = multipart(image);
    let mut detector = Vec::new();
    let mut http = Vec::new();
    // The first round warms both up and is not counted.
    for round in 0..=runs {
        let detected = detect(image).await;
        let sent = upload(&client, url, key, &content_type, &body).await;
        if round > 0 {
            detector.push(detected);
            http.push(sent);
        }
    }
    detector.sort();
    http.sort();
    let run = Run {
        rps: http.len() as f64 / http.iter().sum::<Duration>().as_secs_f64(),
        p50: percentile(&http, 0.5),
        p99: percentile(&http, 0.99),
    };
    (percentile(&detector, 0.5), run)
}

/// A bare `GET /healthz` sent right after a detector run, as the serial uploads are: the p50 of
/// a request that does no work after the server has idled as long. This is the floor of the
/// machine (loopback, waking parked threads) that every request pays before any of its own work.
async fn idle_floor(url: &str, image: &[u8], runs: usize) -> Duration {
    let client = reqwest::Client::new();
    let health = url.replace("/v1/analyze", "/healthz");
    let mut bare = Vec::new();
    for round in 0..=runs {
        detect(image).await;
        let sent = Instant::now();
        let response = client.get(&health).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        if round > 0 {
            bare.push(sent.elapsed());
        }
    }
    bare.sort();
    percentile(&bare, 0.5)
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let scale = if quick { 10 } else { 1 };
    let dir = tempfile::tempdir().unwrap();
    println!(
        "api_load: POST /v1/analyze (multipart) on loopback, client and server in one process on this machine"
    );
    for (name, width, height, requests) in [
        ("1 MP JPEG", 1000, 1000, 300 / scale),
        ("12 MP JPEG", 4000, 3000, 60 / scale),
    ] {
        let image = jpeg(width, height);
        let (url, key, stop) = serve(0, &dir.path().join(format!("uncached-{width}"))).await;
        let (detector, serial) = one_at_a_time(&url, &key, &image, requests / 2).await;
        let parallel = load(&url, &key, &image, requests, 4).await;
        let floor = idle_floor(&url, &image, requests / 3).await;
        stop.cancel();
        let overhead = (serial.p50.as_secs_f64() - detector.as_secs_f64()) / detector.as_secs_f64();
        println!(
            "{name} ({} KiB): detector p50 {} | HTTP one at a time p50 {} p99 {} ({:.1} req/s) | 4 concurrent p50 {} p99 {} ({:.1} req/s) | HTTP overhead at p50 {:.1}% of detector time | the machine's floor: a bare GET /healthz after the same idle, p50 {}",
            image.len() / 1024,
            ms(detector),
            ms(serial.p50),
            ms(serial.p99),
            serial.rps,
            ms(parallel.p50),
            ms(parallel.p99),
            parallel.rps,
            overhead * 100.0,
            ms(floor)
        );
    }
    for (name, width, height) in [("320x240", 320, 240), ("1 MP", 1000, 1000)] {
        let image = jpeg(width, height);
        let (url, key, stop) = serve(86_400, &dir.path().join(format!("cached-{width}"))).await;
        load(&url, &key, &image, 1, 1).await;
        let hits = load(&url, &key, &image, 5_000 / scale, 16).await;
        let seconds = if quick { 1 } else { 5 };
        let wrk_dir = dir.path().join(format!("wrk-{width}"));
        std::fs::create_dir_all(&wrk_dir).unwrap();
        let by_wrk = tokio::task::block_in_place(|| wrk(&url, &key, &image, 16, seconds, &wrk_dir));
        stop.cancel();
        println!(
            "cache-hit path ({name} JPEG, {} KiB, 16 concurrent): {:.0} req/s, p50 {} p99 {}",
            image.len() / 1024,
            hits.rps,
            ms(hits.p50),
            ms(hits.p99)
        );
        match by_wrk {
            Some((rps, p50, p99)) => println!(
                "cache-hit path ({name} JPEG, 16 connections, wrk in its own process, {seconds} s): \
                 {rps:.0} req/s, p50 {p50} p99 {p99}"
            ),
            None => println!("cache-hit path by wrk: not measured (install Debian's wrk)"),
        }
    }
}
