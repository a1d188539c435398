//! The server's side of the background work in `arbiter-jobs`: the job context made of the
//! state's handles, and the runner started with it.

use crate::state::AppState;
use arbiter_jobs::{CollectedFlow, JobContext};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

impl AppState {
    /// The jobs' handles, cloned from this state.
    pub fn job_context(&self) -> JobContext {
        JobContext {
            pipeline: self.pipeline.clone(),
            clock: self.clock.clone(),
            fetcher: Arc::new(self.fetcher.clone()),
            cached_lookups: self.cached_lookups.clone(),
            inflight: self.inflight.clone(),
            metrics: Arc::new(self.metrics.clone()),
            analysis: self.analysis_settings(),
            limits: self.request_limits(),
            replica_id: self.config.replica.id.clone(),
            config: self.config.jobs.clone(),
            collected: CollectedFlow::switched_on(self.pipeline.flows(), &self.config.flows),
            data_dir: self.config.data_dir.clone(),
            jobs_wake: self.jobs_wake.clone(),
            deliveries_wake: self.webhooks.wake.clone(),
        }
    }
}

/// Starts the job runner's workers over this state's handles: `jobs.workers` analysis workers
/// and, with a collecting flow on (UGC), the upload collector.
pub fn start_runner(state: &AppState, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    arbiter_jobs::runner(state.job_context()).start(shutdown)
}
