//! Arbiter's server: configuration, the flows and policies in force, the decision pipeline,
//! and the HTTP API of the integration guide on top of them.
#![forbid(unsafe_code)]

pub mod analyze;
pub mod announce;
pub mod auth;
pub mod batch_body;
pub mod cases;
pub mod clock;
pub mod collector;
pub mod config;
pub mod error;
pub mod fetch;
pub mod flows;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod policies;
pub mod policy_changes;
pub mod provider_usage;
pub mod ratelimit;
pub mod replay;
pub mod reports;
pub mod review;
pub mod routes;
pub mod server;
pub mod single_flight;
pub mod sinks;
pub mod state;

pub use config::Config;
pub use error::ApiError;
pub use flows::FlowRegistry;
pub use pipeline::{DecideRequest, Outcome, Pipeline, PipelineError};
pub use policies::{LivePolicies, PolicyLoadError, PolicyStore};
pub use server::{
    Server, StartError, build_state, build_state_with_detector, build_state_with_detectors,
    load_policies,
};
pub use sinks::{LogSink, SinkSet};
pub use state::AppState;
