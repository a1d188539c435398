//! Arbiter's local, offline detector and the intake checks every image passes.
//!
//! The detector reads what a file declares about itself (C2PA provenance, generator metadata)
//! and measures three pixel statistics (frequency, noise, splicing). Only declared evidence sets
//! a definite verdict; see `README.md` in this crate for the rules and their reliabilities.
#![forbid(unsafe_code)]

pub mod classifier;
pub mod config;
pub mod container;
pub mod decode;
pub mod frequency;
pub mod intake;
pub mod local;
pub mod metadata;
pub mod noise;
pub mod pool;
pub mod provenance;
pub mod sniff;
pub mod splicing;
pub mod stealth;

pub use config::LocalDetectorConfig;
pub use intake::{IntakeError, IntakeLimits, intake, intake_file};
pub use local::LocalDetector;
