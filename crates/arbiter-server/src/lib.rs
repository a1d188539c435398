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
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod state;

pub use arbiter_engine::{
    DecideRequest, FlowRegistry, LivePolicies, LogSink, Outcome, Pipeline, PolicyStore, SinkSet,
};
pub use server::{Server, build_state, build_state_with_detector};
pub use state::AppState;
