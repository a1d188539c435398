//! The real server in this process on 127.0.0.1:0, started with a configuration, and keys.

use super::repo;
use arbiter_config::Config;
use arbiter_core::Detector;
use arbiter_server::clock::{Clock, SystemClock};
use arbiter_server::keys::{self, NewKey, Scope};
use arbiter_server::{AppState, Server, build_state, build_state_with_detector};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The configuration a test starts from: listening on 127.0.0.1:0, the data directory and
/// database given (an empty URL is the SQLite file of the data directory), the repository's
/// policies.
pub fn config(data_dir: &Path, database_url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: data_dir.to_path_buf(),
        database_url: database_url.to_owned(),
        policies_dir: repo().join("policies").display().to_string(),
        ..Config::default()
    }
}

/// A key for `tenant` on `plan` with `scopes`, from any address, for every flow.
pub fn new_key(tenant: &str, plan: &str, scopes: &[Scope]) -> NewKey {
    NewKey {
        tenant: tenant.into(),
        name: "test".into(),
        plan: plan.into(),
        scopes: scopes.to_vec(),
        allow_ips: Vec::new(),
        flow: None,
    }
}

/// Creates a key in the server's database; its id and its secret.
pub async fn mint_key(state: &AppState, new: NewKey) -> (String, String) {
    let txn = state.pipeline.db().begin_write().await.unwrap();
    let (record, secret) = keys::create(&txn, new, "test", chrono::Utc::now())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    (record.id.to_string(), secret.expose().to_owned())
}

/// A server running in this process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server for `config` with the system clock and the detectors it configures.
    pub async fn start(config: Config) -> Self {
        Self::start_with(config, Arc::new(SystemClock), None).await
    }

    /// Starts a server for `config` with `clock` and, if given, one detector for every image.
    pub async fn start_with(
        config: Config,
        clock: Arc<dyn Clock>,
        detector: Option<Arc<dyn Detector>>,
    ) -> Self {
        let state = match detector {
            Some(detector) => build_state_with_detector(config, clock, detector).await,
            None => build_state(config, clock).await,
        }
        .unwrap();
        let server = Server::bind_state(state.clone(), "127.0.0.1:0")
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let token = shutdown.clone();
            async move { server.run(token).await.unwrap() }
        });
        Self {
            base,
            state,
            client: reqwest::Client::new(),
            shutdown,
            task,
        }
    }

    /// Creates a key; its id and its secret.
    pub async fn mint_key(&self, new: NewKey) -> (String, String) {
        mint_key(&self.state, new).await
    }

    /// Shuts the server down and waits until it has drained.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

impl TestServer {
    /// `POST path` with `key` and a JSON body: the status, the headers and the JSON answer
    /// (`null` if it is not JSON).
    pub async fn post(
        &self,
        key: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (
        reqwest::StatusCode,
        reqwest::header::HeaderMap,
        serde_json::Value,
    ) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, headers, body)
    }

    /// `GET path` with `key`: the status and the JSON answer (`null` if it is not JSON).
    pub async fn get(&self, key: &str, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let response = self.get_raw(key, path).await;
        (
            response.status(),
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// `GET path` with `key`: the response as it came.
    pub async fn get_raw(&self, key: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }
}
