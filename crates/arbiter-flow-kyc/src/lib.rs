//! KYC verification: ID document and selfie in, with the customer's liveness result; reject,
//! step-up verification or approve out.
#![forbid(unsafe_code)]

use arbiter_core::{
    ActionSpec, Analysis, CaseConsole, CaseFactIntake, CaseIntake, CaseSpec, DefaultPolicy,
    FactSchema, Facts, Flow, FlowConfig, ImageFacts, Intake, IntakeMode, ModelKind,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// The flow's settings, `flows.kyc` in `arbiter.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KycConfig {
    /// Whether its routes are served.
    pub enabled: bool,
}

impl Default for KycConfig {
    /// The `flows.kyc` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("flows.kyc")
    }
}

impl FlowConfig for KycConfig {
    const FLOW: &'static str = "kyc";

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn build(&self) -> Result<Arc<dyn Flow>, String> {
        Ok(Arc::new(KycFlow::new()?))
    }
}

/// The shipped policy.
pub const DEFAULT_POLICY: DefaultPolicy = DefaultPolicy {
    file: "kyc.yaml",
    yaml: include_str!("../../../policies/kyc.yaml"),
};

/// The image roles of a session.
pub const ROLES: [&str; 2] = ["id_document", "selfie"];

/// Sessions at `/v1/flows/kyc/sessions/{session_id}`: images posted to `.../images` with their
/// `role`, the liveness result to `.../liveness`.
const INTAKE: Intake = Intake {
    path: "sessions",
    mode: IntakeMode::Cases(CaseIntake {
        id_param: "session_id",
        images: "images",
        case_facts_in_request: false,
        image_facts: ImageFacts::Role {
            fact: "image_role",
            roles: &ROLES,
        },
        case_facts: &[CaseFactIntake {
            name: "liveness",
            read: read_liveness,
            body_schema: LIVENESS_SCHEMA,
        }],
    }),
};

/// A liveness check's result, from the customer's liveness provider. Its values are checked by
/// the flow's fact schema (`liveness.passed` is a boolean, ...).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LivenessResult {
    /// Whether the check passed.
    pub passed: Value,
    /// The provider's score, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Value>,
    /// The provider's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Value>,
}

/// The JSON Schema of a posted liveness result.
const LIVENESS_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["passed"],
  "properties": {
    "passed": { "type": "boolean", "description": "Whether the check passed." },
    "score": { "type": "number", "minimum": 0, "maximum": 1, "description": "The provider's score, 0 to 1." },
    "provider": { "type": "string", "minLength": 1, "maxLength": 64, "description": "The provider's name, 1 to 64 characters." }
  }
}"#;

/// Reads a posted liveness result: `passed` is required and no other field than `score` and
/// `provider` is taken.
fn read_liveness(value: Value) -> Result<Value, String> {
    let result: LivenessResult = serde_json::from_value(value).map_err(|err| {
        format!("Failed to deserialize the JSON body into the target type: {err}")
    })?;
    serde_json::to_value(&result).map_err(|err| err.to_string())
}

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

/// A session is decided once it has a selfie, an ID document and a liveness result, and only
/// the session decision is announced.
const SESSION: CaseSpec = CaseSpec {
    kind: "session",
    title: "KYC session",
    requires: &["selfie", "id_document", "liveness"],
    event: Some("kyc.decision"),
    console: CaseConsole {
        path: "kyc",
        title: "KYC sessions",
        nav: "KYC",
        noun: "KYC session",
    },
};

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

    /// `image_role`: `selfie` or `id_document`.
    fn image_role(&self, input: &Value) -> Option<String> {
        input.get("image_role")?.as_str().map(str::to_owned)
    }

    /// Adds `document.capture` for an ID document: whether its metadata fits a capture by a
    /// phone or camera (`device`), names an image editor (`edited`) or is missing (`missing`).
    fn derive(&self, analysis: &Analysis, facts: &mut Facts) {
        if facts.get("image_role") == Some(&json!("id_document")) {
            facts.set_path(
                "document.capture",
                json!(analysis.metadata.capture_evidence()),
            );
        }
    }

    /// A selfie is analysed with the models the guide names for KYC (gan, diffusion, splicing).
    fn default_models(&self, input: &Value) -> Vec<ModelKind> {
        if input.get("image_role") == Some(&json!("selfie")) {
            SELFIE_MODELS.to_vec()
        } else {
            Vec::new()
        }
    }

    /// Images are not announced one by one: the session decision is (`kyc.decision`).
    fn event_for(&self, _action: &str) -> Option<&'static str> {
        None
    }

    fn case(&self) -> Option<&CaseSpec> {
        Some(&SESSION)
    }

    fn intake(&self) -> Option<Intake> {
        Some(INTAKE)
    }

    fn default_policy(&self) -> DefaultPolicy {
        DEFAULT_POLICY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::{ImageFormat, ImageInfo, MetadataFacts, ModelResults, Verdict};

    fn analysis(metadata: MetadataFacts) -> Analysis {
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
            metadata,
            detector: "local".to_owned(),
            processing_time_ms: 1,
            providers: Vec::new(),
        }
    }

    #[test]
    fn an_id_documents_metadata_is_judged_as_a_capture() {
        let flow = KycFlow::new().unwrap();
        let document = json!({"image_role": "id_document"});
        let phone = MetadataFacts {
            exif_present: true,
            camera_make: Some("Apple".to_owned()),
            camera_model: Some("iPhone 15".to_owned()),
            ..MetadataFacts::default()
        };
        let capture = |metadata: MetadataFacts, input: &Value| {
            flow.facts(&analysis(metadata), input)
                .unwrap()
                .get("document.capture")
                .cloned()
        };
        assert_eq!(capture(phone.clone(), &document), Some(json!("device")));
        let edited = MetadataFacts {
            software: Some("GIMP 2.10".to_owned()),
            ..phone.clone()
        };
        assert_eq!(capture(edited, &document), Some(json!("edited")));
        assert_eq!(
            capture(MetadataFacts::default(), &document),
            Some(json!("missing"))
        );
        assert_eq!(capture(phone, &json!({"image_role": "selfie"})), None);
    }

    #[test]
    fn the_documented_config_parses_and_builds_the_flow() {
        let config: KycConfig = serde_json::from_value(json!({"enabled": false})).unwrap();
        assert!(!config.enabled());
        assert_eq!(config.build().unwrap().name(), "kyc");
        assert!(serde_json::from_value::<KycConfig>(json!({"enabled": "no"})).is_err());
    }

    #[test]
    fn a_liveness_result_needs_passed_and_takes_no_other_field() {
        let kept = read_liveness(json!({"passed": true, "score": 0.9})).unwrap();
        assert_eq!(kept, json!({"passed": true, "score": 0.9}));
        let err = read_liveness(json!({"score": 0.9})).unwrap_err();
        assert!(err.contains("missing field `passed`"), "{err}");
        let err = read_liveness(json!({"passed": true, "by": "me"})).unwrap_err();
        assert!(err.contains("unknown field `by`"), "{err}");
        // A body the API document states is read and taken by the flow's fact schema.
        let stated: Value = serde_json::from_str(LIVENESS_SCHEMA).unwrap();
        assert_eq!(stated["required"], json!(["passed"]));
        let body = json!({"passed": false, "score": 0.5, "provider": "acme"});
        let fact = read_liveness(body).unwrap();
        let flow = KycFlow::new().unwrap();
        assert!(flow.schema().validate(&json!({"liveness": fact})).is_ok());
    }

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
