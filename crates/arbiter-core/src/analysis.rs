//! What a detector reads (an image and options) and what it returns (an analysis), in the
//! guide's JSON shapes.

use crate::{RequestId, Verdict};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// An image format Arbiter accepts, recognised from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ImageFormat {
    /// JPEG / JFIF / EXIF.
    Jpeg,
    /// PNG.
    Png,
    /// WebP (RIFF container).
    Webp,
    /// HEIC / HEIF (ISO base media file).
    Heic,
    /// Windows bitmap.
    Bmp,
    /// TIFF, either byte order.
    Tiff,
}

impl ImageFormat {
    /// The format as the guide writes it in `image_info.format`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::Webp => "WEBP",
            ImageFormat::Heic => "HEIC",
            ImageFormat::Bmp => "BMP",
            ImageFormat::Tiff => "TIFF",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What intake learnt about an image before any detector ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageInfo {
    /// Width in pixels, read from the file's header.
    pub width: u32,
    /// Height in pixels, read from the file's header.
    pub height: u32,
    /// The sniffed format.
    pub format: ImageFormat,
    /// Size of the exact bytes received.
    pub file_size_bytes: u64,
    /// Lowercase hex SHA-256 of the exact bytes received.
    pub sha256: String,
}

/// An image that passed intake: its exact bytes and what intake read from them.
#[derive(Debug, Clone)]
pub struct MediaInput {
    /// The exact bytes received.
    pub bytes: Arc<[u8]>,
    /// Format, dimensions, size and hash of `bytes`.
    pub info: ImageInfo,
}

/// The six models of the guide, by the short names used in `options.models` and in policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ModelKind {
    /// GAN-generated image detection.
    Gan,
    /// Diffusion-generated image detection.
    Diffusion,
    /// Sensor-noise consistency.
    Noise,
    /// EXIF, generator metadata and provenance.
    Metadata,
    /// Spectral artefacts of upsampling.
    Frequency,
    /// Localised manipulation (JPEG compression history).
    Splicing,
}

impl ModelKind {
    /// Every model, in the guide's order.
    pub const ALL: [ModelKind; 6] = [
        ModelKind::Gan,
        ModelKind::Diffusion,
        ModelKind::Noise,
        ModelKind::Metadata,
        ModelKind::Frequency,
        ModelKind::Splicing,
    ];

    /// The short name (`gan`, `noise`, ...), as in `options.models` and policy facts.
    pub fn short_name(self) -> &'static str {
        match self {
            ModelKind::Gan => "gan",
            ModelKind::Diffusion => "diffusion",
            ModelKind::Noise => "noise",
            ModelKind::Metadata => "metadata",
            ModelKind::Frequency => "frequency",
            ModelKind::Splicing => "splicing",
        }
    }

    /// The key of this model in the response's `model_results` (`gan_detection`, ...).
    pub fn result_key(self) -> &'static str {
        match self {
            ModelKind::Gan => "gan_detection",
            ModelKind::Diffusion => "diffusion_detection",
            ModelKind::Noise => "noise_analysis",
            ModelKind::Metadata => "metadata_analysis",
            ModelKind::Frequency => "frequency_analysis",
            ModelKind::Splicing => "splicing_detection",
        }
    }

    /// The model with this short name.
    pub fn from_short_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.short_name() == name)
    }
}

/// One model's conclusion, in the guide's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ModelLabel {
    /// Nothing that points away from a real capture.
    Authentic,
    /// Signs of synthesis.
    Synthetic,
    /// Signs of alteration.
    Manipulated,
    /// Something is off, not enough to say what.
    Suspicious,
    /// The model ran and found nothing it can speak to.
    Inconclusive,
    /// The model did not run; `detail` says why.
    NotRun,
}

impl ModelLabel {
    /// The label as it is written in JSON and in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelLabel::Authentic => "AUTHENTIC",
            ModelLabel::Synthetic => "SYNTHETIC",
            ModelLabel::Manipulated => "MANIPULATED",
            ModelLabel::Suspicious => "SUSPICIOUS",
            ModelLabel::Inconclusive => "INCONCLUSIVE",
            ModelLabel::NotRun => "NOT_RUN",
        }
    }
}

/// One model's output: a score (0..1, higher means more likely synthetic or altered), a label and
/// a plain-language detail. A model that did not run has no score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelResult {
    /// 0..1, higher is more suspicious; `null` when the model did not run.
    pub score: Option<f64>,
    /// The model's conclusion.
    pub label: ModelLabel,
    /// What the model saw, in plain language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A manipulation heatmap, when the request asked for one (`options.return_heatmap`) and the
    /// model makes one (the splicing model does, for JPEG files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heatmap: Option<Heatmap>,
}

impl ModelResult {
    /// A model that did not run, and why.
    pub fn not_run(reason: impl Into<String>) -> Self {
        Self {
            score: None,
            label: ModelLabel::NotRun,
            detail: Some(reason.into()),
            heatmap: None,
        }
    }

    /// A model that ran: its score, label and detail, without a heatmap.
    pub fn ran(score: f64, label: ModelLabel, detail: impl Into<String>) -> Self {
        Self {
            score: Some(score.clamp(0.0, 1.0)),
            label,
            detail: Some(detail.into()),
            heatmap: None,
        }
    }
}

/// A per-region manipulation map: a small grayscale PNG in which each pixel is one region of the
/// image (brighter is more inconsistent with the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heatmap {
    /// Width of the map in pixels (one pixel per region).
    pub width: u32,
    /// Height of the map in pixels.
    pub height: u32,
    /// Side of the square image region each map pixel covers, in image pixels.
    pub region_px: u32,
    /// The map as a grayscale PNG, base64 (standard alphabet, padded).
    pub png_base64: String,
}

/// The metadata model's output: a model result plus the EXIF facts the guide lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetadataResult {
    /// Score, label and detail.
    #[serde(flatten)]
    pub result: ModelResult,
    /// Whether the file carries EXIF data.
    pub exif_present: bool,
    /// Whether the EXIF data has GPS coordinates.
    pub gps_present: bool,
    /// Camera make and model when the EXIF names them.
    pub device_fingerprint: Option<String>,
}

/// `model_results` of the guide's response: one optional entry per model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelResults {
    /// `gan_detection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gan_detection: Option<ModelResult>,
    /// `diffusion_detection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffusion_detection: Option<ModelResult>,
    /// `noise_analysis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_analysis: Option<ModelResult>,
    /// `metadata_analysis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_analysis: Option<MetadataResult>,
    /// `frequency_analysis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_analysis: Option<ModelResult>,
    /// `splicing_detection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splicing_detection: Option<ModelResult>,
}

impl ModelResults {
    /// The result of one model, if it is present.
    pub fn get(&self, model: ModelKind) -> Option<&ModelResult> {
        match model {
            ModelKind::Gan => self.gan_detection.as_ref(),
            ModelKind::Diffusion => self.diffusion_detection.as_ref(),
            ModelKind::Noise => self.noise_analysis.as_ref(),
            ModelKind::Metadata => self.metadata_analysis.as_ref().map(|m| &m.result),
            ModelKind::Frequency => self.frequency_analysis.as_ref(),
            ModelKind::Splicing => self.splicing_detection.as_ref(),
        }
    }

    /// Sets the result of one model other than `metadata` (which has its own shape).
    pub fn set(&mut self, model: ModelKind, result: ModelResult) {
        let slot = match model {
            ModelKind::Gan => &mut self.gan_detection,
            ModelKind::Diffusion => &mut self.diffusion_detection,
            ModelKind::Noise => &mut self.noise_analysis,
            ModelKind::Frequency => &mut self.frequency_analysis,
            ModelKind::Splicing => &mut self.splicing_detection,
            ModelKind::Metadata => {
                let previous = self.metadata_analysis.take();
                self.metadata_analysis = Some(MetadataResult {
                    result,
                    exif_present: previous.as_ref().is_some_and(|m| m.exif_present),
                    gps_present: previous.as_ref().is_some_and(|m| m.gps_present),
                    device_fingerprint: previous.and_then(|m| m.device_fingerprint),
                });
                return;
            }
        };
        *slot = Some(result);
    }

    /// The models present, with their results, in the guide's order.
    pub fn iter(&self) -> impl Iterator<Item = (ModelKind, &ModelResult)> {
        ModelKind::ALL
            .into_iter()
            .filter_map(|m| self.get(m).map(|r| (m, r)))
    }
}

/// Facts read from the file's metadata and provenance, as policies see them (`metadata.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataFacts {
    /// The file carries EXIF data.
    pub exif_present: bool,
    /// The EXIF data has GPS coordinates.
    pub gps_present: bool,
    /// EXIF `DateTimeOriginal` as written (`2008:10:22 16:28:39`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_time: Option<String>,
    /// EXIF `Make`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_make: Option<String>,
    /// EXIF `Model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_model: Option<String>,
    /// EXIF `Software` or a generator's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
    /// The file carries a C2PA manifest.
    pub c2pa_present: bool,
    /// The C2PA manifest validated.
    pub c2pa_valid: bool,
    /// Metadata or provenance declares generative AI.
    pub ai_declared: bool,
    /// The C2PA manifest validated and its signer is in the configured trust list.
    #[serde(default)]
    pub c2pa_trusted: bool,
    /// Who signed the active C2PA manifest (the certificate's issuer organisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c2pa_signer: Option<String>,
    /// The `claim_generator` of the active C2PA manifest (the software that wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c2pa_claim_generator: Option<String>,
    /// The generative tool the metadata or provenance names (`AUTOMATIC1111`, `ComfyUI`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

/// Image editors whose name in EXIF `Software` means the file was edited after capture.
const EDITORS: [&str; 12] = [
    "photoshop",
    "lightroom",
    "gimp",
    "affinity",
    "pixelmator",
    "snapseed",
    "picsart",
    "canva",
    "facetune",
    "paint.net",
    "luminar",
    "capture one",
];

impl MetadataFacts {
    /// The image editor named by EXIF `Software`, if it names one (`Adobe Photoshop 24.1`).
    pub fn edited_with(&self) -> Option<&str> {
        let software = self.software.as_deref()?;
        let lower = software.to_ascii_lowercase();
        EDITORS
            .iter()
            .any(|editor| lower.contains(editor))
            .then_some(software)
    }

    /// How the file's metadata fits a capture by a phone or camera: `device` (EXIF names the
    /// camera and no editor), `edited` (an editor wrote it), or `missing` (no EXIF, or no
    /// camera in it).
    pub fn capture_evidence(&self) -> &'static str {
        if !self.exif_present || (self.camera_make.is_none() && self.camera_model.is_none()) {
            "missing"
        } else if self.edited_with().is_some() {
            "edited"
        } else {
            "device"
        }
    }
}

/// Options of an analysis request (`options` in the guide).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeOptions {
    /// Models to run; empty means all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelKind>,
    /// Include EXIF and provenance analysis.
    #[serde(default = "default_true")]
    pub metadata_analysis: bool,
    /// Include a manipulation heatmap.
    #[serde(default)]
    pub return_heatmap: bool,
}

fn default_true() -> bool {
    true
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            metadata_analysis: true,
            return_heatmap: false,
        }
    }
}

impl AnalyzeOptions {
    /// Whether `model` is asked for.
    pub fn wants(&self, model: ModelKind) -> bool {
        let asked = self.models.is_empty() || self.models.contains(&model);
        asked && (model != ModelKind::Metadata || self.metadata_analysis)
    }
}

/// A detector's result for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The combined verdict.
    pub verdict: Verdict,
    /// Each model's result.
    pub model_results: ModelResults,
    /// What intake read from the file.
    pub image_info: ImageInfo,
    /// Metadata and provenance facts for policies.
    pub metadata: MetadataFacts,
    /// The detector that produced this analysis (`local`, `reality_defender`, or a route of
    /// several such as `local,reality_defender`).
    pub detector: String,
    /// Wall time spent in the detector.
    pub processing_time_ms: u64,
    /// What each detector of a route, or a vendor, said (empty for the local detector alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<DetectorRun>,
}

impl Analysis {
    /// The names of the detectors that answered, in the order they ran.
    pub fn detectors_ran(&self) -> Vec<&str> {
        if self.providers.is_empty() {
            return vec![self.detector.as_str()];
        }
        self.providers
            .iter()
            .filter(|run| run.status == RunStatus::Ok)
            .map(|run| run.name.as_str())
            .collect()
    }
}

/// Whether a detector of a route answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunStatus {
    /// It answered with a verdict.
    Ok,
    /// It could not answer (down, timed out, refused, malformed answer); `error` says why.
    Failed,
    /// It was not called: its circuit is open or its call budget is spent; `error` says which.
    Skipped,
}

impl RunStatus {
    /// The status as written in JSON and in policy facts.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "OK",
            RunStatus::Failed => "FAILED",
            RunStatus::Skipped => "SKIPPED",
        }
    }
}

/// One vendor model's result, under the vendor's own name (`rd-elm-img`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VendorModel {
    /// The vendor's model name.
    pub name: String,
    /// The vendor's status word for it (`FAKE`, `AUTHENTIC`, `NOT_APPLICABLE`).
    pub status: String,
    /// 0..1, higher is more likely synthetic or manipulated; `null` when it gave no number.
    pub score: Option<f64>,
}

/// What one detector of a route said about an image: a vendor's answer with its ids, or the
/// local detector's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectorRun {
    /// The detector (`local`, `reality_defender`, `reality_ai`).
    pub name: String,
    /// Whether it answered.
    pub status: RunStatus,
    /// Its verdict in Arbiter's vocabulary, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// 0..1, its likelihood that the image is synthetic or manipulated; `null` when it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The vendor's own word for its conclusion (`FAKE`, `SUSPICIOUS`, `NOT_APPLICABLE`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_status: Option<String>,
    /// The vendor's id for this analysis (Reality Defender's `requestId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_request_id: Option<String>,
    /// The vendor's models and their scores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<VendorModel>,
    /// Why the vendor could not score the image (`relevance: no faces detected`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Lowercase hex SHA-256 of the vendor's raw final answer, as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_sha256: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time spent on it.
    pub processing_time_ms: u64,
}

impl DetectorRun {
    /// A detector that was not called or did not answer, and why.
    pub fn without_answer(name: &str, status: RunStatus, error: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status,
            verdict: None,
            score: None,
            vendor_status: None,
            vendor_request_id: None,
            models: Vec::new(),
            reasons: Vec::new(),
            answer_sha256: None,
            error: Some(error.into()),
            processing_time_ms: 0,
        }
    }

    /// The run of a detector that answered with this analysis and kept no vendor detail.
    pub fn answered(name: &str, analysis: &Analysis) -> Self {
        Self {
            name: name.to_owned(),
            status: RunStatus::Ok,
            verdict: Some(analysis.verdict),
            score: None,
            vendor_status: Some(analysis.verdict.label.as_str().to_owned()),
            vendor_request_id: None,
            models: Vec::new(),
            reasons: Vec::new(),
            answer_sha256: None,
            error: None,
            processing_time_ms: analysis.processing_time_ms,
        }
    }

    /// The word policies read as `providers.<name>.status`: the vendor's own word when it
    /// answered, else `FAILED` or `SKIPPED`.
    pub fn status_word(&self) -> &str {
        match (&self.vendor_status, self.status) {
            (Some(word), RunStatus::Ok) => word,
            _ => self.status.as_str(),
        }
    }
}

/// The body of a completed analysis, field for field as the guide's `POST /v1/analyze` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalysisResponse {
    /// Arbiter's id for this request.
    pub request_id: RequestId,
    /// The caller's own identifier, echoed.
    pub reference_id: Option<String>,
    /// `complete`.
    pub status: String,
    /// When the analysis finished.
    pub processed_at: DateTime<Utc>,
    /// The combined verdict.
    pub verdict: Verdict,
    /// Each model's result.
    pub model_results: ModelResults,
    /// What intake read from the file.
    pub image_info: ImageInfo,
    /// Wall time spent in the detector.
    pub processing_time_ms: u64,
    /// What each detector of the route said, when several ran or a vendor answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<DetectorRun>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE_RESPONSE: &str = r#"{
      "request_id": "req_9f3a2b1c4d5e6f",
      "reference_id": "claim-78234-photo-1",
      "status": "complete",
      "processed_at": "2026-03-16T14:23:11Z",
      "verdict": { "label": "AI_GENERATED", "confidence": 0.94, "risk_level": "HIGH" },
      "model_results": {
        "gan_detection": { "score": 0.91, "label": "SYNTHETIC" },
        "diffusion_detection": { "score": 0.97, "label": "SYNTHETIC" },
        "noise_analysis": { "score": 0.89, "label": "SYNTHETIC", "detail": "No camera sensor noise pattern detected" },
        "metadata_analysis": {
          "score": 0.95, "label": "SUSPICIOUS",
          "detail": "No EXIF data present. File creation timestamp inconsistent with claimed incident date.",
          "exif_present": false, "gps_present": false, "device_fingerprint": null
        },
        "frequency_analysis": { "score": 0.88, "label": "SYNTHETIC", "detail": "Periodic frequency artifacts detected at 64px intervals" },
        "splicing_detection": { "score": 0.23, "label": "AUTHENTIC", "detail": "No localized manipulation regions detected" }
      },
      "image_info": { "width": 3024, "height": 4032, "format": "JPEG", "file_size_bytes": 4821033, "sha256": "a1b2c3d4e5f6..." },
      "processing_time_ms": 847
    }"#;

    #[test]
    fn the_guides_sample_response_round_trips_unchanged() {
        let original: serde_json::Value = serde_json::from_str(GUIDE_RESPONSE).unwrap();
        let parsed: AnalysisResponse = serde_json::from_str(GUIDE_RESPONSE).unwrap();
        let written = serde_json::to_value(&parsed).unwrap();
        assert_eq!(written, original);
        insta::assert_json_snapshot!("guide_analyze_response", written);
    }

    #[test]
    fn model_names_map_between_options_and_response_keys() {
        for model in ModelKind::ALL {
            assert_eq!(ModelKind::from_short_name(model.short_name()), Some(model));
            let as_json = serde_json::to_value(model).unwrap();
            assert_eq!(as_json, model.short_name());
        }
        assert_eq!(ModelKind::Noise.result_key(), "noise_analysis");
    }

    #[test]
    fn options_default_to_every_model_with_metadata() {
        let options: AnalyzeOptions = serde_json::from_str("{}").unwrap();
        assert!(ModelKind::ALL.iter().all(|m| options.wants(*m)));
        let options: AnalyzeOptions =
            serde_json::from_str(r#"{"models":["gan","metadata"],"metadata_analysis":false}"#)
                .unwrap();
        assert!(options.wants(ModelKind::Gan));
        assert!(!options.wants(ModelKind::Metadata));
        assert!(!options.wants(ModelKind::Noise));
        assert!(serde_json::from_str::<AnalyzeOptions>(r#"{"models":["gann"]}"#).is_err());
    }

    #[test]
    fn a_model_that_did_not_run_has_a_null_score_and_a_reason() {
        let mut results = ModelResults::default();
        results.set(
            ModelKind::Gan,
            ModelResult::not_run("no trained model is installed"),
        );
        let json = serde_json::to_value(&results).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"gan_detection": {"score": null, "label": "NOT_RUN", "detail": "no trained model is installed"}})
        );
    }
}
