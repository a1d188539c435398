//! What a policy decides, and the actions that follow from it.

use crate::RequestId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One action of a flow's vocabulary and its severity (higher is stricter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// The action's name (`siu_escalation`).
    pub name: &'static str,
    /// Higher is stricter; `collect_all` picks the highest.
    pub severity: u8,
    /// What the action means for the business.
    pub description: &'static str,
}

/// The policy that made a decision: its id, version and the SHA-256 of its file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRef {
    /// `metadata.id`.
    pub id: String,
    /// `metadata.version`.
    pub version: u32,
    /// Lowercase hex SHA-256 of the policy file's bytes.
    pub sha256: String,
}

/// A policy's decision about one set of facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The action to take.
    pub action: String,
    /// The reason code of the rule (or default) that chose the action.
    pub reason: String,
    /// Ids of the enforced rules that matched, in evaluation order.
    pub fired: Vec<String>,
    /// Actions of shadow rules that matched; recorded, never enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<ShadowHit>,
    /// The rendered description of the deciding rule, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The severity of `action`.
    pub severity: u8,
    /// The policy that decided.
    pub policy: PolicyRef,
}

/// A shadow rule that matched, and the action it would have taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShadowHit {
    /// The rule's id.
    pub rule: String,
    /// The action it would have taken.
    pub action: String,
}

/// An action to carry out for a decision, handed to an [`ActionSink`](crate::ActionSink).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// The tenant the decision belongs to.
    pub tenant: String,
    /// The request that led to the decision.
    pub request_id: RequestId,
    /// The caller's reference for the image.
    pub reference_id: Option<String>,
    /// The flow (`insurance`, `ugc`, `kyc`).
    pub flow: String,
    /// The action's name.
    pub action: String,
    /// The deciding rule's reason code.
    pub reason: String,
    /// The event payload the flow emits for this action.
    pub payload: Value,
}
