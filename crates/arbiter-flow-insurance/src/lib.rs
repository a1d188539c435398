//! Insurance first-notice-of-loss (FNOL) intake: claim photos in, SIU escalation, adjuster
//! review or proceed out.
#![forbid(unsafe_code)]

use arbiter_core::{
    ActionSpec, Analysis, CaseConsole, CaseIntake, CaseSpec, DefaultPolicy, FactSchema, Facts,
    Flow, FlowConfig, ImageFacts, Intake, IntakeMode,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// The flow's settings, `flows.insurance` in `arbiter.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsuranceConfig {
    /// Whether its routes are served.
    pub enabled: bool,
    /// Announce `proceed` decisions as `claim.cleared` webhooks.
    pub announce_cleared: bool,
}

impl Default for InsuranceConfig {
    /// The `flows.insurance` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("flows.insurance")
    }
}

impl FlowConfig for InsuranceConfig {
    const FLOW: &'static str = "insurance";

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn build(&self) -> Result<Arc<dyn Flow>, String> {
        Ok(Arc::new(
            InsuranceFlow::new()?.announcing_cleared(self.announce_cleared),
        ))
    }
}

/// The shipped policy.
pub const DEFAULT_POLICY: DefaultPolicy = DefaultPolicy {
    file: "insurance-fnol.yaml",
    yaml: include_str!("../../../policies/insurance-fnol.yaml"),
};

/// Claims at `/v1/flows/insurance/claims/{claim_id}`, their photos posted to `.../photos` with
/// the claim's facts (`claim`) and the photo's (`photo`, whose `role` routes it).
const INTAKE: Intake = Intake {
    path: "claims",
    mode: IntakeMode::Cases(CaseIntake {
        id_param: "claim_id",
        images: "photos",
        case_facts_in_request: true,
        image_facts: ImageFacts::Object { field: "photo" },
        case_facts: &[],
    }),
};

/// The flow's action vocabulary, strictest first.
pub const ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "siu_escalation",
        severity: 3,
        description: "Flag the claim for the special investigations unit",
    },
    ActionSpec {
        name: "adjuster_review",
        severity: 2,
        description: "Show the adjuster a review warning",
    },
    ActionSpec {
        name: "proceed",
        severity: 0,
        description: "Process the claim normally",
    },
];

/// A claim groups its photos; each photo's action is announced on its own.
const CLAIM: CaseSpec = CaseSpec {
    kind: "claim",
    title: "Insurance claim",
    requires: &[],
    event: None,
    console: CaseConsole {
        path: "claims",
        title: "Claims",
        nav: "Claims",
        noun: "Claim",
    },
};

/// The insurance flow (`type: insurance`).
#[derive(Debug)]
pub struct InsuranceFlow {
    schema: FactSchema,
    announce_cleared: bool,
}

impl InsuranceFlow {
    /// The flow with its fact schema compiled; `proceed` is not announced.
    pub fn new() -> Result<Self, String> {
        let schema =
            serde_json::from_str(include_str!("schema.json")).map_err(|e| e.to_string())?;
        Ok(Self {
            schema: FactSchema::new(schema)?,
            announce_cleared: false,
        })
    }

    /// Whether `proceed` is announced as `claim.cleared`.
    pub fn announcing_cleared(mut self, announce: bool) -> Self {
        self.announce_cleared = announce;
        self
    }
}

impl Flow for InsuranceFlow {
    fn name(&self) -> &'static str {
        "insurance"
    }

    fn schema(&self) -> &FactSchema {
        &self.schema
    }

    fn actions(&self) -> &[ActionSpec] {
        &ACTIONS
    }

    /// `photo.role` (`damage`, `overview`, ...).
    fn image_role(&self, input: &Value) -> Option<String> {
        input.pointer("/photo/role")?.as_str().map(str::to_owned)
    }

    /// Adds `claim.capture_days_before_incident` when both the EXIF capture time and the claimed
    /// incident date are known: the guide's "file creation timestamp inconsistent with claimed
    /// incident date" check, left to the policy to judge; and `photo.edited_with` when EXIF
    /// names an image editor.
    fn derive(&self, analysis: &Analysis, facts: &mut Facts) {
        let incident = facts
            .get("claim.incident_date")
            .and_then(Value::as_str)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let captured = analysis
            .metadata
            .capture_time
            .as_deref()
            .and_then(exif_date);
        if let (Some(incident), Some(captured)) = (incident, captured) {
            facts.set_path(
                "claim.capture_days_before_incident",
                json!((incident - captured).num_days()),
            );
        }
        if let Some(editor) = analysis.metadata.edited_with() {
            facts.set_path("photo.edited_with", json!(editor));
        }
    }

    fn event_for(&self, action: &str) -> Option<&'static str> {
        match action {
            "siu_escalation" => Some("claim.siu_escalation"),
            "adjuster_review" => Some("claim.review_warning"),
            "proceed" if self.announce_cleared => Some("claim.cleared"),
            _ => None,
        }
    }

    fn case(&self) -> Option<&CaseSpec> {
        Some(&CLAIM)
    }

    fn intake(&self) -> Option<Intake> {
        Some(INTAKE)
    }

    fn default_policy(&self) -> DefaultPolicy {
        DEFAULT_POLICY
    }
}

/// The date of an EXIF `DateTimeOriginal` (`2008:10:22 16:28:39`).
fn exif_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y:%m:%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::{ImageFormat, ImageInfo, MetadataFacts, ModelResults, Verdict};

    fn analysis(capture_time: Option<&str>) -> Analysis {
        Analysis {
            verdict: Verdict::inconclusive(),
            model_results: ModelResults::default(),
            image_info: ImageInfo {
                width: 640,
                height: 480,
                format: ImageFormat::Jpeg,
                file_size_bytes: 1000,
                sha256: "ab".repeat(32),
            },
            metadata: MetadataFacts {
                capture_time: capture_time.map(str::to_owned),
                ..MetadataFacts::default()
            },
            detector: "local".to_owned(),
            processing_time_ms: 1,
            providers: Vec::new(),
        }
    }

    #[test]
    fn claim_facts_join_the_analysis_and_the_capture_gap_is_derived() {
        let flow = InsuranceFlow::new().unwrap();
        let input = json!({"claim": {"id": "CLM-1", "amount": 12000, "currency": "EUR", "incident_date": "2008-10-25"}, "photo": {"role": "damage"}});
        let facts = flow
            .facts(&analysis(Some("2008:10:22 16:28:39")), &input)
            .unwrap();
        assert_eq!(facts.get("claim.amount"), Some(&json!(12000)));
        assert_eq!(facts.get("verdict.label"), Some(&json!("INCONCLUSIVE")));
        assert_eq!(
            facts.get("claim.capture_days_before_incident"),
            Some(&json!(3))
        );
        let facts = flow.facts(&analysis(None), &input).unwrap();
        assert_eq!(facts.get("claim.capture_days_before_incident"), None);
    }

    #[test]
    fn bad_claim_input_names_the_field() {
        let flow = InsuranceFlow::new().unwrap();
        let err = flow
            .facts(&analysis(None), &json!({"claim": {"amount": "lots"}}))
            .unwrap_err();
        assert_eq!(err.field, "claim.amount");
        let err = flow
            .facts(&analysis(None), &json!({"photo": {"role": "selfie"}}))
            .unwrap_err();
        assert_eq!(err.field, "photo.role");
    }

    #[test]
    fn every_action_has_an_event_and_cleared_claims_only_when_asked() {
        let flow = InsuranceFlow::new().unwrap();
        assert_eq!(
            flow.event_for("siu_escalation"),
            Some("claim.siu_escalation")
        );
        assert_eq!(
            flow.event_for("adjuster_review"),
            Some("claim.review_warning")
        );
        assert_eq!(flow.event_for("proceed"), None);
        let flow = flow.announcing_cleared(true);
        for action in flow.actions() {
            assert!(flow.event_for(action.name).is_some(), "{}", action.name);
        }
    }

    #[test]
    fn the_documented_config_parses_and_builds_the_flow() {
        let config: InsuranceConfig =
            serde_json::from_value(json!({"enabled": true, "announce_cleared": true})).unwrap();
        let flow = config.build().unwrap();
        assert_eq!(flow.event_for("proceed"), Some("claim.cleared"));
        assert_eq!(
            InsuranceConfig::default()
                .build()
                .unwrap()
                .event_for("proceed"),
            None
        );
        assert!(serde_json::from_value::<InsuranceConfig>(json!({"announce": true})).is_err());
    }

    #[test]
    fn an_editor_in_exif_software_is_a_fact() {
        let flow = InsuranceFlow::new().unwrap();
        let mut edited = analysis(None);
        edited.metadata.software = Some("Adobe Photoshop 24.1 (Windows)".to_owned());
        let facts = flow.facts(&edited, &json!({})).unwrap();
        assert_eq!(
            facts.get("photo.edited_with"),
            Some(&json!("Adobe Photoshop 24.1 (Windows)"))
        );
        let mut firmware = analysis(None);
        firmware.metadata.software = Some("HDR+ 1.0.641377693zd".to_owned());
        let facts = flow.facts(&firmware, &json!({})).unwrap();
        assert_eq!(facts.get("photo.edited_with"), None);
    }
}
