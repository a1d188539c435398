//! Queuing analysis jobs: the images of a batch and requests answered by webhook, and a
//! batch's status read back.
//!
//! Submitting writes the jobs (and the batch) in one transaction; the caller answers 202 and the
//! workers of [`crate::analysis`] take them from there.

use crate::JobContext;
use crate::batch_body::{self, BodyError, check_image};
use crate::kept_bodies;
use arbiter_core::{AnalyzeOptions, BatchId, RequestId};
use arbiter_db::entity::{batch, job};
use arbiter_db::jobs as repo;
use arbiter_db::sea_orm::{DatabaseConnection, DbBackend};
use arbiter_engine::EngineError;
use arbiter_engine::analyze::{AnalyzeCall, ImageSource, decode_base64};
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

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
    /// byte offsets (SQLite only; see [`crate::kept_bodies`]).
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
    pub fn into_columns(self) -> Result<(String, Option<Vec<u8>>), EngineError> {
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
    ) -> Result<job::Model, EngineError> {
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

/// A value as JSON text, for a column.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(EngineError::internal)
}

/// The chunks of a batch's images as they are read from its body; an error ends them.
pub type Chunks<E> = mpsc::Receiver<Result<Vec<NewImage>, E>>;

/// A rough estimate of a batch's seconds: its images divided among the workers at about a
/// second each.
fn estimate(images: usize, workers: u32) -> u64 {
    let workers = u64::from(workers.max(1));
    (images as u64).div_ceil(workers).max(1)
}

/// Why a batch was not queued: its body was refused, or the engine refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The body could not be read or kept ([`BodyError`]).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A refusal of the request's rules, or a failure.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A batch request's body spooled to disk, its header checked against the caller's plan: what
/// [`ReceivedBatch::submit`] queues once the caller may send that many images.
#[derive(Debug)]
pub struct ReceivedBatch {
    /// What the header asks for.
    pub submission: BatchSubmission,
    /// The body's file.
    spooled: tempfile::NamedTempFile,
}

impl ReceivedBatch {
    /// Spools `body` as it arrives (within `jobs.max_batch_body_bytes` and
    /// `jobs.max_spooled_bytes`) and checks its header against the caller's plan (at most
    /// `batch_size` images, `plan` naming it in the refusal) and the request rules. Whether
    /// `webhook_url` may be reached is the caller's to check.
    pub async fn receive<S, B, E>(
        state: &JobContext,
        body: S,
        batch_size: usize,
        plan: &str,
    ) -> Result<Self, BatchError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let jobs = &state.config;
        let spooled = batch_body::spool(
            body,
            jobs.max_batch_body_bytes,
            &state.data_dir,
            jobs.max_spooled_bytes,
        )
        .await?;
        let header = batch_body::header(spooled.as_file()).await?;
        let max_len = state.limits.max_reference_id_len;
        let submission = header.submission(batch_size, plan, max_len)?;
        Ok(Self {
            submission,
            spooled,
        })
    }

    /// Queues the batch for `tenant` ([`submit_batch`]), each image checked as it is read. On
    /// SQLite (one node) the images stay in the body, which is kept while the batch is worked.
    pub async fn submit(
        self,
        state: &JobContext,
        tenant: &str,
        base_url: &str,
    ) -> Result<BatchAccepted, BatchError> {
        let keep = state.pipeline.db().backend() == DbBackend::Sqlite;
        let limits = state.limits;
        let images = batch_body::images(self.spooled.as_file(), move |index, image, range| {
            check_image(index, image, limits, keep.then_some(range)).map_err(BatchError::from)
        })?;
        let kept = keep.then_some(self.spooled);
        submit_batch(state, tenant, self.submission, images, kept, base_url).await
    }
}

/// Queues a batch: the batch row and one job per image in one transaction, the images written
/// chunk by chunk as they arrive. An error in any chunk (the reader's own error type `E`) writes
/// nothing and is answered as it is. A `kept` body is kept as the batch's before the commit
/// (and removed again if the commit fails).
pub async fn submit_batch<E: From<EngineError>>(
    state: &JobContext,
    tenant: &str,
    submission: BatchSubmission,
    mut images: Chunks<E>,
    kept: Option<tempfile::NamedTempFile>,
    base_url: &str,
) -> Result<BatchAccepted, E> {
    let fail = |err: EngineError| E::from(err);
    let db_fail = |err: arbiter_db::sea_orm::DbErr| E::from(EngineError::from(err));
    let batch_id = BatchId::new();
    let now = state.clock.now().trunc_subsecs(3);
    let options = to_json(&submission.options).map_err(fail)?;
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
    let txn = state.pipeline.db().begin_write().await.map_err(db_fail)?;
    repo::insert_batch(&txn, batch_row).await.map_err(db_fail)?;
    let mut position = 0usize;
    while let Some(chunk) = images.recv().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                txn.rollback().await.map_err(db_fail)?;
                return Err(err);
            }
        };
        let mut rows = Vec::with_capacity(chunk.len());
        for image in chunk {
            let mut row = image
                .source
                .job(
                    RequestId::new().to_string(),
                    tenant.to_owned(),
                    options.clone(),
                    now,
                )
                .map_err(fail)?;
            row.batch_id = Some(batch_id.to_string());
            row.position = i32::try_from(position).unwrap_or(i32::MAX);
            row.reference_id = image.reference_id;
            rows.push(row);
            position += 1;
        }
        repo::insert_jobs(&txn, rows).await.map_err(db_fail)?;
    }
    if position != count {
        txn.rollback().await.map_err(db_fail)?;
        return Err(fail(EngineError::internal(format!(
            "the batch body changed between readings: {count} images, then {position}"
        ))));
    }
    if let Some(body) = kept {
        kept_bodies::keep(body, &state.data_dir, batch_id.as_str()).map_err(fail)?;
    }
    if let Err(err) = txn.commit().await {
        kept_bodies::remove_kept(&state.data_dir, batch_id.as_str());
        return Err(db_fail(err));
    }
    state.jobs_wake.notify_waiters();
    tracing::info!(batch_id = %batch_id, tenant, images = count, "batch queued");
    Ok(BatchAccepted {
        status_url: format!("{base_url}/v1/batches/{batch_id}"),
        batch_id,
        batch_reference_id: submission.batch_reference_id,
        image_count: count,
        estimated_completion_seconds: estimate(count, state.config.workers),
    })
}

/// Queues one analysis, whose result goes to `webhook_url` when there is one (and to the
/// tenant's endpoints).
pub async fn submit_single(
    state: &JobContext,
    tenant: &str,
    request_id: &RequestId,
    call: AnalyzeCall,
    webhook_url: Option<String>,
    base_url: &str,
) -> Result<AsyncAccepted, EngineError> {
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

/// The bytes of a batch's status as they are read, for a response body.
pub type StatusBytes = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Vec<u8>>> + Send>>;

/// A tenant's batch with the results so far, as the bytes of a JSON [`BatchStatus`] that is read
/// from the database and sent a page of results at a time, so answering does not hold a large
/// batch's results in memory. Images that finish while it is sent may be among the results but
/// not yet in the counts.
pub async fn batch_status(
    conn: &DatabaseConnection,
    tenant: &str,
    batch_id: &str,
) -> Result<StatusBytes, EngineError> {
    let conn = conn.clone();
    let batch = repo::get_batch(&conn, tenant, batch_id)
        .await?
        .ok_or_else(|| EngineError::not_found(format!("no batch {batch_id} for this tenant")))?;
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

/// The bytes of a batch's status: `status` with the batch's finished images as its `results`,
/// read `page` at a time.
fn status_body(
    conn: DatabaseConnection,
    status: &BatchStatus,
    page: u64,
) -> Result<StatusBytes, EngineError> {
    // The status with an empty `results` ends in `[]}`: the results go between the brackets.
    let mut head = serde_json::to_vec(status).map_err(EngineError::internal)?;
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
    Ok(Box::pin(body))
}

/// A finished job's entry in its batch's results: the result stored when it completed (JSON
/// written by `analysis::job_end`, sent as it is), or its error.
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

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_db::{Db, DbTarget};
    use futures_util::TryStreamExt;

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
            let bytes: Vec<u8> = body.try_concat().await.unwrap();
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

    #[test]
    fn a_batch_is_estimated_at_a_second_an_image_shared_among_the_workers() {
        assert_eq!(estimate(10, 2), 5);
        assert_eq!(estimate(11, 2), 6);
        assert_eq!(estimate(0, 4), 1);
        // No workers here: another replica works it, estimated as one.
        assert_eq!(estimate(3, 0), 3);
    }

    #[test]
    fn a_failed_image_is_listed_with_its_error_and_a_finished_one_as_stored() {
        let now = Utc::now();
        let mut row = repo::new_job(
            "req_1".into(),
            "acme".into(),
            String::new(),
            "{}".into(),
            now,
        );
        row.status = repo::FAILED.into();
        row.reference_id = Some("r1".into());
        row.error_code = Some("URL_UNREACHABLE".into());
        row.error_message = Some("no answer".into());
        let mut out = Vec::new();
        write_result(&row, &mut out);
        let written: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            written,
            json!({"request_id": "req_1", "reference_id": "r1", "status": "failed",
                   "error": {"code": "URL_UNREACHABLE", "message": "no answer"}})
        );
        row.result = Some(r#"{"stored":true}"#.into());
        let mut out = Vec::new();
        write_result(&row, &mut out);
        assert_eq!(out, br#"{"stored":true}"#);
    }

    #[test]
    fn a_base64_image_is_stored_as_bytes_unless_it_does_not_decode() {
        let (source, image) = JobSource::Base64("aGk=".into()).into_columns().unwrap();
        assert_eq!(source, r#""stored""#);
        assert_eq!(image.as_deref(), Some(&b"hi"[..]));
        let (source, image) = JobSource::Base64("not base64!".into())
            .into_columns()
            .unwrap();
        assert_eq!(source, r#"{"base64":"not base64!"}"#);
        assert!(image.is_none());
        let (source, image) = JobSource::Kept { start: 3, end: 9 }.into_columns().unwrap();
        assert_eq!(source, r#"{"kept":{"start":3,"end":9}}"#);
        assert!(image.is_none());
    }
}
