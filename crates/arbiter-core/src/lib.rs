//! Arbiter's vocabulary and plugin contracts.
//!
//! Everything another crate needs to talk about an image, a verdict or a decision lives here:
//! typed ids, the guide's verdict and model-result shapes, the facts a policy reads, the decision a
//! policy returns, the API error codes, and the three plugin traits ([`Detector`], [`Flow`],
//! [`ActionSink`]). This crate does no I/O.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod decision;
pub mod error;
pub mod facts;
pub mod id;
pub mod intake;
pub mod net;
pub mod plugin;
pub mod schema;
pub mod settings;
pub mod verdict;

pub use analysis::{
    Analysis, AnalysisResponse, AnalyzeOptions, DetectorRun, ImageFormat, ImageInfo, MediaInput,
    MetadataFacts, MetadataResult, ModelKind, ModelLabel, ModelResult, ModelResults, RunStatus,
    VendorModel,
};
pub use decision::{ActionRequest, ActionSpec, Decision, PolicyRef, ShadowHit};
pub use error::ErrorCode;
pub use facts::Facts;
pub use id::{BatchId, EndpointId, KeyId, MessageId, ProposalId, RequestId, ReviewId};
pub use intake::{
    CaseFactIntake, CaseImageFacts, CaseIntake, CollectedIntake, FlowConfig, FlowPlugin,
    FlowSettings, ImageFacts, Intake, IntakeError, IntakeMode,
};
pub use plugin::{
    ActionSink, CaseConsole, CaseSpec, DefaultPolicy, DetectError, Detector, Flow, FlowError,
    SinkError,
};
pub use schema::FactSchema;
pub use verdict::{RiskLevel, Verdict, VerdictLabel};
