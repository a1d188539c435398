//! The server's side of the background work in `arbiter-jobs`: the job context made of the
//! state's handles, the runner started with it, and enqueuing from requests, answered with the
//! API's errors.

use crate::error::ApiError;
use crate::state::AppState;
use arbiter_core::RequestId;
use arbiter_engine::analyze::AnalyzeCall;
pub use arbiter_jobs::{
    AsyncAccepted, BatchAccepted, BatchStatus, BatchSubmission, JobSource, NewImage, Upload,
    UploadAccepted,
};
use arbiter_jobs::{JobContext, collector, queue};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

impl AppState {
    /// The jobs' handles, cloned from this state.
    pub fn job_context(&self) -> JobContext {
        let flows = self.pipeline.flows();
        let collected = flows
            .names()
            .filter(|name| self.config.flows.enabled(name))
            .filter_map(|flow| {
                let intake = flows.collected(flow)?;
                Some(arbiter_jobs::CollectedFlow {
                    flow,
                    batch_size: intake.batch_size,
                    max_wait_secs: intake.max_wait_secs,
                })
            })
            .collect();
        JobContext {
            pipeline: self.pipeline.clone(),
            clock: self.clock.clone(),
            fetcher: Arc::new(self.fetcher.clone()),
            cached_lookups: self.cached_lookups.clone(),
            inflight: self.inflight.clone(),
            metrics: Arc::new(self.metrics.clone()),
            analysis: self.analysis_settings(),
            replica_id: self.config.replica.id.clone(),
            config: self.config.jobs.clone(),
            collected,
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

/// Queues one analysis, whose result goes to `webhook_url` when there is one (and to the
/// tenant's endpoints).
pub async fn submit_single(
    state: &AppState,
    tenant: &str,
    request_id: &RequestId,
    call: AnalyzeCall,
    webhook_url: Option<String>,
    base_url: &str,
) -> Result<AsyncAccepted, ApiError> {
    let context = state.job_context();
    Ok(queue::submit_single(&context, tenant, request_id, call, webhook_url, base_url).await?)
}

/// Collects one upload of a flow whose intake collects (`POST /v1/flows/ugc/uploads`).
pub async fn collect(
    state: &AppState,
    flow: &str,
    tenant: &str,
    request_id: &RequestId,
    upload: Upload,
    base_url: &str,
) -> Result<UploadAccepted, ApiError> {
    let context = state.job_context();
    Ok(collector::collect(&context, flow, tenant, request_id, upload, base_url).await?)
}

/// A tenant's batch with the results so far (`GET /v1/batches/{batch_id}`), as a body sent a
/// page of results at a time.
pub async fn batch_status(
    state: &AppState,
    tenant: &str,
    batch_id: &str,
) -> Result<axum::body::Body, ApiError> {
    let bytes = queue::batch_status(state.pipeline.db().conn(), tenant, batch_id).await?;
    Ok(axum::body::Body::from_stream(bytes))
}
