//! The upload collector of the flows whose intake collects images into batches (the guide's
//! pattern 2; UGC moderation): each upload is written as a collected job of its flow and answered
//! 202 at once; once the flow's `batch_size` uploads of a tenant have arrived, or the oldest has
//! waited its `max_wait_secs`, they are queued together as one batch. Workers analyse them like any batch, and each decision goes out as `content.decision`.
//! Collected uploads are rows in the database: a restart loses none. The sealing of due uploads
//! is the job type [`JOB_TYPE`].

use crate::JobContext;
use crate::queue::{JobSource, to_json};
use arbiter_core::{AnalyzeOptions, BatchId, CollectedIntake, RequestId};
use arbiter_db::entity::batch;
use arbiter_db::jobs as repo;
use arbiter_db::sea_orm::DatabaseTransaction;
use arbiter_engine::analyze::{ImageSource, check_reference_id};
use arbiter_engine::flows::{FlowRegistry, FlowsConfig};
use arbiter_engine::intake::FlowBody;
use arbiter_engine::{EngineError, Pipeline};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The name of the job type that seals due uploads into batches.
pub const JOB_TYPE: &str = "collector.seal";

/// A switched-on flow whose uploads are collected, and how (`flows.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedFlow {
    /// The flow's name (`ugc`).
    pub flow: &'static str,
    /// Uploads of a tenant sealed together as one batch.
    pub batch_size: u64,
    /// Seconds the oldest collected upload waits before its tenant's uploads are sealed anyway.
    pub max_wait_secs: u64,
}

impl CollectedFlow {
    /// The flows of `registry` switched on in `flows` whose uploads are collected, and how.
    pub fn switched_on(registry: &FlowRegistry, flows: &FlowsConfig) -> Vec<Self> {
        registry
            .names()
            .filter(|name| flows.enabled(name))
            .filter_map(|flow| {
                let intake = registry.collected(flow)?;
                Some(Self {
                    flow,
                    batch_size: intake.batch_size,
                    max_wait_secs: intake.max_wait_secs,
                })
            })
            .collect()
    }
}

/// One upload.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The image.
    pub source: ImageSource,
    /// Detector options.
    pub options: AnalyzeOptions,
    /// The caller's reference (by default `upload.id`).
    pub reference_id: Option<String>,
    /// `upload` and `uploader` facts.
    pub facts: Value,
}

impl Upload {
    /// An upload to the collecting flow `flow` from its body: the flow's facts read from the
    /// body's fields (`intake`) and checked by the flow, the detector options (the caller's, else
    /// the flow's choice), and the reference (the caller's, else the flow's from the facts),
    /// at most `max_reference_id_len` characters.
    pub fn from_body(
        pipeline: &Pipeline,
        flow: &str,
        intake: &CollectedIntake,
        mut body: FlowBody,
        max_reference_id_len: usize,
    ) -> Result<Self, EngineError> {
        let facts = intake
            .read(std::mem::take(&mut body.fields))
            .map_err(|err| EngineError::invalid(err.0))?;
        pipeline.check_input(flow, &facts)?;
        let options = body.options(pipeline.flows(), flow, &facts)?;
        let reference_id = body
            .reference_id
            .take()
            .or_else(|| intake.reference(&facts));
        if let Some(reference_id) = &reference_id {
            check_reference_id(reference_id, max_reference_id_len)?;
        }
        Ok(Self {
            source: body.source,
            options,
            reference_id,
            facts,
        })
    }
}

/// The answer to a collected upload (202), as to `POST /v1/flows/ugc/uploads`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UploadAccepted {
    /// The request the upload becomes.
    #[schema(value_type = String)]
    pub request_id: RequestId,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// `COLLECTED`, or `QUEUED` when this upload completed a batch.
    pub status: String,
    /// The batch, when this upload completed one.
    pub batch_id: Option<String>,
    /// Where the result will be once analysed (404 until then); it is also announced as
    /// `content.decision`.
    pub status_url: String,
}

/// Collects one upload of `flow` from its body ([`Upload::from_body`]); queues the tenant's
/// collected uploads of the flow as a batch when this one makes its `batch_size`.
pub async fn collect(
    state: &JobContext,
    flow: &str,
    tenant: &str,
    request_id: &RequestId,
    body: FlowBody,
    base_url: &str,
) -> Result<UploadAccepted, EngineError> {
    let intake = state
        .pipeline
        .flows()
        .collected(flow)
        .ok_or_else(|| EngineError::Internal(format!("the flow {flow} collects no uploads")))?;
    let max_len = state.limits.max_reference_id_len;
    let upload = Upload::from_body(&state.pipeline, flow, &intake, body, max_len)?;
    let settings = state
        .collected
        .iter()
        .find(|collected| collected.flow == flow)
        .ok_or_else(|| EngineError::Internal(format!("the flow {flow} collects no uploads")))?;
    let now = state.clock.now().trunc_subsecs(3);
    let (source, image) = JobSource::from(upload.source).into_columns()?;
    let mut row = repo::new_job(
        request_id.to_string(),
        tenant.to_owned(),
        source,
        to_json(&upload.options)?,
        now,
    );
    row.image = image;
    row.status = repo::COLLECTING.to_owned();
    row.reference_id = upload.reference_id.clone();
    row.flow = Some(flow.to_owned());
    row.facts = Some(to_json(&upload.facts)?);
    let batch_size = settings.batch_size;
    let txn = state.pipeline.db().begin_write().await?;
    repo::insert_jobs(&txn, vec![row]).await?;
    // One replica at a time counts and seals a tenant's uploads: each batch is sealed once, with
    // `batch_size` uploads, however the uploads are spread over replicas.
    hold_seal(&txn, flow, tenant).await?;
    let collected = repo::collecting(&txn, tenant, flow).await?;
    let batch_id = if collected >= batch_size {
        seal(&txn, flow, tenant, batch_size, now).await?
    } else {
        None
    };
    txn.commit().await?;
    if batch_id.is_some() {
        state.jobs_wake.notify_waiters();
    }
    Ok(UploadAccepted {
        request_id: request_id.clone(),
        reference_id: upload.reference_id,
        status: if batch_id.is_some() {
            "QUEUED"
        } else {
            "COLLECTED"
        }
        .to_owned(),
        batch_id: batch_id.map(|id| id.to_string()),
        status_url: format!("{base_url}/v1/requests/{request_id}"),
    })
}

/// Takes the singleton of sealing `tenant`'s uploads of `flow` for the rest of `txn`.
async fn hold_seal(txn: &DatabaseTransaction, flow: &str, tenant: &str) -> Result<(), EngineError> {
    let name = arbiter_db::singleton::names::collector_seal(flow, tenant);
    Ok(arbiter_db::singleton::hold(txn, &name).await?)
}

/// Queues up to `batch_size` of a tenant's collected uploads of `flow`, oldest first, as one
/// batch.
async fn seal(
    txn: &DatabaseTransaction,
    flow: &str,
    tenant: &str,
    batch_size: u64,
    now: DateTime<Utc>,
) -> Result<Option<BatchId>, EngineError> {
    let batch_id = BatchId::new();
    let sealed = repo::seal(txn, tenant, flow, batch_id.as_str(), batch_size).await?;
    if sealed == 0 {
        return Ok(None);
    }
    repo::insert_batch(
        txn,
        batch::Model {
            batch_id: batch_id.to_string(),
            tenant: tenant.to_owned(),
            batch_reference_id: None,
            total: i32::try_from(sealed).unwrap_or(i32::MAX),
            completed: 0,
            failed: 0,
            status: repo::BATCH_PROCESSING.to_owned(),
            webhook_url: None,
            created_at: now,
            completed_at: None,
        },
    )
    .await?;
    tracing::info!(batch_id = %batch_id, flow, tenant, uploads = sealed, "collected uploads queued");
    Ok(Some(batch_id))
}

/// Queues, for each collected flow, every tenant's uploads whose oldest has waited the flow's
/// `max_wait_secs`.
pub async fn flush_due(state: &JobContext) -> Result<usize, EngineError> {
    let now = state.clock.now().trunc_subsecs(3);
    let mut batches = 0;
    for collected in &state.collected {
        let flow = collected.flow;
        let wait = chrono::Duration::seconds(
            i64::try_from(collected.max_wait_secs).unwrap_or(i64::MAX / 2_000),
        );
        let tenants = repo::collecting_due(state.pipeline.db().conn(), flow, now - wait).await?;
        for tenant in tenants {
            let txn = state.pipeline.db().begin_write().await?;
            hold_seal(&txn, flow, &tenant).await?;
            while seal(&txn, flow, &tenant, collected.batch_size, now)
                .await?
                .is_some()
            {
                batches += 1;
            }
            txn.commit().await?;
        }
    }
    if batches > 0 {
        state.jobs_wake.notify_waiters();
    }
    Ok(batches)
}

/// How often due uploads are looked for: a few times per `max_wait_secs`, between 100 ms and a
/// second.
fn check_every(max_wait_secs: u64) -> Duration {
    Duration::from_millis((max_wait_secs.saturating_mul(1000) / 4).clamp(100, 1000))
}

/// Seals due uploads until `shutdown`, checking a few times per the shortest `max_wait_secs`.
pub async fn run(state: JobContext, shutdown: CancellationToken) {
    let shortest = state.collected.iter().map(|c| c.max_wait_secs).min();
    let every = check_every(shortest.unwrap_or(u64::MAX));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(err) = flush_due(&state).await {
            tracing::warn!(error = %err, "flushing collected uploads failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_uploads_are_looked_for_a_few_times_per_wait() {
        assert_eq!(check_every(2), Duration::from_millis(500));
        assert_eq!(check_every(0), Duration::from_millis(100));
        assert_eq!(check_every(60), Duration::from_secs(1));
        assert_eq!(check_every(u64::MAX), Duration::from_secs(1));
    }
}
