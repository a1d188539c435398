//! Arbiter's decision engine, with no HTTP in it: the way one image travels (intake, detector,
//! flow facts, policy, record), review, policies and their four-eyes changes, API keys, the flows
//! in force, where actions go and what is announced. Functions take the handles they use (the
//! database, the time, the flow registry) and return [`EngineError`] or their own error type;
//! the server maps each to its error body once.
#![forbid(unsafe_code)]

pub mod announce;
pub mod clock;
pub mod error;
pub mod flows;
pub mod keys;
pub mod pipeline;
pub mod policies;
pub mod policy_changes;
pub mod provider_usage;
pub mod review;
pub mod sinks;

pub use error::EngineError;
pub use flows::FlowRegistry;
pub use pipeline::{DecideRequest, Outcome, Pipeline, PipelineError};
pub use policies::{LivePolicies, PolicyLoadError, PolicyStore};
pub use sinks::{LogSink, SinkSet};
