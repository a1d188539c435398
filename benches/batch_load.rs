//! Batch and webhook load benchmark against the release `arbiter` binary, run as a child process
//! on loopback so that its peak RSS (`VmHWM` in `/proc/<pid>/status`) is its own.
//!
//! `cargo bench --bench batch_load` (full) or `cargo bench --bench batch_load -- --quick` (every
//! count divided by 10, as a smoke run). Bounded counts; it stops by itself. Measures, in one run:
//!
//! 1. The detector baseline: intake + `LocalDetector` analyze of distinct 320x240 JPEGs, with
//!    as many in parallel as the server has job workers (`jobs.workers`, default 2), images/s.
//! 2. A 1,000-image batch (`POST /v1/analyze/batch`, `image_base64`) polled with
//!    `GET /v1/batches/{id}` until complete: images/s from submission to completion, and its ratio
//!    to the detector baseline (target >= 90%). Peak RSS of a fresh server process for a
//!    100-image, a 1,000-image and a 3,000-image batch (target: does not grow with the batch
//!    size; the plan's batch size is raised for the largest). The 1,000-image batch is run a
//!    second time polled every 2 s instead of every 100 ms, to show what the polling itself
//!    costs.
//! 3. Webhook delivery to a loopback receiver answering 200: a backlog of 10,000 outbox rows
//!    written with arbiter-webhooks' own `outbox::enqueue` while the server is stopped, then the
//!    server started again and timed until the receiver has counted every delivery and the
//!    deliveries table says they succeeded. Deliveries/s (target >= 1,000/s) and drain time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_config::Config;
use arbiter_core::{AnalyzeOptions, Detector};
use arbiter_detect::{IntakeLimits, LocalDetector, intake};
use arbiter_server::build_state;
use arbiter_server::clock::SystemClock;
use arbiter_webhooks::outbox::{self, Message};
use axum::extract::State;
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest batch measured, over the enterprise plan's 1,000 (raised for the bench).
const LARGEST_BATCH: usize = 3_000;

/// Job workers of the server (`jobs.workers`); the baseline uses the same parallelism.
const JOB_WORKERS: usize = 2;
/// Delivery loops of the server (`webhooks.workers`) and deliveries per loop
/// (`webhooks.concurrency`): the defaults.
const WEBHOOK_WORKERS: u32 = 1;
const WEBHOOK_CONCURRENCY: u32 = 64;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A 320x240 JPEG whose pixels depend on `seed`: distinct bytes (and SHA-256) per image, so the
/// result cache never hits.
fn jpeg(seed: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_u32 ^ seed.wrapping_mul(0x9e37_79b9) | 1;
    let pixels = image::RgbImage::from_fn(320, 240, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state & 0x1f) as u8;
        image::Rgb([
            ((x + seed) % 256) as u8 ^ noise,
            ((y + seed / 7) % 256) as u8,
            ((x + y) % 256) as u8 ^ noise,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&pixels)
        .unwrap();
    out
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// CPU time the process has used (user + system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Intake + detector on `images`, `parallel` at a time (as the job workers do), images/s.
async fn detector_baseline(images: Arc<Vec<Vec<u8>>>, parallel: usize) -> f64 {
    // Warm up on an image not in the set.
    let warm = intake(jpeg(u32::MAX), &IntakeLimits::default()).unwrap();
    LocalDetector::default()
        .analyze(&warm, &AnalyzeOptions::default())
        .await
        .unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (images, next) = (images.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(bytes) = images.get(i) else { break };
                let media = intake(bytes.clone(), &IntakeLimits::default()).unwrap();
                LocalDetector::default()
                    .analyze(&media, &AnalyzeOptions::default())
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    images.len() as f64 / started.elapsed().as_secs_f64()
}

/// A server process of the release binary.
struct Process {
    child: Child,
    base: String,
    /// From spawn to "arbiter listening".
    startup: Duration,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a graceful stop), then wait; SIGKILL after 30 s.
    fn stop(mut self) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn arbiter(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbiter"));
    command
        .current_dir(dir)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("ARBITER_DATABASE_URL")
        .env("ARBITER_POLICIES_DIR", repo().join("policies"))
        .env("ARBITER_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")
        .env(
            "ARBITER_RATE_LIMITS_PLANS_ENTERPRISE_PER_MINUTE",
            "1000000000",
        )
        .env("ARBITER_RATE_LIMITS_PLANS_ENTERPRISE_PER_DAY", "1000000000")
        .env(
            "ARBITER_RATE_LIMITS_PLANS_ENTERPRISE_BATCH_SIZE",
            LARGEST_BATCH.to_string(),
        )
        .env("ARBITER_JOBS_WORKERS", JOB_WORKERS.to_string())
        .env("ARBITER_WEBHOOKS_WORKERS", WEBHOOK_WORKERS.to_string())
        .env(
            "ARBITER_WEBHOOKS_CONCURRENCY",
            WEBHOOK_CONCURRENCY.to_string(),
        )
        .env("RUST_LOG", "warn");
    command
}

fn serve(dir: &Path) -> Process {
    let started = Instant::now();
    let mut child = arbiter(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        if let Some(addr) = line.strip_prefix("arbiter listening on ") {
            break addr.trim().to_owned();
        }
    };
    let startup = started.elapsed();
    // Keep draining stderr so the server never blocks on a full pipe; show warnings.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("  [server] {line}");
        }
    });
    Process {
        child,
        base,
        startup,
    }
}

fn create_key(dir: &Path) -> String {
    let output = arbiter(dir)
        .args([
            "keys",
            "create",
            "--tenant",
            "bench",
            "--name",
            "bench",
            "--plan",
            "enterprise",
            "--scope",
            "analyze,batch,requests:read,webhooks",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    created["key"].as_str().unwrap().to_owned()
}

/// What one batch run gave.
struct BatchRun {
    /// Client wall time from sending the POST to seeing COMPLETE.
    wall: Duration,
    /// Server time from the batch's `created_at` to its `completed_at`.
    server: Duration,
    /// Time to get the 202.
    accepted: Duration,
    /// Server CPU time (user + system) from sending the POST to seeing COMPLETE.
    cpu: Duration,
    /// Server peak RSS right after start-up (key made, nothing submitted), KiB.
    idle_hwm: u64,
    /// Server peak RSS right after the 202, KiB.
    accepted_hwm: u64,
    /// Server peak RSS at the end, KiB.
    hwm: u64,
    body_bytes: usize,
}

/// A fresh server process and data directory; one batch of `images`, polled to completion.
async fn batch_run(client: &reqwest::Client, images: &[Vec<u8>], poll: Duration) -> BatchRun {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path());
    let server = serve(dir.path());
    let idle_hwm = status_kib(server.pid(), "VmHWM");
    let entries: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            json!({
                "image_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
                "reference_id": format!("img-{i}"),
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({"images": entries})).unwrap();
    let body_bytes = body.len();
    let cpu_before = cpu_time(server.pid());
    let started = Instant::now();
    let response = client
        .post(format!("{}/v1/analyze/batch", server.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let accepted = started.elapsed();
    let accepted_hwm = status_kib(server.pid(), "VmHWM");
    assert_eq!(
        response.status(),
        202,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let accepted_body: Value = response.json().await.unwrap();
    let batch_id = accepted_body["batch_id"].as_str().unwrap().to_owned();
    let status = loop {
        let status: Value = client
            .get(format!("{}/v1/batches/{batch_id}", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "COMPLETE" {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "the batch did not complete: {}",
            status["completed"]
        );
        tokio::time::sleep(poll).await;
    };
    let wall = started.elapsed();
    let cpu = cpu_time(server.pid()) - cpu_before;
    let hwm = status_kib(server.pid(), "VmHWM");
    assert_eq!(status["completed"], images.len(), "{}", status["failed"]);
    let at = |field: &str| -> chrono::DateTime<chrono::Utc> {
        status[field].as_str().unwrap().parse().unwrap()
    };
    let server_time = (at("completed_at") - at("created_at")).to_std().unwrap();
    server.stop();
    BatchRun {
        wall,
        server: server_time,
        cpu,
        accepted,
        idle_hwm,
        accepted_hwm,
        hwm,
        body_bytes,
    }
}

/// What the receiver has counted.
#[derive(Default)]
struct Counted {
    deliveries: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    sample: Mutex<Option<String>>,
}

/// A loopback receiver counting deliveries; always 200.
async fn receiver() -> (String, Arc<Counted>) {
    let counted = Arc::new(Counted::default());
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(counted): State<Arc<Counted>>, body: String| async move {
                    let now = Instant::now();
                    counted.first.lock().unwrap().get_or_insert(now);
                    *counted.last.lock().unwrap() = Some(now);
                    counted.sample.lock().unwrap().get_or_insert(body);
                    counted.deliveries.fetch_add(1, Ordering::SeqCst);
                    "ok"
                },
            ),
        )
        .with_state(counted.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, counted)
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the webhook backlog run gave.
struct WebhookRun {
    backlog: usize,
    enqueue: Duration,
    startup: Duration,
    /// From spawning the server to the receiver counting the whole backlog.
    drain: Duration,
    /// From the first delivery received to the last.
    first_to_last: Duration,
    /// From spawning the server to the deliveries table saying every row succeeded.
    drain_recorded: Duration,
    hwm: u64,
}

async fn webhook_run(client: &reqwest::Client, backlog: usize) -> WebhookRun {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path());
    let (hook_base, counted) = receiver().await;
    let server = serve(dir.path());
    let response = client
        .post(format!("{}/v1/webhooks/endpoints", server.base))
        .bearer_auth(&key)
        .json(&json!({"url": format!("{hook_base}/hook"), "events": ["analysis.complete"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "{}",
        response.text().await.unwrap_or_default()
    );
    // One real analysis.complete, so that the backlog's bodies are the real shape and size.
    let image = base64::engine::general_purpose::STANDARD.encode(jpeg(4_000_000));
    let response = client
        .post(format!("{}/v1/analyze/batch", server.base))
        .bearer_auth(&key)
        .json(&json!({"images": [{"image_base64": image, "reference_id": "template"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    wait_until("the template delivery", Duration::from_secs(60), || {
        counted.deliveries.load(Ordering::SeqCst) >= 1
    })
    .await;
    server.stop();
    let template: Value =
        serde_json::from_str(counted.sample.lock().unwrap().as_deref().unwrap()).unwrap();

    // The backlog, written through the server crate's own enqueue while the server is stopped.
    let config = Config {
        data_dir: dir.path().join("data"),
        policies_dir: repo().join("policies").display().to_string(),
        ..Config::default()
    };
    let state = build_state(config, Arc::new(SystemClock)).await.unwrap();
    let db = state.pipeline.db();
    let started = Instant::now();
    let txn = db.begin_write().await.unwrap();
    let now = chrono::Utc::now();
    for i in 0..backlog {
        let request_id = arbiter_core::RequestId::new().to_string();
        let reference_id = format!("backlog-{i}");
        let mut payload = template.clone();
        payload["request_id"] = json!(request_id);
        payload["reference_id"] = json!(reference_id);
        payload["timestamp"] = json!(now);
        let message = Message {
            event: "analysis.complete",
            payload,
            request_id: Some(&request_id),
            reference_id: Some(&reference_id),
            batch_id: None,
        };
        let rows = outbox::enqueue(&txn, "bench", &message, None, now)
            .await
            .unwrap();
        assert_eq!(rows, 1, "one endpoint takes analysis.complete");
    }
    txn.commit().await.unwrap();
    let enqueue = started.elapsed();
    let pending = arbiter_db::webhooks::count_deliveries(db.conn(), arbiter_db::webhooks::PENDING)
        .await
        .unwrap();
    assert_eq!(pending as usize, backlog);

    let before = counted.deliveries.load(Ordering::SeqCst);
    *counted.first.lock().unwrap() = None;
    let spawned = Instant::now();
    let server = serve(dir.path());
    let startup = server.startup;
    let target = before + backlog as u64;
    wait_until("the backlog to drain", Duration::from_secs(1800), || {
        counted.deliveries.load(Ordering::SeqCst) >= target
    })
    .await;
    let drain = spawned.elapsed();
    let succeeded = target;
    let started_poll = Instant::now();
    loop {
        let n = arbiter_db::webhooks::count_deliveries(db.conn(), arbiter_db::webhooks::SUCCEEDED)
            .await
            .unwrap();
        if n >= succeeded {
            break;
        }
        assert!(started_poll.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_recorded = spawned.elapsed();
    let first_to_last = counted
        .last
        .lock()
        .unwrap()
        .unwrap()
        .duration_since(counted.first.lock().unwrap().unwrap());
    let hwm = status_kib(server.pid(), "VmHWM");
    let extra = counted.deliveries.load(Ordering::SeqCst) - target;
    assert_eq!(extra, 0, "no delivery twice");
    server.stop();
    WebhookRun {
        backlog,
        enqueue,
        startup,
        drain,
        first_to_last,
        drain_recorded,
        hwm,
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let scale = if quick { 10 } else { 1 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(quick, scale));
}

async fn run(quick: bool, scale: usize) {
    let load_start = loadavg();
    println!(
        "batch_load{}: loadavg at start {load_start}; {} CPUs",
        if quick { " --quick (counts / 10)" } else { "" },
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let big = 1_000 / scale;
    let small = 100 / scale;
    let largest = LARGEST_BATCH / scale;
    let backlog = 10_000 / scale;
    let all_images: Vec<Vec<u8>> = (0..largest as u32).map(jpeg).collect();
    let mean_bytes = all_images.iter().map(Vec::len).sum::<usize>() / all_images.len();
    println!(
        "images: 320x240 JPEG, distinct pixels each, mean {mean_bytes} bytes; jobs.workers = {JOB_WORKERS}"
    );
    let client = reqwest::Client::new();
    let poll = Duration::from_millis(100);

    // 1. The detector's own throughput, before and after the batch (the machine is shared).
    let images = Arc::new(all_images[..big].to_vec());
    let baseline_before = detector_baseline(images.clone(), JOB_WORKERS).await;
    println!(
        "detector baseline (before): {baseline_before:.1} images/s (intake + LocalDetector, {JOB_WORKERS} in parallel, {big} images)"
    );

    // 2. Batches, each on a fresh server process.
    let small_run = batch_run(&client, &images[..small], poll).await;
    let big_run = batch_run(&client, &images, poll).await;
    // The same batch polled 20 times less often: how much the polling itself costs.
    let slow_poll = Duration::from_secs(2);
    let big_slow = batch_run(&client, &images, slow_poll).await;
    let largest_run = batch_run(&client, &all_images, slow_poll).await;
    let baseline_after = detector_baseline(images.clone(), JOB_WORKERS).await;
    println!("detector baseline (after):  {baseline_after:.1} images/s");
    let baseline = (baseline_before + baseline_after) / 2.0;
    println!("detector baseline (mean):   {baseline:.1} images/s");
    for (n, run) in [(small, &small_run), (big, &big_run)] {
        let wall_rate = n as f64 / run.wall.as_secs_f64();
        let server_rate = n as f64 / run.server.as_secs_f64().max(1e-3);
        println!(
            "batch of {n}: body {:.1} MiB, 202 after {:.0} ms; submission to completion {:.2} s = \
             {wall_rate:.1} images/s = {:.1}% of the detector baseline (target >= 90%); \
             server created_at..completed_at {:.2} s = {server_rate:.1} images/s = {:.1}%",
            run.body_bytes as f64 / 1_048_576.0,
            run.accepted.as_secs_f64() * 1e3,
            run.wall.as_secs_f64(),
            100.0 * wall_rate / baseline,
            run.server.as_secs_f64(),
            100.0 * server_rate / baseline,
        );
        println!(
            "batch of {n}: server CPU time {:.2} s over {:.2} s of submission to completion \
             = {:.2} cores busy on average; detector time in it at the baseline rate {:.2} s",
            run.cpu.as_secs_f64(),
            run.wall.as_secs_f64(),
            run.cpu.as_secs_f64() / run.wall.as_secs_f64(),
            n as f64 / baseline * JOB_WORKERS as f64,
        );
        println!(
            "batch of {n}: server peak RSS (VmHWM) {} (idle after start-up: {}; right after the \
             202: {})",
            mib(run.hwm),
            mib(run.idle_hwm),
            mib(run.accepted_hwm),
        );
    }
    let slow_rate = big as f64 / big_slow.server.as_secs_f64().max(1e-3);
    println!(
        "batch of {big} polled every {} s instead of {} ms: submission to completion {:.2} s; \
         server created_at..completed_at {:.2} s = {slow_rate:.1} images/s = {:.1}% of the \
         detector baseline; server peak RSS {}",
        slow_poll.as_secs(),
        poll.as_millis(),
        big_slow.wall.as_secs_f64(),
        big_slow.server.as_secs_f64(),
        100.0 * slow_rate / baseline,
        mib(big_slow.hwm),
    );
    println!(
        "batch of {largest} polled every {} s: server created_at..completed_at {:.2} s = {:.1} \
         images/s; server peak RSS {} (idle after start-up: {})",
        slow_poll.as_secs(),
        largest_run.server.as_secs_f64(),
        largest as f64 / largest_run.server.as_secs_f64().max(1e-3),
        mib(largest_run.hwm),
        mib(largest_run.idle_hwm),
    );
    println!(
        "peak RSS {big} vs {small} images: {} vs {} = {:.2}x; {largest} vs {big} images: {} vs {} \
         = {:.2}x (target: does not grow with the batch size)",
        mib(big_run.hwm),
        mib(small_run.hwm),
        big_run.hwm as f64 / small_run.hwm as f64,
        mib(largest_run.hwm),
        mib(big_run.hwm),
        largest_run.hwm as f64 / big_run.hwm as f64,
    );

    // 3. Webhook backlog.
    let hooks = webhook_run(&client, backlog).await;
    let rate = hooks.backlog as f64 / hooks.drain.as_secs_f64();
    let rate_steady = hooks.backlog as f64 / hooks.first_to_last.as_secs_f64();
    println!(
        "webhooks: backlog of {} (enqueued via outbox::enqueue in {:.2} s); webhooks.workers = \
         {WEBHOOK_WORKERS}, webhooks.concurrency = {WEBHOOK_CONCURRENCY}",
        hooks.backlog,
        hooks.enqueue.as_secs_f64(),
    );
    println!(
        "webhooks: drain (server spawn -> receiver counted all) {:.2} s = {rate:.0} deliveries/s = \
         {:.0}% of the 1,000/s target; first to last delivery {:.2} s = {rate_steady:.0}/s; all \
         recorded succeeded after {:.2} s; server start-up {:.2} s; server peak RSS {}",
        hooks.drain.as_secs_f64(),
        100.0 * rate / 1_000.0,
        hooks.first_to_last.as_secs_f64(),
        hooks.drain_recorded.as_secs_f64(),
        hooks.startup.as_secs_f64(),
        mib(hooks.hwm),
    );
    println!(
        "client peak RSS (this process) {}",
        mib(status_kib(std::process::id(), "VmHWM"))
    );
    println!("loadavg at start {load_start}; at end {}", loadavg());
}
