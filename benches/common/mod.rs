//! What the bench binaries share: the repository's root and the figures they print.

use std::path::PathBuf;
use std::time::Duration;

/// The repository's root, where the shipped policies and fixtures are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `q` quantile (0 to 1) of `samples`, sorting them.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[at]
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
