//! Arbiter's decision engine, with no HTTP in it: the way one image travels (intake, detector,
//! the shared result cache and single flight, flow facts, policy, record), review, report cards,
//! policies and their four-eyes changes, API keys, the flows in force, where actions go and what
//! is announced. Functions take the handles they use (the database, the time, the flow
//! registry) and return [`EngineError`] or their own error type;
//! the server maps each to its error body once.
#![forbid(unsafe_code)]

pub mod analyze;
pub mod announce;
pub mod cases;
pub mod clock;
pub mod detector_result;
pub mod error;
pub mod flows;
pub mod intake;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod policies;
pub mod policy_changes;
pub mod policy_watch;
pub mod provider_usage;
pub mod reality_defender;
pub mod record;
pub mod replay;
pub mod reports;
pub mod review;
pub mod single_flight;
pub mod sinks;

pub use error::EngineError;
pub use flows::FlowRegistry;
pub use pipeline::{DecideRequest, Outcome, Pipeline, PipelineError};
pub use policies::{LivePolicies, PolicyLoadError, PolicyStore};
pub use sinks::{LogSink, SinkSet};

/// The handles the engine's operations on cases use, borrowed from the server's state: the
/// pipeline (storage, flows, policies), which flows are switched on, the time, and the bell rung
/// when webhook deliveries are queued.
#[derive(Clone, Copy)]
pub struct Engine<'a> {
    /// Intake, detector, flows, policies, storage.
    pub pipeline: &'a Pipeline,
    /// Which flows are switched on.
    pub flows: &'a flows::FlowsConfig,
    /// The time.
    pub clock: &'a dyn clock::Clock,
    /// Rung when webhook deliveries are queued.
    pub deliveries_wake: &'a tokio::sync::Notify,
}
