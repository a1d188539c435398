//! How a flow takes its images in, declared by the flow and served by one set of HTTP handlers:
//! the path under `/v1/flows/<flow>/`, the fields a request carries, the image roles, and what
//! becomes of the images (decided at once into a case, or collected into batches), with the
//! case-level facts posted on their own (a KYC session's liveness result). Also the plugin
//! contract by which a build registers a flow with its own configuration.

use crate::Flow;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A flow's intake: its routes are `/v1/flows/<flow>/<path>...`.
#[derive(Debug, Clone, Copy)]
pub struct Intake {
    /// The path segment after the flow's name (`claims`, `sessions`, `uploads`).
    pub path: &'static str,
    /// What becomes of the images.
    pub mode: IntakeMode,
}

/// What becomes of a flow's images.
#[derive(Debug, Clone, Copy)]
pub enum IntakeMode {
    /// Each image is decided at once and added to a case (the flow's [`crate::CaseSpec`]):
    /// `POST <path>/{id}/<images>` answers the image's decision and the case, `GET <path>/{id}`
    /// reads the case.
    Cases(CaseIntake),
    /// Images are collected and analysed together as batches: `POST <path>` answers 202 at once
    /// and each decision comes by webhook.
    Collected(CollectedIntake),
}

/// A flow whose images are decided at once, each into a case.
#[derive(Debug, Clone, Copy)]
pub struct CaseIntake {
    /// The name of the case id in the path (`claim_id`, `session_id`).
    pub id_param: &'static str,
    /// The path segment of a case's images (`photos`, `images`).
    pub images: &'static str,
    /// Whether a request may carry the case's facts in the field named as the case kind
    /// (`claim`): an object kept with the case, whose `id` is the case id. Either way the case's
    /// facts hold `<kind>.id`.
    pub case_facts_in_request: bool,
    /// What a request says about its image.
    pub image_facts: ImageFacts,
    /// The case-level facts posted on their own route, `<path>/{id}/<name>` (`liveness`).
    pub case_facts: &'static [CaseFactIntake],
}

/// What a request says about its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFacts {
    /// The request's `field` holds the image's facts, kept under the same name, whose `role`
    /// (if any) is the image's role (`photo`, `{"role": "damage"}`). Default references are
    /// `<case id>-<field>-<n>`.
    Object {
        /// The field, and the fact it becomes.
        field: &'static str,
    },
    /// The request's `role` names the image's role, one of `roles`, and is required; it is kept
    /// as the fact `fact` (`image_role`). Default references are `<case id>-<role>-<n>`.
    Role {
        /// The fact the role is kept as.
        fact: &'static str,
        /// The roles an image may have.
        roles: &'static [&'static str],
    },
}

/// A case-level fact posted on its own route (a KYC session's `liveness` result).
#[derive(Debug, Clone, Copy)]
pub struct CaseFactIntake {
    /// The fact's name, and the last segment of its route.
    pub name: &'static str,
    /// Checks the posted JSON's shape and gives back the value to keep, or what is wrong.
    pub read: fn(Value) -> Result<Value, String>,
    /// The JSON Schema of the posted body, as the API document states it: every body it
    /// accepts, `read` accepts.
    pub body_schema: &'static str,
}

/// A flow whose images are collected and analysed together as batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectedIntake {
    /// The request fields that are the image's facts (`upload`, `uploader`).
    pub fields: &'static [&'static str],
    /// The JSON pointer into the facts of the default reference id (`/upload/id`).
    pub reference_from: Option<&'static str>,
    /// Collected images are submitted together once this many of a tenant have arrived...
    pub batch_size: u64,
    /// ...or once the oldest has waited this many seconds.
    pub max_wait_secs: u64,
}

/// Why an intake request was refused: a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IntakeError(pub String);

/// What a case image request says, read by its flow's [`CaseIntake`].
#[derive(Debug, Clone, PartialEq)]
pub struct CaseImageFacts {
    /// Case-level facts the request brings (`{"claim": {...}}`).
    pub case_facts: Map<String, Value>,
    /// The image's own facts (`{"photo": {...}}`, `{"image_role": "selfie"}`).
    pub image_facts: Map<String, Value>,
    /// The image's role, if any.
    pub role: Option<String>,
    /// The default reference's middle part (`photo`, or the image's role).
    pub reference_stem: String,
}

/// Refuses any field not in `allowed`, by name.
pub fn check_fields(fields: &Map<String, Value>, allowed: &[&str]) -> Result<(), IntakeError> {
    match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(IntakeError(format!(
            "unknown field {unknown:?}; expected image_url, image_base64 or a file, options, reference_id, {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

impl CaseIntake {
    /// The domain fields a request may carry, in the order error messages list them.
    pub fn fields(&self, kind: &'static str) -> Vec<&'static str> {
        let image = match self.image_facts {
            ImageFacts::Object { field } => field,
            ImageFacts::Role { .. } => "role",
        };
        if self.case_facts_in_request {
            vec![kind, image]
        } else {
            vec![image]
        }
    }

    /// Reads the domain fields of a request adding an image to the case `case_id` of kind
    /// `kind` (`claim`).
    pub fn read(
        &self,
        kind: &'static str,
        case_id: &str,
        mut fields: Map<String, Value>,
    ) -> Result<CaseImageFacts, IntakeError> {
        check_fields(&fields, &self.fields(kind))?;
        let mut case = match fields.remove(kind) {
            None => Map::new(),
            Some(Value::Object(case)) => case,
            Some(_) => return Err(IntakeError(format!("{kind} must be an object"))),
        };
        match case.get("id") {
            Some(id) if id != &json!(case_id) => {
                return Err(IntakeError(format!(
                    "{kind}.id: {id} is not the {kind} of the path ({case_id})"
                )));
            }
            _ => {}
        }
        case.insert("id".to_owned(), json!(case_id));
        let case_facts = [(kind.to_owned(), Value::Object(case))]
            .into_iter()
            .collect();
        match self.image_facts {
            ImageFacts::Object { field } => {
                let facts = fields.remove(field);
                let role = facts
                    .as_ref()
                    .and_then(|f| f.get("role"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok(CaseImageFacts {
                    case_facts,
                    image_facts: facts.map(|f| (field.to_owned(), f)).into_iter().collect(),
                    role,
                    reference_stem: field.to_owned(),
                })
            }
            ImageFacts::Role { fact, roles } => {
                let role = match fields.remove("role") {
                    Some(Value::String(role)) if roles.contains(&role.as_str()) => role,
                    Some(other) => {
                        return Err(IntakeError(format!(
                            "role: {other} is not one of {}",
                            roles.join(", ")
                        )));
                    }
                    None => {
                        return Err(IntakeError(format!(
                            "role is required: one of {}",
                            roles.join(", ")
                        )));
                    }
                };
                Ok(CaseImageFacts {
                    case_facts,
                    image_facts: [(fact.to_owned(), json!(role))].into_iter().collect(),
                    role: Some(role.clone()),
                    reference_stem: role,
                })
            }
        }
    }
}

impl CollectedIntake {
    /// Reads the domain fields of a collected image: its facts.
    pub fn read(&self, fields: Map<String, Value>) -> Result<Value, IntakeError> {
        check_fields(&fields, self.fields)?;
        Ok(Value::Object(fields))
    }

    /// The default reference id of an image with these facts.
    pub fn reference(&self, facts: &Value) -> Option<String> {
        facts
            .pointer(self.reference_from?)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// A flow's own configuration, `flows.<name>` in `arbiter.yaml`: a struct with a `///` comment
/// on every field, `#[serde(deny_unknown_fields)]` and a [`Default`] that reads its section of
/// the committed file (`settings::defaults("flows.<name>")`).
pub trait FlowConfig: Serialize + DeserializeOwned + Default + 'static {
    /// The flow's name (`insurance`).
    const FLOW: &'static str;

    /// Whether the flow's routes are served.
    fn enabled(&self) -> bool;

    /// Checks values that parse but make no sense: the key and what is wrong with it.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }

    /// The flow, built with this configuration.
    fn build(&self) -> Result<Arc<dyn Flow>, String>;
}

/// A flow's configuration as read: every default filled in, and whether the flow is switched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSettings {
    /// The flow's `flows.<name>` section with every default filled in.
    pub config: Value,
    /// Whether the flow's routes are served.
    pub enabled: bool,
}

/// A flow as a build registers it: its name, how its configuration is read and how the flow is
/// built from it.
#[derive(Debug, Clone, Copy)]
pub struct FlowPlugin {
    /// The flow's name.
    pub name: &'static str,
    read: fn(Option<Value>) -> Result<FlowSettings, String>,
    build: fn(&Value) -> Result<Arc<dyn Flow>, String>,
}

impl FlowPlugin {
    /// The plugin of the flow configured by `C`.
    pub fn of<C: FlowConfig>() -> Self {
        Self {
            name: C::FLOW,
            read: read_config::<C>,
            build: build_flow::<C>,
        }
    }

    /// Reads `flows.<name>` (absent, or a key left out: the defaults). The error names the key.
    pub fn read_config(&self, value: Option<Value>) -> Result<FlowSettings, String> {
        (self.read)(value)
    }

    /// Builds the flow from a configuration [`FlowPlugin::read_config`] gave.
    pub fn build(&self, config: &Value) -> Result<Arc<dyn Flow>, String> {
        (self.build)(config)
    }
}

fn read_config<C: FlowConfig>(value: Option<Value>) -> Result<FlowSettings, String> {
    let config: C = match value {
        None | Some(Value::Null) => C::default(),
        Some(value) => {
            // The keys given, laid over the defaults.
            let value = match (serde_json::to_value(C::default()), value) {
                (Ok(Value::Object(mut defaults)), Value::Object(given)) => {
                    defaults.extend(given);
                    Value::Object(defaults)
                }
                (_, value) => value,
            };
            serde_json::from_value(value).map_err(|err| format!("flows.{}: {err}", C::FLOW))?
        }
    };
    config
        .validate()
        .map_err(|(key, message)| format!("flows.{}.{key}: {message}", C::FLOW))?;
    Ok(FlowSettings {
        config: serde_json::to_value(&config).map_err(|err| err.to_string())?,
        enabled: config.enabled(),
    })
}

fn build_flow<C: FlowConfig>(value: &Value) -> Result<Arc<dyn Flow>, String> {
    let config: C =
        serde_json::from_value(value.clone()).map_err(|err| format!("flows.{}: {err}", C::FLOW))?;
    config.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAIMS: CaseIntake = CaseIntake {
        id_param: "claim_id",
        images: "photos",
        case_facts_in_request: true,
        image_facts: ImageFacts::Object { field: "photo" },
        case_facts: &[],
    };

    const SESSIONS: CaseIntake = CaseIntake {
        id_param: "session_id",
        images: "images",
        case_facts_in_request: false,
        image_facts: ImageFacts::Role {
            fact: "image_role",
            roles: &["id_document", "selfie"],
        },
        case_facts: &[],
    };

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn case_facts_in_a_request_keep_the_case_id_of_the_path() {
        let read = CLAIMS
            .read(
                "claim",
                "c1",
                fields(json!({"claim": {"amount": 5}, "photo": {"role": "damage"}})),
            )
            .unwrap();
        assert_eq!(read.case_facts["claim"], json!({"amount": 5, "id": "c1"}));
        assert_eq!(read.image_facts["photo"], json!({"role": "damage"}));
        assert_eq!(read.role.as_deref(), Some("damage"));
        assert_eq!(read.reference_stem, "photo");
        let err = CLAIMS
            .read("claim", "c1", fields(json!({"claim": {"id": "c2"}})))
            .unwrap_err();
        assert_eq!(err.0, "claim.id: \"c2\" is not the claim of the path (c1)");
        let err = CLAIMS
            .read("claim", "c1", fields(json!({"claim": 3})))
            .unwrap_err();
        assert_eq!(err.0, "claim must be an object");
    }

    #[test]
    fn a_required_role_is_one_of_the_flows_roles() {
        let read = SESSIONS
            .read("session", "s1", fields(json!({"role": "selfie"})))
            .unwrap();
        assert_eq!(read.case_facts["session"], json!({"id": "s1"}));
        assert_eq!(read.image_facts["image_role"], json!("selfie"));
        assert_eq!(read.reference_stem, "selfie");
        let err = SESSIONS
            .read("session", "s1", fields(json!({"role": "passport"})))
            .unwrap_err();
        assert_eq!(
            err.0,
            "role: \"passport\" is not one of id_document, selfie"
        );
        let err = SESSIONS
            .read("session", "s1", fields(json!({})))
            .unwrap_err();
        assert_eq!(err.0, "role is required: one of id_document, selfie");
        // The case facts are not the caller's to send here.
        let err = SESSIONS
            .read(
                "session",
                "s1",
                fields(json!({"session": {}, "role": "selfie"})),
            )
            .unwrap_err();
        assert!(err.0.starts_with("unknown field \"session\""), "{err}");
        assert!(err.0.ends_with("reference_id, role"), "{err}");
    }

    #[test]
    fn collected_facts_are_the_declared_fields_and_name_the_reference() {
        let uploads = CollectedIntake {
            fields: &["upload", "uploader"],
            reference_from: Some("/upload/id"),
            batch_size: 2,
            max_wait_secs: 1,
        };
        let facts = uploads
            .read(fields(json!({"upload": {"id": "u1"}})))
            .unwrap();
        assert_eq!(uploads.reference(&facts).as_deref(), Some("u1"));
        assert_eq!(uploads.reference(&json!({})), None);
        let err = uploads.read(fields(json!({"photo": {}}))).unwrap_err();
        assert_eq!(
            err.0,
            "unknown field \"photo\"; expected image_url, image_base64 or a file, options, reference_id, upload, uploader"
        );
    }
}
