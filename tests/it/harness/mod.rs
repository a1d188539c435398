//! The one harness of the integration tests: where the repository's files are, the databases a
//! test runs on, a server started with a configuration (in process, or as a real `arbiter serve`
//! process), keys, a switchable webhook receiver, waiting, and snapshot redactions.

pub mod process;
pub mod receiver;
pub mod redactions;
pub mod server;

pub use process::{DbArg, ServeProcess, arbiter, arbiter_command, spawn_server_logged};
pub use receiver::Receiver;
pub use server::{TestServer, config, mint_key, new_key};

use arbiter_db::testing::PostgresTestDb;
use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of `samples/`.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("samples").join(name)).unwrap()
}

/// A file of `tests/fixtures/`.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures").join(path)).unwrap()
}

/// Standard base64.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether an `ARBITER_REQUIRE_*` variable is set to `1`.
fn required(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| v == "1")
}

/// A fresh PostgreSQL database when `ARBITER_TEST_POSTGRES_URL` is set. Without it a test runs
/// on SQLite only, unless `ARBITER_REQUIRE_POSTGRES=1` (set by CI), which makes that a failure.
pub async fn postgres() -> Option<PostgresTestDb> {
    PostgresTestDb::create().await.unwrap()
}

/// The databases a test runs on: an SQLite file (an empty URL) always, and a fresh PostgreSQL
/// database when [`postgres`] gives one. [`Databases::finish`] drops the PostgreSQL one.
pub struct Databases {
    /// Label and database URL (empty for the SQLite file of a data directory).
    pub urls: Vec<(&'static str, String)>,
    postgres: Option<PostgresTestDb>,
}

impl Databases {
    pub async fn new() -> Self {
        let postgres = postgres().await;
        let mut urls = vec![("sqlite", String::new())];
        if let Some(pg) = &postgres {
            urls.push(("postgres", pg.url.clone()));
        }
        Self { urls, postgres }
    }

    /// Drops the PostgreSQL database.
    pub async fn finish(self) {
        if let Some(pg) = self.postgres {
            pg.drop_db().await.unwrap();
        }
    }
}

/// Runs `check` once per database with its label, a data directory of its own (not yet
/// created) and its database URL (empty for SQLite).
pub async fn each_database(check: impl AsyncFn(&'static str, &Path, String)) {
    let dir = tempfile::tempdir().unwrap();
    let databases = Databases::new().await;
    for (label, url) in databases.urls.clone() {
        check(label, &dir.path().join(label), url).await;
    }
    databases.finish().await;
}

/// Probes every 50 ms until `probe` gives a value; fails after `limit`.
pub async fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether python3 with the package `module` is there. Without it the caller skips `what` with a
/// loud message, unless `ARBITER_REQUIRE_PYTHON=1` (set by CI), which makes that a failure.
pub fn python_available(module: &str, what: &str) -> bool {
    let works = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    if !works {
        assert!(
            !required("ARBITER_REQUIRE_PYTHON"),
            "ARBITER_REQUIRE_PYTHON=1 but python3 with the `{module}` package is not available"
        );
        eprintln!(
            "\n!!!!!!!! SKIPPING {what}: python3 with `{module}` is not installed \
             (python3 -m pip install {module}) !!!!!!!!\n"
        );
    }
    works
}

/// Verifies both signatures of a webhook delivery (Standard Webhooks and
/// `X-CheckReal-Signature`) with `secret`, at the delivery's own timestamp.
pub fn verify_delivery(
    secret: &arbiter_webhooks::WebhookSecret,
    headers: &axum::http::HeaderMap,
    body: &str,
) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ts: i64 = header("webhook-timestamp").unwrap().parse().unwrap();
    arbiter_webhooks::verify_standard(
        secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        body.as_bytes(),
        ts,
    )
    .unwrap();
    arbiter_webhooks::verify_checkreal(secret, body.as_bytes(), header("x-checkreal-signature"))
        .unwrap();
}

/// The local detector with its runs counted (`.0`), each run slowed by `.1` so that concurrent
/// identical requests overlap.
#[derive(Debug)]
pub struct CountingDetector(pub std::sync::atomic::AtomicUsize, pub std::time::Duration);

impl CountingDetector {
    /// A counter at zero whose runs each take at least `delay`.
    pub fn slowed(delay: std::time::Duration) -> Self {
        Self(std::sync::atomic::AtomicUsize::new(0), delay)
    }
}

#[async_trait::async_trait]
impl arbiter_core::Detector for CountingDetector {
    fn name(&self) -> &str {
        "local"
    }
    fn models(&self) -> &[arbiter_core::ModelKind] {
        &arbiter_core::ModelKind::ALL
    }
    async fn analyze(
        &self,
        input: &arbiter_core::MediaInput,
        options: &arbiter_core::AnalyzeOptions,
    ) -> Result<arbiter_core::Analysis, arbiter_core::DetectError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.1).await;
        arbiter_detect::LocalDetector::default()
            .analyze(input, options)
            .await
    }
    async fn health(&self) -> Result<(), arbiter_core::DetectError> {
        Ok(())
    }
}
