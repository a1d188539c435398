//! Arbiter's services: the flows and policies in force, and the pipeline that takes an image
//! from intake to a committed, audited decision. The HTTP API is built on these.
#![forbid(unsafe_code)]

pub mod flows;
pub mod pipeline;
pub mod policies;
pub mod sinks;

pub use flows::FlowRegistry;
pub use pipeline::{DecideRequest, Outcome, Pipeline, PipelineError};
pub use policies::{PolicyLoadError, PolicyStore};
pub use sinks::{LogSink, SinkSet};
