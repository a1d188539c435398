//! The local, offline detector.
//!
//! This version reads what a file declares about itself (the metadata model). It sets a definite
//! verdict only on declared evidence; the pixel models are reported as not run, with the reason,
//! and the verdict is an honest INCONCLUSIVE when nothing is declared.

use crate::metadata::{Declaration, read_metadata};
use arbiter_core::{
    Analysis, AnalyzeOptions, DetectError, Detector, MediaInput, MetadataResult, ModelKind,
    ModelLabel, ModelResult, ModelResults, Verdict, VerdictLabel,
};
use async_trait::async_trait;
use std::time::Instant;

/// Confidence of a verdict set by a generator's own declaration of AI creation (documented in
/// the crate's README): declarations are rarely forged to claim AI, but can be copied.
pub const DECLARED_AI_CONFIDENCE: f64 = 0.95;
/// Confidence of a verdict set by a declared AI edit of a real image.
pub const DECLARED_AI_EDIT_CONFIDENCE: f64 = 0.90;

const NO_CLASSIFIER: &str = "not run: no trained classifier is installed in the local detector";
const NOT_IN_THIS_VERSION: &str = "not run: this pixel model is not part of the local detector yet";

/// The local detector (`type: local`).
#[derive(Debug, Clone, Default)]
pub struct LocalDetector;

impl LocalDetector {
    /// The detector's name in analyses and audit entries.
    pub const NAME: &'static str = "local";

    /// Analyses one image without I/O; [`Detector::analyze`] wraps this.
    pub fn analyze_sync(&self, input: &MediaInput, options: &AnalyzeOptions) -> Analysis {
        let started = Instant::now();
        let report = read_metadata(input.info.format, &input.bytes);
        let mut results = ModelResults::default();
        for model in ModelKind::ALL.into_iter().filter(|m| options.wants(*m)) {
            let reason = match model {
                ModelKind::Gan | ModelKind::Diffusion => NO_CLASSIFIER,
                ModelKind::Metadata => continue,
                _ => NOT_IN_THIS_VERSION,
            };
            results.set(model, ModelResult::not_run(reason));
        }

        let verdict = match (options.wants(ModelKind::Metadata), report.declaration) {
            (true, Some(Declaration::AiGenerated)) => {
                Verdict::new(VerdictLabel::AiGenerated, DECLARED_AI_CONFIDENCE)
            }
            (true, Some(Declaration::AiEdited)) => {
                Verdict::new(VerdictLabel::Manipulated, DECLARED_AI_EDIT_CONFIDENCE)
            }
            _ => Verdict::inconclusive(),
        };
        if options.wants(ModelKind::Metadata) {
            let (score, label) = match report.declaration {
                Some(Declaration::AiGenerated) => (DECLARED_AI_CONFIDENCE, ModelLabel::Synthetic),
                Some(Declaration::AiEdited) => {
                    (DECLARED_AI_EDIT_CONFIDENCE, ModelLabel::Manipulated)
                }
                None => (0.0, ModelLabel::Inconclusive),
            };
            let detail = if report.evidence.is_empty() {
                "No EXIF, generator or provenance metadata declares how the image was made."
                    .to_owned()
            } else {
                let mut detail = report.evidence.join("; ");
                detail.push('.');
                detail
            };
            let facts = &report.facts;
            let device_fingerprint = match (&facts.camera_make, &facts.camera_model) {
                (Some(make), Some(model)) if model.starts_with(make.as_str()) => {
                    Some(model.clone())
                }
                (Some(make), Some(model)) => Some(format!("{make} {model}")),
                (make, model) => make.clone().or_else(|| model.clone()),
            };
            results.metadata_analysis = Some(MetadataResult {
                result: ModelResult {
                    score: Some(score),
                    label,
                    detail: Some(detail),
                },
                exif_present: facts.exif_present,
                gps_present: facts.gps_present,
                device_fingerprint,
            });
        }
        Analysis {
            verdict,
            model_results: results,
            image_info: input.info.clone(),
            metadata: report.facts,
            detector: Self::NAME.to_owned(),
            processing_time_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

#[async_trait]
impl Detector for LocalDetector {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn models(&self) -> &[ModelKind] {
        &ModelKind::ALL
    }

    async fn analyze(
        &self,
        input: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, DetectError> {
        let (detector, input, options) = (self.clone(), input.clone(), options.clone());
        tokio::task::spawn_blocking(move || detector.analyze_sync(&input, &options))
            .await
            .map_err(|err| DetectError::Failed {
                detector: Self::NAME.to_owned(),
                message: err.to_string(),
            })
    }

    async fn health(&self) -> Result<(), DetectError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{IntakeLimits, intake, tests::png};
    use arbiter_core::RiskLevel;

    #[test]
    fn no_evidence_is_inconclusive_and_low() {
        let input = intake(png(640, 480), &IntakeLimits::default()).unwrap();
        let analysis = LocalDetector.analyze_sync(&input, &AnalyzeOptions::default());
        assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive);
        assert_eq!(analysis.verdict.risk_level, RiskLevel::Low);
        assert_eq!(analysis.image_info, input.info);
        let gan = analysis.model_results.gan_detection.unwrap();
        assert_eq!(gan.label, ModelLabel::NotRun);
        assert_eq!(gan.score, None);
        let metadata = analysis.model_results.metadata_analysis.unwrap();
        assert_eq!(metadata.result.label, ModelLabel::Inconclusive);
        assert!(!metadata.exif_present);
    }

    #[test]
    fn only_the_requested_models_are_reported() {
        let input = intake(png(640, 480), &IntakeLimits::default()).unwrap();
        let options = AnalyzeOptions {
            models: vec![ModelKind::Gan],
            ..AnalyzeOptions::default()
        };
        let analysis = LocalDetector.analyze_sync(&input, &options);
        let present: Vec<_> = analysis.model_results.iter().map(|(m, _)| m).collect();
        assert_eq!(present, vec![ModelKind::Gan]);
    }
}
