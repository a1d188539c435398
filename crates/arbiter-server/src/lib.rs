//! Arbiter's server: the flows and policies in force, the decision pipeline,
//! and the HTTP API of the integration guide on top of them.
#![forbid(unsafe_code)]

pub use arbiter_engine::{
    analyze, announce, cases, clock, flows, keys, pipeline, policies, policy_changes,
    provider_usage, replay, reports, review, single_flight, sinks,
};
pub mod auth;
pub mod error;
pub mod fetch;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod jobs;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod state;

pub use arbiter_engine::{
    DecideRequest, FlowRegistry, LivePolicies, LogSink, Outcome, Pipeline, PolicyStore, SinkSet,
};
pub use server::{Server, build_state, build_state_with_detector};
pub use state::AppState;

#[cfg(test)]
pub(crate) mod testing {
    //! What the unit tests share: a state over a fresh database (SQLite, and PostgreSQL when
    //! `ARBITER_TEST_POSTGRES_URL` is set), keys, and reading answers.

    use crate::keys::{self, KeyRecord, NewKey, Scope};
    use crate::state::AppState;
    use arbiter_config::Config;
    use arbiter_db::testing::PostgresTestDb;
    use axum::response::Response;
    use chrono::{DateTime, Utc};
    use std::path::Path;
    use std::sync::Arc;

    /// The configuration of a test's state: the data directory and database given (an empty
    /// URL is the data directory's SQLite file), the shipped policies of this build's flows
    /// (built in: tests run in the crate's directory, which has no `policies/`).
    pub fn config(data_dir: &Path, database_url: &str) -> Config {
        Config {
            data_dir: data_dir.to_path_buf(),
            database_url: database_url.to_owned(),
            ..Config::default()
        }
    }

    /// The time of a test's state: 10 s into a minute, its clock stopped there.
    pub fn now() -> DateTime<Utc> {
        "2026-03-02T10:15:10Z".parse().unwrap()
    }

    /// The state for `config`, with the clock stopped at [`now`] and the local detector for
    /// every image.
    pub async fn state_of(config: Config) -> AppState {
        let detector = Arc::new(arbiter_detect::LocalDetector::default());
        let clock = Arc::new(crate::clock::ManualClock::new(now()));
        crate::build_state_with_detector(config, clock, detector)
            .await
            .expect("a state for the test's configuration")
    }

    /// A state over a fresh SQLite database in `dir`.
    pub async fn state(dir: &Path) -> AppState {
        state_of(config(dir, "")).await
    }

    /// Runs `check` with a state of its own, built from `config` as `adjust` leaves it, over a
    /// fresh SQLite database and, when one is configured, a fresh PostgreSQL database; each
    /// with a label for assertion messages.
    pub async fn each_database(
        adjust: impl Fn(&mut Config),
        check: impl AsyncFn(&'static str, AppState),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let postgres = PostgresTestDb::create().await.unwrap();
        let mut urls = vec![("sqlite", String::new())];
        if let Some(pg) = &postgres {
            urls.push(("postgres", pg.url.clone()));
        }
        for (label, url) in urls {
            let mut config = config(&dir.path().join(label), &url);
            adjust(&mut config);
            let state = state_of(config).await;
            check(label, state.clone()).await;
            state.pipeline.db().clone().close().await.ok();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    /// A key of tenant `acme` on the `starter` plan with `scopes`, from any address.
    pub fn new_key(scopes: &[Scope]) -> NewKey {
        NewKey {
            tenant: "acme".into(),
            name: "test".into(),
            plan: "starter".into(),
            scopes: scopes.to_vec(),
            allow_ips: Vec::new(),
            flow: None,
        }
    }

    /// Creates `new` in the state's database: its record and its secret.
    pub async fn mint(state: &AppState, new: NewKey) -> (KeyRecord, String) {
        let txn = state.pipeline.db().begin_write().await.unwrap();
        let (record, secret) = keys::create(&txn, new, "test", now()).await.unwrap();
        txn.commit().await.unwrap();
        (record, secret.expose().to_owned())
    }

    /// A response's body as JSON.
    pub async fn json(response: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", String::from_utf8_lossy(&body)))
    }
}
