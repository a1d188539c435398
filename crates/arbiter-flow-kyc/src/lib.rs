//! KYC verification: ID document and selfie in, with the customer's liveness result; reject,
//! step-up verification or approve out.
#![forbid(unsafe_code)]

use arbiter_core::{ActionSpec, FactSchema, Flow, ModelKind};

/// The flow's action vocabulary, strictest first.
pub const ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "reject",
        severity: 3,
        description: "Reject the verification session",
    },
    ActionSpec {
        name: "step_up_verification",
        severity: 2,
        description: "Ask for further verification",
    },
    ActionSpec {
        name: "approve",
        severity: 0,
        description: "Approve the verification session",
    },
];

/// The models the guide names for KYC selfies.
pub const SELFIE_MODELS: [ModelKind; 3] =
    [ModelKind::Gan, ModelKind::Diffusion, ModelKind::Splicing];

/// The KYC flow (`type: kyc`).
#[derive(Debug)]
pub struct KycFlow {
    schema: FactSchema,
}

impl KycFlow {
    /// The flow with its fact schema compiled.
    pub fn new() -> Result<Self, String> {
        let schema =
            serde_json::from_str(include_str!("schema.json")).map_err(|e| e.to_string())?;
        Ok(Self {
            schema: FactSchema::new(schema)?,
        })
    }
}

impl Flow for KycFlow {
    fn name(&self) -> &'static str {
        "kyc"
    }

    fn schema(&self) -> &FactSchema {
        &self.schema
    }

    fn actions(&self) -> &[ActionSpec] {
        &ACTIONS
    }

    fn event_for(&self, _action: &str) -> Option<&'static str> {
        Some("kyc.decision")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_input_is_validated_field_by_field() {
        let flow = KycFlow::new().unwrap();
        let good = json!({"session": {"id": "s1"}, "image_role": "selfie", "liveness": {"passed": true, "score": 0.97, "provider": "acme"}});
        assert!(flow.schema().validate(&good).is_ok());
        let err = flow
            .schema()
            .validate(&json!({"image_role": "passport_scan"}))
            .unwrap_err();
        assert_eq!(err.field, "image_role");
        let err = flow
            .schema()
            .validate(&json!({"liveness": {"passed": "yes"}}))
            .unwrap_err();
        assert_eq!(err.field, "liveness.passed");
    }
}
