//! Arbiter's server: the flows and policies in force, the decision pipeline,
//! and the HTTP API of the integration guide on top of them.
#![forbid(unsafe_code)]

pub use arbiter_engine::{
    analyze, announce, cases, clock, flows, keys, pipeline, policies, policy_changes,
    provider_usage, replay, reports, review, single_flight, sinks,
};
pub mod auth;
pub mod error;
pub mod fetch;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod jobs;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod state;

pub use arbiter_config::Config;
pub use arbiter_engine::{
    DecideRequest, EngineError, FlowRegistry, LivePolicies, Outcome, Pipeline, PipelineError,
    PolicyLoadError, PolicyStore,
};
pub use arbiter_engine::{LogSink, SinkSet};
pub use error::ApiError;
pub use server::{
    Server, StartError, build_state, build_state_with_detector, build_state_with_detectors,
    load_policies,
};
pub use state::AppState;
