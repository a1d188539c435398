//! The way one image travels: intake → detector → flow facts → policy → one transaction
//! (decision row + audit entry) → actions.

use crate::flows::FlowRegistry;
use crate::policies::PolicyStore;
use crate::sinks::SinkSet;
use arbiter_audit::{AuditError, Event, StoredEntry};
use arbiter_core::{
    ActionRequest, Analysis, AnalyzeOptions, Decision, DetectError, Detector, ErrorCode, Facts,
    FlowError, MediaInput, RequestId,
};
use arbiter_db::{Db, decisions};
use arbiter_detect::{IntakeError, IntakeLimits};
use chrono::Utc;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// Why an image did not get a decision.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The image was refused at intake.
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// The detector refused or failed.
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// The domain input is invalid.
    #[error("invalid {flow} input: {source}")]
    Flow {
        /// The flow.
        flow: String,
        /// The field and problem.
        source: FlowError,
    },
    /// No such flow in this build.
    #[error("unknown flow `{0}`")]
    UnknownFlow(String),
    /// The flow has no live policy.
    #[error("no live policy for flow `{0}`")]
    NoPolicy(String),
    /// Storing the decision failed.
    #[error("cannot store the decision: {0}")]
    Store(#[from] arbiter_db::sea_orm::DbErr),
    /// Appending the audit entry failed.
    #[error("cannot append the audit entry: {0}")]
    Audit(#[from] AuditError),
}

impl PipelineError {
    /// The API error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            PipelineError::Intake(err) => err.code(),
            PipelineError::Detect(err) => err.code(),
            PipelineError::Flow { .. } | PipelineError::UnknownFlow(_) => ErrorCode::InvalidRequest,
            PipelineError::NoPolicy(_) | PipelineError::Store(_) | PipelineError::Audit(_) => {
                ErrorCode::InternalError
            }
        }
    }
}

/// One image to decide about.
#[derive(Debug, Clone)]
pub struct DecideRequest<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The flow (`insurance`, `ugc`, `kyc`).
    pub flow: &'a str,
    /// The flow's domain input (`{"claim": {...}}`).
    pub input: &'a Value,
    /// The caller's reference for the image.
    pub reference_id: Option<&'a str>,
    /// Detector options.
    pub options: &'a AnalyzeOptions,
}

/// What the pipeline decided about one image, after it was committed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The request's id.
    pub request_id: RequestId,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// The analysis.
    pub analysis: Analysis,
    /// The facts the policy saw.
    pub facts: Facts,
    /// The decision.
    pub decision: Decision,
    /// The audit entry recording it.
    pub audit: StoredEntry,
}

/// The services one image passes through. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    db: Db,
    detector: Arc<dyn Detector>,
    flows: FlowRegistry,
    policies: Arc<PolicyStore>,
    sinks: SinkSet,
    limits: IntakeLimits,
}

impl Pipeline {
    /// A pipeline over these services.
    pub fn new(
        db: Db,
        detector: Arc<dyn Detector>,
        flows: FlowRegistry,
        policies: PolicyStore,
        sinks: SinkSet,
        limits: IntakeLimits,
    ) -> Self {
        Self {
            db,
            detector,
            flows,
            policies: Arc::new(policies),
            sinks,
            limits,
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The flows.
    pub fn flows(&self) -> &FlowRegistry {
        &self.flows
    }

    /// Reads a file through intake and decides about it.
    pub async fn decide_file(
        &self,
        path: &Path,
        request: &DecideRequest<'_>,
    ) -> Result<Outcome, PipelineError> {
        let media = arbiter_detect::intake_file(path, &self.limits).await?;
        self.decide(media, request).await
    }

    /// Decides about an image that passed intake, commits the decision and its audit entry in one
    /// transaction, then hands the action to the sinks.
    #[tracing::instrument(skip_all, fields(request_id, flow = request.flow, tenant = request.tenant))]
    pub async fn decide(
        &self,
        media: MediaInput,
        request: &DecideRequest<'_>,
    ) -> Result<Outcome, PipelineError> {
        let request_id = RequestId::new();
        tracing::Span::current().record("request_id", request_id.as_str());
        let flow = self
            .flows
            .get(request.flow)
            .ok_or_else(|| PipelineError::UnknownFlow(request.flow.to_owned()))?;
        let policy = self
            .policies
            .for_flow(request.flow)
            .ok_or_else(|| PipelineError::NoPolicy(request.flow.to_owned()))?;
        // Check the domain input before spending detector time on it.
        flow.schema()
            .validate(request.input)
            .map_err(|source| PipelineError::Flow {
                flow: request.flow.to_owned(),
                source,
            })?;

        let analysis = self.detector.analyze(&media, request.options).await?;
        let facts = flow
            .facts(&analysis, request.input)
            .map_err(|source| PipelineError::Flow {
                flow: request.flow.to_owned(),
                source,
            })?;
        let decision = policy.decide(&facts);

        let now = Utc::now();
        let txn = self.db.begin_write().await?;
        decisions::insert(
            &txn,
            &decisions::NewDecision {
                tenant: request.tenant,
                request_id: &request_id,
                reference_id: request.reference_id,
                flow: request.flow,
                analysis: &analysis,
                facts: &facts,
                decision: &decision,
                created_at: now,
            },
        )
        .await?;
        let event = Event::decision(
            &request_id,
            request.reference_id,
            request.flow,
            &analysis,
            &decision,
        );
        let audit = arbiter_audit::append(&txn, request.tenant, now, event).await?;
        txn.commit().await?;
        tracing::info!(action = %decision.action, verdict = %analysis.verdict.label, seq = audit.entry.seq, "decision recorded");

        let action = ActionRequest {
            tenant: request.tenant.to_owned(),
            request_id: request_id.clone(),
            reference_id: request.reference_id.map(str::to_owned),
            flow: request.flow.to_owned(),
            action: decision.action.clone(),
            reason: decision.reason.clone(),
            payload: json!({
                "event": flow.event_for(&decision.action),
                "request_id": request_id,
                "reference_id": request.reference_id,
                "image_sha256": analysis.image_info.sha256,
                "verdict": analysis.verdict,
                "decision": { "action": decision.action, "reason": decision.reason, "fired": decision.fired, "policy": decision.policy },
            }),
        };
        self.sinks.send(&action).await;
        Ok(Outcome {
            request_id,
            reference_id: request.reference_id.map(str::to_owned),
            analysis,
            facts,
            decision,
            audit,
        })
    }
}
