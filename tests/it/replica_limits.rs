//! Two servers on one database (SQLite, and PostgreSQL when `ARBITER_TEST_POSTGRES_URL` is set)
//! hold one tenant to its plan together: the rate limit is counted in the database, not per
//! process.

use crate::harness::{TestServer, config, each_database, new_key};
use arbiter_server::clock::{Clock, ManualClock};
use arbiter_server::keys::{NewKey, Scope};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;

/// A replica: a server on the shared database with `clock`, its workers off.
async fn replica(dir: &std::path::Path, url: &str, clock: Arc<dyn Clock>) -> TestServer {
    let mut config = config(dir, url);
    config.jobs.workers = 0;
    config.webhooks.workers = 0;
    TestServer::start_with(config, clock, None).await
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
            replica(dir, &url, Arc::new(clock.clone())).await,
            replica(dir, &url, Arc::new(clock.clone())).await,
        ];
        let new = NewKey {
            name: "replicas".into(),
            ..new_key("acme", "starter", &Scope::ALL)
        };
        let (_, secret) = replicas[0].mint_key(new).await;
        let client = reqwest::Client::new();

        // An unknown request is a cheap authenticated route: its 404 is counted all the same.
        let mut answered = 0;
        let mut refused = 0;
        for n in 0..80 {
            let replica = &replicas[n % 2];
            let response = client
                .get(format!(
                    "{}/v1/requests/req_01JH0000000000000000000001",
                    replica.base
                ))
                .bearer_auth(&secret)
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
                    replica.base
                ))
                .bearer_auth(&secret)
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

/// A key revoked through one replica is refused by the other on its very next request: keys are
/// read from the database on each request, never cached in a process.
#[tokio::test]
async fn a_key_revoked_through_one_replica_is_refused_by_the_other_at_once() {
    each_database(async |label, dir, url| {
        let clock: Arc<dyn Clock> = Arc::new(arbiter_server::clock::SystemClock);
        let replicas = [
            replica(dir, &url, clock.clone()).await,
            replica(dir, &url, clock).await,
        ];
        let (id, secret) = replicas[0]
            .mint_key(new_key("acme", "enterprise", &Scope::ALL))
            .await;
        let path = "/v1/requests/req_01JH0000000000000000000001";
        for replica in &replicas {
            assert_eq!(
                replica.get(&secret, path).await.0,
                StatusCode::NOT_FOUND,
                "{label}"
            );
        }
        let txn = replicas[0].state.pipeline.db().begin_write().await.unwrap();
        arbiter_server::keys::revoke(&txn, &id.parse().unwrap(), "test", chrono::Utc::now())
            .await
            .unwrap()
            .unwrap();
        txn.commit().await.unwrap();
        let (status, body) = replicas[1].get(&secret, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_API_KEY", "{label}");
        for replica in replicas {
            replica.stop().await;
        }
    })
    .await;
}
