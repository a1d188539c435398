//! The facts a flow's policies can read, with their types: what stage 2 of validation checks
//! fact paths, compared values and operators against.

use arbiter_core::{Flow, MetadataFacts, ModelKind, ModelLabel, RiskLevel, VerdictLabel};
use serde_json::Value;
use std::collections::BTreeMap;

/// What kind of value a fact holds.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FactType {
    /// A number, optionally bounded (inclusive) and optionally whole.
    Number {
        /// The smallest possible value, if known.
        min: Option<f64>,
        /// The largest possible value, if known.
        max: Option<f64>,
        /// Whether the number is always whole.
        integer: bool,
    },
    /// Free text; `date` when it holds an RFC 3339 date or date-time.
    String {
        /// Whether the text is a date.
        date: bool,
    },
    /// `true` or `false`.
    Boolean,
    /// One of a fixed set of strings.
    Enum(Vec<String>),
    /// A group of facts (`claim`, `models.gan`); only `exists` applies to it.
    Object,
    /// A fact the schema does not type.
    Any,
}

impl FactType {
    fn number(min: Option<f64>, max: Option<f64>) -> Self {
        FactType::Number {
            min,
            max,
            integer: false,
        }
    }

    fn integer(min: Option<f64>) -> Self {
        FactType::Number {
            min,
            max: None,
            integer: true,
        }
    }

    /// A short description for messages (`a number from 0 to 1`, `one of LOW, MEDIUM, HIGH`).
    pub fn describe(&self) -> String {
        match self {
            FactType::Number { min, max, integer } => {
                let kind = if *integer {
                    "a whole number"
                } else {
                    "a number"
                };
                match (min, max) {
                    (Some(lo), Some(hi)) => format!("{kind} from {lo} to {hi}"),
                    (Some(lo), None) => format!("{kind} of at least {lo}"),
                    (None, Some(hi)) => format!("{kind} of at most {hi}"),
                    (None, None) => kind.to_owned(),
                }
            }
            FactType::String { date: true } => "a date".to_owned(),
            FactType::String { date: false } => "text".to_owned(),
            FactType::Boolean => "true or false".to_owned(),
            FactType::Enum(values) => format!("one of {}", values.join(", ")),
            FactType::Object => "a group of facts".to_owned(),
            FactType::Any => "any value".to_owned(),
        }
    }
}

/// The segment of `providers.*.label` that stands for any detector's name.
const ANY_PROVIDER: &str = "*";

/// Every fact path of a flow, with its type.
#[derive(Debug, Clone, Default)]
pub struct FactCatalog {
    flow: String,
    facts: BTreeMap<String, FactType>,
}

/// Every model label, as policies write it.
fn model_labels() -> Vec<String> {
    [
        ModelLabel::Authentic,
        ModelLabel::Synthetic,
        ModelLabel::Manipulated,
        ModelLabel::Suspicious,
        ModelLabel::Inconclusive,
        ModelLabel::NotRun,
    ]
    .map(|l| l.as_str().to_owned())
    .to_vec()
}

/// Every image format, as `image.format` holds it.
fn image_formats() -> Vec<String> {
    use arbiter_core::ImageFormat;
    // The match makes a new format a compile error here, so it is not forgotten.
    let all = [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Webp,
        ImageFormat::Heic,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
    ];
    for format in all {
        match format {
            ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::Webp
            | ImageFormat::Heic
            | ImageFormat::Bmp
            | ImageFormat::Tiff => {}
        }
    }
    all.map(|f| f.as_str().to_owned()).to_vec()
}

impl FactCatalog {
    /// The facts every flow has: `verdict.*`, `models.<name>.score|label`, `metadata.*`,
    /// `image.*` and `detector`.
    pub fn common() -> Self {
        let mut catalog = Self::default();
        let unit = || FactType::number(Some(0.0), Some(1.0));
        catalog.insert("verdict", FactType::Object);
        catalog.insert(
            "verdict.label",
            FactType::Enum(VerdictLabel::ALL.map(|l| l.as_str().to_owned()).to_vec()),
        );
        catalog.insert("verdict.confidence", unit());
        catalog.insert(
            "verdict.risk_level",
            FactType::Enum(RiskLevel::ALL.map(|l| l.as_str().to_owned()).to_vec()),
        );
        catalog.insert("models", FactType::Object);
        for model in ModelKind::ALL {
            let name = model.short_name();
            catalog.insert(&format!("models.{name}"), FactType::Object);
            catalog.insert(&format!("models.{name}.score"), unit());
            catalog.insert(
                &format!("models.{name}.label"),
                FactType::Enum(model_labels()),
            );
        }
        // Every field of MetadataFacts, typed by what it holds.
        let metadata = MetadataFacts {
            capture_time: Some(String::new()),
            camera_make: Some(String::new()),
            camera_model: Some(String::new()),
            software: Some(String::new()),
            ..MetadataFacts::default()
        };
        catalog.insert("metadata", FactType::Object);
        if let Ok(Value::Object(fields)) = serde_json::to_value(&metadata) {
            for (field, value) in fields {
                let kind = match value {
                    Value::Bool(_) => FactType::Boolean,
                    Value::String(_) => FactType::String { date: false },
                    _ => FactType::Any,
                };
                catalog.insert(&format!("metadata.{field}"), kind);
            }
        }
        catalog.insert("image", FactType::Object);
        catalog.insert("image.width", FactType::integer(Some(1.0)));
        catalog.insert("image.height", FactType::integer(Some(1.0)));
        catalog.insert("image.file_size_bytes", FactType::integer(Some(0.0)));
        catalog.insert("image.format", FactType::Enum(image_formats()));
        catalog.insert("image.sha256", FactType::String { date: false });
        catalog.insert("detector", FactType::String { date: false });
        catalog.insert("detectors", FactType::Any);
        // One group per detector of a route (`providers.reality_defender.label`); the names are
        // the operator's, so any name matches the `*`.
        catalog.insert("providers", FactType::Object);
        catalog.insert(&format!("providers.{ANY_PROVIDER}"), FactType::Object);
        catalog.insert(
            &format!("providers.{ANY_PROVIDER}.label"),
            FactType::Enum(VerdictLabel::ALL.map(|l| l.as_str().to_owned()).to_vec()),
        );
        catalog.insert(&format!("providers.{ANY_PROVIDER}.score"), unit());
        catalog.insert(
            &format!("providers.{ANY_PROVIDER}.status"),
            FactType::String { date: false },
        );
        catalog
    }

    /// The common facts plus the flow's own, read from the JSON Schema of its input.
    pub fn for_flow(flow: &dyn Flow) -> Self {
        let mut catalog = Self::common();
        catalog.flow = flow.name().to_owned();
        catalog.add_schema("", flow.schema().schema());
        catalog
    }

    /// The common facts plus those a JSON Schema declares (for tests and tools).
    pub fn with_schema(flow: &str, schema: &Value) -> Self {
        let mut catalog = Self::common();
        catalog.flow = flow.to_owned();
        catalog.add_schema("", schema);
        catalog
    }

    fn insert(&mut self, path: &str, kind: FactType) {
        self.facts.insert(path.to_owned(), kind);
    }

    fn add_schema(&mut self, prefix: &str, node: &Value) {
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, property) in properties {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            self.insert(&path, schema_type(property));
            self.add_schema(&path, property);
        }
    }

    /// The flow the catalog describes (empty for [`FactCatalog::common`]).
    pub fn flow(&self) -> &str {
        &self.flow
    }

    /// The type of a fact; `None` when the flow has no such fact.
    pub fn get(&self, path: &str) -> Option<&FactType> {
        if let Some(kind) = self.facts.get(path) {
            return Some(kind);
        }
        let rest = path.strip_prefix("providers.")?;
        let (name, field) = rest.split_once('.').unwrap_or((rest, ""));
        if name.is_empty() || name == ANY_PROVIDER {
            return None;
        }
        let wildcard = match field {
            "" => format!("providers.{ANY_PROVIDER}"),
            field => format!("providers.{ANY_PROVIDER}.{field}"),
        };
        self.facts.get(&wildcard)
    }

    /// Every fact path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.facts.keys().map(String::as_str)
    }
}

/// The fact type a JSON Schema node declares.
fn schema_type(node: &Value) -> FactType {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return FactType::Enum(
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        );
    }
    let kind = match node.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or(""),
        _ => "",
    };
    let bound = |key: &str| node.get(key).and_then(Value::as_f64);
    match kind {
        "object" => FactType::Object,
        "number" => FactType::number(bound("minimum"), bound("maximum")),
        "integer" => FactType::Number {
            min: bound("minimum"),
            max: bound("maximum"),
            integer: true,
        },
        "boolean" => FactType::Boolean,
        "string" => FactType::String {
            date: matches!(
                node.get("format").and_then(Value::as_str),
                Some("date" | "date-time")
            ),
        },
        _ => FactType::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_common_facts_are_typed() {
        let c = FactCatalog::common();
        assert_eq!(
            c.get("verdict.risk_level"),
            Some(&FactType::Enum(vec![
                "LOW".into(),
                "MEDIUM".into(),
                "HIGH".into()
            ]))
        );
        assert_eq!(
            c.get("models.splicing.score").map(FactType::describe),
            Some("a number from 0 to 1".into())
        );
        assert_eq!(c.get("metadata.c2pa_valid"), Some(&FactType::Boolean));
        assert_eq!(
            c.get("metadata.software"),
            Some(&FactType::String { date: false })
        );
        assert_eq!(
            c.get("image.format").map(FactType::describe).as_deref(),
            Some("one of JPEG, PNG, WEBP, HEIC, BMP, TIFF")
        );
        assert!(c.get("detector").is_some());
        assert!(c.get("claim.amount").is_none());
    }

    #[test]
    fn flow_facts_come_from_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "claim": {
                    "type": "object",
                    "properties": {
                        "amount": { "type": "number", "minimum": 0 },
                        "incident_date": { "type": "string", "format": "date" },
                        "kind": { "enum": ["auto", "home"] },
                        "days": { "type": ["integer", "null"] }
                    }
                },
                "image_role": { "enum": ["id_document", "selfie"] }
            }
        });
        let c = FactCatalog::with_schema("insurance", &schema);
        assert_eq!(c.flow(), "insurance");
        assert_eq!(c.get("claim"), Some(&FactType::Object));
        assert_eq!(
            c.get("claim.amount"),
            Some(&FactType::Number {
                min: Some(0.0),
                max: None,
                integer: false
            })
        );
        assert_eq!(
            c.get("claim.incident_date"),
            Some(&FactType::String { date: true })
        );
        assert_eq!(
            c.get("claim.kind"),
            Some(&FactType::Enum(vec!["auto".into(), "home".into()]))
        );
        assert_eq!(
            c.get("claim.days").map(FactType::describe).as_deref(),
            Some("a whole number")
        );
        assert!(c.get("image_role").is_some());
    }
}
