//! The day's quota counts images, the minute's rate limit requests: a batch of N images takes N
//! from the quota, and a batch whose images do not all fit in what is left is refused whole
//! (429 `QUOTA_EXCEEDED` with `Retry-After`, nothing accepted), on SQLite and on PostgreSQL when
//! `ARBITER_TEST_POSTGRES_URL` is set.

use crate::harness::{b64, each_database, repo, sample};
use arbiter_config::Config;
use arbiter_db::sea_orm::{ConnectionTrait, Statement};
use arbiter_server::clock::{Clock, ManualClock};
use arbiter_server::keys::{self, NewKey, Scope};
use arbiter_server::{AppState, Server, build_state};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct Running {
    api: String,
    state: AppState,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A server on `url` (SQLite in `dir` when empty) whose starter plan allows 3 requests a minute
/// and 10 images a day; no job workers, so accepted images stay queued and can be counted.
async fn start(dir: &std::path::Path, url: &str, clock: Arc<dyn Clock>) -> Running {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        database_url: url.to_owned(),
        policies_dir: repo().join("policies").display().to_string(),
        ..Config::default()
    };
    config.jobs.workers = 0;
    config.webhooks.workers = 0;
    let plan = config.rate_limits.plans.get_mut("starter").unwrap();
    plan.per_minute = 3;
    plan.per_day = 10;
    plan.batch_size = 20;
    let state = build_state(config, clock).await.unwrap();
    let server = Server::bind_state(state.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let api = format!("http://{}", server.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let token = shutdown.clone();
        async move { server.run(token).await.unwrap() }
    });
    Running {
        api,
        state,
        shutdown,
        task,
    }
}

/// The images accepted for the tenant so far: its queued jobs.
async fn jobs(state: &AppState) -> i64 {
    let db = state.pipeline.db();
    let row = db
        .conn()
        .query_one_raw(Statement::from_string(
            db.backend(),
            "SELECT COUNT(*) FROM jobs WHERE tenant = 'acme'",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn a_batch_takes_one_from_the_quota_per_image_and_is_refused_whole_when_they_do_not_fit() {
    each_database(async |label, dir, url| {
        let clock = ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2026-03-16T14:23:10Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        );
        let server = start(dir, &url, Arc::new(clock.clone())).await;
        let txn = server.state.pipeline.db().begin_write().await.unwrap();
        let new = NewKey {
            tenant: "acme".into(),
            name: "quota".into(),
            plan: "starter".into(),
            scopes: Scope::ALL.to_vec(),
            allow_ips: vec![],
            flow: None,
        };
        let (_, secret) = keys::create(&txn, new, "test", chrono::Utc::now())
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let client = reqwest::Client::new();
        let image = b64(&sample("plain-render.png"));
        let batch = |n: usize| {
            let images: Vec<Value> = (0..n)
                .map(|i| json!({"image_base64": image, "reference_id": format!("img-{i}")}))
                .collect();
            json!({ "images": images })
        };
        let submit = async |n: usize| {
            let response = client
                .post(format!("{}/v1/analyze/batch", server.api))
                .bearer_auth(secret.expose())
                .json(&batch(n))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body: Value = response.json().await.unwrap();
            (status, headers, body)
        };

        // A batch of 7 takes 7 of the day's 10, and one request of the minute's 3.
        let (status, headers, body) = submit(7).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        assert_eq!(headers["x-ratelimit-remaining"], "2", "{label}");
        assert_eq!(jobs(&server.state).await, 7, "{label}");

        // 4 more do not fit in the 3 left: refused whole, with Retry-After until midnight UTC
        // (9 h 36 min 50 s away), and nothing of it accepted.
        let (status, headers, body) = submit(4).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{label}: {body}");
        assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED", "{label}");
        assert_eq!(headers["retry-after"], "34610", "{label}");
        // Its request was counted in the minute all the same.
        assert_eq!(headers["x-ratelimit-remaining"], "1", "{label}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("nothing was accepted"), "{message}");
        assert_eq!(jobs(&server.state).await, 7, "{label}");

        // The refused batch took nothing from the quota: exactly the 3 left fit, in the
        // minute's last request.
        let (status, headers, body) = submit(3).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        assert_eq!(headers["x-ratelimit-remaining"], "0", "{label}");
        assert_eq!(jobs(&server.state).await, 10, "{label}");

        // The rate limit still counts requests: the minute is spent whatever the images.
        let (status, _, body) = submit(1).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{label}");
        assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED", "{label}");

        // In the next minute, the spent day refuses even a single image, by batch or alone.
        clock.advance(chrono::Duration::seconds(50));
        let (status, _, body) = submit(1).await;
        assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED", "{label}: {status}");
        let response = client
            .post(format!("{}/v1/analyze", server.api))
            .bearer_auth(secret.expose())
            .json(&json!({ "image_base64": image }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{label}");
        assert!(response.headers().contains_key("retry-after"), "{label}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED", "{label}");
        assert_eq!(jobs(&server.state).await, 10, "{label}");

        // A batch larger than the whole day's quota is refused whole on a fresh day too.
        clock.advance(chrono::Duration::days(1));
        let (status, _, body) = submit(11).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{label}: {body}");
        assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED", "{label}");
        let (status, _, body) = submit(10).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        assert_eq!(jobs(&server.state).await, 20, "{label}");

        // A batch refused for one of its images gives its images back to the quota.
        clock.advance(chrono::Duration::days(1));
        let mut bad = batch(3);
        bad["images"][2] = json!({"image_url": "https://example.com/a.jpg", "image_base64": image});
        let response = client
            .post(format!("{}/v1/analyze/batch", server.api))
            .bearer_auth(secret.expose())
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{label}");
        let (status, _, body) = submit(10).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        assert_eq!(jobs(&server.state).await, 30, "{label}");

        server.shutdown.cancel();
        server.task.await.unwrap();
    })
    .await;
}
