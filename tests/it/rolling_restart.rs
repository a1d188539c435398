//! A rolling restart: a replica told to stop turns `/readyz` unready first and keeps serving for
//! `replica.drain_secs`, finishes the images under analysis, and hands back at once the batch
//! jobs it claimed and had not started, which another replica on the database takes long before
//! their leases would run out. On SQLite, and PostgreSQL when `ARBITER_TEST_POSTGRES_URL` is set.

use crate::batches::distinct_png;
use crate::harness::{TestServer, b64, config, each_database, new_key, wait_for};
use arbiter_core::{Analysis, AnalyzeOptions, DetectError, Detector, MediaInput, ModelKind};
use arbiter_db::entity::job;
use arbiter_db::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use arbiter_detect::LocalDetector;
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::Scope;
use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The local detector, a quarter of a second per image: a batch outlasts the stop.
#[derive(Debug)]
struct Slow;

#[async_trait]
impl Detector for Slow {
    fn name(&self) -> &str {
        "local"
    }
    fn models(&self) -> &[ModelKind] {
        &ModelKind::ALL
    }
    async fn analyze(
        &self,
        input: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, DetectError> {
        tokio::time::sleep(Duration::from_millis(250)).await;
        LocalDetector::default().analyze(input, options).await
    }
    async fn health(&self) -> Result<(), DetectError> {
        Ok(())
    }
}

/// A replica named `id` with one job worker (or none) and a minute's job lease.
async fn replica(dir: &Path, url: &str, id: &str, workers: u32) -> TestServer {
    let mut config = config(dir, url);
    config.replica.id = id.to_owned();
    config.replica.drain_secs = 1;
    config.jobs.workers = workers;
    config.jobs.lease_secs = 60;
    config.jobs.poll_interval_ms = 50;
    TestServer::start_with(config, Arc::new(SystemClock), Some(Arc::new(Slow))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_replica_drains_then_hands_back_its_claimed_jobs_at_once() {
    each_database(async |label, dir, url| {
        let first = replica(dir, &url, "first", 1).await;
        let (_, key) = first.mint_key(new_key("acme", "enterprise", &Scope::ALL)).await;
        let images: Vec<Value> = (0..20)
            .map(|n| json!({"image_base64": b64(&distinct_png(500 + n)), "reference_id": format!("img-{n}")}))
            .collect();
        let (status, _, batch) = first
            .post(&key, "/v1/analyze/batch", json!({"images": images}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {batch}");
        let batch_id = batch["batch_id"].as_str().unwrap().to_owned();
        // A connection of the test's own: the replicas close theirs when they stop.
        let db = arbiter_db::Db::connect(&arbiter_db::DbTarget::new(Some(url.clone()), dir))
            .await
            .unwrap();
        let conn = db.conn().clone();
        // The first replica claims the whole batch (one claim takes up to 32 jobs).
        wait_for("the claim", Duration::from_secs(10), async || {
            let held = job::Entity::find()
                .filter(job::Column::BatchId.eq(batch_id.as_str()))
                .filter(job::Column::LeaseOwner.starts_with("first."))
                .all(&conn)
                .await
                .unwrap();
            (held.len() == 20).then_some(())
        })
        .await;

        // Told to stop: unready at once, still serving during the drain.
        let started = Instant::now();
        first.shutdown.cancel();
        let ready = first.client.get(format!("{}/readyz", first.base)).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{label}");
        let ready: Value = ready.json().await.unwrap();
        assert_eq!(ready["status"], "draining", "{label}");
        let (status, _) = first.get(&key, &format!("/v1/batches/{batch_id}")).await;
        assert_eq!(status, StatusCode::OK, "{label}: served while draining");
        first.stop().await;
        assert!(started.elapsed() >= Duration::from_secs(1), "{label}: drained");

        // What it had not started is free at once: no lease held, no attempt counted.
        let jobs = job::Entity::find()
            .filter(job::Column::BatchId.eq(batch_id.as_str()))
            .all(&conn)
            .await
            .unwrap();
        let queued: Vec<_> = jobs
            .iter()
            .filter(|job| job.status == arbiter_db::jobs::QUEUED)
            .collect();
        assert!(!queued.is_empty(), "{label}: the batch ended before the stop");
        for job in &queued {
            assert_eq!(job.lease_owner, None, "{label}: {job:?}");
            assert_eq!(job.lease_until_ms, 0, "{label}: {job:?}");
            assert_eq!(job.attempts, 0, "{label}: {job:?}");
        }

        // Another replica finishes the batch now, not a minute later when the leases would end.
        let second = replica(dir, &url, "second", 1).await;
        let taken = Instant::now();
        let done = wait_for("the batch", Duration::from_secs(30), async || {
            let (_, body) = second.get(&key, &format!("/v1/batches/{batch_id}")).await;
            (body["status"] == "COMPLETE").then_some(body)
        })
        .await;
        assert_eq!(done["completed"], 20, "{label}: {done}");
        assert!(taken.elapsed() < Duration::from_secs(30), "{label}");
        let ended_by_second = job::Entity::find()
            .filter(job::Column::BatchId.eq(batch_id.as_str()))
            .filter(job::Column::LeaseOwner.starts_with("second."))
            .all(&conn)
            .await
            .unwrap();
        assert_eq!(ended_by_second.len(), queued.len(), "{label}");
        second.stop().await;
        db.close().await.unwrap();
    })
    .await;
}
