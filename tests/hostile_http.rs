//! Every sample and fixture file, and the detector's generated hostile files (text-chunk floods,
//! huge declared dimensions, tiled and truncated TIFFs, nested and oversized C2PA boxes, deep
//! EXIF chains), sent through `POST /v1/analyze` of a real server, on SQLite and on PostgreSQL
//! (when `ARBITER_TEST_POSTGRES_URL` is set): never a 5xx for what a client sent, and no
//! internal text (a panic, an assertion, a source path) in any answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../crates/arbiter-detect/tests/common/mod.rs"]
#[allow(dead_code)]
mod detect_common;

use arbiter_db::testing::PostgresTestDb;
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::{self, NewKey, Scope};
use arbiter_server::{Config, Server, build_state};
use chrono::Utc;
use common::repo;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The corpus: name and bytes.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files = detect_common::hostile::hostile_files();
    for dir in [
        "samples",
        "tests/fixtures/c2pa",
        "tests/fixtures/camera",
        "tests/fixtures/genmeta",
    ] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e != "md") {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

/// Words that only internals would put in an answer.
const INTERNAL: [&str; 7] = [
    "panicked",
    "assertion failed",
    "assertion `",
    "thread '",
    ".rs:",
    "RUST_BACKTRACE",
    "called `Option::unwrap()`",
];

async fn check(label: &str, dir: &Path, url: &str, files: &[(String, Vec<u8>)]) {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        database_url: url.to_owned(),
        policies_dir: repo().join("policies").display().to_string(),
        ..Config::default()
    };
    let state = build_state(config, Arc::new(SystemClock)).await.unwrap();
    let server = Server::bind_state(state.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let api = format!("http://{}", server.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let token = shutdown.clone();
        async move { server.run(token).await.unwrap() }
    });
    let txn = state.pipeline.db().begin_write().await.unwrap();
    let new = NewKey {
        tenant: "acme".into(),
        name: "corpus".into(),
        plan: "enterprise".into(),
        scopes: vec![Scope::Analyze],
        allow_ips: vec![],
        flow: None,
    };
    let (_, key) = keys::create(&txn, new, "test", Utc::now()).await.unwrap();
    txn.commit().await.unwrap();
    let client = reqwest::Client::new();
    for (name, bytes) in files {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name("upload"),
        );
        let response = client
            .post(format!("{api}/v1/analyze?flow=insurance"))
            .bearer_auth(key.expose())
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.as_u16() < 500, "{label} {name}: {status} {text}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: {text}"));
        if status == StatusCode::OK {
            assert!(
                body["verdict"]["label"].is_string(),
                "{label} {name}: {text}"
            );
            assert!(body["decision"]["action"].is_string(), "{label} {name}");
        } else {
            assert!(body["error"]["code"].is_string(), "{label} {name}: {text}");
        }
        for word in INTERNAL {
            assert!(!text.contains(word), "{label} {name}: {word:?} in {text}");
        }
    }
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn no_file_a_client_sends_gets_a_5xx_or_internal_text() {
    let files = corpus();
    assert!(
        files.len() > 30,
        "the corpus holds the hostile files and every fixture"
    );
    let dir = tempfile::tempdir().unwrap();
    check("sqlite", &dir.path().join("sqlite"), "", &files).await;
    if let Some(pg) = PostgresTestDb::create().await.unwrap() {
        check("postgres", &dir.path().join("postgres"), &pg.url, &files).await;
        pg.drop_db().await.unwrap();
    }
}
