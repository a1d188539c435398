//! Durable analysis jobs: the images of a batch and requests answered by webhook.
//!
//! Submitting writes the jobs (and the batch) in one transaction and answers 202. Workers claim
//! jobs under a lease (`jobs.lease_secs`); a job's end — its request row, decision, audit entry,
//! outbox rows and the batch's counts — is committed in one transaction that first checks the
//! claim still holds the lease, so a worker that lost it writes nothing and each image is
//! recorded exactly once. A failing image fails alone; when the last image of a batch ends, the
//! same transaction marks the batch complete and queues `batch.complete`.

use crate::analyze::{AnalyzeCall, HeldResult, ImageSource, decode_base64, obtain, request_row};
use crate::announce::AnalysisDeliveries;
use crate::batch_body;
use crate::error::ApiError;
use crate::pipeline::{Decided, Record};
use crate::state::AppState;
use arbiter_core::{AnalyzeOptions, BatchId, ErrorCode, RequestId, VerdictLabel};
use arbiter_db::entity::{batch, job};
use arbiter_db::jobs as repo;
use arbiter_db::sea_orm::DatabaseConnection;
use arbiter_webhooks::{Deliveries, Message};
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::StreamExt;
use futures_util::future::{FusedFuture, FutureExt};
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where a job's image is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobSource {
    /// Fetched by the worker, under the outbound rules.
    Url(String),
    /// The image, base64-encoded, as the caller sent it: rows written before images were kept
    /// as bytes, and text that is not valid base64 (its job fails as a direct request would).
    Base64(String),
    /// The image's bytes, in `job_images.image` beside this source.
    Stored,
    /// The image's bytes, on their way to the database as [`JobSource::Stored`].
    #[serde(skip)]
    Bytes(Vec<u8>),
    /// A batch image in its batch's kept body: the JSON of its `images` element, at these
    /// byte offsets (SQLite only; see `batch_body`).
    Kept {
        /// The element's first byte.
        start: u64,
        /// The byte after its last.
        end: u64,
    },
}

impl From<ImageSource> for JobSource {
    fn from(source: ImageSource) -> Self {
        match source {
            ImageSource::Url(url) => JobSource::Url(url),
            ImageSource::Bytes(bytes) => JobSource::Bytes(bytes),
            ImageSource::Taken(media) => JobSource::Bytes(media.bytes.to_vec()),
        }
    }
}

impl JobSource {
    /// The `job_images` columns of this source: its JSON, and the image's bytes when it has
    /// them (base64 is decoded here, so the database keeps bytes, not a third more of text).
    pub fn into_columns(self) -> Result<(String, Option<Vec<u8>>), ApiError> {
        let bytes = match self {
            JobSource::Bytes(bytes) => bytes,
            JobSource::Base64(encoded) => match decode_base64(&encoded) {
                Ok(bytes) => bytes,
                // Kept as sent: the job fails with the same error a direct request gets.
                Err(_) => return Ok((to_json(&JobSource::Base64(encoded))?, None)),
            },
            other => return Ok((to_json(&other)?, None)),
        };
        Ok((to_json(&JobSource::Stored)?, Some(bytes)))
    }

    /// A job row for this image, its bytes (if any) beside it.
    fn job(
        self,
        request_id: String,
        tenant: String,
        options: String,
        now: DateTime<Utc>,
    ) -> Result<job::Model, ApiError> {
        let (source, image) = self.into_columns()?;
        let mut row = repo::new_job(request_id, tenant, source, options, now);
        row.image = image;
        Ok(row)
    }
}

/// One image of a batch.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// The image.
    pub source: JobSource,
    /// The caller's reference.
    pub reference_id: Option<String>,
}

/// A checked batch, its images still to come.
#[derive(Debug, Clone)]
pub struct BatchSubmission {
    /// How many images it has.
    pub images: usize,
    /// Detector options for every image.
    pub options: AnalyzeOptions,
    /// Where `batch.complete` goes.
    pub webhook_url: Option<String>,
    /// The caller's reference for the batch.
    pub batch_reference_id: Option<String>,
}

/// The answer to `POST /v1/analyze/batch` (202).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    /// The batch.
    pub batch_id: BatchId,
    /// The caller's reference for the batch.
    pub batch_reference_id: Option<String>,
    /// Images accepted.
    pub image_count: usize,
    /// A rough estimate: the images divided among the workers at about a second each.
    pub estimated_completion_seconds: u64,
    /// Where to poll for results.
    pub status_url: String,
}

/// The answer to `POST /v1/analyze` with `options.webhook_url` (202).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AsyncAccepted {
    /// The request; its result is at `status_url` once complete, and is delivered to the webhook.
    pub request_id: RequestId,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// `PROCESSING` (or `COLLECTED`: an upload waiting for its batch).
    pub status: String,
    /// Where the result will be (202 with this status until it is complete).
    pub status_url: String,
}

/// `GET /v1/batches/{batch_id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchStatus {
    /// The batch.
    pub batch_id: String,
    /// The caller's reference for the batch.
    pub batch_reference_id: Option<String>,
    /// `PROCESSING` or `COMPLETE`.
    pub status: String,
    /// Images in the batch.
    pub total: i32,
    /// Images analysed.
    pub completed: i32,
    /// Images that failed.
    pub failed: i32,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its last image finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// Each finished image, in submission order: `reference_id`, `request_id`, `status`
    /// (`complete` or `failed`), and the `verdict` or the `error`.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<Value>,
}

fn to_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|err| ApiError::internal(&err))
}

fn estimate(images: usize, workers: u32) -> u64 {
    let workers = u64::from(workers.max(1));
    (images as u64).div_ceil(workers).max(1)
}

/// Queues a batch: the batch row and one job per image in one transaction, the images written
/// chunk by chunk as they arrive. An error in any chunk writes nothing. A `kept` body is kept
/// as the batch's before the commit (and removed again if the commit fails).
pub async fn submit_batch(
    state: &AppState,
    tenant: &str,
    submission: BatchSubmission,
    mut images: crate::batch_body::Chunks,
    kept: Option<tempfile::NamedTempFile>,
    base_url: &str,
) -> Result<BatchAccepted, ApiError> {
    let batch_id = BatchId::new();
    let now = state.clock.now().trunc_subsecs(3);
    let options = to_json(&submission.options)?;
    let count = submission.images;
    let batch_row = batch::Model {
        batch_id: batch_id.to_string(),
        tenant: tenant.to_owned(),
        batch_reference_id: submission.batch_reference_id.clone(),
        total: i32::try_from(count).unwrap_or(i32::MAX),
        completed: 0,
        failed: 0,
        status: repo::BATCH_PROCESSING.to_owned(),
        webhook_url: submission.webhook_url,
        created_at: now,
        completed_at: None,
    };
    let txn = state.pipeline.db().begin_write().await?;
    repo::insert_batch(&txn, batch_row).await?;
    let mut position = 0usize;
    while let Some(chunk) = images.recv().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                txn.rollback().await?;
                return Err(err);
            }
        };
        let mut rows = Vec::with_capacity(chunk.len());
        for image in chunk {
            let mut row = image.source.job(
                RequestId::new().to_string(),
                tenant.to_owned(),
                options.clone(),
                now,
            )?;
            row.batch_id = Some(batch_id.to_string());
            row.position = i32::try_from(position).unwrap_or(i32::MAX);
            row.reference_id = image.reference_id;
            rows.push(row);
            position += 1;
        }
        repo::insert_jobs(&txn, rows).await?;
    }
    if position != count {
        txn.rollback().await?;
        return Err(ApiError::internal(&format!(
            "the batch body changed between readings: {count} images, then {position}"
        )));
    }
    if let Some(body) = kept {
        batch_body::keep(body, &state.config.data_dir, batch_id.as_str())?;
    }
    if let Err(err) = txn.commit().await {
        batch_body::remove_kept(&state.config.data_dir, batch_id.as_str());
        return Err(err.into());
    }
    state.jobs_wake.notify_waiters();
    tracing::info!(batch_id = %batch_id, tenant, images = count, "batch queued");
    Ok(BatchAccepted {
        status_url: format!("{base_url}/v1/batches/{batch_id}"),
        batch_id,
        batch_reference_id: submission.batch_reference_id,
        image_count: count,
        estimated_completion_seconds: estimate(count, state.config.jobs.workers),
    })
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
    let now = state.clock.now().trunc_subsecs(3);
    let mut row = JobSource::from(call.source).job(
        request_id.to_string(),
        tenant.to_owned(),
        to_json(&call.options)?,
        now,
    )?;
    row.reference_id = call.reference_id.clone();
    row.webhook_url = webhook_url;
    if let Some((flow, facts)) = &call.flow {
        state.pipeline.check_input(flow, facts)?;
        row.flow = Some(flow.clone());
        row.facts = Some(to_json(facts)?);
    }
    let txn = state.pipeline.db().begin_write().await?;
    repo::insert_jobs(&txn, vec![row]).await?;
    txn.commit().await?;
    state.jobs_wake.notify_waiters();
    Ok(AsyncAccepted {
        request_id: request_id.clone(),
        reference_id: call.reference_id,
        status: "PROCESSING".to_owned(),
        status_url: format!("{base_url}/v1/requests/{request_id}"),
    })
}

/// Finished images read from the database at a time while a batch's status is sent.
const RESULTS_PAGE: u64 = 200;

/// A tenant's batch with the results so far, as a response body (a [`BatchStatus`]) that is
/// read from the database and sent a page of results at a time, so answering does not hold a
/// large batch's results in memory. Images that finish while it is sent may be among the
/// results but not yet in the counts.
pub async fn batch_status(
    state: &AppState,
    tenant: &str,
    batch_id: &str,
) -> Result<axum::body::Body, ApiError> {
    let conn = state.pipeline.db().conn().clone();
    let batch = repo::get_batch(&conn, tenant, batch_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no batch {batch_id} for this tenant")))?;
    let status = BatchStatus {
        batch_id: batch.batch_id,
        batch_reference_id: batch.batch_reference_id,
        status: batch.status,
        total: batch.total,
        completed: batch.completed,
        failed: batch.failed,
        created_at: batch.created_at,
        completed_at: batch.completed_at,
        results: Vec::new(),
    };
    status_body(conn, &status, RESULTS_PAGE)
}

/// The body of a batch's status: `status` with the batch's finished images as its `results`,
/// read `page` at a time.
fn status_body(
    conn: DatabaseConnection,
    status: &BatchStatus,
    page: u64,
) -> Result<axum::body::Body, ApiError> {
    // The status with an empty `results` ends in `[]}`: the results go between the brackets.
    let mut head = serde_json::to_vec(status).map_err(|err| ApiError::internal(&err))?;
    head.truncate(head.len().saturating_sub(2));
    let batch_id = status.batch_id.clone();
    // The position of the last result sent (`None` once all are), and whether one was.
    let pages = futures_util::stream::unfold((Some(-1), false), move |(after, sent)| {
        let (conn, batch_id) = (conn.clone(), batch_id.clone());
        async move {
            let after = after?;
            let jobs = match repo::finished_in_batch(&conn, &batch_id, after, page).await {
                Ok(jobs) => jobs,
                Err(err) => {
                    tracing::error!(batch_id, error = %err, "reading a batch's results failed");
                    return Some((Err(std::io::Error::other(err)), (None, sent)));
                }
            };
            let next = (jobs.len() as u64 == page)
                .then(|| jobs.last().map(|job| job.position))
                .flatten();
            let mut chunk = Vec::new();
            for (i, job) in jobs.iter().enumerate() {
                if sent || i > 0 {
                    chunk.push(b',');
                }
                write_result(job, &mut chunk);
            }
            Some((Ok(chunk), (next, sent || !jobs.is_empty())))
        }
    });
    let body = futures_util::stream::once(async { Ok(head) })
        .chain(pages)
        .chain(futures_util::stream::once(async { Ok(b"]}".to_vec()) }));
    Ok(axum::body::Body::from_stream(body))
}

/// A finished job's entry in its batch's results: the result stored when it completed (JSON
/// written by [`job_end`], sent as it is), or its error.
fn write_result(job: &job::Model, out: &mut Vec<u8>) {
    match &job.result {
        Some(result) => out.extend_from_slice(result.as_bytes()),
        None => {
            let failed = json!({
                "request_id": job.request_id,
                "reference_id": job.reference_id,
                "status": job.status,
                "error": {"code": job.error_code, "message": job.error_message},
            });
            out.extend_from_slice(failed.to_string().as_bytes());
        }
    }
}

/// What analysing a job's image gave: the detector result and the policy's decision.
struct Analysed {
    obtained: HeldResult,
    decided: Option<Decided>,
}

/// Fetches or decodes the job's image and finds its detector result (the cache, or the
/// detector) as a direct request would, then applies the job's flow.
async fn analyse(
    state: &AppState,
    job: &job::Model,
    source: &str,
    image: Option<Vec<u8>>,
    request_id: &RequestId,
) -> Result<Analysed, ApiError> {
    let source = match serde_json::from_str(source).map_err(|err| ApiError::internal(&err))? {
        JobSource::Kept { start, end } => {
            let batch_id = job.batch_id.as_deref().unwrap_or_default();
            let image = batch_body::read_kept(&state.config.data_dir, batch_id, start..end)?;
            match (image.image_url, image.image_base64) {
                (Some(url), _) => ImageSource::Url(url),
                (None, Some(encoded)) => ImageSource::Bytes(decode_base64(&encoded)?),
                (None, None) => return Err(ApiError::internal(&"a kept image has no source")),
            }
        }
        JobSource::Url(url) => ImageSource::Url(url),
        JobSource::Base64(encoded) => ImageSource::Bytes(decode_base64(&encoded)?),
        JobSource::Stored | JobSource::Bytes(_) => match image {
            Some(bytes) => ImageSource::Bytes(bytes),
            None => return Err(ApiError::internal(&"a stored image has no bytes")),
        },
    };
    let options: AnalyzeOptions =
        serde_json::from_str(&job.options).map_err(|err| ApiError::internal(&err))?;
    let facts: Value = match &job.facts {
        Some(text) => serde_json::from_str(text).map_err(|err| ApiError::internal(&err))?,
        None => json!({}),
    };
    let detector = state
        .pipeline
        .detector_for(job.flow.as_deref(), Some(&facts))
        .clone();
    let obtained = obtain(state, &job.tenant, request_id, source, &options, &detector).await?;
    let decided = match &job.flow {
        Some(flow) => Some(
            state
                .pipeline
                .apply_policy(flow, &facts, &obtained.analysis)?,
        ),
        None => None,
    };
    Ok(Analysed { obtained, decided })
}

/// Jobs a worker claims at once, when fewer than it analyses at a time are left waiting.
const CLAIM_GROUP: u32 = 32;

/// Claims up to [`CLAIM_GROUP`] queued jobs; each holds the claim's token as its `lease_owner`:
/// `<replica id>.<ulid>`, so the jobs table and the logs say which replica holds a job.
async fn claim(state: &AppState) -> Result<Vec<job::Model>, ApiError> {
    let now_ms = state.clock.now().timestamp_millis();
    let token = claim_token(&state.config.replica.id);
    let lease_ms = lease_ms(state);
    // A claim writes: on SQLite it goes through the writer connection, so it queues behind other
    // writes instead of sleeping in SQLite's busy handler.
    let txn = state.pipeline.db().begin_write().await?;
    let jobs = repo::claim(
        &txn,
        &token,
        now_ms,
        now_ms.saturating_add(lease_ms),
        CLAIM_GROUP,
    )
    .await?;
    txn.commit().await?;
    Ok(jobs)
}

/// A claim's token: the replica's id, a dot, and a ULID.
pub fn claim_token(replica: &str) -> String {
    format!("{replica}.{}", ulid::Ulid::new())
}

/// Gives back at once the jobs the claims `tokens` still hold (claimed, not started, at
/// shutdown), so another replica takes them now rather than when their leases run out. No
/// attempt is counted against them.
async fn hand_back(state: &AppState, tokens: &HashSet<String>) {
    if tokens.is_empty() {
        return;
    }
    let tokens: Vec<String> = tokens.iter().cloned().collect();
    let handed = async {
        let txn = state.pipeline.db().begin_write().await?;
        let handed = repo::hand_back(&txn, &tokens).await?;
        txn.commit().await?;
        Ok::<_, arbiter_db::sea_orm::DbErr>(handed)
    };
    match handed.await {
        Ok(0) => {}
        Ok(jobs) => tracing::info!(jobs, "claimed jobs handed back for another replica"),
        Err(err) => {
            tracing::warn!(error = %err, "cannot hand back claimed jobs; their leases will run out")
        }
    }
}

/// A worked job: its request id and what analysing it gave.
struct JobOutcome {
    job: job::Model,
    request_id: RequestId,
    outcome: Result<Analysed, ApiError>,
}

/// Gives a job back after a passing fault: one failed attempt counted, and claimable again
/// after `jobs.lease_secs`.
async fn release_failed(state: &AppState, job: &job::Model) {
    let token = job.lease_owner.as_deref().unwrap_or_default();
    let retry_at = state
        .clock
        .now()
        .timestamp_millis()
        .saturating_add(lease_ms(state));
    let released = async {
        let txn = state.pipeline.db().begin_write().await?;
        let held = repo::release_failed(&txn, token, &job.request_id, retry_at).await?;
        txn.commit().await?;
        Ok::<_, ApiError>(held)
    };
    if let Err(err) = released.await {
        // The lease then expires, which counts as a failure too.
        tracing::warn!(error = %err.message, "a failed job could not be given back");
    }
}

/// `jobs.lease_secs` in milliseconds.
fn lease_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.jobs.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Analyses one claimed job. `None` when a passing fault (the database, the detector) leaves it
/// for a later attempt: it is given back, its failure counted, and claimed again later, until
/// it has failed `jobs.max_attempts` times.
#[tracing::instrument(skip_all, fields(request_id = %job.request_id, tenant = %job.tenant, batch_id = job.batch_id.as_deref().unwrap_or("")))]
async fn attempt(state: &AppState, job: job::Model) -> Result<Option<JobOutcome>, ApiError> {
    let max_attempts = i32::try_from(state.config.jobs.max_attempts.max(1)).unwrap_or(i32::MAX);
    let request_id: RequestId = job
        .request_id
        .parse()
        .map_err(|err| ApiError::internal(&err))?;
    let outcome = if job.attempts >= max_attempts {
        Err(ApiError::new(
            ErrorCode::InternalError,
            format!("gave up after {} failed attempts", job.attempts),
        ))
    } else {
        // The image is read when its analysis starts and not kept past it: claimed jobs wait,
        // and finished jobs wait for their commit, without it.
        let source = match repo::source(state.pipeline.db().conn(), &job.request_id).await {
            Ok(Some(source)) => source,
            // Ended meanwhile by another claim: nothing is left to do.
            Ok(None) => return Ok(None),
            Err(err) => {
                tracing::warn!(attempt = job.attempts, error = %err, "job left for a later attempt");
                release_failed(state, &job).await;
                return Ok(None);
            }
        };
        match analyse(state, &job, &source.source, source.image, &request_id).await {
            // A passing fault, or a vendor that could not answer: the job is tried again.
            Err(err)
                if matches!(
                    err.code,
                    ErrorCode::InternalError | ErrorCode::ServiceUnavailable
                ) =>
            {
                tracing::warn!(attempt = job.attempts, error = %err.message, "job left for a later attempt");
                release_failed(state, &job).await;
                return Ok(None);
            }
            other => other,
        }
    };
    Ok(Some(JobOutcome {
        job,
        request_id,
        outcome,
    }))
}

/// The ends of a group of jobs in one transaction, each written only while the claim that took
/// it still holds its lease; then their actions. Each kind of row is written for the whole group
/// at once, so the group costs the database about as many statements as one job.
async fn commit(state: &AppState, ends: &[JobOutcome]) -> Result<(), ApiError> {
    let now = state.clock.now().trunc_subsecs(3);
    let txn = state.pipeline.db().begin_write().await?;
    let mut by_claim: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for end in ends {
        let token = end.job.lease_owner.as_deref().unwrap_or_default();
        let job_end = (end.job.request_id.as_str(), job_end(end, now));
        by_claim.entry(token).or_default().push(job_end);
    }
    // Which claim ended which job: two copies of one job (its lease lost and taken again) may
    // be in one group, and only the copy whose claim holds the job is recorded.
    let mut held: HashSet<(String, String)> = HashSet::new();
    for (token, job_ends) in by_claim {
        let ended = repo::finish(&txn, token, &job_ends).await?;
        held.extend(ended.into_iter().map(|id| (token.to_owned(), id)));
    }
    let holds = |job: &job::Model| {
        let token = job.lease_owner.clone().unwrap_or_default();
        held.contains(&(token, job.request_id.clone()))
    };
    let mut records = Vec::with_capacity(held.len());
    let mut deliveries = Deliveries::default();
    // Per batch: images analysed and images failed in this group, counted once at the end.
    let mut tallies: BTreeMap<&str, (i32, i32)> = BTreeMap::new();
    for end in ends {
        let job = &end.job;
        if !holds(job) {
            tracing::warn!(request_id = %job.request_id, "lease lost: another worker has this job; nothing written");
            continue;
        }
        if let Some(batch_id) = &job.batch_id {
            let tally = tallies.entry(batch_id).or_default();
            if end.outcome.is_ok() {
                tally.0 += 1;
            } else {
                tally.1 += 1;
            }
        }
        match &end.outcome {
            Ok(done) => {
                let mut row = request_row(
                    &job.tenant,
                    &end.request_id,
                    job.reference_id.clone(),
                    &done.obtained,
                )?;
                row.created_at = now;
                let record = Record {
                    tenant: &job.tenant,
                    request_id: &end.request_id,
                    reference_id: job.reference_id.as_deref(),
                    analysis: &done.obtained.analysis,
                    decided: done.decided.as_ref(),
                    request_row: Some(row),
                    case: None,
                };
                crate::reports::keep_thumbnail(
                    &txn,
                    &job.tenant,
                    &done.obtained.analysis.image_info.sha256,
                    done.obtained.thumbnail.as_ref(),
                    now,
                )
                .await?;
                let (batch_id, url) = (job.batch_id.as_deref(), job.webhook_url.as_deref());
                deliveries
                    .add_analysis(&txn, &record, batch_id, url, now)
                    .await?;
                tracing::info!(request_id = %job.request_id, tenant = %job.tenant, batch_id = job.batch_id.as_deref().unwrap_or(""), verdict = %record.analysis.verdict.label, "job complete");
                records.push(record);
            }
            // A single request's failure, or a flow's (a collected upload), is announced on its
            // own; a plain batch image's shows in its batch.
            Err(err) if job.batch_id.is_none() || job.flow.is_some() => {
                let payload = json!({
                    "event": "analysis.failed",
                    "type": "analysis.failed",
                    "timestamp": now,
                    "request_id": job.request_id,
                    "reference_id": job.reference_id,
                    "error": {"code": err.code.as_str(), "message": err.message},
                });
                let message = Message {
                    event: "analysis.failed",
                    payload,
                    request_id: Some(&job.request_id),
                    reference_id: job.reference_id.as_deref(),
                    batch_id: None,
                };
                deliveries
                    .add(&txn, &job.tenant, &message, job.webhook_url.as_deref(), now)
                    .await?;
                tracing::info!(request_id = %job.request_id, tenant = %job.tenant, batch_id = job.batch_id.as_deref().unwrap_or(""), code = err.code.as_str(), error = %err.message, "job failed");
            }
            Err(err) => {
                tracing::info!(request_id = %job.request_id, tenant = %job.tenant, batch_id = job.batch_id.as_deref().unwrap_or(""), code = err.code.as_str(), error = %err.message, "job failed");
            }
        }
    }
    let entries = crate::pipeline::write_many(&txn, &records).await?;
    let mut completed = Vec::new();
    for (batch_id, (analysed, failed)) in tallies {
        if count_in_batch(&txn, &mut deliveries, batch_id, analysed, failed, now).await? {
            completed.push(batch_id);
        }
    }
    let queued = deliveries.write(&txn).await?;
    txn.commit().await?;
    state.pipeline.heads_moved(&entries);
    for batch_id in completed {
        batch_body::remove_kept(&state.config.data_dir, batch_id);
    }
    // Results written are offered to later identical requests once committed.
    for end in ends.iter().filter(|end| holds(&end.job)) {
        if let Ok(done) = &end.outcome {
            done.obtained.committed(state, &end.request_id);
        }
    }
    if queued > 0 {
        state.webhooks.wake.notify_waiters();
    }
    for record in &records {
        state.pipeline.act(record).await;
    }
    Ok(())
}

/// How a job ended, as its row records it.
fn job_end(end: &JobOutcome, now: DateTime<Utc>) -> repo::JobEnd {
    let job = &end.job;
    match &end.outcome {
        Ok(done) => {
            let mut result = json!({
                "request_id": job.request_id,
                "reference_id": job.reference_id,
                "status": "complete",
                "verdict": done.obtained.analysis.verdict,
                "image_sha256": done.obtained.analysis.image_info.sha256,
                "cached": done.obtained.cached_from.is_some(),
            });
            if let Some(decided) = &done.decided {
                result["decision"] = decided.decision_summary();
            }
            repo::JobEnd {
                status: repo::COMPLETE,
                verdict_label: Some(done.obtained.analysis.verdict.label.as_str().to_owned()),
                result: Some(result.to_string()),
                error_code: None,
                error_message: None,
                at: now,
            }
        }
        Err(err) => repo::JobEnd {
            status: repo::FAILED,
            verdict_label: None,
            result: None,
            error_code: Some(err.code.as_str().to_owned()),
            error_message: Some(err.message.clone()),
            at: now,
        },
    }
}

/// Counts finished images of a batch; when they were its last, marks the batch complete, adds
/// `batch.complete` with the summary counts to `deliveries` and answers `true`.
async fn count_in_batch(
    txn: &arbiter_db::sea_orm::DatabaseTransaction,
    deliveries: &mut Deliveries,
    batch_id: &str,
    completed: i32,
    failed: i32,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let Some(batch) = repo::count_in_batch(txn, batch_id, completed, failed).await? else {
        return Ok(false);
    };
    if batch.completed + batch.failed < batch.total
        || !repo::complete_batch(txn, batch_id, now).await?
    {
        return Ok(false);
    }
    let mut summary: BTreeMap<String, u64> = [
        VerdictLabel::Authentic,
        VerdictLabel::AiGenerated,
        VerdictLabel::Manipulated,
        VerdictLabel::Inconclusive,
    ]
    .into_iter()
    .map(|label| (label.as_str().to_owned(), 0))
    .collect();
    for label in repo::batch_labels(txn, batch_id)
        .await?
        .into_iter()
        .flatten()
    {
        *summary.entry(label).or_default() += 1;
    }
    let payload = json!({
        "event": "batch.complete",
        "type": "batch.complete",
        "timestamp": now,
        "batch_id": batch.batch_id,
        "batch_reference_id": batch.batch_reference_id,
        "total": batch.total,
        "completed": batch.completed,
        "failed": batch.failed,
        "summary": summary,
    });
    let message = Message {
        event: "batch.complete",
        payload,
        request_id: None,
        reference_id: batch.batch_reference_id.as_deref(),
        batch_id: Some(batch_id),
    };
    tracing::info!(
        batch_id,
        total = batch.total,
        failed = batch.failed,
        "batch complete"
    );
    deliveries
        .add(
            txn,
            &batch.tenant,
            &message,
            batch.webhook_url.as_deref(),
            now,
        )
        .await?;
    Ok(true)
}

/// Finished jobs a worker commits in one transaction at most.
const COMMIT_GROUP: usize = 64;

/// Renews, a few times per lease, the leases of the jobs each claim in `tokens` still holds; a
/// claim holding none is forgotten (none of its jobs can be held again).
async fn renew_leases(state: AppState, tokens: Arc<Mutex<HashSet<String>>>) {
    let every = Duration::from_millis(u64::try_from(lease_ms(&state) / 3).unwrap_or(1000).max(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let held: Vec<String> = tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        if held.is_empty() {
            continue;
        }
        let until = state
            .clock
            .now()
            .timestamp_millis()
            .saturating_add(lease_ms(&state));
        let renewed = async {
            let txn = state.pipeline.db().begin_write().await?;
            let mut spent = Vec::new();
            for token in &held {
                if repo::renew(&txn, token, until).await? == 0 {
                    spent.push(token);
                }
            }
            txn.commit().await?;
            Ok::<_, ApiError>(spent)
        };
        match renewed.await {
            Ok(spent) => {
                let mut tokens = tokens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for token in spent {
                    tokens.remove(token);
                }
            }
            Err(err) => tracing::warn!(error = %err.message, "renewing job leases failed"),
        }
    }
}

/// How long the first of a group of finished jobs waits for others to share its commit, while
/// more are being analysed.
const COMMIT_WAIT: Duration = Duration::from_millis(50);

/// A job worker: works queued jobs until `shutdown`, then finishes the jobs it has claimed.
///
/// It keeps twice as many images in analysis as the machine has cores (the analysis threads
/// take them in turn, so the next image is ready when a thread is free), plus as many as the
/// vendors take at once (a vendor's analysis waits on the network, not a core), claims more jobs while
/// fewer than a claim's worth are waiting (so analysis never waits for a claim), and commits
/// finished jobs in the background, [`COMMIT_GROUP`] at a time or [`COMMIT_WAIT`] after the
/// first finished, and at once when nothing else is being analysed: the detector never waits
/// for the database, and the database sees a few large transactions instead of one per image.
pub async fn run_worker(state: AppState, shutdown: CancellationToken) {
    let poll = Duration::from_millis(state.config.jobs.poll_interval_ms.max(10));
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let in_analysis = 2 * cores + state.pipeline.detectors().vendor_slots();
    let mut waiting: VecDeque<job::Model> = VecDeque::new();
    let mut running = FuturesUnordered::new();
    let mut finished: Vec<JobOutcome> = Vec::new();
    // When the oldest finished job is to be committed, however few have finished with it.
    let mut commit_due = tokio::time::Instant::now();
    let mut committing: Option<tokio::task::JoinHandle<()>> = None;
    let mut claiming = Box::pin(claim(&state).fuse());
    // Whether the last claim found the queue empty: then claim again only when woken or polled.
    let mut drained = false;
    // The claims whose jobs are still held (waiting, analysed or being committed): their
    // leases are renewed a few times per lease by a task of their own (it must not wait on
    // this loop, which may hold the writer in a claim), so a job that waits or runs long
    // keeps its lease.
    let tokens: Arc<Mutex<HashSet<String>>> = Arc::default();
    let renewing = tokio::spawn(renew_leases(state.clone(), tokens.clone()));
    loop {
        let wake = state.jobs_wake.notified();
        tokio::pin!(wake);
        if claiming.is_terminated()
            && waiting.len() < CLAIM_GROUP as usize
            && !drained
            && !shutdown.is_cancelled()
        {
            claiming.set(claim(&state).fuse());
        }
        // At shutdown the jobs under analysis finish; those still waiting are handed back.
        while running.len() < in_analysis
            && !shutdown.is_cancelled()
            && let Some(job) = waiting.pop_front()
        {
            running.push(attempt(&state, job));
        }
        let commit_now = finished.len() >= COMMIT_GROUP
            || running.is_empty()
            || tokio::time::Instant::now() >= commit_due;
        if !finished.is_empty() && committing.is_none() && commit_now {
            let ends = std::mem::take(&mut finished);
            let state = state.clone();
            committing = Some(tokio::spawn(async move {
                if let Err(err) = commit(&state, &ends).await {
                    tracing::warn!(error = %err.message, "committing a group of jobs failed");
                }
            }));
        }
        if running.is_empty() && claiming.is_terminated() {
            if let Some(previous) = committing.take() {
                // Everything analysed: wait for the commit under way, then commit the rest.
                previous.await.ok();
                continue;
            }
            if shutdown.is_cancelled() {
                break;
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = &mut wake => {}
                () = tokio::time::sleep(poll) => {}
            }
            drained = false;
            continue;
        }
        let group_waits = !finished.is_empty() && committing.is_none();
        tokio::select! {
            end = running.next(), if !running.is_empty() => match end {
                Some(Ok(Some(end))) => {
                    if finished.is_empty() {
                        commit_due = tokio::time::Instant::now() + COMMIT_WAIT;
                    }
                    finished.push(end);
                }
                Some(Ok(None)) | None => {}
                Some(Err(err)) => tracing::warn!(error = %err.message, "working a job failed"),
            },
            claimed = &mut claiming, if !claiming.is_terminated() => match claimed {
                Ok(jobs) => {
                    drained = jobs.len() < CLAIM_GROUP as usize;
                    if let Some(token) = jobs.first().and_then(|job| job.lease_owner.clone()) {
                        tokens
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(token);
                    }
                    waiting.extend(jobs);
                }
                Err(err) => {
                    tracing::warn!(error = %err.message, "claiming jobs failed");
                    drained = true;
                }
            },
            () = async {
                if let Some(commit) = committing.as_mut() {
                    commit.await.ok();
                }
            }, if committing.is_some() => committing = None,
            () = tokio::time::sleep_until(commit_due), if group_waits => {}
            () = &mut wake, if drained => drained = false,
        }
    }
    if let Some(previous) = committing.take() {
        previous.await.ok();
    }
    renewing.abort();
    let held = tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    hand_back(&state, &held).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_db::{Db, DbTarget};

    #[tokio::test]
    async fn a_batch_status_is_sent_page_by_page_in_submission_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let now = Utc::now().trunc_subsecs(3);
        let jobs: Vec<_> = (0..5)
            .map(|i| {
                let mut row = repo::new_job(
                    format!("req_{i}"),
                    "acme".into(),
                    String::new(),
                    "{}".into(),
                    now,
                );
                row.batch_id = Some("batch_1".into());
                row.position = i;
                // The third image is still queued; the fourth failed.
                (row.status, row.result, row.error_code) = match i {
                    2 => (repo::QUEUED.into(), None, None),
                    3 => (repo::FAILED.into(), None, Some("UNSUPPORTED_FORMAT".into())),
                    _ => (
                        repo::COMPLETE.into(),
                        Some(json!({"request_id": format!("req_{i}")}).to_string()),
                        None,
                    ),
                };
                row
            })
            .collect();
        let txn = db.begin_write().await.unwrap();
        repo::insert_jobs(&txn, jobs).await.unwrap();
        txn.commit().await.unwrap();
        let status = BatchStatus {
            batch_id: "batch_1".into(),
            batch_reference_id: None,
            status: repo::BATCH_PROCESSING.into(),
            total: 5,
            completed: 3,
            failed: 1,
            created_at: now,
            completed_at: None,
            results: Vec::new(),
        };
        for page in [1, 2, 3, 200] {
            let body = status_body(db.conn().clone(), &status, page).unwrap();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let sent: Value = serde_json::from_slice(&bytes).unwrap();
            let ids: Vec<_> = sent["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|result| result["request_id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, ["req_0", "req_1", "req_3", "req_4"], "page {page}");
            assert_eq!(sent["results"][2]["error"]["code"], "UNSUPPORTED_FORMAT");
            assert_eq!(sent["completed"], 3);
        }
    }
}
