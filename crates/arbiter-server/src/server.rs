//! Building the services from configuration and serving HTTP until shutdown.

use crate::clock::{Clock, SystemClock};
use crate::flows::FlowRegistry;
use crate::pipeline::Pipeline;
use crate::policies::{PolicyLoadError, load_policies};
use crate::policy_changes::{self, ChangeError};
use crate::sinks::{LogSink, SinkSet};
use crate::state::AppState;
use arbiter_audit::AuditSigning;
use arbiter_config::{Config, PolicySource};
use arbiter_core::Detector;
use arbiter_db::{Db, DbTarget};
use arbiter_detect::IntakeLimits;
use arbiter_engine::policy_watch::PolicyWatch;
use arbiter_providers::Detectors;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Db(#[from] arbiter_db::DbError),
    /// The detectors' configuration was refused.
    #[error("cannot build the detectors: {0}")]
    Detector(#[from] arbiter_providers::BuildError),
    /// A policy could not be activated.
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    /// The flows could not be built.
    #[error("cannot build the flows: {0}")]
    Flows(String),
    /// The policies recorded in the database could not be read or activated.
    #[error("cannot start from the policies in the database: {0}")]
    PolicyDatabase(#[from] ChangeError),
    /// The webhook secret key file could not be opened or created.
    #[error(transparent)]
    WebhookKey(#[from] arbiter_webhooks::CipherError),
    /// The audit checkpoint signing key is missing or unusable.
    #[error("cannot sign audit checkpoints: {0}")]
    AuditKey(#[from] arbiter_audit::SigningSetupError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The state for a configuration: database, detector, flows, policies.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    let guard = config.outbound.guard();
    let detector = config.detector.clone();
    build_state_with_detectors(config, clock, move |db| {
        let usage = Arc::new(crate::provider_usage::DbUsage(db.clone()));
        Ok(Detectors::build_with_usage(&detector, guard, usage)?)
    })
    .await
}

/// The state for a configuration, with one given detector for every image.
pub async fn build_state_with_detector(
    config: Config,
    clock: Arc<dyn Clock>,
    detector: Arc<dyn Detector>,
) -> Result<AppState, StartError> {
    build_state_with_detectors(config, clock, |_| Ok(Detectors::single(detector))).await
}

/// The state for a configuration, with the detectors `detectors` builds over the database.
pub async fn build_state_with_detectors(
    config: Config,
    clock: Arc<dyn Clock>,
    detectors: impl FnOnce(&Db) -> Result<Detectors, StartError>,
) -> Result<AppState, StartError> {
    let audit = AuditSigning::from_config(&config.audit, &config.data_dir)?;
    let target = DbTarget::new(Some(config.database_url.clone()), &config.data_dir);
    let db = Db::connect(&target).await?;
    let detectors = detectors(&db)?;
    let flows = FlowRegistry::configured(&config.flows).map_err(StartError::Flows)?;
    let policies = load_policies(&config.policies_dir, &flows)?;
    if config.policies.source == PolicySource::Database {
        policy_changes::start_from_database(&db, &policies, &flows, clock.now()).await?;
    }
    let limits = IntakeLimits {
        max_bytes: config.limits.max_image_bytes,
        min_dimension: config.limits.min_dimension,
    };
    let pipeline = Pipeline::new(
        db,
        detectors,
        flows,
        policies,
        SinkSet::new(vec![Arc::new(LogSink)]),
        limits,
    );
    let state = AppState::new(pipeline, config, clock, audit);
    state.webhooks.check_key_file().await?;
    Ok(state)
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Builds the state and binds the configured address.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let addr = config.listen.clone();
        let state = build_state(config, Arc::new(SystemClock)).await?;
        Self::bind_state(state, &addr).await
    }

    /// Binds an address for an existing state.
    pub async fn bind_state(state: AppState, addr: &str) -> Result<Self, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(Self { listener, state })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled; then `/readyz` answers 503 (`draining`) for
    /// `replica.drain_secs` while requests are still served, and the server stops accepting and
    /// finishes its in-flight requests. The job workers and webhook delivery loops stop claiming
    /// at once, finish the work under way and hand back the jobs and the webhook deliveries they
    /// claimed and had not started.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let db = self.state.pipeline.db().clone();
        arbiter_jobs::kept_bodies::remove_stale(&db, &self.state.config.data_dir).await;
        let workers = spawn_workers(&self.state, &shutdown);
        let checkpoints = tokio::spawn(self.state.checkpoint_worker().run(shutdown.clone()));
        let app = crate::routes::router(self.state.clone());
        tracing::info!(addr = %self.listener.local_addr()?, "listening");
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown({
            let shutdown = shutdown.clone();
            let draining = self.state.draining.clone();
            let drain = Duration::from_secs(self.state.config.replica.drain_secs);
            async move {
                shutdown.cancelled().await;
                // Unready first, still serving, so the load balancer moves new requests away.
                draining.store(true, std::sync::atomic::Ordering::Relaxed);
                if !drain.is_zero() {
                    tracing::info!(
                        drain_secs = drain.as_secs(),
                        "draining: /readyz answers 503"
                    );
                    tokio::time::sleep(drain).await;
                }
                tracing::info!("no longer accepting: finishing in-flight requests");
            }
        })
        .await?;
        shutdown.cancel();
        futures_util::future::join_all(workers).await;
        arbiter_webhooks::delivery::hand_back(&db, &self.state.config.replica.id).await;
        checkpoints.await.ok();
        self.state.checkpoint_worker().sign_at_shutdown().await;
        db.close().await.ok();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts the job runner (`jobs.workers` analysis workers, the upload collector),
/// `webhooks.workers` delivery loops, the policy watch and the WAL checkpoints.
fn spawn_workers(
    state: &AppState,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let watch = PolicyWatch {
        live: state.pipeline.policies().clone(),
        db: state.pipeline.db().clone(),
        flows: state.pipeline.flows().clone(),
        clock: state.clock.clone(),
        source: state.config.policies.source,
        reload_every: Duration::from_secs(state.config.policy_reload_secs),
        poll_every: Duration::from_millis(state.config.policies.poll_interval_ms),
    };
    let reload = tokio::spawn(watch.run(shutdown.clone()));
    let jobs = crate::jobs::start_runner(state, shutdown);
    let deliveries = (0..state.config.webhooks.workers)
        .map(|_| tokio::spawn(state.delivery_worker().run(shutdown.clone())));
    let wal = tokio::spawn(
        state
            .pipeline
            .db()
            .clone()
            .keep_wal_checkpointed(WAL_CHECKPOINT_EVERY, shutdown.clone().cancelled_owned()),
    );
    jobs.into_iter()
        .chain(deliveries)
        .chain([reload, wal])
        .collect()
}

/// How often SQLite's write-ahead log is copied into the database file.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_db::entity::webhook_delivery;
    use arbiter_db::sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};
    use std::sync::atomic::Ordering;

    /// A pending delivery whose lease `owner` holds for a long while.
    fn leased(owner: &str) -> webhook_delivery::Model {
        webhook_delivery::Model {
            delivery_id: "msg_1".into(),
            tenant: "acme".into(),
            endpoint_id: None,
            url: "https://hooks.example/in".into(),
            event: "analysis.complete".into(),
            request_id: None,
            reference_id: None,
            batch_id: None,
            body: "{}".into(),
            status: arbiter_db::webhooks::PENDING.into(),
            attempts: 0,
            next_attempt_ms: 0,
            lease_owner: Some(owner.to_owned()),
            lease_until_ms: i64::MAX / 2,
            last_status: None,
            last_error: None,
            created_at: crate::testing::now(),
            finished_at: None,
        }
    }

    #[tokio::test]
    async fn a_server_serves_until_shutdown_then_hands_back_its_claims_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::testing::state(dir.path()).await;
        let claim = format!("{}.0", state.config.replica.id);
        let row = leased(&claim).into_active_model();
        row.reset_all()
            .insert(state.pipeline.db().conn())
            .await
            .unwrap();
        let server = Server::bind_state(state.clone(), "127.0.0.1:0")
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(server.run(shutdown.clone()));
        let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        assert!(!state.draining.load(Ordering::Relaxed));

        shutdown.cancel();
        running.await.unwrap().unwrap();
        assert!(
            state.draining.load(Ordering::Relaxed),
            "unready from shutdown on"
        );
        assert!(
            reqwest::get(format!("{base}/healthz")).await.is_err(),
            "no longer listening"
        );
        // The claim it held is free for another replica at once.
        let db = Db::connect(&DbTarget::DataDir(dir.path().to_path_buf()))
            .await
            .unwrap();
        let row = webhook_delivery::Entity::find_by_id("msg_1")
            .one(db.conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.lease_owner, row.lease_until_ms), (None, 0));
        assert_eq!(row.attempts, 0, "handing back is no attempt");
    }

    #[tokio::test]
    async fn an_address_that_cannot_be_bound_is_a_start_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::testing::state(dir.path()).await;
        let taken = Server::bind_state(state.clone(), "127.0.0.1:0")
            .await
            .unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let err = Server::bind_state(state, &addr).await.err().unwrap();
        assert!(
            matches!(&err, StartError::Listen { addr: a, .. } if *a == addr),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
    }
}
