//! Replicas benchmark: requests per second with one, two and three `arbiter serve` processes on
//! one PostgreSQL database, and the time each coordination point adds per request.
//!
//! `cargo bench --bench replicas` (or `-- --quick` for a fifth of the requests). It needs a
//! PostgreSQL server on this machine: `ARBITER_BENCH_POSTGRES_URL`, else
//! `ARBITER_TEST_POSTGRES_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`; it creates a
//! database of its own there and drops it at the end. Without PostgreSQL it says so and exits 0.
//! Everything listens on 127.0.0.1.
//!
//! 1. Throughput: three replicas on the database (workers off, the enterprise plan given room for
//!    every request); each round sends the same number of `POST /v1/analyze` requests (each a distinct
//!    image: a cache miss that runs the detector, takes the rate counter and the single-flight
//!    lease and writes its result and audit entry) from 6 concurrent clients spread over the
//!    first one, two and three replicas, the three in turn round after round, so the machine's
//!    load falls on all alike. Each measurement is bounded in requests and in time (60 s).
//! 2. Coordination points, against one replica with the point off, interleaved request by
//!    request:
//!    - single flight: one request to a replica with `cache.single_flight` on, one to a replica
//!      with it off, order alternating, each a distinct image;
//!    - shared rate limit: the statement each request runs (`RateLimiter::check`, one
//!      conditional upsert of `rate_counters`) against running none;
//!    - singleton lock: a write transaction taking an advisory lock (`arbiter_db::singleton::
//!      hold`, as UGC sealing and `policy.activated` do) against the same transaction without
//!      it.
//!
//! It prints medians and ratios against the single-replica baseline measured in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_db::sea_orm::{ConnectionTrait, Database};
use base64::Engine;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests per throughput measurement (a fifth with `--quick`).
const REQUESTS: usize = 240;
/// Rounds of the three throughput measurements.
const ROUNDS: usize = 3;
/// Concurrent clients in a throughput measurement.
const CLIENTS: usize = 6;
/// Pairs of requests (or statements) per coordination point (a fifth with `--quick`).
const PAIRS: usize = 200;
/// The longest a throughput measurement may run.
const MEASUREMENT_LIMIT: Duration = Duration::from_secs(60);

const CONFIG: &str = "\
jobs:
  workers: 0
webhooks:
  workers: 0
log:
  level: warn
rate_limits:
  default_plan: enterprise
  plans:
    enterprise: { per_minute: 100000000, per_day: 1000000000, batch_size: 1000 }
";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(quick));
}

/// A distinct 128x128 PNG for each `n` (noise seeded by it), as the JSON of an analyze request.
fn request_body(n: usize) -> Value {
    let mut seed = (n as u32).wrapping_mul(2_654_435_761) | 1;
    let image = image::RgbImage::from_fn(128, 128, |x, y| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        image::Rgb([(seed >> 8) as u8, (seed >> 16) as u8, (x + y) as u8])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    json!({"image_base64": base64::engine::general_purpose::STANDARD.encode(&png)})
}

/// One `arbiter serve` process; killed when dropped.
struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    fn start(url: &str, dir: &Path, config: &Path, id: &str, single_flight: bool) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arbiter"))
            .current_dir(repo())
            .env("ARBITER_DATABASE_URL", url)
            .env("ARBITER_DATA_DIR", dir)
            .env("ARBITER_REPLICA_ID", id)
            .env("ARBITER_CACHE_SINGLE_FLIGHT", single_flight.to_string())
            .env_remove("ARBITER_CONFIG")
            .env_remove("RUST_LOG")
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
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
            if let Some(at) = line.find("arbiter listening on ") {
                break line[at + "arbiter listening on ".len()..].trim().to_owned();
            }
        };
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Self { child, base }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Sends one analyze request; its time. Any answer but 200 ends the bench.
async fn analyze(client: &reqwest::Client, base: &str, key: &str, body: &Value) -> Duration {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/v1/analyze"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    started.elapsed()
}

/// Requests per second with `replicas`, `requests` bodies from `next` on.
async fn throughput(
    client: &reqwest::Client,
    replicas: &[&Replica],
    key: &str,
    bodies: &Arc<Vec<Value>>,
    next: &AtomicUsize,
    requests: usize,
) -> f64 {
    let first = next.fetch_add(requests, Ordering::SeqCst);
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let clients = (0..CLIENTS).map(|_| {
        let (client, bases, key, bodies, sent) = (
            client.clone(),
            bases.clone(),
            key.to_owned(),
            bodies.clone(),
            sent.clone(),
        );
        tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let n = sent.fetch_add(1, Ordering::SeqCst);
                if n >= requests || started.elapsed() > MEASUREMENT_LIMIT {
                    return done;
                }
                analyze(&client, &bases[n % bases.len()], &key, &bodies[first + n]).await;
                done += 1;
            }
        })
    });
    let mut done = 0;
    for client in clients {
        done += client.await.unwrap();
    }
    done as f64 / started.elapsed().as_secs_f64()
}

async fn run(quick: bool) {
    let admin_url = std::env::var("ARBITER_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("ARBITER_TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = match tokio::time::timeout(Duration::from_secs(5), Database::connect(&admin_url))
        .await
    {
        Ok(Ok(admin)) => admin,
        Ok(Err(err)) => {
            println!("replicas bench: PostgreSQL at {admin_url} is not reachable ({err}); skipped");
            return;
        }
        Err(_) => {
            println!("replicas bench: PostgreSQL at {admin_url} did not answer in 5 s; skipped");
            return;
        }
    };
    let name = format!("arbiter_bench_replicas_{}", std::process::id());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let outcome = tokio::spawn(measure(url, quick)).await;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

async fn measure(url: String, quick: bool) {
    let (requests, pairs) = if quick {
        (REQUESTS / 5, PAIRS / 5)
    } else {
        (REQUESTS, PAIRS)
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = dir.path().join("arbiter.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    // The schema and a key first, by the binary itself.
    let output = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .current_dir(repo())
        .env("ARBITER_DATABASE_URL", &url)
        .env("ARBITER_DATA_DIR", &data)
        .args(["keys", "create", "--tenant", "acme", "--name", "bench"])
        .args(["--plan", "enterprise", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key: Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = key["key"].as_str().unwrap().to_owned();

    let replicas: Vec<Replica> = (0..3)
        .map(|n| Replica::start(&url, &data, &config, &format!("bench-{n}"), true))
        .collect();
    let off = Replica::start(&url, &data, &config, "bench-off", false);
    let total = ROUNDS * 3 * requests + 2 * pairs + 2 * CLIENTS;
    let bodies: Arc<Vec<Value>> = Arc::new((0..total).map(request_body).collect());
    let next = AtomicUsize::new(0);
    let client = reqwest::Client::new();
    // Warm-up: each replica's connections and the detector.
    for replica in replicas.iter().chain([&off]) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        analyze(&client, &replica.base, &key, &bodies[n]).await;
    }

    println!(
        "replicas bench: {requests} distinct-image POST /v1/analyze per measurement, {CLIENTS} clients, {ROUNDS} rounds"
    );
    let mut per_count: [Vec<f64>; 3] = Default::default();
    for round in 0..ROUNDS {
        // The order turns each round.
        for k in 0..3 {
            let count = (round + k) % 3 + 1;
            let chosen: Vec<&Replica> = replicas.iter().take(count).collect();
            let rps = throughput(&client, &chosen, &key, &bodies, &next, requests).await;
            per_count[count - 1].push(rps);
        }
    }
    let medians: Vec<f64> = per_count
        .iter_mut()
        .map(|samples| {
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        })
        .collect();
    for (n, rps) in medians.iter().enumerate() {
        println!(
            "  {} replica(s): {rps:7.1} requests/s (median of {ROUNDS}), {:.2}x one replica",
            n + 1,
            rps / medians[0]
        );
    }

    // Coordination points, interleaved.
    let mut with_sf = Vec::with_capacity(pairs);
    let mut without_sf = Vec::with_capacity(pairs);
    let db = arbiter_db::Db::connect(&arbiter_db::DbTarget::Url(url.clone()))
        .await
        .unwrap();
    let limiter = arbiter_server::ratelimit::RateLimiter::new(
        db.clone(),
        Arc::new(arbiter_server::clock::SystemClock),
    );
    let plan = arbiter_config::Plan {
        per_minute: 100_000_000,
        per_day: 1_000_000_000,
        batch_size: 1_000,
    };
    let mut rate = Vec::with_capacity(pairs);
    let mut locked = Vec::with_capacity(pairs);
    let mut unlocked = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let a = next.fetch_add(1, Ordering::SeqCst);
        let b = next.fetch_add(1, Ordering::SeqCst);
        if i % 2 == 0 {
            with_sf.push(analyze(&client, &replicas[0].base, &key, &bodies[a]).await);
            without_sf.push(analyze(&client, &off.base, &key, &bodies[b]).await);
        } else {
            without_sf.push(analyze(&client, &off.base, &key, &bodies[b]).await);
            with_sf.push(analyze(&client, &replicas[0].base, &key, &bodies[a]).await);
        }
        let started = Instant::now();
        let (_, refused) = limiter.check("bench-rate", &plan).await.unwrap();
        assert!(refused.is_none());
        rate.push(started.elapsed());
        let transaction = async |lock: bool| {
            let started = Instant::now();
            let txn = db.begin_write().await.unwrap();
            if lock {
                arbiter_db::singleton::hold(&txn, "bench.singleton")
                    .await
                    .unwrap();
            }
            txn.commit().await.unwrap();
            started.elapsed()
        };
        if i % 2 == 0 {
            locked.push(transaction(true).await);
            unlocked.push(transaction(false).await);
        } else {
            unlocked.push(transaction(false).await);
            locked.push(transaction(true).await);
        }
    }
    db.close().await.unwrap();
    let baseline = median(&mut without_sf);
    let single_flight = median(&mut with_sf);
    let rate = median(&mut rate);
    let (locked, unlocked) = (median(&mut locked), median(&mut unlocked));
    let lock = locked.saturating_sub(unlocked);
    println!(
        "coordination points, {pairs} interleaved pairs; baseline: one replica, single flight off, {:.2} ms per request (median)",
        ms(baseline)
    );
    println!(
        "  single flight:      {:.2} ms with it on, {:+.2} ms per cache miss, {:.3}x the baseline",
        ms(single_flight),
        ms(single_flight) - ms(baseline),
        single_flight.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  shared rate limit:  {:.3} ms per request (one rate_counters upsert), {:.3} of the baseline",
        ms(rate),
        rate.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  singleton lock:     {:.3} ms added to a write transaction ({:.3} ms with, {:.3} ms without), {:.3} of the baseline",
        ms(lock),
        ms(locked),
        ms(unlocked),
        lock.as_secs_f64() / baseline.as_secs_f64()
    );
    drop(replicas);
    drop(off);
}
