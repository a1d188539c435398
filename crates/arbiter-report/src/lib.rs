//! PDF report cards of Arbiter's decisions: a request (one image) or a case (a claim, a KYC
//! session, each of its images), made from plain data the caller gathered, with no HTTP and no
//! database here.
//!
//! A report is one or two A4 pages: each image's thumbnail, SHA-256 and reference id, the verdict
//! colour-coded with each model's or provider's result and its evidence in words, the heatmap
//! where there is one, the decision with its fired rules and the policy's id, version and
//! SHA-256, review outcomes, and the audit entries' hashes with the latest signed checkpoint that
//! covers them and the verifier key, so that a reader can check the report against an audit
//! export. The DejaVu Sans fonts are embedded (subset) and the text is selectable.
#![forbid(unsafe_code)]

mod fonts;
mod layout;
mod pdf;

pub use layout::{Layout, Page};

/// PDF report cards (`GET .../report.pdf`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// Keep a small PNG thumbnail (at most 256 px on a side) of each analysed image, per tenant
    /// and image SHA-256, for report cards; the image itself is never stored. Off: reports say
    /// that no thumbnail was kept.
    pub thumbnails: bool,
}

impl Default for ReportsConfig {
    /// The `reports:` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("reports")
    }
}

/// A report: what it is about, and the images it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The title line (`Request req_...`, `Insurance claim CLM-1`).
    pub title: String,
    /// The tenant the report was made for.
    pub tenant: String,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// The case-level decision, for a case report.
    pub case: Option<CaseSection>,
    /// The images, in the case's order (one for a request report).
    pub images: Vec<ImageSection>,
    /// What lets a reader check the report against an audit export.
    pub audit: AuditSection,
}

/// A case's own decision (its flow's roll-up over its images).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSection {
    /// What the flow calls it (`claim`, `session`).
    pub kind: String,
    /// The caller's id of the case.
    pub case_id: String,
    /// Whether every piece of evidence the flow requires is in.
    pub complete: bool,
    /// The case's decision, once there is one.
    pub decision: Option<DecisionSection>,
}

/// One image: what was found and what was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSection {
    /// A heading (`Image 2 of 3 (damage)`), or `None` for a request report.
    pub heading: Option<String>,
    /// The request that analysed it.
    pub request_id: String,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// Lowercase hex SHA-256 of the image's exact bytes.
    pub sha256: String,
    /// Format, dimensions and size, in words (`JPEG, 1024 x 768 px, 245 KB`).
    pub image_line: String,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// The kept thumbnail (PNG); `None` when none was kept.
    pub thumbnail_png: Option<Vec<u8>>,
    /// The combined verdict.
    pub verdict: VerdictSection,
    /// The detector (or route of detectors) that analysed it.
    pub detector: String,
    /// Each model's or provider's result.
    pub results: Vec<ResultLine>,
    /// A manipulation heatmap (grayscale PNG), where there is one.
    pub heatmap: Option<HeatmapSection>,
    /// The image's decision, when a flow decided.
    pub decision: Option<DecisionSection>,
    /// Review outcomes.
    pub reviews: Vec<ReviewLine>,
    /// The audit entries about this image, in chain order.
    pub entries: Vec<EntryLine>,
}

/// A verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictSection {
    /// `AUTHENTIC`, `AI_GENERATED`, `MANIPULATED` or `INCONCLUSIVE`; another word is shown in the
    /// inconclusive colour.
    pub label: String,
    /// 0..1.
    pub confidence: f64,
    /// `LOW`, `MEDIUM`, `HIGH`.
    pub risk_level: String,
}

/// One model's or provider's result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLine {
    /// The model or provider (`gan_detection`, `reality_defender`).
    pub source: String,
    /// Its conclusion and score in words (`SYNTHETIC, score 0.91`).
    pub outcome: String,
    /// What it saw, in plain words.
    pub evidence: String,
}

/// A heatmap and how to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapSection {
    /// The map as a grayscale PNG.
    pub png: Vec<u8>,
    /// How to read it (`each pixel is a 64 px square; brighter is more inconsistent`).
    pub caption: String,
}

/// A policy decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionSection {
    /// The action.
    pub action: String,
    /// The deciding rule's reason code.
    pub reason: String,
    /// The deciding rule's description, rendered.
    pub description: Option<String>,
    /// The enforced rules that matched, in evaluation order.
    pub fired: Vec<String>,
    /// `metadata.id` of the policy.
    pub policy_id: String,
    /// `metadata.version`.
    pub policy_version: u32,
    /// SHA-256 of the policy file.
    pub policy_sha256: String,
}

/// One review-queue item's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewLine {
    /// The queue.
    pub queue: String,
    /// `open`, `claimed` or `resolved`.
    pub status: String,
    /// The outcome in words (`confirmed_fake by alice at ...: escalate`).
    pub outcome: String,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryLine {
    /// Its position in the tenant's chain.
    pub seq: i64,
    /// The event (`decision.recorded`).
    pub event: String,
    /// Its `entry_hash`.
    pub entry_hash: String,
}

/// The checkpoint and key a reader checks the entries against.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSection {
    /// The latest signed checkpoint covering every entry in the report, if one is signed yet.
    pub checkpoint: Option<CheckpointLine>,
    /// The verifier key (`<log name>+<key id>+<base64 key>`).
    pub verifier_key: String,
}

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointLine {
    /// Entries covered (seq 0 to size - 1).
    pub size: i64,
    /// The `entry_hash` of entry `size - 1`.
    pub root_hash: String,
    /// When it was signed.
    pub issued_at: String,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// An embedded font could not be read (a build defect).
    #[error("the embedded font {0} could not be read")]
    Font(&'static str),
    /// The PDF writer refused the document.
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

/// Lays out a report and writes it as a PDF.
pub fn render(report: &Report) -> Result<Vec<u8>, ReportError> {
    let fonts = fonts::Fonts::load()?;
    let layout = layout::lay_out(report, &fonts);
    pdf::write(&layout, &fonts, report)
}

/// Lays out a report without writing it: its pages and what is on them.
pub fn lay_out(report: &Report) -> Result<Layout, ReportError> {
    let fonts = fonts::Fonts::load()?;
    Ok(layout::lay_out(report, &fonts))
}

/// The colour (RGB) a verdict label is shown in: green for authentic, red for AI-generated,
/// orange for manipulated, grey for inconclusive and anything else.
pub fn verdict_colour(label: &str) -> [u8; 3] {
    match label {
        "AUTHENTIC" => [0x1e, 0x7b, 0x34],
        "AI_GENERATED" => [0xc6, 0x28, 0x28],
        "MANIPULATED" => [0xd9, 0x6c, 0x00],
        _ => [0x61, 0x61, 0x61],
    }
}

/// A verdict label in words (`AI_GENERATED` -> `AI-generated`).
pub fn verdict_words(label: &str) -> String {
    match label {
        "AUTHENTIC" => "Authentic".to_owned(),
        "AI_GENERATED" => "AI-generated".to_owned(),
        "MANIPULATED" => "Manipulated".to_owned(),
        "INCONCLUSIVE" => "Inconclusive".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests;
