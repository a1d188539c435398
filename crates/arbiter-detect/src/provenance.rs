//! Provenance: C2PA Content Credentials, read and validated with the `c2pa` crate.
//!
//! Nothing is fetched: remote manifests and OCSP fetching are off, so only a manifest embedded in
//! the file is read. What a manifest may decide (see the crate's README):
//!
//! | manifest | finding |
//! |---|---|
//! | valid, declares `trainedAlgorithmicMedia` creation (itself or through a parent ingredient) | AI created |
//! | valid, declares an AI edit (`compositeWithTrainedAlgorithmicMedia`, `compositeSynthetic`, an AI component) | AI edited |
//! | signature intact but the hard binding does not match the image (`assertion.dataHash.mismatch`, ...) | changed after signing |
//! | the same, but the file cut at the image's end (JPEG EOI, PNG `IEND`) validates: only bytes after it were added | the manifest's own finding, with a note |
//! | signer in the configured trust list, `digitalCapture` / `computationalCapture`, no generative action in the chain | trusted capture |
//! | any other failure (`claimSignature.mismatch`, `assertion.hashedURI.mismatch`, ...) | claims ignored |
//!
//! `algorithmicMedia` (an image computed without a trained model) is not generative AI.

use arbiter_core::ImageFormat;

/// What a C2PA manifest establishes about an image, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenanceFinding {
    /// A valid manifest declares creation by a trained model.
    AiCreated,
    /// A valid manifest declares an edit with a trained model.
    AiEdited,
    /// The claim's signature is intact but the image (its pixels or its metadata) no longer
    /// matches its hard binding, and not only by bytes added after the image's end.
    PixelsChangedAfterSigning,
    /// A manifest from a trusted signer declares a camera capture and no generative step.
    TrustedCapture,
}

/// The provenance model's reading of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvenanceReport {
    /// The file carries a C2PA manifest store.
    pub present: bool,
    /// The active manifest validated (its claims can be used).
    pub valid: bool,
    /// The active manifest validated and its signer chains to a configured trust anchor.
    pub trusted: bool,
    /// Some manifest in the chain declares generative AI.
    pub ai_declared: bool,
    /// The signing certificate's issuer.
    pub signer: Option<String>,
    /// The active manifest's `claim_generator`.
    pub claim_generator: Option<String>,
    /// What the manifest establishes, if anything.
    pub finding: Option<ProvenanceFinding>,
    /// What was read, in plain language (one sentence each).
    pub notes: Vec<String>,
    /// Whether a trust list was configured (otherwise signers are "not verified").
    pub trust_configured: bool,
    /// A broken manifest (whose claims are ignored) declared generative AI: evidence that points
    /// towards synthesis without deciding.
    pub ignored_ai_claim: bool,
}

/// Digital source types of generative AI (IPTC NewsCodes).
const AI_CREATED: &str = "trainedAlgorithmicMedia";
const AI_EDITS: [&str; 2] = ["compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"];
const CAPTURES: [&str; 2] = ["digitalCapture", "computationalCapture"];

/// Failure codes that mean the pixels changed after signing (the claim itself is intact).
#[cfg_attr(not(feature = "c2pa"), allow(dead_code))]
const HARD_BINDING_MISMATCH: [&str; 4] = [
    "assertion.dataHash.mismatch",
    "assertion.bmffHash.mismatch",
    "assertion.boxesHash.mismatch",
    "assertion.collectionHash.mismatch",
];

/// Failure codes that do not break a manifest's claims: an untrusted signer (claims are still
/// signed, just not by a known party) and timestamp issues (only the signing time is unverified).
#[cfg_attr(not(feature = "c2pa"), allow(dead_code))]
fn is_benign_failure(code: &str) -> bool {
    code == "signingCredential.untrusted"
        || code.starts_with("timeStamp.")
        || code.starts_with("signingCredential.ocsp.")
}

/// Why the C2PA reader could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    /// The trust anchors file could not be read.
    #[error("cannot read the C2PA trust anchors {path}: {source}")]
    TrustAnchors {
        /// The configured path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The C2PA settings were refused (for example a trust anchors file that is not PEM).
    #[error("C2PA settings refused: {0}")]
    Settings(String),
}

/// Reads C2PA manifests with a fixed configuration (trust anchors, no network).
#[derive(Clone)]
pub struct ProvenanceReader {
    #[cfg(feature = "c2pa")]
    context: std::sync::Arc<c2pa::Context>,
    trust_configured: bool,
}

impl std::fmt::Debug for ProvenanceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvenanceReader")
            .field("trust_configured", &self.trust_configured)
            .finish_non_exhaustive()
    }
}

impl ProvenanceReader {
    /// A reader trusting the signers that chain to `trust_anchors_pem` (a PEM bundle), or no
    /// signer at all.
    pub fn new(trust_anchors_pem: Option<&str>) -> Result<Self, ProvenanceError> {
        #[cfg(feature = "c2pa")]
        {
            let mut settings = serde_json::json!({
                "verify": {
                    "verify_after_reading": true,
                    "remote_manifest_fetch": false,
                    "ocsp_fetch": false,
                    "verify_trust": true,
                },
            });
            if let Some(pem) = trust_anchors_pem {
                settings["trust"] = serde_json::json!({ "trust_anchors": pem });
            }
            let context = c2pa::Context::new()
                .with_settings(settings.to_string().as_str())
                .map_err(|err| ProvenanceError::Settings(err.to_string()))?;
            Ok(Self {
                context: context.into_shared(),
                trust_configured: trust_anchors_pem.is_some(),
            })
        }
        #[cfg(not(feature = "c2pa"))]
        Ok(Self {
            trust_configured: trust_anchors_pem.is_some(),
        })
    }

    /// A reader with no trust anchors.
    pub fn untrusted() -> Self {
        // Settings without trust anchors are always accepted; the fallback keeps the library's
        // defaults (this build has no network code either way).
        Self::new(None).unwrap_or_else(|_| fallback_reader())
    }

    /// Whether C2PA support is compiled in.
    pub fn available() -> bool {
        cfg!(feature = "c2pa")
    }

    /// Reads and validates the file's manifest store, if it has one. Never panics: a panic
    /// inside the C2PA library is caught and reported as an unreadable manifest.
    #[cfg_attr(not(feature = "c2pa"), allow(unused_mut))]
    pub fn read(&self, format: ImageFormat, bytes: &[u8]) -> ProvenanceReport {
        let mut report = ProvenanceReport {
            trust_configured: self.trust_configured,
            ..ProvenanceReport::default()
        };
        #[cfg(feature = "c2pa")]
        {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.read_c2pa(format, bytes, &mut report)
            }));
            if outcome.is_err() {
                report.present = true;
                report.valid = false;
                report.finding = None;
                report
                    .notes
                    .push("the C2PA manifest could not be read; its claims are ignored".to_owned());
            }
        }
        #[cfg(not(feature = "c2pa"))]
        {
            let _ = (format, bytes);
        }
        report
    }

    #[cfg(feature = "c2pa")]
    fn read_c2pa(&self, format: ImageFormat, bytes: &[u8], report: &mut ProvenanceReport) {
        let mime = match format {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Webp => "image/webp",
            ImageFormat::Heic => "image/heic",
            ImageFormat::Tiff => "image/tiff",
            // BMP has no place for a manifest.
            ImageFormat::Bmp => return,
        };
        if !might_carry_c2pa(format, bytes) {
            return;
        }
        let reader = c2pa::Reader::from_shared_context(&self.context)
            .with_stream(mime, std::io::Cursor::new(bytes));
        let reader = match reader {
            Ok(reader) => reader,
            Err(c2pa::Error::JumbfNotFound | c2pa::Error::ProvenanceMissing) => return,
            Err(err) => {
                report.present = true;
                report.notes.push(format!(
                    "a C2PA manifest is present but could not be validated ({err}); its claims are ignored"
                ));
                return;
            }
        };
        report.present = true;
        let store: serde_json::Value =
            serde_json::from_str(&reader.json()).unwrap_or(serde_json::Value::Null);
        let Some(active_label) = reader.active_label().map(str::to_owned) else {
            report.notes.push(
                "the C2PA manifest store has no active manifest; nothing is claimed".to_owned(),
            );
            return;
        };
        let active = &store["manifests"][active_label.as_str()];
        report.claim_generator = active["claim_generator"]
            .as_str()
            .or_else(|| active["claim_generator_info"][0]["name"].as_str())
            .map(|s| s.chars().take(200).collect());
        report.signer = active["signature_info"]["issuer"]
            .as_str()
            .or_else(|| active["signature_info"]["common_name"].as_str())
            .map(|s| s.chars().take(200).collect());

        let failures: Vec<String> = reader
            .validation_results()
            .and_then(|r| r.active_manifest())
            .map(|codes| {
                codes
                    .failure()
                    .iter()
                    .map(|s| s.code().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let hard_binding: Vec<&String> = failures
            .iter()
            .filter(|c| HARD_BINDING_MISMATCH.contains(&c.as_str()))
            .collect();
        let broken: Vec<&String> = failures
            .iter()
            .filter(|c| !HARD_BINDING_MISMATCH.contains(&c.as_str()) && !is_benign_failure(c))
            .collect();
        let state = reader.validation_state();
        let chain = Chain::walk(&store, &active_label);
        report.ai_declared = chain.ai_created.is_some() || chain.ai_edit.is_some();
        let signer = report.signer.as_deref().unwrap_or("an unnamed signer");
        let generator = report
            .claim_generator
            .as_deref()
            .unwrap_or("unnamed software");

        if !broken.is_empty() {
            report.ai_declared = false;
            report.ignored_ai_claim = chain.ai_created.is_some() || chain.ai_edit.is_some();
            let claimed = if report.ignored_ai_claim {
                " (they included a generative-AI declaration)"
            } else {
                ""
            };
            report.notes.push(format!(
                "a C2PA manifest is present but broken ({}); its claims are ignored{claimed}",
                join_codes(&broken)
            ));
            return;
        }
        if !hard_binding.is_empty() {
            // The hard binding covers the whole file. When only bytes after the image's end
            // were added, the file cut at that end validates: the image is what was signed.
            let end = crate::container::image_end(format, bytes).filter(|end| *end < bytes.len());
            if let Some(end) = end {
                let mut intact = ProvenanceReport {
                    trust_configured: self.trust_configured,
                    ..ProvenanceReport::default()
                };
                self.read_c2pa(format, &bytes[..end], &mut intact);
                if intact.valid {
                    let added = bytes.len() - end;
                    let note = format!(
                        "the file changed after signing only by {added} bytes added after the end of the {format} image: the image itself matches the manifest (the file without them validates), so its claims stand"
                    );
                    *report = intact;
                    report.notes.insert(report.notes.len().min(1), note);
                    return;
                }
            }
            report.finding = Some(ProvenanceFinding::PixelsChangedAfterSigning);
            let only = if end.is_some() {
                ", and not only by bytes added after its end"
            } else {
                ""
            };
            let mut note = format!(
                "the C2PA manifest signed by {signer} is intact, but the image changed after signing ({}){only}: its pixels or its metadata (a re-save or a metadata edit breaks the binding as a pixel edit does)",
                join_codes(&hard_binding)
            );
            if let Some(ai) = &chain.ai_created {
                note.push_str(&format!(
                    "; the signed content was declared AI-generated ({ai})"
                ));
            } else if let Some(ai) = &chain.ai_edit {
                note.push_str(&format!(
                    "; the signed content was declared AI-edited ({ai})"
                ));
            }
            report.notes.push(note);
            return;
        }
        report.valid = matches!(
            state,
            c2pa::ValidationState::Valid | c2pa::ValidationState::Trusted
        );
        if !report.valid {
            report.notes.push(
                "a C2PA manifest is present but did not validate; its claims are ignored"
                    .to_owned(),
            );
            return;
        }
        report.trusted = state == c2pa::ValidationState::Trusted;
        let who = if report.trusted {
            format!("signed by {signer}, a trusted signer")
        } else if self.trust_configured {
            format!("signed by {signer}, who is not in the configured trust list")
        } else {
            format!("signed by {signer}, not verified: no C2PA trust list is configured")
        };
        report.notes.push(format!(
            "a valid C2PA manifest written by {generator}, {who}"
        ));
        if let Some(ai) = chain.ai_created {
            report.finding = Some(ProvenanceFinding::AiCreated);
            report
                .notes
                .push(format!("it declares creation by generative AI ({ai})"));
        } else if let Some(ai) = chain.ai_edit {
            report.finding = Some(ProvenanceFinding::AiEdited);
            report
                .notes
                .push(format!("it declares an edit with generative AI ({ai})"));
        } else if let Some(capture) = chain.capture {
            if report.trusted {
                report.finding = Some(ProvenanceFinding::TrustedCapture);
                report.notes.push(format!(
                    "it declares a camera capture ({capture}) and no generative step"
                ));
            } else {
                report.notes.push(format!(
                    "it declares a camera capture ({capture}), which counts only from a trusted signer"
                ));
            }
        } else if let Some(other) = chain.other_source {
            report.notes.push(format!(
                "it declares the source {other}, which is not generative AI"
            ));
        } else {
            report
                .notes
                .push("it declares no generative AI and no capture".to_owned());
        }
        if !chain.actions.is_empty() {
            report
                .notes
                .push(format!("recorded actions: {}", chain.actions.join(", ")));
        }
    }
}

#[cfg(not(feature = "c2pa"))]
fn fallback_reader() -> ProvenanceReader {
    ProvenanceReader {
        trust_configured: false,
    }
}

#[cfg(feature = "c2pa")]
fn fallback_reader() -> ProvenanceReader {
    ProvenanceReader {
        context: c2pa::Context::new().into_shared(),
        trust_configured: false,
    }
}

#[cfg_attr(not(feature = "c2pa"), allow(dead_code))]
fn join_codes(codes: &[&String]) -> String {
    let mut codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    codes.join(", ")
}

/// A cheap structural test for the places a manifest can live, so that files without one never
/// pay for the C2PA reader: JPEG APP11 segments, the PNG `caBX` chunk, the RIFF `C2PA` chunk,
/// top-level ISO-BMFF `uuid` boxes, and the `c2pa` JUMBF label anywhere in a TIFF.
#[cfg(feature = "c2pa")]
fn might_carry_c2pa(format: ImageFormat, bytes: &[u8]) -> bool {
    use crate::container::{bmff_boxes, find, jpeg_segments, png_chunks, riff_chunks};
    match format {
        ImageFormat::Jpeg => jpeg_segments(bytes).any(|(marker, _)| marker == 0xEB),
        ImageFormat::Png => png_chunks(bytes).any(|(kind, _)| &kind == b"caBX"),
        ImageFormat::Webp => riff_chunks(bytes).any(|(kind, _)| &kind == b"C2PA"),
        ImageFormat::Heic => bmff_boxes(bytes).any(|(kind, _)| &kind == b"uuid"),
        ImageFormat::Tiff => find(bytes, b"c2pa").is_some(),
        ImageFormat::Bmp => false,
    }
}

/// What the manifests of an asset's chain declare (the active manifest and its ingredients').
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "c2pa"), allow(dead_code))]
struct Chain {
    ai_created: Option<String>,
    ai_edit: Option<String>,
    capture: Option<String>,
    other_source: Option<String>,
    actions: Vec<String>,
}

#[cfg_attr(not(feature = "c2pa"), allow(dead_code))]
impl Chain {
    const MAX_DEPTH: usize = 16;
    const MAX_MANIFESTS: usize = 256;

    fn walk(store: &serde_json::Value, active: &str) -> Self {
        let mut chain = Chain::default();
        let mut visited = Vec::new();
        chain.visit(store, active, Relation::Active, 0, &mut visited);
        chain
    }

    fn visit(
        &mut self,
        store: &serde_json::Value,
        label: &str,
        relation: Relation,
        depth: usize,
        visited: &mut Vec<String>,
    ) {
        if depth > Self::MAX_DEPTH
            || visited.len() >= Self::MAX_MANIFESTS
            || visited.iter().any(|v| v == label)
        {
            return;
        }
        visited.push(label.to_owned());
        let manifest = &store["manifests"][label];
        let empty = Vec::new();
        let where_ = match relation {
            Relation::Active => "the active manifest".to_owned(),
            Relation::Parent => format!(
                "parent ingredient by {}",
                manifest["claim_generator"]
                    .as_str()
                    .unwrap_or("unnamed software")
            ),
            Relation::Component => format!(
                "component ingredient by {}",
                manifest["claim_generator"]
                    .as_str()
                    .unwrap_or("unnamed software")
            ),
        };
        for assertion in manifest["assertions"].as_array().unwrap_or(&empty) {
            let is_actions = assertion["label"]
                .as_str()
                .is_some_and(|l| l.starts_with("c2pa.actions"));
            if !is_actions {
                continue;
            }
            for action in assertion["data"]["actions"].as_array().unwrap_or(&empty) {
                let name = action["action"].as_str().unwrap_or("an unnamed action");
                if relation == Relation::Active && self.actions.len() < 16 {
                    let name = name.chars().take(60).collect::<String>();
                    if !self.actions.contains(&name) {
                        self.actions.push(name);
                    }
                }
                let source = action["digitalSourceType"]
                    .as_str()
                    .or_else(|| action["parameters"]["digitalSourceType"].as_str())
                    .map(|s| s.rsplit('/').next().unwrap_or(s));
                let Some(source) = source else { continue };
                let agent = match &action["softwareAgent"] {
                    serde_json::Value::String(s) => Some(s.as_str()),
                    serde_json::Value::Object(o) => o.get("name").and_then(|n| n.as_str()),
                    _ => None,
                };
                let said = match agent {
                    Some(agent) => format!("{name} {source} by {agent} in {where_}"),
                    None => format!("{name} {source} in {where_}"),
                };
                let said: String = said.chars().take(300).collect();
                let created = name == "c2pa.created";
                if source == AI_CREATED && created && relation != Relation::Component {
                    self.ai_created.get_or_insert(said);
                } else if source == AI_CREATED || AI_EDITS.contains(&source) {
                    self.ai_edit.get_or_insert(said);
                } else if CAPTURES.contains(&source) && created && relation != Relation::Component {
                    self.capture.get_or_insert(said);
                } else {
                    self.other_source.get_or_insert(said);
                }
            }
        }
        for ingredient in manifest["ingredients"].as_array().unwrap_or(&empty) {
            let Some(child) = ingredient["active_manifest"].as_str() else {
                continue;
            };
            let relation = match ingredient["relationship"].as_str() {
                Some("componentOf") => Relation::Component,
                // parentOf, inputTo and unnamed relationships carry the parent's nature.
                _ => Relation::Parent,
            };
            self.visit(store, child, relation, depth + 1, visited);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "c2pa"), allow(dead_code))]
enum Relation {
    Active,
    Parent,
    Component,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_ai_parent_makes_a_cropped_child_ai_created_and_components_are_edits() {
        let store = json!({"manifests": {
            "child": {"assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [{"action": "c2pa.cropped"}]}}],
                      "ingredients": [{"relationship": "parentOf", "active_manifest": "parent"}]},
            "parent": {"claim_generator": "Gen", "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"}]}}]}
        }});
        let chain = Chain::walk(&store, "child");
        assert!(chain.ai_created.is_some(), "{chain:?}");
        assert_eq!(chain.actions, vec!["c2pa.cropped"]);

        let mut store = store;
        store["manifests"]["child"]["ingredients"][0]["relationship"] = json!("componentOf");
        let chain = Chain::walk(&store, "child");
        assert!(chain.ai_created.is_none());
        assert!(chain.ai_edit.is_some());
    }

    #[test]
    fn algorithmic_media_is_not_ai_and_cycles_end() {
        let store = json!({"manifests": {
            "a": {"assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia"}]}}],
                  "ingredients": [{"active_manifest": "b"}]},
            "b": {"ingredients": [{"active_manifest": "a"}]}
        }});
        let chain = Chain::walk(&store, "a");
        assert!(chain.ai_created.is_none() && chain.ai_edit.is_none());
        assert!(chain.other_source.unwrap().contains("algorithmicMedia"));
    }
}
