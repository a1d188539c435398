//! The analysis job type: workers claim queued jobs (the images of a batch, requests answered
//! by webhook) and analyse them as a direct request would.
//!
//! Workers claim jobs under a lease (`jobs.lease_secs`); a job's end — its request row,
//! decision, audit entry, outbox rows and the batch's counts — is committed in one transaction
//! that first checks the claim still holds the lease, so a worker that lost it writes nothing and
//! each image is recorded exactly once. A failing image fails alone; when the last image of a
//! batch ends, the same transaction marks the batch complete and queues `batch.complete`.

use crate::JobContext;
use crate::kept_bodies;
use crate::queue::JobSource;
use arbiter_core::{AnalyzeOptions, ErrorCode, RequestId, VerdictLabel};
use arbiter_db::entity::job;
use arbiter_db::jobs as repo;
use arbiter_engine::EngineError;
use arbiter_engine::analyze::{HeldResult, ImageSource, decode_base64, obtain, request_row};
use arbiter_engine::announce::AnalysisDeliveries;
use arbiter_engine::pipeline::{Decided, Record};
use arbiter_webhooks::{Deliveries, Message};
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::StreamExt;
use futures_util::future::{FusedFuture, FutureExt};
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The name of the job type.
pub const JOB_TYPE: &str = "analysis";

/// Why a job's image failed, as its row and its `analysis.failed` webhook say: the stable code
/// and the caller's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for the caller; a failure's cause is logged, not kept.
    pub message: String,
}

impl From<EngineError> for JobFailure {
    fn from(err: EngineError) -> Self {
        if err.code() == ErrorCode::InternalError {
            tracing::error!(error = %err, "internal error");
        }
        Self {
            code: err.code(),
            message: err.caller_message(),
        }
    }
}

/// Whether a job that failed with `code` is tried again: a passing fault, or a vendor that could
/// not answer. Any other failure is the image's own and ends the job.
pub fn tried_again(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InternalError | ErrorCode::ServiceUnavailable
    )
}

/// What analysing a job's image gave: the detector result and the policy's decision.
struct Analysed {
    obtained: HeldResult,
    decided: Option<Decided>,
}

/// Fetches or decodes the job's image and finds its detector result (the cache, or the
/// detector) as a direct request would, then applies the job's flow.
async fn analyse(
    state: &JobContext,
    job: &job::Model,
    source: &str,
    image: Option<Vec<u8>>,
    request_id: &RequestId,
) -> Result<Analysed, EngineError> {
    let source = match serde_json::from_str(source).map_err(EngineError::internal)? {
        JobSource::Kept { start, end } => {
            let batch_id = job.batch_id.as_deref().unwrap_or_default();
            let image = kept_bodies::read_kept(&state.data_dir, batch_id, start..end)?;
            match (image.image_url, image.image_base64) {
                (Some(url), _) => ImageSource::Url(url),
                (None, Some(encoded)) => ImageSource::Bytes(decode_base64(&encoded)?),
                (None, None) => return Err(EngineError::internal("a kept image has no source")),
            }
        }
        JobSource::Url(url) => ImageSource::Url(url),
        JobSource::Base64(encoded) => ImageSource::Bytes(decode_base64(&encoded)?),
        JobSource::Stored | JobSource::Bytes(_) => match image {
            Some(bytes) => ImageSource::Bytes(bytes),
            None => return Err(EngineError::internal("a stored image has no bytes")),
        },
    };
    let options: AnalyzeOptions =
        serde_json::from_str(&job.options).map_err(EngineError::internal)?;
    let facts: Value = match &job.facts {
        Some(text) => serde_json::from_str(text).map_err(EngineError::internal)?,
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
async fn claim(state: &JobContext) -> Result<Vec<job::Model>, EngineError> {
    let now_ms = state.clock.now().timestamp_millis();
    let token = arbiter_db::leases::owner_token(&state.replica_id);
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

/// Gives back at once the jobs the claims `tokens` still hold (claimed, not started, at
/// shutdown), so another replica takes them now rather than when their leases run out. No
/// attempt is counted against them.
async fn hand_back(state: &JobContext, tokens: &HashSet<String>) {
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
    outcome: Result<Analysed, JobFailure>,
}

/// Gives a job back after a passing fault: one failed attempt counted, and claimable again
/// after `jobs.lease_secs`.
async fn release_failed(state: &JobContext, job: &job::Model) {
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
        Ok::<_, EngineError>(held)
    };
    if let Err(err) = released.await {
        // The lease then expires, which counts as a failure too.
        tracing::warn!(error = %err, "a failed job could not be given back");
    }
}

/// `jobs.lease_secs` in milliseconds.
fn lease_ms(state: &JobContext) -> i64 {
    i64::try_from(state.config.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Analyses one claimed job. `None` when a passing fault (the database, the detector) leaves it
/// for a later attempt: it is given back, its failure counted, and claimed again later, until
/// it has failed `jobs.max_attempts` times.
#[tracing::instrument(skip_all, fields(request_id = %job.request_id, tenant = %job.tenant, batch_id = job.batch_id.as_deref().unwrap_or("")))]
async fn attempt(state: &JobContext, job: job::Model) -> Result<Option<JobOutcome>, EngineError> {
    let max_attempts = i32::try_from(state.config.max_attempts.max(1)).unwrap_or(i32::MAX);
    let request_id: RequestId = job.request_id.parse().map_err(EngineError::internal)?;
    let outcome = if job.attempts >= max_attempts {
        Err(JobFailure {
            code: ErrorCode::InternalError,
            message: format!("gave up after {} failed attempts", job.attempts),
        })
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
            Err(err) if tried_again(err.code()) => {
                tracing::warn!(attempt = job.attempts, error = %err, "job left for a later attempt");
                release_failed(state, &job).await;
                return Ok(None);
            }
            other => other.map_err(JobFailure::from),
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
async fn commit(state: &JobContext, ends: &[JobOutcome]) -> Result<(), EngineError> {
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
                arbiter_engine::reports::keep_thumbnail(
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
    let entries = arbiter_engine::pipeline::write_many(&txn, &records).await?;
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
        kept_bodies::remove_kept(&state.data_dir, batch_id);
    }
    // Results written are offered to later identical requests once committed.
    for end in ends.iter().filter(|end| holds(&end.job)) {
        if let Ok(done) = &end.outcome {
            done.obtained.committed(state, &end.request_id);
        }
    }
    if queued > 0 {
        state.deliveries_wake.notify_waiters();
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
) -> Result<bool, EngineError> {
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
async fn renew_leases(state: JobContext, tokens: Arc<Mutex<HashSet<String>>>) {
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
            Ok::<_, EngineError>(spent)
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
            Err(err) => tracing::warn!(error = %err, "renewing job leases failed"),
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
pub async fn run_worker(state: JobContext, shutdown: CancellationToken) {
    let poll = Duration::from_millis(state.config.poll_interval_ms.max(10));
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
                    tracing::warn!(error = %err, "committing a group of jobs failed");
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
                Some(Err(err)) => tracing::warn!(error = %err, "working a job failed"),
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
                    tracing::warn!(error = %err, "claiming jobs failed");
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

    #[test]
    fn passing_faults_are_tried_again_and_an_images_own_failure_is_not() {
        assert!(tried_again(ErrorCode::InternalError));
        assert!(tried_again(ErrorCode::ServiceUnavailable));
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::UnsupportedFormat,
            ErrorCode::UrlUnreachable,
            ErrorCode::FileSizeExceeded,
        ] {
            assert!(!tried_again(code), "{code:?}");
        }
    }

    #[test]
    fn a_failure_shows_a_refusal_and_hides_an_internal_cause() {
        let refused = JobFailure::from(EngineError::refused(
            ErrorCode::UrlUnreachable,
            "cannot reach the host",
        ));
        assert_eq!(refused.code, ErrorCode::UrlUnreachable);
        assert_eq!(refused.message, "cannot reach the host");
        let failed = JobFailure::from(EngineError::internal("disk full at /var/lib"));
        assert_eq!(failed.code, ErrorCode::InternalError);
        assert_eq!(failed.message, arbiter_engine::error::INTERNAL_MESSAGE);
    }

    #[test]
    fn a_failed_job_ends_with_its_code_and_message_and_no_result() {
        let now = Utc::now();
        let end = JobOutcome {
            job: repo::new_job(
                "req_1".into(),
                "acme".into(),
                String::new(),
                "{}".into(),
                now,
            ),
            request_id: RequestId::new(),
            outcome: Err(JobFailure {
                code: ErrorCode::UnsupportedFormat,
                message: "not an image".into(),
            }),
        };
        let ended = job_end(&end, now);
        assert_eq!(ended.status, repo::FAILED);
        assert_eq!(ended.error_code.as_deref(), Some("UNSUPPORTED_FORMAT"));
        assert_eq!(ended.error_message.as_deref(), Some("not an image"));
        assert!(ended.result.is_none() && ended.verdict_label.is_none());
        assert_eq!(ended.at, now);
    }
}
