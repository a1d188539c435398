//! Every sample and fixture file, and the detector's generated hostile files (text-chunk floods,
//! huge declared dimensions, tiled and truncated TIFFs, nested and oversized C2PA boxes, deep
//! EXIF chains), sent through `POST /v1/analyze` of a real server, on SQLite and on PostgreSQL
//! (when `ARBITER_TEST_POSTGRES_URL` is set): never a 5xx for what a client sent, and no
//! internal text (a panic, an assertion, a source path) in any answer.

use crate::harness::{Databases, TestServer, config, new_key, repo};
use arbiter_server::keys::{NewKey, Scope};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;

/// The corpus: name and bytes.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files = crate::detect_common::hostile::hostile_files();
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
    let server = TestServer::start(config(dir, url)).await;
    let api = &server.base;
    let (_, key) = server
        .mint_key(NewKey {
            name: "corpus".into(),
            ..new_key("acme", "enterprise", &[Scope::Analyze])
        })
        .await;
    let client = reqwest::Client::new();
    for (name, bytes) in files {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name("upload"),
        );
        let response = client
            .post(format!("{api}/v1/analyze?flow=insurance"))
            .bearer_auth(&key)
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
    server.stop().await;
}

#[tokio::test]
async fn no_file_a_client_sends_gets_a_5xx_or_internal_text() {
    let files = corpus();
    assert!(
        files.len() > 30,
        "the corpus holds the hostile files and every fixture"
    );
    let dir = tempfile::tempdir().unwrap();
    let databases = Databases::new().await;
    for (label, url) in &databases.urls {
        check(label, &dir.path().join(label), url, &files).await;
    }
    databases.finish().await;
}
