//! The local, offline detector: provenance, generator metadata and three pixel statistics,
//! combined by fixed, documented rules.
//!
//! Only declared evidence sets a definite verdict. The rules, first match wins; the verdict's
//! confidence is the fixed reliability of the rule that decided (see the crate's README):
//!
//! | rule | evidence | verdict | confidence |
//! |---|---|---|---|
//! | `c2pa_ai_created` | valid C2PA manifest declares `trainedAlgorithmicMedia` creation (itself or a parent ingredient) | AI_GENERATED | [`C2PA_AI_CREATED`] |
//! | `c2pa_ai_edited` | valid C2PA manifest declares an AI edit | MANIPULATED | [`C2PA_AI_EDITED`] |
//! | `metadata_ai_generated` | generator metadata (PNG chunks, EXIF, XMP, credits, stealth alpha data) | AI_GENERATED | [`DECLARED_AI_CONFIDENCE`] |
//! | `metadata_ai_edited` | XMP declares an AI composite | MANIPULATED | [`DECLARED_AI_EDIT_CONFIDENCE`] |
//! | `c2pa_pixels_changed` | C2PA signature intact, hard binding does not match the pixels | MANIPULATED | [`C2PA_PIXELS_CHANGED`] |
//! | `c2pa_trusted_capture` | trusted signer, camera capture, no generative step | AUTHENTIC | [`C2PA_TRUSTED_CAPTURE`] |
//! | none | | INCONCLUSIVE | 0 |
//!
//! An INCONCLUSIVE verdict is LOW risk unless a broken C2PA manifest (whose claims are ignored)
//! declared generative AI, in which case it is MEDIUM: evidence pointing towards synthesis that
//! cannot be trusted enough to name. Uncalibrated pixel statistics never raise the risk (striped
//! or tiled content makes periodic spectra too).

use crate::classifier::PixelClassifier;
use crate::config::LocalDetectorConfig;
use crate::decode::{DecodeError, Pixels, decode};
use crate::metadata::{Declaration, MetadataReport, read_metadata};
use crate::pool::PoolError;
use crate::provenance::{ProvenanceError, ProvenanceFinding, ProvenanceReader, ProvenanceReport};
use crate::{frequency, noise, splicing, stealth};
use arbiter_core::{
    Analysis, AnalyzeOptions, DetectError, Detector, ImageFormat, MediaInput, MetadataResult,
    ModelKind, ModelLabel, ModelResult, ModelResults, RiskLevel, Verdict, VerdictLabel,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;

/// Reliability of a valid C2PA manifest declaring AI creation: signed by the tool that made it.
pub const C2PA_AI_CREATED: f64 = 0.97;
/// Reliability of a valid C2PA manifest declaring an AI edit.
pub const C2PA_AI_EDITED: f64 = 0.92;
/// Reliability of generator metadata declaring AI creation: rarely forged to claim AI, but it
/// can be copied onto another file.
pub const DECLARED_AI_CONFIDENCE: f64 = 0.95;
/// Reliability of unsigned metadata declaring an AI edit.
pub const DECLARED_AI_EDIT_CONFIDENCE: f64 = 0.90;
/// Reliability of "pixels changed after signing": certain that something changed, not what (a
/// benign re-save breaks the binding too), hence MEDIUM.
pub const C2PA_PIXELS_CHANGED: f64 = 0.75;
/// Reliability of a trusted capture manifest: as good as the trust list and the camera's key.
pub const C2PA_TRUSTED_CAPTURE: f64 = 0.90;

/// The longest detail of the metadata model, in bytes; a longer one is cut.
pub const MAX_DETAIL: usize = 8 << 10;

const NO_CLASSIFIER: &str = "not run: no trained classifier is installed in the local detector (pixel statistics without a validated model have no known error rate)";

/// Why the local detector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The C2PA trust configuration was refused.
    #[error(transparent)]
    Provenance(#[from] ProvenanceError),
}

/// The local detector (`local` in a route; its settings are `detector.local`).
#[derive(Debug, Clone)]
pub struct LocalDetector {
    config: Option<Arc<Built>>,
}

#[derive(Debug)]
struct Built {
    config: LocalDetectorConfig,
    provenance: ProvenanceReader,
    gan: Option<Arc<dyn PixelClassifier>>,
    diffusion: Option<Arc<dyn PixelClassifier>>,
}

/// The local detector with its default configuration (no trust anchors, default limits):
/// `Arc::new(LocalDetector::default())`.
impl Default for LocalDetector {
    fn default() -> Self {
        LocalDetector { config: None }
    }
}

static DEFAULT_BUILT: std::sync::OnceLock<Arc<Built>> = std::sync::OnceLock::new();

impl LocalDetector {
    /// The detector's name in analyses and audit entries.
    pub const NAME: &'static str = "local";

    /// Builds the detector from its configuration, reading the trust anchors file if one is
    /// configured.
    pub fn build(config: LocalDetectorConfig) -> Result<Self, BuildError> {
        let pem = match &config.trust_anchors {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|source| {
                ProvenanceError::TrustAnchors {
                    path: path.display().to_string(),
                    source,
                }
            })?),
            None => None,
        };
        let provenance = ProvenanceReader::new(pem.as_deref())?;
        Ok(Self {
            config: Some(Arc::new(Built {
                config,
                provenance,
                gan: None,
                diffusion: None,
            })),
        })
    }

    /// Builds the detector with trust anchors given as PEM text (tests, embedded bundles).
    pub fn with_trust_anchors_pem(
        config: LocalDetectorConfig,
        pem: &str,
    ) -> Result<Self, BuildError> {
        let provenance = ProvenanceReader::new(Some(pem))?;
        Ok(Self {
            config: Some(Arc::new(Built {
                config,
                provenance,
                gan: None,
                diffusion: None,
            })),
        })
    }

    /// The same detector with a trained classifier for the `gan` or `diffusion` model.
    pub fn with_classifier(&self, model: ModelKind, classifier: Arc<dyn PixelClassifier>) -> Self {
        let built = self.built();
        let mut next = Built {
            config: built.config.clone(),
            provenance: built.provenance.clone(),
            gan: built.gan.clone(),
            diffusion: built.diffusion.clone(),
        };
        match model {
            ModelKind::Gan => next.gan = Some(classifier),
            ModelKind::Diffusion => next.diffusion = Some(classifier),
            _ => {}
        }
        Self {
            config: Some(Arc::new(next)),
        }
    }

    fn built(&self) -> Arc<Built> {
        match &self.config {
            Some(built) => Arc::clone(built),
            None => Arc::clone(DEFAULT_BUILT.get_or_init(|| {
                Arc::new(Built {
                    config: LocalDetectorConfig::default(),
                    provenance: ProvenanceReader::untrusted(),
                    gan: None,
                    diffusion: None,
                })
            })),
        }
    }

    /// Analyses one image without I/O; [`Detector::analyze`] wraps this.
    pub fn analyze_sync(&self, input: &MediaInput, options: &AnalyzeOptions) -> Analysis {
        let started = Instant::now();
        let built = self.built();
        let format = input.info.format;
        let mut report = read_metadata(format, &input.bytes);
        let wants_metadata = options.wants(ModelKind::Metadata);
        let provenance = if wants_metadata {
            built.provenance.read(format, &input.bytes)
        } else {
            ProvenanceReport::default()
        };
        let pixel_models = [
            ModelKind::Gan,
            ModelKind::Diffusion,
            ModelKind::Noise,
            ModelKind::Frequency,
            ModelKind::Splicing,
        ];
        let wants_pixels = pixel_models.iter().any(|m| options.wants(*m));
        let wants_stealth = wants_metadata && report.has_alpha && format != ImageFormat::Heic;
        let pixels = if wants_pixels || wants_stealth {
            Some(decode(input, &built.config))
        } else {
            None
        };
        if wants_stealth
            && let Some(Ok(pixels)) = &pixels
            && let Some(info) = stealth::read_stealth(pixels)
        {
            let generator = if info.text.contains("\"uc\"") || info.text.contains("NovelAI") {
                "NovelAI"
            } else {
                "AUTOMATIC1111"
            };
            report.declare(
                Declaration::AiGenerated,
                generator,
                format!(
                    "the alpha channel hides generation parameters (`{}` stealth data)",
                    info.signature
                ),
            );
        }

        let mut results = ModelResults::default();
        for model in pixel_models.into_iter().filter(|m| options.wants(*m)) {
            let result = match (&pixels, model) {
                (_, ModelKind::Gan | ModelKind::Diffusion) => {
                    let classifier = if model == ModelKind::Gan {
                        &built.gan
                    } else {
                        &built.diffusion
                    };
                    run_classifier(classifier.as_deref(), pixels.as_ref())
                }
                (Some(Ok(pixels)), ModelKind::Noise) => noise::analyze(pixels),
                (Some(Ok(pixels)), ModelKind::Frequency) => {
                    frequency::analyze(pixels, format == ImageFormat::Jpeg)
                }
                (Some(Ok(pixels)), ModelKind::Splicing) => {
                    if format == ImageFormat::Jpeg {
                        splicing::analyze(&input.bytes, pixels, options.return_heatmap)
                    } else {
                        ModelResult::not_run(format!(
                            "not run: the splicing model reads JPEG compression history, which a {format} file does not have"
                        ))
                    }
                }
                (Some(Err(err)), _) => ModelResult::not_run(format!("not run: {err}")),
                _ => ModelResult::not_run("not run: the pixels were not decoded"),
            };
            results.set(model, result);
        }

        let decision = if wants_metadata {
            decide(&report, &provenance)
        } else {
            Decision::none()
        };
        let verdict = match decision.label {
            VerdictLabel::Inconclusive if provenance.ignored_ai_claim => Verdict {
                label: VerdictLabel::Inconclusive,
                confidence: 0.0,
                risk_level: RiskLevel::Medium,
            },
            label => Verdict::new(label, decision.confidence),
        };

        let mut facts = report.facts.clone();
        facts.c2pa_present = provenance.present;
        facts.c2pa_valid = provenance.valid;
        facts.c2pa_trusted = provenance.trusted;
        facts.c2pa_signer = provenance.signer.clone();
        facts.c2pa_claim_generator = provenance.claim_generator.clone();
        facts.ai_declared = facts.ai_declared || provenance.ai_declared;

        if wants_metadata {
            results.metadata_analysis =
                Some(metadata_result(&report, &provenance, &decision, &facts));
        }
        Analysis {
            verdict,
            model_results: results,
            image_info: input.info.clone(),
            metadata: facts,
            detector: Self::NAME.to_owned(),
            processing_time_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            providers: Vec::new(),
        }
    }
}

fn run_classifier(
    classifier: Option<&dyn PixelClassifier>,
    pixels: Option<&Result<Pixels, DecodeError>>,
) -> ModelResult {
    let Some(classifier) = classifier else {
        return ModelResult::not_run(NO_CLASSIFIER);
    };
    match pixels {
        Some(Ok(pixels)) => match classifier.classify(pixels) {
            Ok(c) => ModelResult::ran(
                c.score,
                c.label,
                format!(
                    "{} ({}); reported, it does not decide the verdict",
                    c.detail,
                    classifier.name()
                ),
            ),
            Err(err) => {
                ModelResult::not_run(format!("not run: {} failed: {err}", classifier.name()))
            }
        },
        Some(Err(err)) => ModelResult::not_run(format!("not run: {err}")),
        None => ModelResult::not_run("not run: the pixels were not decoded"),
    }
}

/// The rule that decided the verdict.
#[derive(Debug, Clone)]
struct Decision {
    rule: Option<&'static str>,
    label: VerdictLabel,
    confidence: f64,
    model_label: ModelLabel,
}

impl Decision {
    fn none() -> Self {
        Self {
            rule: None,
            label: VerdictLabel::Inconclusive,
            confidence: 0.0,
            model_label: ModelLabel::Inconclusive,
        }
    }

    fn rule(
        rule: &'static str,
        label: VerdictLabel,
        confidence: f64,
        model_label: ModelLabel,
    ) -> Self {
        Self {
            rule: Some(rule),
            label,
            confidence,
            model_label,
        }
    }
}

/// The combination rules, first match wins (the table in the module documentation).
fn decide(report: &MetadataReport, provenance: &ProvenanceReport) -> Decision {
    use ModelLabel as M;
    use VerdictLabel as V;
    match (provenance.finding, report.declaration) {
        (Some(ProvenanceFinding::AiCreated), _) => Decision::rule(
            "c2pa_ai_created",
            V::AiGenerated,
            C2PA_AI_CREATED,
            M::Synthetic,
        ),
        (Some(ProvenanceFinding::AiEdited), _) => Decision::rule(
            "c2pa_ai_edited",
            V::Manipulated,
            C2PA_AI_EDITED,
            M::Manipulated,
        ),
        (_, Some(Declaration::AiGenerated)) => Decision::rule(
            "metadata_ai_generated",
            V::AiGenerated,
            DECLARED_AI_CONFIDENCE,
            M::Synthetic,
        ),
        (_, Some(Declaration::AiEdited)) => Decision::rule(
            "metadata_ai_edited",
            V::Manipulated,
            DECLARED_AI_EDIT_CONFIDENCE,
            M::Manipulated,
        ),
        (Some(ProvenanceFinding::PixelsChangedAfterSigning), None) => Decision::rule(
            "c2pa_pixels_changed",
            V::Manipulated,
            C2PA_PIXELS_CHANGED,
            M::Manipulated,
        ),
        (Some(ProvenanceFinding::TrustedCapture), None) => Decision::rule(
            "c2pa_trusted_capture",
            V::Authentic,
            C2PA_TRUSTED_CAPTURE,
            M::Authentic,
        ),
        (None, None) => Decision::none(),
    }
}

fn metadata_result(
    report: &MetadataReport,
    provenance: &ProvenanceReport,
    decision: &Decision,
    facts: &arbiter_core::MetadataFacts,
) -> MetadataResult {
    let mut sentences = Vec::new();
    match decision.rule {
        Some(rule) => sentences.push(format!(
            "Decided by rule {rule} ({}, reliability {:.2})",
            decision.label, decision.confidence
        )),
        None => sentences.push(
            "No provenance or metadata declares how the image was made: INCONCLUSIVE".to_owned(),
        ),
    }
    if provenance.present {
        sentences.extend(provenance.notes.iter().map(|n| capitalise(n)));
    } else if ProvenanceReader::available() {
        sentences.push("No C2PA manifest".to_owned());
    } else {
        sentences.push("C2PA provenance not checked: support is not built in".to_owned());
    }
    sentences.extend(report.evidence.iter().map(|e| capitalise(e)));
    if report.evidence_left_out > 0 {
        sentences.push(format!(
            "{} further declarations are not listed",
            report.evidence_left_out
        ));
    }
    sentences.extend(report.observations.iter().map(|o| capitalise(o)));
    if !facts.exif_present {
        sentences.push("No EXIF data present".to_owned());
    }
    let mut detail = sentences.join(". ");
    detail.push('.');
    let detail = bounded(detail, MAX_DETAIL);
    let score = match decision.model_label {
        ModelLabel::Authentic => 1.0 - decision.confidence,
        ModelLabel::Inconclusive => 0.0,
        _ => decision.confidence,
    };
    let device_fingerprint = match (&facts.camera_make, &facts.camera_model) {
        (Some(make), Some(model)) if model.starts_with(make.as_str()) => Some(model.clone()),
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (make, model) => make.clone().or_else(|| model.clone()),
    };
    MetadataResult {
        result: ModelResult::ran(score, decision.model_label, detail),
        exif_present: facts.exif_present,
        gps_present: facts.gps_present,
        device_fingerprint,
    }
}

/// `text` cut to at most `max` bytes at a character boundary, ending in "..." when cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("...");
    text
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Seconds a caller refused for a full analysis queue is asked to wait.
const BUSY_RETRY_SECS: u64 = 2;

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
        let max_queued = self.built().config.max_queued;
        let (detector, input, options) = (self.clone(), input.clone(), options.clone());
        crate::pool::global()
            .run(max_queued, move || detector.analyze_sync(&input, &options))
            .await
            .map_err(|err| match err {
                PoolError::Full => DetectError::Busy {
                    detector: Self::NAME.to_owned(),
                    retry_after: BUSY_RETRY_SECS,
                },
                PoolError::Failed | PoolError::Stopped => DetectError::Failed {
                    detector: Self::NAME.to_owned(),
                    message: err.to_string(),
                },
            })
    }

    /// Whether analyses can run in this process: unhealthy when no analysis thread is running
    /// (none could be started), since every analysis would then fail. A full queue is not a
    /// fault: that analysis is refused with a time to retry after, and the next may find room.
    async fn health(&self) -> Result<(), DetectError> {
        if crate::pool::global().threads() == 0 {
            return Err(DetectError::Failed {
                detector: Self::NAME.to_owned(),
                message: PoolError::Stopped.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{IntakeLimits, intake, tests::png};

    #[test]
    fn no_evidence_is_inconclusive_and_low() {
        let input = intake(png(640, 480), &IntakeLimits::default()).unwrap();
        let analysis = LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default());
        assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive);
        assert_eq!(analysis.verdict.risk_level, RiskLevel::Low);
        assert_eq!(analysis.image_info, input.info);
        let gan = analysis.model_results.gan_detection.unwrap();
        assert_eq!(gan.label, ModelLabel::NotRun);
        assert_eq!(gan.score, None);
        let noise = analysis.model_results.noise_analysis.unwrap();
        assert_eq!(noise.label, ModelLabel::NotRun);
        assert!(noise.detail.unwrap().contains("could not be decoded"));
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
        let analysis = LocalDetector::default().analyze_sync(&input, &options);
        let present: Vec<_> = analysis.model_results.iter().map(|(m, _)| m).collect();
        assert_eq!(present, vec![ModelKind::Gan]);
    }

    #[test]
    fn the_rules_rank_provenance_before_metadata_before_binding_before_capture() {
        let mut report = MetadataReport::default();
        let mut provenance = ProvenanceReport {
            finding: Some(ProvenanceFinding::PixelsChangedAfterSigning),
            ..ProvenanceReport::default()
        };
        assert_eq!(
            decide(&report, &provenance).rule,
            Some("c2pa_pixels_changed")
        );
        report.declaration = Some(Declaration::AiGenerated);
        assert_eq!(
            decide(&report, &provenance).rule,
            Some("metadata_ai_generated")
        );
        provenance.finding = Some(ProvenanceFinding::AiEdited);
        assert_eq!(decide(&report, &provenance).rule, Some("c2pa_ai_edited"));
        let capture = ProvenanceReport {
            finding: Some(ProvenanceFinding::TrustedCapture),
            ..ProvenanceReport::default()
        };
        assert_eq!(decide(&report, &capture).label, VerdictLabel::AiGenerated);
        assert_eq!(
            decide(&MetadataReport::default(), &capture).label,
            VerdictLabel::Authentic
        );
    }
}
