//! What the engine records for one image: the flow's facts and the policy's decision about it
//! ([`Decided`]), the case it belongs to ([`CaseContext`]), and the whole record ([`Record`])
//! that `Pipeline::record` commits and `announce` announces.

use arbiter_core::{Analysis, Decision, Facts, RequestId};
use serde_json::{Value, json};

/// A flow's facts and its policy's decision about one analysis.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The flow.
    pub flow: String,
    /// The webhook event the action emits.
    pub event: Option<&'static str>,
    /// The review queue the action puts the image in.
    pub review_queue: Option<String>,
    /// The facts the policy saw.
    pub facts: Facts,
    /// The decision.
    pub decision: Decision,
}

impl Decided {
    /// The decision as API responses and events show it.
    pub fn decision_summary(&self) -> Value {
        let d = &self.decision;
        json!({ "flow": self.flow, "action": d.action, "reason": d.reason, "fired": d.fired, "shadow": d.shadow, "description": d.description, "policy": d.policy })
    }
}

/// What `Pipeline::record` commits.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The request.
    pub request_id: &'a RequestId,
    /// The caller's reference.
    pub reference_id: Option<&'a str>,
    /// The analysis.
    pub analysis: &'a Analysis,
    /// The decision, when a flow applied.
    pub decided: Option<&'a Decided>,
    /// The API request row, for requests made over HTTP.
    pub request_row: Option<arbiter_db::entity::request::Model>,
    /// The case (claim, session) the image belongs to.
    pub case: Option<&'a CaseContext>,
}

/// The case an image belongs to, as its events show it.
#[derive(Debug, Clone)]
pub struct CaseContext {
    /// What the flow calls a case (`claim`, `session`); the events' key for `summary`.
    pub kind: &'static str,
    /// The caller's id of the case.
    pub case_id: String,
    /// The case as it stands with this image (its id, images and case-level decision).
    pub summary: Value,
}
