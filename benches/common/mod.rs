//! What the bench binaries share: the repository's root and the figures they print.

use std::path::PathBuf;
use std::time::Duration;

/// The repository's root, where the shipped policies and fixtures are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `q` quantile (0 to 1) of `samples`, sorting them.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[at]
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A real server in this process on loopback, over a fresh SQLite database with the shipped
/// policies.
pub struct Served {
    /// Its state, for setting up what a bench reads.
    pub state: arbiter_server::AppState,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts it.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = arbiter_config::Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            policies_dir: repo().join("policies").display().to_string(),
            ..arbiter_config::Config::default()
        };
        let clock = std::sync::Arc::new(arbiter_server::clock::SystemClock);
        let state = arbiter_server::build_state(config, clock).await.unwrap();
        let server = arbiter_server::Server::bind_state(state.clone(), "127.0.0.1:0")
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn({
            let token = shutdown.clone();
            async move { server.run(token).await.unwrap() }
        });
        Self {
            state,
            base,
            shutdown,
            task,
            _dir: dir,
        }
    }

    /// Stops it and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}
