//! Helpers shared by the integration tests and the benchmarks.

pub mod hostile;
pub mod images;
