//! Bodies and answers of `/v1/policies`.

use crate::policies::FileStatus;
use arbiter_policy::Policy;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A live policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicySummary {
    /// `metadata.id`.
    pub id: String,
    /// The flow it decides for.
    pub flow: String,
    /// `metadata.version`.
    pub version: u32,
    /// SHA-256 of the file's bytes; every decision records it.
    pub sha256: String,
    /// `metadata.title`.
    pub title: Option<String>,
    /// The file it was read from.
    pub file: String,
}

impl PolicySummary {
    /// The summary of a live policy.
    pub fn of(policy: &Policy) -> Self {
        Self {
            id: policy.id().to_owned(),
            flow: policy.flow().to_owned(),
            version: policy.version(),
            sha256: policy.sha256().to_owned(),
            title: policy.title().map(str::to_owned),
            file: policy.origin().to_owned(),
        }
    }
}

/// What is live, and what was refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyList {
    /// The live policies.
    pub policies: Vec<PolicySummary>,
    /// The watched files; a file with an `error` was not activated and the previous version stays.
    pub files: Vec<FileStatus>,
}

/// A live policy with its rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: PolicySummary,
    /// Rules in evaluation order.
    pub rules: Vec<RuleSummary>,
}

/// One rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleSummary {
    /// The rule's stable id.
    pub id: String,
    /// `enforce` or `shadow`.
    pub mode: String,
    /// The action it takes.
    pub action: String,
}

/// Facts to evaluate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// The facts, as a policy sees them (`{"verdict": {...}, "claim": {...}}`).
    #[schema(value_type = Object)]
    pub facts: Value,
}

/// The decision and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SimulateReply {
    /// The decision.
    #[schema(value_type = Object)]
    pub decision: Value,
    /// Each rule and condition evaluated, with actual values.
    #[schema(value_type = Object)]
    pub explanation: Value,
}
