//! User-generated content moderation: uploads in, auto-reject, hold for review or publish out.
#![forbid(unsafe_code)]

use arbiter_core::{
    ActionSpec, CollectedIntake, DefaultPolicy, FactSchema, Flow, FlowConfig, Intake, IntakeMode,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The flow's settings and its upload collector's, `flows.ugc` in `arbiter.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UgcConfig {
    /// Whether its routes are served.
    pub enabled: bool,
    /// Uploads submitted together as one batch once this many have arrived...
    pub batch_size: u64,
    /// ...or once the oldest has waited this many seconds.
    pub max_wait_secs: u64,
}

impl Default for UgcConfig {
    /// The `flows.ugc` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("flows.ugc")
    }
}

impl FlowConfig for UgcConfig {
    const FLOW: &'static str = "ugc";

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.batch_size == 0 {
            return Err(("batch_size", "must be more than 0".to_owned()));
        }
        if self.max_wait_secs == 0 {
            return Err(("max_wait_secs", "must be more than 0".to_owned()));
        }
        Ok(())
    }

    fn build(&self) -> Result<Arc<dyn Flow>, String> {
        Ok(Arc::new(
            UgcFlow::new()?.collecting(self.batch_size, self.max_wait_secs),
        ))
    }
}

/// The shipped policy.
pub const DEFAULT_POLICY: DefaultPolicy = DefaultPolicy {
    file: "ugc-moderation.yaml",
    yaml: include_str!("../../../policies/ugc-moderation.yaml"),
};

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
    uploads: CollectedIntake,
}

impl UgcFlow {
    /// The flow with its fact schema compiled, collecting uploads as the defaults say.
    pub fn new() -> Result<Self, String> {
        let schema =
            serde_json::from_str(include_str!("schema.json")).map_err(|e| e.to_string())?;
        let defaults = UgcConfig::default();
        Ok(Self {
            schema: FactSchema::new(schema)?,
            uploads: CollectedIntake {
                fields: &["upload", "uploader"],
                reference_from: Some("/upload/id"),
                batch_size: defaults.batch_size,
                max_wait_secs: defaults.max_wait_secs,
            },
        })
    }

    /// Uploads submitted together once `batch_size` have arrived or the oldest has waited
    /// `max_wait_secs`.
    pub fn collecting(mut self, batch_size: u64, max_wait_secs: u64) -> Self {
        self.uploads.batch_size = batch_size;
        self.uploads.max_wait_secs = max_wait_secs;
        self
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

    /// Uploads at `/v1/flows/ugc/uploads`, with their `upload` and `uploader` facts; the
    /// reference id defaults to `upload.id`.
    fn intake(&self) -> Option<Intake> {
        Some(Intake {
            path: "uploads",
            mode: IntakeMode::Collected(self.uploads),
        })
    }

    fn default_policy(&self) -> DefaultPolicy {
        DEFAULT_POLICY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_config_parses_and_builds_the_collecting_flow() {
        let config: UgcConfig =
            serde_json::from_value(json!({"enabled": true, "batch_size": 3, "max_wait_secs": 1}))
                .unwrap();
        let flow = config.build().unwrap();
        let Some(Intake {
            mode: IntakeMode::Collected(uploads),
            ..
        }) = flow.intake()
        else {
            panic!("uploads are collected");
        };
        assert_eq!((uploads.batch_size, uploads.max_wait_secs), (3, 1));
        let empty = UgcConfig {
            batch_size: 0,
            ..UgcConfig::default()
        };
        assert_eq!(empty.validate().unwrap_err().0, "batch_size");
        assert!(UgcConfig::default().validate().is_ok());
    }

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
