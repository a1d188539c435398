//! Two servers on one database (SQLite, and PostgreSQL when `ARBITER_TEST_POSTGRES_URL` is set)
//! hold one tenant to its plan together: the rate limit is counted in the database, not per
//! process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arbiter_db::testing::PostgresTestDb;
use arbiter_server::clock::{Clock, ManualClock};
use arbiter_server::keys::{self, NewKey, Scope};
use arbiter_server::{AppState, Config, Server, build_state};
use common::repo;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct Replica {
    api: String,
    state: AppState,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(dir: &std::path::Path, url: &str, clock: Arc<dyn Clock>) -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.to_path_buf(),
            database_url: url.to_owned(),
            policies_dir: repo().join("policies").display().to_string(),
            ..Config::default()
        };
        config.jobs.workers = 0;
        config.webhooks.workers = 0;
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
        Self {
            api,
            state,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

async fn each_database(check: impl AsyncFn(&'static str, &std::path::Path, String)) {
    let dir = tempfile::tempdir().unwrap();
    let postgres = PostgresTestDb::create().await.unwrap();
    let mut urls = vec![("sqlite", String::new())];
    if let Some(pg) = &postgres {
        urls.push(("postgres", pg.url.clone()));
    }
    for (label, url) in urls {
        check(label, &dir.path().join(label), url).await;
    }
    if let Some(pg) = postgres {
        pg.drop_db().await.unwrap();
    }
}

#[tokio::test]
async fn two_replicas_on_one_database_answer_a_starter_key_60_times_a_minute_between_them() {
    each_database(async |label, dir, url| {
        let clock = ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2026-03-16T14:23:10Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        );
        let replicas = [
            Replica::start(dir, &url, Arc::new(clock.clone())).await,
            Replica::start(dir, &url, Arc::new(clock.clone())).await,
        ];
        let txn = replicas[0].state.pipeline.db().begin_write().await.unwrap();
        let new = NewKey {
            tenant: "acme".into(),
            name: "replicas".into(),
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

        // An unknown request is a cheap authenticated route: its 404 is counted all the same.
        let mut answered = 0;
        let mut refused = 0;
        for n in 0..80 {
            let replica = &replicas[n % 2];
            let response = client
                .get(format!(
                    "{}/v1/requests/req_01JH0000000000000000000001",
                    replica.api
                ))
                .bearer_auth(secret.expose())
                .send()
                .await
                .unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body: Value = response.json().await.unwrap();
            assert_eq!(headers["x-ratelimit-limit"], "60", "{label}");
            match status {
                StatusCode::NOT_FOUND => {
                    answered += 1;
                    let remaining = (60 - answered).to_string();
                    assert_eq!(
                        headers["x-ratelimit-remaining"],
                        remaining.as_str(),
                        "{label}: request {n}"
                    );
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    refused += 1;
                    assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED", "{label}");
                    assert_eq!(headers["retry-after"], "50", "{label}");
                    assert_eq!(headers["x-ratelimit-remaining"], "0", "{label}");
                }
                other => panic!("{label}: request {n}: {other} {body}"),
            }
        }
        assert_eq!((answered, refused), (60, 20), "{label}");

        // The next minute is open to both again.
        clock.advance(chrono::Duration::seconds(50));
        for replica in &replicas {
            let response = client
                .get(format!(
                    "{}/v1/requests/req_01JH0000000000000000000001",
                    replica.api
                ))
                .bearer_auth(secret.expose())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{label}");
        }
        for replica in replicas {
            replica.stop().await;
        }
    })
    .await;
}
