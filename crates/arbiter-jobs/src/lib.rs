//! Arbiter's background work, apart from HTTP: a [`Runner`] of registered job types over a
//! [`JobContext`] of handles, the analysis jobs (batch images and requests answered by webhook)
//! queued in the database and claimed by workers under a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, in `arbiter-db`), the UGC upload collector that seals uploads into batches, a
//! batch request's body read as it arrives ([`batch_body`]), and the batch bodies kept on disk
//! while their batch is worked.
//!
//! The server enqueues (through [`queue`], [`ReceivedBatch`] and [`collector::collect`]) and
//! starts the runner ([`runner()`]); it converts [`EngineError`] to its error body.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod batch_body;
pub mod collector;
pub mod kept_bodies;
pub mod queue;
mod runner;

pub use analysis::JobFailure;
pub use arbiter_engine::EngineError;
pub use collector::{CollectedFlow, Upload, UploadAccepted};
pub use queue::{
    AsyncAccepted, BatchAccepted, BatchError, BatchStatus, BatchSubmission, Chunks, JobSource,
    NewImage, ReceivedBatch,
};
pub use runner::Runner;

use arbiter_db::requests::CachedLookups;
use arbiter_engine::Pipeline;
use arbiter_engine::analyze::{
    AnalysisHandles, AnalysisMetrics, AnalysisSettings, Analyzer, ImageFetcher, Inflight,
};
use arbiter_engine::clock::Clock;
use arbiter_engine::intake::RequestLimits;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

/// Durable jobs: batch images and asynchronous requests, claimed by workers under a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Worker tasks per process; 0 runs none (another replica does the work).
    pub workers: u32,
    /// Seconds a claimed job is held without renewal; the worker renews it while the job waits
    /// or runs, so a crashed worker's job is taken again after this.
    pub lease_secs: u64,
    /// How often an idle worker looks for work another replica queued, in milliseconds.
    pub poll_interval_ms: u64,
    /// Failed attempts of one job (a passing fault, or a lease that ran out while held) before
    /// it fails as INTERNAL_ERROR.
    pub max_attempts: u32,
    /// The largest `POST /v1/analyze/batch` body, in bytes.
    pub max_batch_body_bytes: u64,
    /// The most bytes of batch bodies on disk at once (received, and kept until their batch
    /// completes); a batch that would pass it is refused with 503 and `Retry-After`.
    pub max_spooled_bytes: u64,
}

impl Default for JobsConfig {
    /// The `jobs:` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("jobs")
    }
}

impl JobsConfig {
    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), arbiter_core::settings::InvalidKey> {
        if self.lease_secs == 0 {
            return Err(arbiter_core::settings::InvalidKey {
                key: "jobs.lease_secs",
                message: "must be more than 0".to_owned(),
            });
        }
        Ok(())
    }
}

/// The handles the jobs use, owned (each cheap to clone): the engine's for analysing an image,
/// and the jobs' own settings and bells.
#[derive(Clone)]
pub struct JobContext {
    /// Intake, detector, flows, policies, storage.
    pub pipeline: Pipeline,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Fetches `image_url`.
    pub fetcher: Arc<dyn ImageFetcher>,
    /// Earlier results read for concurrent requests together.
    pub cached_lookups: CachedLookups,
    /// Analyses under way and recent results, shared with direct requests.
    pub inflight: Inflight,
    /// Where cache, detector and single-flight counts go.
    pub metrics: Arc<dyn AnalysisMetrics>,
    /// The settings an analysis follows.
    pub analysis: AnalysisSettings,
    /// The limits batch images and uploads are held to, as requests are.
    pub limits: RequestLimits,
    /// This replica's id, in the tokens of the claims it takes.
    pub replica_id: String,
    /// The job settings (`jobs`).
    pub config: JobsConfig,
    /// The switched-on flows whose uploads are collected into batches, and how.
    pub collected: Vec<CollectedFlow>,
    /// The data directory, where batch bodies are kept.
    pub data_dir: PathBuf,
    /// Rung when jobs are queued.
    pub jobs_wake: Arc<Notify>,
    /// Rung when webhook deliveries are queued.
    pub deliveries_wake: Arc<Notify>,
}

impl AnalysisHandles for JobContext {
    fn analyzer(&self) -> Analyzer<'_> {
        Analyzer {
            pipeline: &self.pipeline,
            clock: &self.clock,
            fetcher: self.fetcher.as_ref(),
            cached_lookups: &self.cached_lookups,
            inflight: &self.inflight,
            metrics: self.metrics.as_ref(),
            settings: self.analysis,
            replica_id: &self.replica_id,
        }
    }
}

/// The runner of Arbiter's job types over `context`: [`analysis::JOB_TYPE`] on `jobs.workers`
/// workers, and [`collector::JOB_TYPE`] on one when uploads are collected.
pub fn runner(context: JobContext) -> Runner<JobContext> {
    let analysis_workers = usize::try_from(context.config.workers).unwrap_or(usize::MAX);
    let collectors = usize::from(!context.collected.is_empty());
    Runner::new(context)
        .register_job_type(analysis::JOB_TYPE, analysis_workers, analysis::run_worker)
        .register_job_type(collector::JOB_TYPE, collectors, collector::run)
}
