//! Single flight across replicas (`cache.single_flight`): identical requests arriving at two
//! servers on one PostgreSQL database at once run the detector once; with it off, once per
//! replica. On SQLite (one process's database) identical requests share one run within the
//! process and a cache miss writes no lease row. On SQLite, and PostgreSQL when
//! `ARBITER_TEST_POSTGRES_URL` is set.

use crate::batches::distinct_png;
use crate::harness::{CountingDetector, TestServer, b64, config, each_database, new_key};
use arbiter_db::sea_orm::{ConnectionTrait, DbBackend, Statement};
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::Scope;
use reqwest::StatusCode;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn replica(
    dir: &Path,
    url: &str,
    single_flight: bool,
    detector: Arc<CountingDetector>,
) -> TestServer {
    let mut config = config(dir, url);
    config.jobs.workers = 0;
    config.webhooks.workers = 0;
    config.cache.single_flight = single_flight;
    TestServer::start_with(config, Arc::new(SystemClock), Some(detector)).await
}

/// Sends the same image six times, spread over the replicas, at once; the detector's runs.
async fn race(
    replicas: &[TestServer],
    key: &str,
    image: &[u8],
    detector: &CountingDetector,
) -> usize {
    let before = detector.0.load(Ordering::SeqCst);
    let body = json!({"image_base64": b64(image)});
    let calls = (0..6).map(|n| replicas[n % replicas.len()].post(key, "/v1/analyze", body.clone()));
    for (status, _, answer) in futures_util::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    detector.0.load(Ordering::SeqCst) - before
}

async fn metric(replica: &TestServer, role: &str) -> u64 {
    let text = replica
        .client
        .get(format!("{}/metrics", replica.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("arbiter_single_flight_total{{role=\"{role}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_requests_on_two_replicas_run_the_detector_once() {
    each_database(async |label, dir, url| {
        let detector = Arc::new(CountingDetector::slowed(Duration::from_millis(400)));
        if url.is_empty() {
            return on_sqlite_no_lease_is_written(dir, &detector).await;
        }
        let on = [
            replica(dir, &url, true, detector.clone()).await,
            replica(dir, &url, true, detector.clone()).await,
        ];
        let (_, key) = on[0]
            .mint_key(new_key("acme", "enterprise", &Scope::ALL))
            .await;
        assert_eq!(
            race(&on, &key, &distinct_png(1), &detector).await,
            1,
            "{label}"
        );
        let leaders = metric(&on[0], "leader").await + metric(&on[1], "leader").await;
        let followers = metric(&on[0], "follower").await + metric(&on[1], "follower").await;
        assert_eq!(
            (leaders, followers),
            (1, 1),
            "{label}: one replica led, the other followed"
        );
        for replica in on {
            replica.stop().await;
        }

        // Off: each replica runs it once (its own requests still share one run).
        let off = [
            replica(dir, &url, false, detector.clone()).await,
            replica(dir, &url, false, detector.clone()).await,
        ];
        assert_eq!(
            race(&off, &key, &distinct_png(2), &detector).await,
            2,
            "{label}"
        );
        for replica in off {
            replica.stop().await;
        }
    })
    .await;
}

/// SQLite: six identical requests at once run the detector once within the process, and the
/// `leases` table is never written (a trigger of the test's own counts its writes).
async fn on_sqlite_no_lease_is_written(dir: &Path, detector: &Arc<CountingDetector>) {
    let server = replica(dir, "", true, detector.clone()).await;
    let (_, key) = server
        .mint_key(new_key("acme", "enterprise", &Scope::ALL))
        .await;
    let db = arbiter_db::Db::connect(&arbiter_db::DbTarget::new(None, dir))
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE lease_writes (n INTEGER NOT NULL)",
        "CREATE TRIGGER lease_inserted AFTER INSERT ON leases BEGIN INSERT INTO lease_writes VALUES (1); END",
        "CREATE TRIGGER lease_updated AFTER UPDATE ON leases BEGIN INSERT INTO lease_writes VALUES (1); END",
    ] {
        db.writer().execute_unprepared(sql).await.unwrap();
    }
    let replicas = [server];
    assert_eq!(race(&replicas, &key, &distinct_png(3), detector).await, 1);
    let writes = db
        .conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT COUNT(*) AS n FROM lease_writes",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(writes, 0, "sqlite: no lease row written");
    let [server] = replicas;
    assert_eq!(
        (
            metric(&server, "leader").await,
            metric(&server, "follower").await
        ),
        (0, 0),
        "sqlite: no single flight across processes"
    );
    server.stop().await;
    db.close().await.unwrap();
}
