//! The interface a trained pixel classifier (the `gan` and `diffusion` models) plugs into.
//!
//! No classifier ships with the local detector today: without one the two models are reported
//! as not run, with the reason. A classifier added later implements [`PixelClassifier`] and is
//! given to [`crate::LocalDetector::with_classifier`]; its score and label are then reported as
//! they are. Whether a classifier may decide a verdict is a separate, documented rule that needs
//! a measured error rate: until one exists, classifier results are reported and do not decide.

use crate::decode::Pixels;
use arbiter_core::ModelLabel;

/// What a classifier says about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// 0..1, higher is more likely synthetic.
    pub score: f64,
    /// The classifier's label at its own operating threshold.
    pub label: ModelLabel,
    /// What it saw, in plain language.
    pub detail: String,
}

/// Why a classifier did not produce a result.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClassifierError(pub String);

/// A trained classifier of decoded pixels.
pub trait PixelClassifier: Send + Sync + std::fmt::Debug {
    /// Its name and version, reported in the detail.
    fn name(&self) -> &str;
    /// Classifies one image (luminance at native resolution; alpha when present).
    fn classify(&self, pixels: &Pixels) -> Result<Classification, ClassifierError>;
}
