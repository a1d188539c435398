//! User-generated content moderation: uploads in, auto-reject, hold for review or publish out.
#![forbid(unsafe_code)]

use arbiter_core::{ActionSpec, FactSchema, Flow};

/// The flow's action vocabulary, strictest first.
pub const ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "auto_reject",
        severity: 3,
        description: "Reject the upload without review",
    },
    ActionSpec {
        name: "hold_for_review",
        severity: 2,
        description: "Hold the upload in the moderation queue",
    },
    ActionSpec {
        name: "publish",
        severity: 0,
        description: "Publish the upload",
    },
];

/// The UGC moderation flow (`type: ugc`).
#[derive(Debug)]
pub struct UgcFlow {
    schema: FactSchema,
}

impl UgcFlow {
    /// The flow with its fact schema compiled.
    pub fn new() -> Result<Self, String> {
        let schema =
            serde_json::from_str(include_str!("schema.json")).map_err(|e| e.to_string())?;
        Ok(Self {
            schema: FactSchema::new(schema)?,
        })
    }
}

impl Flow for UgcFlow {
    fn name(&self) -> &'static str {
        "ugc"
    }

    fn schema(&self) -> &FactSchema {
        &self.schema
    }

    fn actions(&self) -> &[ActionSpec] {
        &ACTIONS
    }

    fn event_for(&self, _action: &str) -> Option<&'static str> {
        Some("content.decision")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upload_input_is_validated_field_by_field() {
        let flow = UgcFlow::new().unwrap();
        let good = json!({"upload": {"id": "u1", "visibility": "public"}, "uploader": {"id": "p9", "account_age_days": 3, "prior_strikes": 0}});
        assert!(flow.schema().validate(&good).is_ok());
        let err = flow
            .schema()
            .validate(&json!({"uploader": {"account_age_days": -1}}))
            .unwrap_err();
        assert_eq!(err.field, "uploader.account_age_days");
        let err = flow
            .schema()
            .validate(&json!({"upload": {"visibility": "friends"}}))
            .unwrap_err();
        assert_eq!(err.field, "upload.visibility");
    }
}
