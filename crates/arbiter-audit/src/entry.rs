//! Audit entries in the format of the audit reference (v1): canonical JSON (RFC 8785), no
//! floats, optional fields omitted, chained by `prev_hash`.

use arbiter_core::{Analysis, Decision, PolicyRef, RequestId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `prev_hash` of the first entry of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The entry format version.
pub const FORMAT_VERSION: u8 = 1;

/// A verdict without floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictBp {
    /// `AI_GENERATED`, ...
    pub label: String,
    /// Confidence in basis points.
    pub confidence_bp: i64,
    /// `HIGH`, ...
    pub risk_level: String,
}

/// The analysis fields shared by `analysis.recorded` and `decision.recorded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisFields {
    /// The request.
    pub request_id: String,
    /// The caller's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// SHA-256 of the image's exact bytes.
    pub image_sha256: String,
    /// The detector.
    pub detector: String,
    /// The verdict.
    pub verdict: VerdictBp,
    /// Each model's score in basis points, by short name; models that did not run are absent.
    pub scores: BTreeMap<String, i64>,
    /// What each detector of a route or vendor said, by name; absent for the local detector
    /// alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderFields>,
}

/// One detector's part in an analysis, without floats: its status, the vendor's ids and the
/// SHA-256 of the vendor's raw answer, so the stored answer can be matched to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderFields {
    /// `OK`, `FAILED` or `SKIPPED`.
    pub status: String,
    /// The vendor's word for its conclusion (`FAKE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_status: Option<String>,
    /// Its verdict label in Arbiter's vocabulary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Its score in basis points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_bp: Option<i64>,
    /// The vendor's id for the analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_request_id: Option<String>,
    /// Each vendor model's score in basis points, by the vendor's model name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, i64>,
    /// SHA-256 of the vendor's raw final answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_sha256: Option<String>,
}

impl AnalysisFields {
    /// The fields of an analysis.
    pub fn new(request_id: &RequestId, reference_id: Option<&str>, analysis: &Analysis) -> Self {
        let scores = analysis
            .model_results
            .iter()
            .filter_map(|(model, result)| {
                Some((
                    model.short_name().to_owned(),
                    arbiter_core::verdict::to_basis_points(result.score?),
                ))
            })
            .collect();
        Self {
            request_id: request_id.to_string(),
            reference_id: reference_id.map(str::to_owned),
            image_sha256: analysis.image_info.sha256.clone(),
            detector: analysis.detector.clone(),
            verdict: VerdictBp {
                label: analysis.verdict.label.as_str().to_owned(),
                confidence_bp: analysis.verdict.confidence_bp(),
                risk_level: analysis.verdict.risk_level.as_str().to_owned(),
            },
            scores,
            providers: analysis
                .providers
                .iter()
                .map(|run| {
                    let bp = arbiter_core::verdict::to_basis_points;
                    let fields = ProviderFields {
                        status: run.status.as_str().to_owned(),
                        vendor_status: run.vendor_status.clone(),
                        label: run.verdict.map(|v| v.label.as_str().to_owned()),
                        score_bp: run.score.map(bp),
                        vendor_request_id: run.vendor_request_id.clone(),
                        models: run
                            .models
                            .iter()
                            .filter_map(|m| Some((m.name.clone(), bp(m.score?))))
                            .collect(),
                        answer_sha256: run.answer_sha256.clone(),
                    };
                    (run.name.clone(), fields)
                })
                .collect(),
        }
    }
}

/// What an entry records. New events may be added; verifiers check the chain whatever the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum Event {
    /// A policy decision about one image.
    #[serde(rename = "decision.recorded")]
    DecisionRecorded {
        /// The analysis.
        #[serde(flatten)]
        analysis: AnalysisFields,
        /// The flow.
        flow: String,
        /// The deciding policy.
        policy: PolicyRef,
        /// Fired rule ids, in order.
        rules: Vec<String>,
        /// Actions, in execution order.
        actions: Vec<String>,
    },
    /// A plain analysis, with no policy.
    #[serde(rename = "analysis.recorded")]
    AnalysisRecorded {
        /// The analysis.
        #[serde(flatten)]
        analysis: AnalysisFields,
    },
    /// A webhook delivery that exhausted its retries.
    #[serde(rename = "webhook.abandoned")]
    WebhookAbandoned {
        /// The request the delivery was about.
        request_id: String,
        /// The caller's reference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference_id: Option<String>,
        /// The endpoint's name or id.
        endpoint: String,
        /// How many attempts were made.
        attempts: u32,
        /// Why it was abandoned.
        detail: String,
    },
    /// A policy version was made live.
    #[serde(rename = "policy.activated")]
    PolicyActivated {
        /// The policy now live.
        policy: PolicyRef,
        /// Who activated it (an API key id or an operator name, never an e-mail address).
        actor: String,
        /// The version it replaced; absent for a first activation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_version: Option<u32>,
    },
    /// A policy version was proposed; it goes live only when another person approves it.
    #[serde(rename = "policy.proposed")]
    PolicyProposed {
        /// The proposed version.
        policy: PolicyRef,
        /// The proposal (`prop_...`).
        proposal_id: String,
        /// Who proposed it (an operator name, never an e-mail address).
        proposed_by: String,
        /// The live version when it was proposed; absent when the flow had none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_version: Option<u32>,
        /// For a rollback, the version it restores.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollback_to: Option<u32>,
    },
    /// A second person approved a proposed policy version (a `policy.activated` entry follows).
    #[serde(rename = "policy.approved")]
    PolicyApproved {
        /// The approved version.
        policy: PolicyRef,
        /// The proposal.
        proposal_id: String,
        /// Who proposed it.
        proposed_by: String,
        /// Who approved it, never the proposer.
        approved_by: String,
    },
    /// A proposed policy version was rejected.
    #[serde(rename = "policy.rejected")]
    PolicyRejected {
        /// The rejected version.
        policy: PolicyRef,
        /// The proposal.
        proposal_id: String,
        /// Who proposed it.
        proposed_by: String,
        /// Who rejected it.
        rejected_by: String,
        /// Why.
        reason: String,
    },
    /// A reviewer claimed a review-queue item (took it to look at).
    #[serde(rename = "review.claimed")]
    ReviewClaimed {
        /// The request under review.
        request_id: String,
        /// The caller's reference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference_id: Option<String>,
        /// The review queue.
        queue: String,
        /// Who claimed it (a reviewer id or console user id, never a name).
        actor: String,
        /// The API key it was claimed through (its id; `console` for the console); absent for
        /// the operator's command line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
    },
    /// A reviewer resolved a review-queue item.
    #[serde(rename = "review.resolved")]
    ReviewResolved {
        /// The request under review.
        request_id: String,
        /// The caller's reference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference_id: Option<String>,
        /// The review queue.
        queue: String,
        /// Who resolved it (a reviewer id, never a name).
        actor: String,
        /// The API key it was resolved through (its id); absent for the operator's command line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        /// The reviewer's label.
        label: String,
        /// The action taken.
        action: String,
    },
    /// A case's decision (an insurance claim, a KYC session) changed: its action, or whether
    /// the case holds all the evidence its flow requires.
    #[serde(rename = "case.decided")]
    CaseDecided {
        /// The flow.
        flow: String,
        /// The caller's id of the case (a claim id, a session id).
        case_id: String,
        /// The image whose decision decides the case.
        request_id: String,
        /// That image's reference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference_id: Option<String>,
        /// The case's action.
        action: String,
        /// The policy that decided.
        policy: PolicyRef,
        /// The rules that fired on the deciding image, in order.
        rules: Vec<String>,
        /// Whether the case holds all the evidence its flow requires (the decision is final).
        complete: bool,
    },
    /// An API key was created.
    #[serde(rename = "key.created")]
    KeyCreated {
        /// The key's public prefix, never the secret.
        key_id: String,
        /// Who created it.
        actor: String,
    },
    /// An API key was revoked.
    #[serde(rename = "key.revoked")]
    KeyRevoked {
        /// The key's public prefix, never the secret.
        key_id: String,
        /// Who revoked it.
        actor: String,
    },
    /// A person signed in to the console.
    #[serde(rename = "console.signed_in")]
    ConsoleSignedIn {
        /// The console user's id.
        actor: String,
        /// Their role.
        role: String,
        /// How they signed in when not with a password: `oidc` for single sign-on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
    },
    /// A person signed out of the console.
    #[serde(rename = "console.signed_out")]
    ConsoleSignedOut {
        /// The console user's id.
        actor: String,
    },
    /// A console sign-in was refused (never with the password typed).
    #[serde(rename = "console.sign_in_failed")]
    ConsoleSignInFailed {
        /// The user id typed.
        actor: String,
        /// `wrong_password`, `unknown_user`, `disabled` or `throttled`; for single sign-on
        /// `oidc_` and what failed (`oidc_state`, `oidc_signature`, `oidc_no_role`, ...).
        reason: String,
    },
}

impl Event {
    /// A `decision.recorded` event.
    pub fn decision(
        request_id: &RequestId,
        reference_id: Option<&str>,
        flow: &str,
        analysis: &Analysis,
        decision: &Decision,
    ) -> Self {
        Event::DecisionRecorded {
            analysis: AnalysisFields::new(request_id, reference_id, analysis),
            flow: flow.to_owned(),
            policy: decision.policy.clone(),
            rules: decision.fired.clone(),
            actions: vec![decision.action.clone()],
        }
    }

    /// The event's name (`decision.recorded`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::DecisionRecorded { .. } => "decision.recorded",
            Event::AnalysisRecorded { .. } => "analysis.recorded",
            Event::WebhookAbandoned { .. } => "webhook.abandoned",
            Event::PolicyActivated { .. } => "policy.activated",
            Event::PolicyProposed { .. } => "policy.proposed",
            Event::PolicyApproved { .. } => "policy.approved",
            Event::PolicyRejected { .. } => "policy.rejected",
            Event::ReviewClaimed { .. } => "review.claimed",
            Event::ReviewResolved { .. } => "review.resolved",
            Event::CaseDecided { .. } => "case.decided",
            Event::KeyCreated { .. } => "key.created",
            Event::KeyRevoked { .. } => "key.revoked",
            Event::ConsoleSignedIn { .. } => "console.signed_in",
            Event::ConsoleSignedOut { .. } => "console.signed_out",
            Event::ConsoleSignInFailed { .. } => "console.sign_in_failed",
        }
    }

    /// The request the event is about.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Event::DecisionRecorded { analysis, .. } | Event::AnalysisRecorded { analysis } => {
                Some(&analysis.request_id)
            }
            Event::WebhookAbandoned { request_id, .. }
            | Event::ReviewClaimed { request_id, .. }
            | Event::ReviewResolved { request_id, .. }
            | Event::CaseDecided { request_id, .. } => Some(request_id),
            Event::PolicyActivated { .. }
            | Event::PolicyProposed { .. }
            | Event::PolicyApproved { .. }
            | Event::PolicyRejected { .. }
            | Event::KeyCreated { .. }
            | Event::KeyRevoked { .. }
            | Event::ConsoleSignedIn { .. }
            | Event::ConsoleSignedOut { .. }
            | Event::ConsoleSignInFailed { .. } => None,
        }
    }

    /// The caller's reference the event is about.
    pub fn reference_id(&self) -> Option<&str> {
        match self {
            Event::DecisionRecorded { analysis, .. } | Event::AnalysisRecorded { analysis } => {
                analysis.reference_id.as_deref()
            }
            Event::WebhookAbandoned { reference_id, .. }
            | Event::ReviewClaimed { reference_id, .. }
            | Event::ReviewResolved { reference_id, .. }
            | Event::CaseDecided { reference_id, .. } => reference_id.as_deref(),
            Event::PolicyActivated { .. }
            | Event::PolicyProposed { .. }
            | Event::PolicyApproved { .. }
            | Event::PolicyRejected { .. }
            | Event::KeyCreated { .. }
            | Event::KeyRevoked { .. }
            | Event::ConsoleSignedIn { .. }
            | Event::ConsoleSignedOut { .. }
            | Event::ConsoleSignInFailed { .. } => None,
        }
    }

    /// The image the event is about.
    pub fn image_sha256(&self) -> Option<&str> {
        match self {
            Event::DecisionRecorded { analysis, .. } | Event::AnalysisRecorded { analysis } => {
                Some(&analysis.image_sha256)
            }
            _ => None,
        }
    }
}

/// One entry of a tenant's chain, without its `entry_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Format version (1).
    pub v: u8,
    /// Position in the chain, gapless from 0.
    pub seq: u64,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// UTC, exactly milliseconds, `Z`.
    pub ts: String,
    /// The tenant.
    pub tenant: String,
    /// What is recorded.
    #[serde(flatten)]
    pub event: Event,
}

/// Why an entry could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode an audit entry: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

impl Entry {
    /// The RFC 8785 canonical JSON of the entry (without `entry_hash`): the bytes that are hashed.
    pub fn canonical(&self) -> Result<String, EncodeError> {
        Ok(serde_jcs::to_string(self)?)
    }

    /// The canonical JSON with `entry_hash` added, as one export line.
    pub fn canonical_with_hash(&self, entry_hash: &str) -> Result<String, EncodeError> {
        let mut value = serde_json::to_value(self)?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("entry_hash".to_owned(), entry_hash.into());
        }
        Ok(serde_jcs::to_string(&value)?)
    }
}

/// Lowercase hex SHA-256 of canonical bytes.
pub fn entry_hash(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// A timestamp as entries write it: UTC, exactly milliseconds, `Z`.
pub fn format_ts(ts: DateTime<Utc>) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[allow(clippy::too_many_arguments)]
    fn decision_entry(
        seq: u64,
        prev: &str,
        ts: &str,
        photo: &str,
        verdict: VerdictBp,
        scores: &[(&str, i64)],
        rules: &[&str],
        action: &str,
    ) -> Entry {
        Entry {
            v: 1,
            seq,
            prev_hash: prev.to_owned(),
            ts: ts.to_owned(),
            tenant: "acme".to_owned(),
            event: Event::DecisionRecorded {
                analysis: AnalysisFields {
                    request_id: format!("req_01JH000000000000000000000{}", seq + 1),
                    reference_id: Some(format!("claim-1001-{photo}")),
                    image_sha256: sha(photo),
                    detector: "local".to_owned(),
                    verdict,
                    scores: scores.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
                    providers: Default::default(),
                },
                flow: "insurance".to_owned(),
                policy: PolicyRef {
                    id: "insurance.fnol".to_owned(),
                    version: 3,
                    sha256: sha("policy-v3"),
                },
                rules: rules.iter().map(|r| (*r).to_owned()).collect(),
                actions: vec![action.to_owned()],
            },
        }
    }

    /// The normative vectors of the audit reference, byte for byte.
    #[test]
    fn reproduces_the_reference_test_vectors() {
        let first = decision_entry(
            0,
            GENESIS_HASH,
            "2026-01-15T10:00:00.000Z",
            "photo-a",
            VerdictBp {
                label: "AI_GENERATED".into(),
                confidence_bp: 9400,
                risk_level: "HIGH".into(),
            },
            &[("frequency", 8800), ("metadata", 9500)],
            &["siu-high-risk"],
            "siu_escalation",
        );
        let canonical = first.canonical().unwrap();
        assert_eq!(
            canonical,
            r#"{"actions":["siu_escalation"],"detector":"local","event":"decision.recorded","flow":"insurance","image_sha256":"f5b3ba83db432e3605e941c0587b0b1c12ce90c5392567e6eccdd4a558181931","policy":{"id":"insurance.fnol","sha256":"91ef1697b95bbfd4ceb80325d2525c10b913b6e7b13f584b332080c2b4b052ee","version":3},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","reference_id":"claim-1001-photo-a","request_id":"req_01JH0000000000000000000001","rules":["siu-high-risk"],"scores":{"frequency":8800,"metadata":9500},"seq":0,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1,"verdict":{"confidence_bp":9400,"label":"AI_GENERATED","risk_level":"HIGH"}}"#
        );
        let first_hash = entry_hash(&canonical);
        assert_eq!(
            first_hash,
            "0e11e83ebc803fb47278815bfcb30949c322a22f3fd4cf258617999383edc789"
        );

        let second = decision_entry(
            1,
            &first_hash,
            "2026-01-15T10:00:01.250Z",
            "photo-b",
            VerdictBp {
                label: "AUTHENTIC".into(),
                confidence_bp: 1200,
                risk_level: "LOW".into(),
            },
            &[("metadata", 500)],
            &[],
            "proceed",
        );
        let second_hash = entry_hash(&second.canonical().unwrap());
        assert_eq!(
            second_hash,
            "8c8cad635651db27f77afef657348198ff77924bfa2a7c980623981c9e896aea"
        );

        let third = Entry {
            v: 1,
            seq: 2,
            prev_hash: second_hash,
            ts: "2026-01-15T10:05:00.000Z".into(),
            tenant: "acme".into(),
            event: Event::WebhookAbandoned {
                request_id: "req_01JH0000000000000000000001".into(),
                reference_id: Some("claim-1001-photo-a".into()),
                endpoint: "claims-system".into(),
                attempts: 6,
                detail: "ünreachable after 6 attempts".into(),
            },
        };
        let third_hash = entry_hash(&third.canonical().unwrap());
        assert_eq!(
            third_hash,
            "0f2c05a183824bd99a22446d78a5e5be79a4e5f96f160183501d0132b5d6c7f4"
        );
        assert_eq!(
            third.canonical_with_hash(&third_hash).unwrap(),
            r#"{"attempts":6,"detail":"ünreachable after 6 attempts","endpoint":"claims-system","entry_hash":"0f2c05a183824bd99a22446d78a5e5be79a4e5f96f160183501d0132b5d6c7f4","event":"webhook.abandoned","prev_hash":"8c8cad635651db27f77afef657348198ff77924bfa2a7c980623981c9e896aea","reference_id":"claim-1001-photo-a","request_id":"req_01JH0000000000000000000001","seq":2,"tenant":"acme","ts":"2026-01-15T10:05:00.000Z","v":1}"#
        );
    }

    #[test]
    fn canonical_entries_parse_back_to_the_same_entry() {
        let entry = decision_entry(
            0,
            GENESIS_HASH,
            "2026-01-15T10:00:00.000Z",
            "photo-a",
            VerdictBp {
                label: "INCONCLUSIVE".into(),
                confidence_bp: 0,
                risk_level: "LOW".into(),
            },
            &[],
            &[],
            "adjuster_review",
        );
        let parsed: Entry = serde_json::from_str(&entry.canonical().unwrap()).unwrap();
        assert_eq!(parsed, entry);
    }

    fn shape(event: Event) -> String {
        Entry {
            v: 1,
            seq: 4,
            prev_hash: GENESIS_HASH.to_owned(),
            ts: "2026-01-15T10:00:00.000Z".into(),
            tenant: "acme".into(),
            event,
        }
        .canonical()
        .unwrap()
        .replace(
            r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
            "",
        )
    }

    /// The later events of the reference's field table, in canonical form.
    #[test]
    fn policy_review_and_key_events_have_the_reference_fields() {
        let policy = PolicyRef {
            id: "insurance.fnol".into(),
            version: 4,
            sha256: sha("policy-v4"),
        };
        let cases = [
            (
                Event::PolicyActivated {
                    policy: policy.clone(),
                    actor: "key_01JH".into(),
                    previous_version: Some(3),
                },
                format!(
                    r#"{{"actor":"key_01JH","event":"policy.activated","policy":{{"id":"insurance.fnol","sha256":"{}","version":4}},"previous_version":3,"seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}}"#,
                    sha("policy-v4")
                ),
            ),
            (
                Event::CaseDecided {
                    flow: "kyc".into(),
                    case_id: "kyc-1".into(),
                    request_id: "req_2".into(),
                    reference_id: None,
                    action: "approve".into(),
                    policy: policy.clone(),
                    rules: vec!["approve-low-risk-live".into()],
                    complete: true,
                },
                format!(
                    r#"{{"action":"approve","case_id":"kyc-1","complete":true,"event":"case.decided","flow":"kyc","policy":{{"id":"insurance.fnol","sha256":"{}","version":4}},"request_id":"req_2","rules":["approve-low-risk-live"],"seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}}"#,
                    sha("policy-v4")
                ),
            ),
            (
                Event::PolicyActivated {
                    policy: policy.clone(),
                    actor: "cli".into(),
                    previous_version: None,
                },
                format!(
                    r#"{{"actor":"cli","event":"policy.activated","policy":{{"id":"insurance.fnol","sha256":"{}","version":4}},"seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}}"#,
                    sha("policy-v4")
                ),
            ),
            (
                Event::PolicyProposed {
                    policy: policy.clone(),
                    proposal_id: "prop_01JH".into(),
                    proposed_by: "alice".into(),
                    previous_version: Some(3),
                    rollback_to: None,
                },
                format!(
                    r#"{{"event":"policy.proposed","policy":{{"id":"insurance.fnol","sha256":"{}","version":4}},"previous_version":3,"proposal_id":"prop_01JH","proposed_by":"alice","seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}}"#,
                    sha("policy-v4")
                ),
            ),
            (
                Event::PolicyProposed {
                    policy: policy.clone(),
                    proposal_id: "prop_01JH".into(),
                    proposed_by: "alice".into(),
                    previous_version: Some(5),
                    rollback_to: Some(4),
                },
                format!(
                    r#"{{"event":"policy.proposed","policy":{{"id":"insurance.fnol","sha256":"{}","version":4}},"previous_version":5,"proposal_id":"prop_01JH","proposed_by":"alice","rollback_to":4,"seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}}"#,
                    sha("policy-v4")
                ),
            ),
            (
                Event::PolicyApproved {
                    policy: policy.clone(),
                    proposal_id: "prop_01JH".into(),
                    proposed_by: "alice".into(),
                    approved_by: "bob".into(),
                },
                format!(
                    r#"{{"approved_by":"bob","event":"policy.approved","policy":{{"id":"insurance.fnol","sha256":"{}","version":4}},"proposal_id":"prop_01JH","proposed_by":"alice","seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}}"#,
                    sha("policy-v4")
                ),
            ),
            (
                Event::PolicyRejected {
                    policy: policy.clone(),
                    proposal_id: "prop_01JH".into(),
                    proposed_by: "alice".into(),
                    rejected_by: "bob".into(),
                    reason: "too strict".into(),
                },
                format!(
                    r#"{{"event":"policy.rejected","policy":{{"id":"insurance.fnol","sha256":"{}","version":4}},"proposal_id":"prop_01JH","proposed_by":"alice","reason":"too strict","rejected_by":"bob","seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}}"#,
                    sha("policy-v4")
                ),
            ),
            (
                Event::ReviewClaimed {
                    request_id: "req_1".into(),
                    reference_id: Some("claim-1".into()),
                    queue: "siu".into(),
                    actor: "rita".into(),
                    key_id: Some("console".into()),
                },
                r#"{"actor":"rita","event":"review.claimed","key_id":"console","queue":"siu","reference_id":"claim-1","request_id":"req_1","seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}"#.to_owned(),
            ),
            (
                Event::ReviewResolved {
                    request_id: "req_1".into(),
                    reference_id: Some("claim-1".into()),
                    queue: "siu".into(),
                    actor: "rev_7".into(),
                    key_id: None,
                    label: "MANIPULATED".into(),
                    action: "siu_escalation".into(),
                },
                r#"{"action":"siu_escalation","actor":"rev_7","event":"review.resolved","label":"MANIPULATED","queue":"siu","reference_id":"claim-1","request_id":"req_1","seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}"#.to_owned(),
            ),
            (
                Event::ReviewResolved {
                    request_id: "req_1".into(),
                    reference_id: None,
                    queue: "siu".into(),
                    actor: "rev_7".into(),
                    key_id: Some("key_01JH".into()),
                    label: "MANIPULATED".into(),
                    action: "siu_escalation".into(),
                },
                r#"{"action":"siu_escalation","actor":"rev_7","event":"review.resolved","key_id":"key_01JH","label":"MANIPULATED","queue":"siu","request_id":"req_1","seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}"#.to_owned(),
            ),
            (
                Event::KeyCreated {
                    key_id: "key_01JH".into(),
                    actor: "admin".into(),
                },
                r#"{"actor":"admin","event":"key.created","key_id":"key_01JH","seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}"#.to_owned(),
            ),
            (
                Event::KeyRevoked {
                    key_id: "key_01JH".into(),
                    actor: "admin".into(),
                },
                r#"{"actor":"admin","event":"key.revoked","key_id":"key_01JH","seq":4,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1}"#.to_owned(),
            ),
        ];
        for (event, expected) in cases {
            let name = event.name();
            assert_eq!(shape(event.clone()), expected, "{name}");
            let entry: Entry = serde_json::from_str(&expected).unwrap_or_else(|_| {
                serde_json::from_str(&expected.replace(
                    r#""seq":4"#,
                    r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","seq":4"#,
                ))
                .unwrap()
            });
            assert_eq!(entry.event, event, "{name}");
            assert!(expected.contains(&format!(r#""event":"{name}""#)));
        }
    }

    #[test]
    fn timestamps_have_exactly_milliseconds() {
        let ts = DateTime::parse_from_rfc3339("2026-01-15T10:00:01.25+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_ts(ts), "2026-01-15T10:00:01.250Z");
        let ts = DateTime::parse_from_rfc3339("2026-01-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_ts(ts), "2026-01-15T10:00:00.000Z");
    }
}
