//! Arbiter's local, offline detector and the intake checks every image passes.
#![forbid(unsafe_code)]

pub mod intake;
pub mod local;
pub mod metadata;
pub mod sniff;

pub use intake::{IntakeError, IntakeLimits, intake, intake_file};
pub use local::LocalDetector;
