//! Reality Defender's bodies, read leniently (as its own SDKs learned to), and its verdicts
//! mapped onto Arbiter's.
//!
//! | `resultsSummary.status` | verdict | confidence | risk |
//! |---|---|---|---|
//! | `AUTHENTIC` | AUTHENTIC | 1 − p (0.5 without a score) | band(p); LOW without a score |
//! | `FAKE` | AI_GENERATED when the top-scoring non-ensemble FAKE model is a generation detector (`elm`: diffusion, `cedar`: GAN, `llm`: text), else MANIPULATED | p (0.86 without a score) | at least MEDIUM; HIGH without a score |
//! | `SUSPICIOUS` | INCONCLUSIVE | p (0.6 without a score) | at least MEDIUM |
//! | `NOT_APPLICABLE` | INCONCLUSIVE, with RD's reasons | 0 | MEDIUM |
//! | `UNABLE_TO_EVALUATE` | INCONCLUSIVE (after one new upload) | 0 | MEDIUM |
//!
//! p = `finalScore` / 100, the likelihood that the image is synthetic or manipulated; the bands are
//! the guide's (LOW < 0.6 ≤ MEDIUM ≤ 0.85 < HIGH). NOT_APPLICABLE and UNABLE_TO_EVALUATE are never
//! a definite label, and RD's verdict sets a floor on the risk that its score can only raise.

use arbiter_core::{
    ModelKind, ModelLabel, ModelResult, ModelResults, RiskLevel, VendorModel, Verdict, VerdictLabel,
};
use serde::Deserialize;
use serde_json::Value;

/// The presign answer: where to PUT the bytes, and the id to poll.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presigned {
    /// The id to poll.
    pub request_id: Option<String>,
    /// `{signedUrl}`.
    pub response: Option<PresignedUrl>,
}

/// `response` of the presign answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedUrl {
    /// The upload URL.
    pub signed_url: Option<String>,
}

/// RD's error body `{code, errno, response}`; every field may be missing.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// `free-tier-not-allowed`, `upload-limit-reached`, `error`, ...
    pub code: Option<String>,
}

/// The codes that mean the account's plan or credits are used up.
pub const QUOTA_CODES: [&str; 2] = ["free-tier-not-allowed", "upload-limit-reached"];

/// The media detail, with only what is read; unknown fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaDetail {
    /// RD's id.
    pub request_id: Option<String>,
    /// `ANALYZING`, or the final word (Rust SDK reads this).
    pub overall_status: Option<String>,
    /// `null` or missing while pending.
    pub results_summary: Option<Summary>,
    /// Missing on some answers.
    #[serde(default)]
    pub models: Option<Vec<Model>>,
}

/// `resultsSummary`.
#[derive(Debug, Deserialize)]
pub struct Summary {
    /// The final word, or `ANALYZING`.
    pub status: Option<String>,
    /// `{finalScore, reasons}`; may be missing.
    pub metadata: Option<Value>,
}

/// One entry of `models`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// `rd-elm-img`.
    pub name: Option<String>,
    /// `FAKE`, `AUTHENTIC`, `NOT_APPLICABLE`, ...
    pub status: Option<String>,
    /// 0..1, or an object `{reason, decision: NOT_EVALUATED}`, or null.
    pub prediction_number: Option<Value>,
    /// 0..100 or null.
    pub final_score: Option<Value>,
}

/// The words that mean "still working" (RD's, and those its SDKs guard against).
const PENDING: [&str; 6] = [
    "ANALYZING",
    "DOWNLOADING",
    "PROCESSING",
    "QUEUED",
    "UNKNOWN",
    "",
];

/// Where an analysis stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Still working.
    Pending,
    /// The final answer.
    Final(Box<Mapped>),
}

/// A final answer in Arbiter's vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The verdict.
    pub verdict: Verdict,
    /// `finalScore` / 100.
    pub score: Option<f64>,
    /// RD's word.
    pub status: String,
    /// RD's id.
    pub request_id: Option<String>,
    /// RD's models with their 0..1 scores.
    pub models: Vec<VendorModel>,
    /// NOT_APPLICABLE reasons, and UNABLE_TO_EVALUATE's error.
    pub reasons: Vec<String>,
    /// The guide's model slots RD's models fill (GAN: cedar, diffusion: elm).
    pub model_results: ModelResults,
}

/// Reads a media detail body: pending, final, or malformed.
pub fn read_detail(body: &[u8]) -> Result<Progress, String> {
    let detail: MediaDetail =
        serde_json::from_slice(body).map_err(|err| format!("media detail: {err}"))?;
    let Some(summary) = &detail.results_summary else {
        return Ok(Progress::Pending);
    };
    let status = summary
        .status
        .as_deref()
        .or(detail.overall_status.as_deref())
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();
    if PENDING.contains(&status.as_str()) {
        return Ok(Progress::Pending);
    }
    let metadata = summary.metadata.as_ref();
    let score = metadata
        .and_then(|m| m.get("finalScore"))
        .and_then(Value::as_f64)
        .map(|s| (s / 100.0).clamp(0.0, 1.0));
    let models: Vec<VendorModel> = detail
        .models
        .iter()
        .flatten()
        .filter_map(|m| {
            Some(VendorModel {
                name: m.name.clone()?,
                status: m.status.clone().unwrap_or_default(),
                score: model_score(m),
            })
        })
        .collect();
    let mut reasons: Vec<String> = metadata
        .and_then(|m| m.get("reasons"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(reason_text)
        .collect();
    if let Some(error) = metadata
        .and_then(|_| serde_json::from_slice::<Value>(body).ok())
        .and_then(|v| v.pointer("/resultsSummary/error").cloned())
        .and_then(|e| reason_text(&e))
    {
        reasons.push(error);
    }
    let verdict = match status.as_str() {
        "AUTHENTIC" => Verdict {
            label: VerdictLabel::Authentic,
            confidence: score.map_or(0.5, |p| 1.0 - p),
            risk_level: score.map_or(RiskLevel::Low, RiskLevel::from_confidence),
        },
        "FAKE" => Verdict {
            label: fake_label(&models),
            confidence: score.unwrap_or(0.86),
            risk_level: score.map_or(RiskLevel::High, |p| {
                RiskLevel::from_confidence(p).max(RiskLevel::Medium)
            }),
        },
        "SUSPICIOUS" => Verdict {
            label: VerdictLabel::Inconclusive,
            confidence: score.unwrap_or(0.6),
            risk_level: score.map_or(RiskLevel::Medium, |p| {
                RiskLevel::from_confidence(p).max(RiskLevel::Medium)
            }),
        },
        "NOT_APPLICABLE" | "UNABLE_TO_EVALUATE" => Verdict {
            label: VerdictLabel::Inconclusive,
            confidence: 0.0,
            risk_level: RiskLevel::Medium,
        },
        other => return Err(format!("unknown resultsSummary.status {other:?}")),
    };
    let mut model_results = ModelResults::default();
    for (kind, family) in [(ModelKind::Gan, "cedar"), (ModelKind::Diffusion, "elm")] {
        if let Some(best) = models
            .iter()
            .filter(|m| family_of(&m.name) == Some(family) && m.score.is_some())
            .max_by(|a, b| {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        {
            let label = match best.status.as_str() {
                "FAKE" | "MANIPULATED" => ModelLabel::Synthetic,
                "AUTHENTIC" => ModelLabel::Authentic,
                _ => ModelLabel::Inconclusive,
            };
            model_results.set(
                kind,
                ModelResult::ran(
                    best.score.unwrap_or_default(),
                    label,
                    format!("Reality Defender {}: {}", best.name, best.status),
                ),
            );
        }
    }
    Ok(Progress::Final(Box::new(Mapped {
        verdict,
        score,
        status,
        request_id: detail.request_id,
        models,
        reasons,
        model_results,
    })))
}

/// A model's 0..1 score: `predictionNumber` when it is a number, else `finalScore` / 100.
fn model_score(model: &Model) -> Option<f64> {
    model
        .prediction_number
        .as_ref()
        .and_then(Value::as_f64)
        .or_else(|| model.final_score.as_ref()?.as_f64().map(|s| s / 100.0))
        .map(|s| s.clamp(0.0, 1.0))
}

/// `code: message` of a reason or error object, or the text of a string.
fn reason_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => {
            let field = |k: &str| map.get(k).and_then(Value::as_str);
            match (field("code"), field("message")) {
                (Some(code), Some(message)) => Some(format!("{code}: {message}")),
                (code, message) => code.or(message).map(str::to_owned),
            }
        }
        _ => None,
    }
}

/// The detector family a model name belongs to (`rd-full-elm-img` → `elm`); ensembles have none.
fn family_of(name: &str) -> Option<&str> {
    if name.contains("ensemble") {
        return None;
    }
    ["elm", "cedar", "oak", "pine", "context", "llm"]
        .into_iter()
        .find(|family| name.split('-').any(|part| part == *family))
}

/// AI_GENERATED when the highest-scoring non-ensemble model that says FAKE detects generation
/// (diffusion, GAN, text); MANIPULATED otherwise (face swap, universal, context, or no model).
fn fake_label(models: &[VendorModel]) -> VerdictLabel {
    let top = models
        .iter()
        .filter(|m| m.status == "FAKE" && family_of(&m.name).is_some())
        .max_by(|a, b| {
            a.score
                .unwrap_or(0.0)
                .partial_cmp(&b.score.unwrap_or(0.0))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    match top.and_then(|m| family_of(&m.name)) {
        Some("elm" | "cedar" | "llm") => VerdictLabel::AiGenerated,
        _ => VerdictLabel::Manipulated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn final_of(body: &str) -> Mapped {
        match read_detail(body.as_bytes()) {
            Ok(Progress::Final(mapped)) => *mapped,
            other => panic!("not final: {other:?}"),
        }
    }

    #[test]
    fn both_pending_shapes_and_unknown_progress_words_are_pending() {
        for body in [
            r#"{"requestId":"r","overallStatus":"ANALYZING","resultsSummary":null,"models":[]}"#,
            r#"{"requestId":"r","overallStatus":"ANALYZING"}"#,
            r#"{"resultsSummary":{"status":"ANALYZING","metadata":{"finalScore":null}}}"#,
            r#"{"overallStatus":"DOWNLOADING","resultsSummary":{"metadata":{}}}"#,
            r#"{"resultsSummary":{"status":"QUEUED"}}"#,
        ] {
            assert_eq!(
                read_detail(body.as_bytes()),
                Ok(Progress::Pending),
                "{body}"
            );
        }
    }

    #[test]
    fn each_final_word_maps_as_the_table_says() {
        let authentic = final_of(
            r#"{"requestId":"r1","resultsSummary":{"status":"AUTHENTIC","metadata":{"finalScore":11}},"models":[]}"#,
        );
        assert_eq!(authentic.verdict.label, VerdictLabel::Authentic);
        assert_eq!(authentic.verdict.risk_level, RiskLevel::Low);
        assert_eq!(authentic.score, Some(0.11));
        assert_eq!(authentic.request_id.as_deref(), Some("r1"));

        let diffusion = final_of(
            r#"{"resultsSummary":{"status":"FAKE","metadata":{"finalScore":83}},"models":[
                {"name":"rd-img-ensemble","status":"FAKE","predictionNumber":0.99},
                {"name":"rd-elm-img","status":"FAKE","predictionNumber":0.975812554359436},
                {"name":"rd-oak-img","status":"FAKE","predictionNumber":0.6}]}"#,
        );
        assert_eq!(diffusion.verdict.label, VerdictLabel::AiGenerated);
        assert_eq!(diffusion.verdict.risk_level, RiskLevel::Medium);
        assert_eq!(
            diffusion
                .model_results
                .diffusion_detection
                .as_ref()
                .and_then(|m| m.score),
            Some(0.975812554359436)
        );

        let face_swap = final_of(
            r#"{"resultsSummary":{"status":"FAKE","metadata":{"finalScore":95}},"models":[
                {"name":"rd-oak-img","status":"FAKE","predictionNumber":0.97},
                {"name":"rd-elm-img","status":"AUTHENTIC","predictionNumber":0.02}]}"#,
        );
        assert_eq!(face_swap.verdict.label, VerdictLabel::Manipulated);
        assert_eq!(face_swap.verdict.risk_level, RiskLevel::High);

        // Metadata drove the conclusion: no score, still FAKE at HIGH.
        let unscored =
            final_of(r#"{"resultsSummary":{"status":"FAKE","metadata":{"finalScore":null}}}"#);
        assert_eq!(unscored.verdict.label, VerdictLabel::Manipulated);
        assert_eq!(unscored.verdict.risk_level, RiskLevel::High);
        assert_eq!(unscored.score, None);

        let suspicious =
            final_of(r#"{"resultsSummary":{"status":"SUSPICIOUS","metadata":{"finalScore":55}}}"#);
        assert_eq!(suspicious.verdict.label, VerdictLabel::Inconclusive);
        assert_eq!(suspicious.verdict.risk_level, RiskLevel::Medium);
    }

    #[test]
    fn the_documented_and_mocked_bodies_parse() {
        let fixture = |name: &str| {
            std::fs::read(format!(
                "{}/tests/fixtures/rd/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let na = read_detail(&fixture("results-summary-not-applicable.json")).unwrap();
        let Progress::Final(na) = na else {
            panic!("N/A is final")
        };
        assert_eq!(na.verdict.label, VerdictLabel::Inconclusive);
        assert_eq!(na.verdict.risk_level, RiskLevel::Medium);
        assert_eq!(na.reasons, ["relevance: no faces detected/faces too small"]);
        assert_eq!(na.score, None);

        let Progress::Final(ute) =
            read_detail(&fixture("results-summary-unable-to-evaluate.json")).unwrap()
        else {
            panic!("U_T_E is final")
        };
        assert_eq!(ute.status, "UNABLE_TO_EVALUATE");
        assert_eq!(ute.verdict.label, VerdictLabel::Inconclusive);
        assert!(ute.reasons[0].starts_with("model-error"));

        // predictionNumber as an object, a fractional finalScore, no requestId.
        let Progress::Final(object) = read_detail(&fixture(
            "python-test_sdk-get_result-predictionNumber-object.json",
        ))
        .unwrap() else {
            panic!("final")
        };
        assert_eq!(object.score, Some(0.955));
        assert_eq!(object.models.len(), 3);
        assert_eq!(object.models[1].score, None);

        for pending in [
            "java-NullResultsSummaryStatusTest-analyzing.json",
            "java-NullResultsSummaryStatusTest-downloading.json",
            "go-detection_test-analyzing.json",
        ] {
            assert_eq!(
                read_detail(&fixture(pending)),
                Ok(Progress::Pending),
                "{pending}"
            );
        }
        let Progress::Final(java) =
            read_detail(&fixture("java-DetectionServiceTest-media-detail.json")).unwrap()
        else {
            panic!("final")
        };
        assert_eq!(java.status, "FAKE");
        // The docs' placeholder strings are not a known word: refused, never guessed.
        assert!(read_detail(&fixture("media-detail-sample.json")).is_err());

        let presigned: Presigned =
            serde_json::from_slice(&fixture("rust-http-aws-presigned.json")).unwrap();
        assert!(presigned.request_id.is_some());
        assert!(presigned.response.and_then(|r| r.signed_url).is_some());
        let error: ErrorBody =
            serde_json::from_slice(&fixture("rust-http-error-400-free-tier.json")).unwrap();
        assert!(QUOTA_CODES.contains(&error.code.as_deref().unwrap_or_default()));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(read_detail(b"{not json").is_err());
        assert!(read_detail(br#"{"resultsSummary":{"status":"MAYBE"}}"#).is_err());
    }
}
