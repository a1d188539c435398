//! The local detector's queue is bounded: with every analysis thread busy and
//! `detector.local.max_queued` analyses waiting, `POST /v1/analyze` answers 503
//! `SERVICE_UNAVAILABLE` with `Retry-After` and no internals, and takes work again once a thread
//! is free. (That work whose caller has gone is skipped is proven at the pool, in
//! `arbiter-detect`'s `pool` tests.)

use crate::harness::{b64, repo, sample};
use arbiter_config::Config;
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::{self, NewKey, Scope};
use arbiter_server::{Server, build_state};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_full_analysis_queue_is_a_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        policies_dir: repo().join("policies").display().to_string(),
        ..Config::default()
    };
    config.jobs.workers = 0;
    config.webhooks.workers = 0;
    // No analysis may wait: only as many run as there are threads.
    config.detector.local.max_queued = 0;
    let state = build_state(config, Arc::new(SystemClock)).await.unwrap();
    let txn = state.pipeline.db().begin_write().await.unwrap();
    let new = NewKey {
        tenant: "acme".into(),
        name: "queue".into(),
        plan: "enterprise".into(),
        scopes: Scope::ALL.to_vec(),
        allow_ips: vec![],
        flow: None,
    };
    let (_, secret) = keys::create(&txn, new, "test", chrono::Utc::now())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let server = Server::bind_state(state.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let api = format!("http://{}", server.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let token = shutdown.clone();
        async move { server.run(token).await.unwrap() }
    });

    // Every analysis thread of the process is held by work of its own.
    let pool = arbiter_detect::pool::global();
    let mut releases = Vec::new();
    let mut holders = Vec::new();
    for _ in 0..pool.threads() {
        let (release, held) = std::sync::mpsc::channel::<()>();
        releases.push(release);
        holders.push(tokio::spawn(pool.run(0, move || {
            let _ = held.recv();
        })));
    }
    for _ in 0..500 {
        if pool.in_pool() == pool.threads() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(pool.in_pool(), pool.threads());

    let client = reqwest::Client::new();
    let analyze = async || {
        let response = client
            .post(format!("{api}/v1/analyze"))
            .bearer_auth(secret.expose())
            .json(&json!({"image_base64": b64(&sample("plain-render.png"))}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        (status, retry_after, body)
    };
    let (status, retry_after, body) = analyze().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(retry_after.unwrap(), "2");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("busy"), "{message}");
    for internal in ["panic", "pool", "thread", ".rs", "mpsc"] {
        assert!(!message.contains(internal), "{message}");
    }

    // A free thread takes work again.
    for release in releases {
        release.send(()).unwrap();
    }
    for holder in holders {
        holder.await.unwrap().unwrap();
    }
    let (status, _, body) = analyze().await;
    assert_eq!(status, StatusCode::OK, "{body}");

    shutdown.cancel();
    task.await.unwrap();
}
