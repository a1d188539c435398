//! The plugin contracts: detectors analyse images, flows turn analyses into domain facts, and
//! action sinks carry decisions to the systems that act on them.

use crate::intake::Intake;
use crate::{
    ActionRequest, ActionSpec, Analysis, AnalyzeOptions, Decision, ErrorCode, FactSchema, Facts,
    MediaInput, ModelKind,
};
use async_trait::async_trait;
use serde_json::Value;

/// Why a detector could not analyse an image.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The image itself is unacceptable (too small, unsupported, corrupt, ...).
    #[error("{message}")]
    Input {
        /// The API error code.
        code: ErrorCode,
        /// What is wrong, in plain language.
        message: String,
    },
    /// The detector failed (a vendor is down, a model crashed).
    #[error("detector {detector} failed: {message}")]
    Failed {
        /// The detector's name.
        detector: String,
        /// What went wrong.
        message: String,
    },
    /// The detector has more work than it takes: try again after `retry_after` seconds.
    #[error("detector {detector} is busy; retry after {retry_after} s")]
    Busy {
        /// The detector's name.
        detector: String,
        /// Seconds to wait before trying again.
        retry_after: u64,
    },
}

impl DetectError {
    /// An error about the input image.
    pub fn input(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Input {
            code,
            message: message.into(),
        }
    }

    /// The API error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DetectError::Input { code, .. } => *code,
            DetectError::Failed { .. } | DetectError::Busy { .. } => ErrorCode::ServiceUnavailable,
        }
    }
}

impl DetectError {
    /// Seconds the caller should wait before trying again, when the detector said.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            DetectError::Busy { retry_after, .. } => Some(*retry_after),
            DetectError::Input { .. } | DetectError::Failed { .. } => None,
        }
    }
}

/// Analyses one image. Local models, vendors and ensembles all implement this.
#[async_trait]
pub trait Detector: Send + Sync {
    /// The detector's name as recorded in analyses and audit entries (`local`).
    fn name(&self) -> &str;

    /// The models this detector can run.
    fn models(&self) -> &[ModelKind];

    /// Analyses an image that passed intake.
    async fn analyze(
        &self,
        input: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, DetectError>;

    /// Whether the detector can take work now: its health check, which `/readyz` calls and
    /// shows per detector. A detector running in the process that fails it makes the process
    /// unready; a vendor's failure only shows (every replica shares the vendor).
    async fn health(&self) -> Result<(), DetectError>;
}

/// Why a flow rejected its domain input.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FlowError {
    /// The dotted path of the offending field (`claim.amount`), or `input` for the whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// How a flow groups images into a case (an insurance claim, a KYC session) with one decision
/// over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseSpec {
    /// What a case is called in the API (`claim`, `session`).
    pub kind: &'static str,
    /// What a case is called to a reader, as a report's title says (`Insurance claim`).
    pub title: &'static str,
    /// The evidence a case decision waits for before it is final: image roles and case-level
    /// facts (`selfie`, `id_document`, `liveness`). Empty: every case decision is final.
    pub requires: &'static [&'static str],
    /// The webhook event announcing a final case decision, for flows that announce cases
    /// rather than single images.
    pub event: Option<&'static str>,
    /// How the console lists and shows these cases.
    pub console: CaseConsole,
}

/// How the console lists and shows a flow's cases: `/console/<path>` lists them,
/// `/console/<path>/{id}` shows one, `/console/<path>/{id}/report.pdf` is its report card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseConsole {
    /// The path segment under `/console` (`claims`).
    pub path: &'static str,
    /// The list's title (`Claims`).
    pub title: &'static str,
    /// The list's name in the navigation (`Claims`).
    pub nav: &'static str,
    /// One case, in words (`Claim`).
    pub noun: &'static str,
}

/// A domain adapter: insurance claims, UGC moderation, KYC.
pub trait Flow: Send + Sync {
    /// The flow's name, as in policies' `metadata.flow` (`insurance`).
    fn name(&self) -> &'static str;

    /// The JSON Schema of the flow's domain input (the facts besides the analysis).
    fn schema(&self) -> &FactSchema;

    /// The flow's action vocabulary with severities.
    fn actions(&self) -> &[ActionSpec];

    /// The facts a policy sees: the analysis's facts plus the validated domain input, and any
    /// facts the flow derives from both ([`Flow::derive`]).
    fn facts(&self, analysis: &Analysis, input: &Value) -> Result<Facts, FlowError> {
        self.schema().validate(input)?;
        let mut facts = Facts::from_analysis(analysis);
        if let Value::Object(map) = input {
            facts.merge(map);
        }
        self.derive(analysis, &mut facts);
        Ok(facts)
    }

    /// Adds the facts the flow derives from the analysis and the domain input.
    fn derive(&self, _analysis: &Analysis, _facts: &mut Facts) {}

    /// How several images' decisions roll up into one case decision (a claim, a KYC session):
    /// by default the strictest action wins.
    fn roll_up<'a>(&self, decisions: &'a [Decision]) -> Option<&'a Decision> {
        decisions.iter().max_by_key(|d| d.severity)
    }

    /// The webhook event a decision's action emits, if any.
    fn event_for(&self, action: &str) -> Option<&'static str>;

    /// The image's role in its domain input (`selfie`, `damage`), by which `detector.routes` can
    /// route it (`kyc.selfie`); `None` when the flow has no roles.
    fn image_role(&self, _input: &Value) -> Option<String> {
        None
    }

    /// The models to run on an image when the caller names none (empty: every model).
    fn default_models(&self, _input: &Value) -> Vec<ModelKind> {
        Vec::new()
    }

    /// How the flow groups images into cases, if it does.
    fn case(&self) -> Option<&CaseSpec> {
        None
    }

    /// The flow's own intake routes under `/v1/flows/<name>/`, if it has any (a flow without
    /// them decides images sent to `/v1/analyze?flow=<name>`).
    fn intake(&self) -> Option<Intake> {
        None
    }

    /// The policy the flow runs on when the deployment brings none: its file name and YAML.
    fn default_policy(&self) -> DefaultPolicy;
}

/// A flow's shipped policy, built into the binary so that Arbiter runs anywhere on its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultPolicy {
    /// The file name it is known by (`kyc.yaml`).
    pub file: &'static str,
    /// The policy's YAML.
    pub yaml: &'static str,
}

/// Why an action could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("action sink {sink} failed: {message}")]
pub struct SinkError {
    /// The sink's name.
    pub sink: String,
    /// What went wrong.
    pub message: String,
}

/// Where an action goes: a signed webhook, a review queue, a log.
#[async_trait]
pub trait ActionSink: Send + Sync {
    /// The sink's name (`webhook`, `review_queue`, `log`).
    fn name(&self) -> &str;

    /// Carries out one action.
    async fn send(&self, action: &ActionRequest) -> Result<(), SinkError>;
}
