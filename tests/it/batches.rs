//! Batches and durable jobs end to end: a batch through the real server to a loopback receiver,
//! with each delivery's signatures verified in Rust and by the `standardwebhooks` package from
//! PyPI (tools/verify_webhook.py); the real binary killed with SIGKILL mid-batch and restarted;
//! two server processes sharing one PostgreSQL database. SQLite always, PostgreSQL when
//! `ARBITER_TEST_POSTGRES_URL` is set.
//!
//! Without python3 and its `standardwebhooks` package the Python check is skipped with a loud
//! message, unless `ARBITER_REQUIRE_PYTHON=1` (set by CI), which makes that a failure.

use crate::harness::{
    self, Databases, Receiver, ServeProcess, TestServer, b64, config, mint_key, new_key,
    python_available, repo, sample, verify_delivery, wait_for,
};

use arbiter_db::{Db, DbTarget};
use arbiter_detect::LocalDetector;
use arbiter_server::AppState;
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::Scope;
use arbiter_webhooks::WebhookSecret;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The sample PNG with a `tEXt` chunk naming `n` after its header: a distinct image (its own
/// SHA-256, so no shared cached result) with the same pixels.
pub(crate) fn distinct_png(n: usize) -> Vec<u8> {
    let png = sample("plain-render.png");
    let ihdr_end = 8 + 4 + 4 + 13 + 4;
    let data = format!("Comment\0arbiter test image {n}");
    let mut chunk = Vec::new();
    chunk.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    let mut typed = b"tEXt".to_vec();
    typed.extend_from_slice(data.as_bytes());
    chunk.extend_from_slice(&typed);
    chunk.extend_from_slice(&crc32(&typed).to_be_bytes());
    let mut out = png[..ihdr_end].to_vec();
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[ihdr_end..]);
    out
}

/// Verifies one delivery in Rust and, when available, with the Python package.
fn verify_both(secret: &WebhookSecret, headers: &HeaderMap, body: &str, python: bool) {
    verify_delivery(secret, headers, body);
    if python {
        let given = json!({
            "secret": secret.expose(),
            "headers": headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect::<HashMap<_, _>>(),
            "body": body,
        });
        let mut child = Command::new("python3")
            .arg(repo().join("tools/verify_webhook.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(given.to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "python verification: {text}");
        assert!(text.starts_with("OK: msg_"), "{text}");
    }
}

async fn key(state: &AppState, tenant: &str, plan: &str) -> String {
    let scopes = [
        Scope::Analyze,
        Scope::Batch,
        Scope::RequestsRead,
        Scope::Webhooks,
    ];
    mint_key(state, new_key(tenant, plan, &scopes)).await.1
}

#[tokio::test]
async fn a_batch_is_analysed_and_announced_by_signed_webhooks() {
    let python = python_available("standardwebhooks", "the Python webhook verification");
    let dir = tempfile::tempdir().unwrap();
    let databases = Databases::new().await;
    for (label, url) in databases.urls.clone() {
        let mut config = config(&dir.path().join(label), &url);
        config.outbound.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        config.jobs.poll_interval_ms = 50;
        let server = TestServer::start_with(
            config,
            Arc::new(SystemClock),
            Some(Arc::new(LocalDetector::default())),
        )
        .await;
        let (api, state) = (&server.base, &server.state);
        let client = reqwest::Client::new();
        let receiver = Receiver::start(200).await;
        let hooks = &receiver.base;
        let key = key(state, "acme", "growth").await;
        let starter = self::key(state, "acme", "starter").await;

        // A registered endpoint for batch.complete, with its own secret.
        let endpoint: Value = client
            .post(format!("{api}/v1/webhooks/endpoints"))
            .bearer_auth(&key)
            .json(&json!({"url": format!("{hooks}/endpoint"), "events": ["batch.complete"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let endpoint_secret: WebhookSecret = endpoint["secret"].as_str().unwrap().parse().unwrap();

        // Over the plan's batch size: 400 naming the limit.
        let too_many: Vec<_> = (0..21)
            .map(|i| json!({"image_base64": "AAAA", "reference_id": format!("p-{i}")}))
            .collect();
        let response = client
            .post(format!("{api}/v1/analyze/batch"))
            .bearer_auth(&starter)
            .json(&json!({"images": too_many}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{label}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at most 20"),
            "{label}: {body}"
        );

        // Six images; the fourth is not an image and fails alone.
        let mut images: Vec<_> = (0..6)
            .map(|i| json!({"image_base64": b64(&distinct_png(i)), "reference_id": format!("upload-{i}")}))
            .collect();
        images[3] =
            json!({"image_base64": b64(b"not an image at all"), "reference_id": "upload-3"});
        let response = client
            .post(format!("{api}/v1/analyze/batch"))
            .bearer_auth(&key)
            .json(&json!({"images": images, "options": {"models": ["all"]}, "webhook_url": format!("{hooks}/batch"), "batch_reference_id": "moderation-2026-03-16-001"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{label}");
        let accepted: Value = response.json().await.unwrap();
        assert_eq!(accepted["image_count"], 6, "{label}");
        assert_eq!(
            accepted["batch_reference_id"], "moderation-2026-03-16-001",
            "{label}"
        );
        assert!(
            accepted["estimated_completion_seconds"].as_u64().unwrap() >= 1,
            "{label}"
        );
        let batch_id = accepted["batch_id"].as_str().unwrap().to_owned();
        assert!(batch_id.starts_with("batch_"), "{label}");
        assert!(
            accepted["status_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/v1/batches/{batch_id}")),
            "{label}"
        );

        let status: Value = wait_for("the batch", Duration::from_secs(60), async || {
            let status: Value = client
                .get(format!("{api}/v1/batches/{batch_id}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (status["status"] == "COMPLETE").then_some(status)
        })
        .await;
        assert_eq!(
            (
                status["total"].as_i64(),
                status["completed"].as_i64(),
                status["failed"].as_i64()
            ),
            (Some(6), Some(5), Some(1)),
            "{label}: {status}"
        );
        let results = status["results"].as_array().unwrap();
        let references: Vec<_> = results
            .iter()
            .map(|r| r["reference_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            references,
            [
                "upload-0", "upload-1", "upload-2", "upload-3", "upload-4", "upload-5"
            ],
            "{label}"
        );
        assert_eq!(results[3]["status"], "failed", "{label}");
        assert!(
            results[3]["error"]["code"].is_string(),
            "{label}: {}",
            results[3]
        );
        assert!(results[0]["verdict"]["label"].is_string(), "{label}");
        // Another tenant does not see it.
        let other = self::key(state, "globex", "growth").await;
        let hidden = client
            .get(format!("{api}/v1/batches/{batch_id}"))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(hidden.status(), 404, "{label}");

        // batch.complete reaches both the batch's webhook_url and the endpoint.
        let got = wait_for(
            "batch.complete deliveries",
            Duration::from_secs(30),
            async || {
                let got = receiver.received_by_path();
                (got.len() >= 2).then_some(got)
            },
        )
        .await;
        let conn = state.pipeline.db().conn();
        let cipher = state.webhooks.cipher().await.unwrap();
        let (tenant_secret, _) =
            arbiter_webhooks::tenant_secrets(conn, cipher, "acme", chrono::Utc::now())
                .await
                .unwrap();
        for (path, headers, body) in &got {
            let payload: Value = serde_json::from_str(body).unwrap();
            assert_eq!(payload["event"], "batch.complete", "{label}");
            assert_eq!(payload["batch_id"], batch_id.as_str(), "{label}");
            assert_eq!(
                (
                    payload["total"].as_i64(),
                    payload["completed"].as_i64(),
                    payload["failed"].as_i64()
                ),
                (Some(6), Some(5), Some(1)),
                "{label}"
            );
            let summary_total: i64 = payload["summary"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_i64().unwrap())
                .sum();
            assert_eq!(summary_total, 5, "{label}: {payload}");
            for label_name in ["AUTHENTIC", "AI_GENERATED", "MANIPULATED", "INCONCLUSIVE"] {
                assert!(payload["summary"][label_name].is_number(), "{label}");
            }
            let secret = if path == "endpoint" {
                &endpoint_secret
            } else {
                &tenant_secret
            };
            verify_both(secret, headers, body, python);
        }
        let paths: HashSet<_> = got.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, HashSet::from(["batch", "endpoint"]), "{label}");

        // A single request with options.webhook_url: 202 at once, the result by webhook.
        let response = client
            .post(format!("{api}/v1/analyze"))
            .bearer_auth(&key)
            .json(&json!({"image_base64": b64(&distinct_png(99)), "reference_id": "claim-78234-photo-1", "options": {"webhook_url": format!("{hooks}/single")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{label}");
        let accepted: Value = response.json().await.unwrap();
        let request_id = accepted["request_id"].as_str().unwrap().to_owned();
        let (headers, body) = wait_for("analysis.complete", Duration::from_secs(30), async || {
            receiver
                .received_by_path()
                .iter()
                .find(|(p, _, _)| p == "single")
                .map(|(_, h, b)| (h.clone(), b.clone()))
        })
        .await;
        let payload: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(payload["event"], "analysis.complete", "{label}");
        assert_eq!(payload["request_id"], request_id.as_str(), "{label}");
        assert_eq!(payload["reference_id"], "claim-78234-photo-1", "{label}");
        assert!(payload["verdict"]["risk_level"].is_string(), "{label}");
        assert!(payload["webhook_delivered_at"].is_string(), "{label}");
        verify_both(&tenant_secret, &headers, &body, python);
        let stored = client
            .get(format!("{api}/v1/requests/{request_id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(stored.status(), 200, "{label}");

        // A webhook URL on a refused network is a 400.
        let refused = client
            .post(format!("{api}/v1/analyze"))
            .bearer_auth(&key)
            .json(&json!({"image_base64": b64(&distinct_png(98)), "options": {"webhook_url": "http://169.254.169.254/hook"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{label}");

        server.stop().await;
    }
    databases.finish().await;
}

fn arbiter(dir: &Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbiter"));
    command
        .current_dir(dir)
        .env("ARBITER_DATA_DIR", dir.join("data"))
        .env("ARBITER_POLICIES_DIR", repo().join("policies"))
        .env("ARBITER_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")
        .env("ARBITER_JOBS_LEASE_SECS", "2")
        .env("ARBITER_JOBS_POLL_INTERVAL_MS", "100")
        .env("ARBITER_JOBS_WORKERS", "1")
        .env("ARBITER_WEBHOOKS_SECRET_KEY_FILE", dir.join("webhook.key"))
        .env("RUST_LOG", "warn");
    if database_url.is_empty() {
        command.env_remove("ARBITER_DATABASE_URL");
    } else {
        command.env("ARBITER_DATABASE_URL", database_url);
    }
    command
}

fn serve(dir: &Path, database_url: &str) -> ServeProcess {
    ServeProcess::start(arbiter(dir, database_url))
}

fn create_key(dir: &Path, database_url: &str) -> String {
    let output = arbiter(dir, database_url)
        .args([
            "keys", "create", "--tenant", "acme", "--name", "ci", "--plan", "growth", "--json",
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

async fn submit(client: &reqwest::Client, base: &str, key: &str, images: usize) -> String {
    let images: Vec<_> = (0..images)
        .map(|i| json!({"image_base64": b64(&distinct_png(1000 + i)), "reference_id": format!("img-{i}")}))
        .collect();
    let response = client
        .post(format!("{base}/v1/analyze/batch"))
        .bearer_auth(key)
        .json(&json!({"images": images}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["batch_id"].as_str().unwrap().to_owned()
}

async fn batch(client: &reqwest::Client, base: &str, key: &str, batch_id: &str) -> Value {
    client
        .get(format!("{base}/v1/batches/{batch_id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every image of the batch recorded exactly once: one request row, one audit entry, one
/// finished job each.
async fn assert_exactly_once(target: &DbTarget, batch_id: &str, images: usize) {
    let db = Db::connect(target).await.unwrap();
    let jobs = arbiter_db::jobs::finished_in_batch(db.conn(), batch_id, -1, 10_000)
        .await
        .unwrap();
    assert_eq!(jobs.len(), images);
    assert!(
        jobs.iter().all(|j| j.status == "complete"),
        "every image completes"
    );
    let ids: HashSet<_> = jobs.iter().map(|j| j.request_id.clone()).collect();
    let entries = arbiter_audit::entries(db.conn(), &Default::default())
        .await
        .unwrap();
    let mut per_request: HashMap<String, usize> = HashMap::new();
    for entry in &entries {
        if let Some(id) = entry.entry.event.request_id()
            && ids.contains(id)
        {
            *per_request.entry(id.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(per_request.len(), images, "an audit entry for every image");
    assert!(
        per_request.values().all(|n| *n == 1),
        "no duplicate audit entry: {per_request:?}"
    );
    for id in &ids {
        assert!(
            arbiter_db::requests::get(db.conn(), "acme", id)
                .await
                .unwrap()
                .is_some(),
            "request row of {id}"
        );
    }
    db.conn().clone().close().await.ok();
}

#[tokio::test]
async fn a_server_killed_mid_batch_finishes_it_after_restart_each_image_exactly_once() {
    let databases = Databases::new().await;
    let client = reqwest::Client::new();
    for (label, url) in databases.urls.clone() {
        let dir = tempfile::tempdir().unwrap();
        let key = create_key(dir.path(), &url);
        let mut first = serve(dir.path(), &url);
        let batch_id = submit(&client, &first.base, &key, 50).await;
        let done_at_kill = wait_for("some images", Duration::from_secs(60), async || {
            let status = batch(&client, &first.base, &key, &batch_id).await;
            let done = status["completed"].as_i64().unwrap();
            (done >= 3).then_some(done)
        })
        .await;
        // On SQLite the images are read from the kept body; PostgreSQL keeps them itself.
        let body = dir
            .path()
            .join("data/batches")
            .join(format!("{batch_id}.json"));
        assert_eq!(body.exists(), url.is_empty(), "{label}");
        first.kill(); // SIGKILL
        eprintln!("{label}: killed with {done_at_kill} of 50 images done");
        let second = serve(dir.path(), &url);
        let status = wait_for(
            "the batch after restart",
            Duration::from_secs(120),
            async || {
                let status = batch(&client, &second.base, &key, &batch_id).await;
                (status["status"] == "COMPLETE").then_some(status)
            },
        )
        .await;
        assert_eq!(status["completed"], 50, "{label}: {status}");
        assert_eq!(status["failed"], 0, "{label}");
        assert_eq!(status["results"].as_array().unwrap().len(), 50, "{label}");
        wait_for("the body removed", Duration::from_secs(10), async || {
            (!body.exists()).then_some(())
        })
        .await;
        let mut second = second;
        second.kill();
        let target = if url.is_empty() {
            DbTarget::DataDir(dir.path().join("data"))
        } else {
            DbTarget::Url(url.clone())
        };
        assert_exactly_once(&target, &batch_id, 50).await;
    }
    databases.finish().await;
}

#[tokio::test]
async fn two_servers_on_one_postgres_share_a_batch_each_image_once() {
    let Some(pg) = harness::postgres().await else {
        eprintln!("skipped: ARBITER_TEST_POSTGRES_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let key = create_key(dir.path(), &pg.url);
    let mut one = serve(dir.path(), &pg.url);
    let mut two = serve(dir.path(), &pg.url);
    let batch_id = submit(&client, &one.base, &key, 40).await;
    let status = wait_for("the shared batch", Duration::from_secs(120), async || {
        let status = batch(&client, &two.base, &key, &batch_id).await;
        (status["status"] == "COMPLETE").then_some(status)
    })
    .await;
    assert_eq!(status["completed"], 40, "{status}");
    for process in [&mut one, &mut two] {
        process.kill();
    }
    assert_exactly_once(&DbTarget::Url(pg.url.clone()), &batch_id, 40).await;
    pg.drop_db().await.unwrap();
}

/// A batch's images are kept in the database as bytes (`job_images.image`), not base64 text,
/// where the database keeps them (PostgreSQL; SQLite reads them from the kept request body); a
/// row written before, still base64 text, is analysed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_images_are_stored_as_bytes_and_old_base64_rows_stay_readable() {
    use arbiter_db::entity::{job, job_image};
    use arbiter_db::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    harness::each_database(async |label, dir, url| {
        let start = async |workers: u32| {
            let mut config = config(dir, &url);
            config.jobs.workers = workers;
            config.jobs.poll_interval_ms = 50;
            config.webhooks.workers = 0;
            TestServer::start_with(
                config,
                Arc::new(SystemClock),
                Some(Arc::new(LocalDetector::default())),
            )
            .await
        };
        let queue = start(0).await;
        let (_, key) = queue
            .mint_key(new_key("acme", "enterprise", &Scope::ALL))
            .await;
        let pngs: Vec<Vec<u8>> = (0..4).map(|n| distinct_png(900 + n)).collect();
        let images: Vec<Value> = pngs
            .iter()
            .enumerate()
            .map(|(n, png)| json!({"image_base64": b64(png), "reference_id": format!("s-{n}")}))
            .collect();
        let (status, _, batch) = queue
            .post(&key, "/v1/analyze/batch", json!({"images": images}))
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{label}: {batch}");
        let batch_id = batch["batch_id"].as_str().unwrap().to_owned();
        let conn = queue.state.pipeline.db().conn().clone();
        let jobs = job::Entity::find()
            .filter(job::Column::BatchId.eq(batch_id.as_str()))
            .all(&conn)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 4, "{label}");
        let mut stored = Vec::new();
        for job in &jobs {
            let row = job_image::Entity::find_by_id(job.request_id.clone())
                .one(&conn)
                .await
                .unwrap()
                .unwrap();
            stored.push(row);
        }
        if label == "postgres" {
            for (job, row) in jobs.iter().zip(&stored) {
                assert_eq!(row.source, r#""stored""#, "{label}");
                let position = usize::try_from(job.position).unwrap();
                assert_eq!(row.image.as_deref(), Some(&pngs[position][..]), "{label}");
            }
        } else {
            assert!(
                stored
                    .iter()
                    .all(|row| row.image.is_none() && row.source.contains("kept")),
                "{label}: {:?}",
                stored.iter().map(|row| &row.source).collect::<Vec<_>>()
            );
        }
        // One image as a row written before images were kept as bytes.
        let old = &jobs[0];
        let position = usize::try_from(old.position).unwrap();
        let txn = queue.state.pipeline.db().begin_write().await.unwrap();
        job_image::Entity::update(job_image::ActiveModel {
            request_id: arbiter_db::sea_orm::ActiveValue::Unchanged(old.request_id.clone()),
            source: arbiter_db::sea_orm::ActiveValue::Set(
                json!({"base64": b64(&pngs[position])}).to_string(),
            ),
            image: arbiter_db::sea_orm::ActiveValue::Set(None),
        })
        .exec(&txn)
        .await
        .unwrap();
        txn.commit().await.unwrap();
        queue.stop().await;

        let worker = start(1).await;
        let done = wait_for("the batch", Duration::from_secs(30), async || {
            let (_, body) = worker.get(&key, &format!("/v1/batches/{batch_id}")).await;
            (body["status"] == "COMPLETE").then_some(body)
        })
        .await;
        assert_eq!(done["completed"], 4, "{label}: {done}");
        assert_eq!(done["failed"], 0, "{label}: {done}");
        worker.stop().await;
    })
    .await;
}
