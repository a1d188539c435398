//! A rolling restart: a replica told to stop turns `/readyz` unready first and keeps serving for
//! `replica.drain_secs`, finishes the images under analysis, and hands back at once the batch
//! jobs it claimed and had not started, which another replica on the database takes long before
//! their leases would run out. Webhook deliveries likewise: the attempt under way is finished and
//! recorded, and the deliveries the replica holds and has not sent are handed back. On SQLite,
//! and PostgreSQL when `ARBITER_TEST_POSTGRES_URL` is set.

use crate::batches::distinct_png;
use crate::harness::{TestServer, b64, config, each_database, new_key, wait_for};
use arbiter_core::{Analysis, AnalyzeOptions, DetectError, Detector, MediaInput, ModelKind};
use arbiter_db::entity::{job, webhook_delivery};
use arbiter_db::sea_orm::sea_query::Expr;
use arbiter_db::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use arbiter_db::webhooks;
use arbiter_detect::LocalDetector;
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::Scope;
use arbiter_webhooks::outbox::{self, Message};
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

/// How many times each delivery id arrived.
type Arrivals = Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// A receiver that answers 200 after `delay`, counting the arrivals of each delivery id.
async fn slow_receiver(delay: Duration) -> (String, Arrivals) {
    let seen: Arrivals = Arc::default();
    let app = axum::Router::new()
        .route(
            "/{*path}",
            axum::routing::post(
                move |axum::extract::State(seen): axum::extract::State<Arrivals>,
                      headers: axum::http::HeaderMap| async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    *seen.lock().unwrap().entry(id).or_default() += 1;
                    tokio::time::sleep(delay).await;
                    StatusCode::OK
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// A replica named `id` that sends webhooks (one loop) and runs no jobs.
async fn sender(dir: &Path, url: &str, id: &str) -> TestServer {
    let mut config = config(dir, url);
    config.replica.id = id.to_owned();
    config.replica.drain_secs = 0;
    config.jobs.workers = 0;
    config.webhooks.workers = 1;
    config.jobs.poll_interval_ms = 50;
    config.outbound.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
    TestServer::start_with(config, Arc::new(SystemClock), Some(Arc::new(Slow))).await
}

/// Writes one delivery (of request `req_<n>`) to `url`; its id.
async fn delivery(conn: &impl arbiter_db::sea_orm::ConnectionTrait, n: usize, url: &str) -> String {
    let request_id = format!("req_{n}");
    let message = Message {
        event: "analysis.complete",
        payload: json!({"event": "analysis.complete", "request_id": request_id}),
        request_id: Some(&request_id),
        reference_id: None,
        batch_id: None,
    };
    outbox::enqueue(conn, "acme", &message, Some(url), chrono::Utc::now())
        .await
        .unwrap();
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::RequestId.eq(request_id.as_str()))
        .one(conn)
        .await
        .unwrap()
        .unwrap()
        .delivery_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_replica_finishes_the_attempt_under_way_and_hands_back_the_deliveries_it_holds() {
    each_database(async |label, dir, url| {
        let (receiver, seen) = slow_receiver(Duration::from_millis(1500)).await;
        let hook = format!("{receiver}/hook");
        let first = sender(dir, &url, "first").await;
        let db = arbiter_db::Db::connect(&arbiter_db::DbTarget::new(Some(url.clone()), dir))
            .await
            .unwrap();
        let conn = db.conn().clone();

        // One delivery the first replica claims and starts sending (the receiver is slow).
        let txn = db.begin_write().await.unwrap();
        let sending = delivery(&txn, 0, &hook).await;
        txn.commit().await.unwrap();
        first.state.webhooks.wake.notify_waiters();
        wait_for(
            "the attempt to start",
            Duration::from_secs(10),
            async || seen.lock().unwrap().contains_key(&sending).then_some(()),
        )
        .await;

        // Four more that a claim of the first replica's holds, not started: a lease ten minutes
        // long, far beyond the test's bounds.
        let txn = db.begin_write().await.unwrap();
        let mut held = Vec::new();
        for n in 1..=4 {
            held.push(delivery(&txn, n, &hook).await);
        }
        let until = chrono::Utc::now().timestamp_millis() + 600_000;
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::LeaseOwner,
                Expr::value("first.01KBHELD0000000000000000"),
            )
            .col_expr(webhook_delivery::Column::LeaseUntilMs, Expr::value(until))
            .filter(webhook_delivery::Column::DeliveryId.is_in(held.iter().map(String::as_str)))
            .exec(&txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();

        // Stopped: the attempt under way ends and is recorded, once.
        first.stop().await;
        let rows = webhook_delivery::Entity::find().all(&conn).await.unwrap();
        let sent = rows.iter().find(|row| row.delivery_id == sending).unwrap();
        assert_eq!(sent.status, webhooks::SUCCEEDED, "{label}: {sent:?}");
        assert_eq!(sent.attempts, 1, "{label}: {sent:?}");
        // What it held and had not sent is free at once: no lease, no attempt counted.
        for row in rows.iter().filter(|row| held.contains(&row.delivery_id)) {
            assert_eq!(row.status, webhooks::PENDING, "{label}: {row:?}");
            assert_eq!(row.lease_owner, None, "{label}: {row:?}");
            assert_eq!(row.lease_until_ms, 0, "{label}: {row:?}");
            assert_eq!(row.attempts, 0, "{label}: {row:?}");
        }

        // Another replica sends them now, not ten minutes later.
        let second = sender(dir, &url, "second").await;
        wait_for(
            "the handed-back deliveries",
            Duration::from_secs(20),
            async || {
                let done = webhook_delivery::Entity::find()
                    .filter(
                        webhook_delivery::Column::DeliveryId.is_in(held.iter().map(String::as_str)),
                    )
                    .filter(webhook_delivery::Column::Status.eq(webhooks::SUCCEEDED))
                    .count(&conn)
                    .await
                    .unwrap();
                (done == 4).then_some(())
            },
        )
        .await;
        second.stop().await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 5, "{label}: {seen:?}");
        assert!(
            seen.values().all(|n| *n == 1),
            "{label}: each sent once: {seen:?}"
        );
        db.close().await.unwrap();
    })
    .await;
}
