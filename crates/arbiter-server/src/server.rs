//! Building the services from configuration and serving HTTP until shutdown.

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, PolicySource};
use crate::flows::FlowRegistry;
use crate::pipeline::Pipeline;
use crate::policies::{LivePolicies, PolicyLoadError, PolicyStore};
use crate::sinks::{LogSink, SinkSet};
use crate::state::AppState;
use arbiter_audit::AuditSigning;
use arbiter_core::Detector;
use arbiter_db::{Db, DbTarget};
use arbiter_detect::IntakeLimits;
use arbiter_providers::Detectors;
use std::path::Path;
use std::sync::Arc;
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
    PolicyDatabase(#[from] crate::policy_changes::ChangeError),
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

/// The live policies: the configured directory, else `./policies` when present (both watched
/// for changes), else the copies built into the binary.
pub fn load_policies(
    policies_dir: &str,
    flows: &FlowRegistry,
) -> Result<LivePolicies, PolicyLoadError> {
    let default_dir = Path::new("policies");
    if !policies_dir.is_empty() {
        LivePolicies::from_dir(Path::new(policies_dir), flows)
    } else if default_dir.is_dir() {
        LivePolicies::from_dir(default_dir, flows)
    } else {
        PolicyStore::embedded(flows).map(LivePolicies::fixed)
    }
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
        start_from_database(&db, &policies, &flows, clock.now()).await?;
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

/// With `policies.source: database`: records the files' version of each flow that has none in
/// the database yet, then swaps in each flow's version recorded there. A recorded version that
/// cannot be activated fails the start: the database is the deployment's one source of truth.
async fn start_from_database(
    db: &Db,
    policies: &LivePolicies,
    flows: &FlowRegistry,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StartError> {
    crate::policy_changes::seed_database(db, policies, now).await?;
    let synced = crate::policy_changes::sync_from_database(db, policies, flows).await?;
    if !synced.failed.is_empty() {
        return Err(
            crate::policy_changes::ChangeError::NotActivated(synced.failed.join("\n")).into(),
        );
    }
    Ok(())
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
        remove_stale_batch_bodies(&self.state).await;
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
            let drain = std::time::Duration::from_secs(self.state.config.replica.drain_secs);
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
        hand_back_deliveries(&self.state).await;
        checkpoints.await.ok();
        self.state.checkpoint_worker().sign_at_shutdown().await;
        self.state.pipeline.db().clone().close().await.ok();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Gives back at once the webhook deliveries this replica's claims still hold once its delivery
/// loops have ended (claimed, not sent), so another replica sends them now rather than when
/// their leases run out. No attempt is counted against them.
async fn hand_back_deliveries(state: &AppState) {
    let handed = async {
        let txn = state.pipeline.db().begin_write().await?;
        let handed =
            arbiter_db::webhooks::hand_back_deliveries(&txn, &state.config.replica.id).await?;
        txn.commit().await?;
        Ok::<_, arbiter_db::sea_orm::DbErr>(handed)
    };
    match handed.await {
        Ok(0) => {}
        Ok(deliveries) => {
            tracing::info!(
                deliveries,
                "claimed webhook deliveries handed back for another replica"
            )
        }
        Err(err) => tracing::warn!(
            error = %err,
            "cannot hand back claimed webhook deliveries; their leases will run out"
        ),
    }
}

/// Starts the job runner (`jobs.workers` analysis workers, the upload collector) and
/// `webhooks.workers` delivery loops.
fn spawn_workers(
    state: &AppState,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let reload = tokio::spawn(watch_policies(state.clone(), shutdown.clone()));
    let jobs = crate::jobs::start_runner(state, shutdown);
    let deliveries = (0..state.config.webhooks.workers)
        .map(|_| tokio::spawn(state.delivery_worker().run(shutdown.clone())));
    let wal = tokio::spawn(checkpoint_wal(
        state.pipeline.db().clone(),
        shutdown.clone(),
    ));
    jobs.into_iter()
        .chain(deliveries)
        .chain([reload, wal])
        .collect()
}

/// Removes the kept batch bodies no longer needed: a complete batch's left by a stop between
/// its last commit and the removal, and a submission's cut off by a stop.
async fn remove_stale_batch_bodies(state: &AppState) {
    let conn = state.pipeline.db().conn().clone();
    let stale = arbiter_jobs::kept_bodies::stale_bodies(&state.config.data_dir, |batch_id| {
        let conn = conn.clone();
        async move {
            let batch = arbiter_db::jobs::find_batch(&conn, &batch_id).await?;
            Ok(batch.map(|batch| batch.status))
        }
    })
    .await;
    match stale {
        Ok(paths) => {
            for path in paths {
                arbiter_jobs::kept_bodies::remove_body(&path);
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot look for stale batch bodies"),
    }
}

/// How often SQLite's write-ahead log is copied into the database file.
const WAL_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Copies SQLite's write-ahead log into the database file every [`WAL_CHECKPOINT_EVERY`], beside
/// the writer, so no commit waits for the copy and its fsyncs. Nothing to do on PostgreSQL.
async fn checkpoint_wal(db: arbiter_db::Db, shutdown: CancellationToken) {
    if db.backend() != arbiter_db::sea_orm::DbBackend::Sqlite {
        return;
    }
    let mut every = tokio::time::interval(WAL_CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(err) = db.checkpoint_wal().await {
            tracing::warn!(error = %err, "copying the write-ahead log into the database failed");
        }
    }
}

/// With `policies.source: database`: every `policies.poll_interval_ms`, swaps in the version of
/// each flow approved since (its `policy.activated` entry was written by the approval).
async fn poll_database_policies(state: AppState, shutdown: CancellationToken) {
    let live = state.pipeline.policies().clone();
    let db = state.pipeline.db().clone();
    let flows = state.pipeline.flows().clone();
    let every = std::time::Duration::from_millis(state.config.policies.poll_interval_ms);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(err) = crate::policy_changes::sync_from_database(&db, &live, &flows).await {
            tracing::warn!(error = %err, "cannot read the approved policy versions");
        }
    }
}

/// Records the activation of the policies live at start, then re-reads the policy directory
/// every `policy_reload_secs` and records each activation.
async fn watch_policies(state: AppState, shutdown: CancellationToken) {
    if state.config.policies.source == PolicySource::Database {
        return poll_database_policies(state, shutdown).await;
    }
    let live = state.pipeline.policies().clone();
    let db = state.pipeline.db().clone();
    let started: Vec<_> = live.snapshot().all().cloned().collect();
    if let Err(err) =
        crate::policies::record_activations(&db, &started, "startup", state.clock.now()).await
    {
        tracing::error!(error = %err, "cannot record the policy activations");
    }
    let every = std::time::Duration::from_secs(state.config.policy_reload_secs);
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let flows = state.pipeline.flows().clone();
        let activated = match tokio::task::spawn_blocking({
            let live = live.clone();
            move || live.reload(&flows)
        })
        .await
        {
            Ok(activated) => activated,
            Err(err) => {
                tracing::error!(error = %err, "policy reload failed");
                continue;
            }
        };
        let policies: Vec<_> = activated.into_iter().map(|(policy, _)| policy).collect();
        if !policies.is_empty()
            && let Err(err) =
                crate::policies::record_activations(&db, &policies, "reload", state.clock.now())
                    .await
        {
            tracing::error!(error = %err, "cannot record the policy activations");
        }
    }
}
