//! Stage 1 of validation: the file's shape, checked against `policies/schema/policy.schema.json`
//! (JSON Schema 2020-12), with each error's JSON path mapped back to the YAML line and column.
//!
//! The YAML is read once into a tree that keeps every node's position ([`Node`]); the tree is
//! turned into JSON for the validator, and each error's instance path is looked up in the tree.

use crate::diagnostic::{Diagnostic, DiagnosticKind, Position};
use crate::suggest::did_you_mean;
use crate::value::{ValueText, kind_of};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::sync::LazyLock;

/// The policy file's JSON Schema, as shipped for editors.
pub const POLICY_SCHEMA: &str = include_str!("../../../policies/schema/policy.schema.json");

/// The compiled schema; `Err` only if the shipped schema itself is broken (a test guards it).
static VALIDATOR: LazyLock<Result<(Value, jsonschema::Validator), String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(POLICY_SCHEMA).map_err(|e| e.to_string())?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
    Ok((schema, validator))
});

/// A YAML node with its position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub at: Location,
    pub value: NodeValue,
}

/// A YAML node's content: a scalar, a sequence or a mapping in file order.
#[derive(Debug, Clone)]
pub(crate) enum NodeValue {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(Spanned<String>, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(deserializer)?;
        Ok(Node {
            at: spanned.referenced,
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Scalar(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<NodeValue, E> {
        Ok(NodeValue::Scalar(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Scalar(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Scalar(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Scalar(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Scalar(Value::Null))
    }

    fn visit_none<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(NodeValue::Map(entries))
    }
}

impl Node {
    /// The node as JSON.
    pub(crate) fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Scalar(value) => value.clone(),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.value.clone(), value.to_json()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// The node at a JSON pointer's segments.
    fn at_path<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Option<&Node> {
        let mut node = self;
        for segment in segments {
            node = match &node.value {
                NodeValue::Seq(items) => items.get(segment.parse::<usize>().ok()?)?,
                NodeValue::Map(entries) => {
                    // The last entry wins, as in the JSON the validator saw.
                    &entries.iter().rev().find(|(k, _)| k.value == segment)?.1
                }
                NodeValue::Scalar(_) => return None,
            };
        }
        Some(node)
    }

    /// The position of a key of this mapping.
    fn key_position(&self, key: &str) -> Option<Position> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.value == key)
                .and_then(|(k, _)| Position::from_location(k.referenced)),
            _ => None,
        }
    }
}

/// A JSON pointer's segments, unescaped (`~1` is `/`, `~0` is `~`).
fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Checks the tree against the policy schema. Problems are sorted by position; each says
/// whether it is a condition node of no known shape (the compiler names those more precisely).
pub(crate) fn check(tree: &Node, origin: &str) -> Vec<(Diagnostic, bool)> {
    let (schema, validator) = match &*VALIDATOR {
        Ok(compiled) => (&compiled.0, &compiled.1),
        Err(message) => {
            let message = format!("the built-in policy schema is invalid: {message}");
            return vec![(
                Diagnostic::new(origin, None, DiagnosticKind::Syntax, message),
                false,
            )];
        }
    };
    let instance = tree.to_json();
    let mut out = Vec::new();
    for error in validator.iter_errors(&instance) {
        let segments = pointer_segments(&error.instance_path().to_string());
        let node = tree.at_path(segments.iter().map(String::as_str));
        let node_position = node.and_then(|n| Position::from_location(n.at));
        let condition_shape = matches!(error.kind(), ValidationErrorKind::OneOfNotValid { .. })
            && error.schema_path().to_string().contains("condition");
        for (position, message) in messages(schema, &error, node) {
            let position = position.or(node_position);
            let diagnostic = Diagnostic::new(origin, position, DiagnosticKind::Syntax, message);
            out.push((diagnostic, condition_shape));
        }
    }
    out.sort_by_key(|(d, _)| d.position);
    out
}

/// What one validation error says: for each problem, a position when it is not the node's
/// own (an unknown key points at the key), and the message.
fn messages(
    schema: &Value,
    error: &jsonschema::ValidationError<'_>,
    node: Option<&Node>,
) -> Vec<(Option<Position>, String)> {
    let schema_path = error.schema_path().to_string();
    let one = |message: String| vec![(None, message)];
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(schema, &schema_path);
            unexpected
                .iter()
                .map(|key| {
                    let hint = did_you_mean(key, allowed.iter().map(String::as_str));
                    let listed = if allowed.is_empty() {
                        String::new()
                    } else {
                        format!("; expected one of {}", allowed.join(", "))
                    };
                    (
                        node.and_then(|n| n.key_position(key)),
                        format!("unknown key `{key}`{hint}{listed}"),
                    )
                })
                .collect()
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let name = inner.instance().as_str().unwrap_or_default().to_owned();
            let message = match inner.kind() {
                ValidationErrorKind::Pattern { pattern } => {
                    format!("key `{name}` does not match the pattern {pattern}")
                }
                _ => format!("key `{name}`: {}", inner.masked_with(format!("`{name}`"))),
            };
            vec![(node.and_then(|n| n.key_position(&name)), message)]
        }
        ValidationErrorKind::Pattern { pattern } => one(format!(
            "{} does not match the pattern {pattern}",
            describe(error.instance())
        )),
        ValidationErrorKind::Required { property } => one(format!(
            "missing required key `{}`",
            property.as_str().unwrap_or_default()
        )),
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => article(&t.to_string()),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| article(&t.to_string()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            one(format!(
                "expected {expected}, found {}",
                describe(error.instance())
            ))
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| ValueText(v).to_string())
                .collect();
            let hint = error
                .instance()
                .as_str()
                .map(|text| did_you_mean(text, options.iter().map(String::as_str)))
                .unwrap_or_default();
            one(format!(
                "{} is not one of {}{hint}",
                describe(error.instance()),
                options.join(", ")
            ))
        }
        ValidationErrorKind::Constant { expected_value } => one(format!(
            "expected `{}`, found {}",
            ValueText(expected_value),
            describe(error.instance())
        )),
        ValidationErrorKind::OneOfNotValid { .. } if schema_path.contains("condition") => one(
            "not a condition: use `all`, `any`, `not`, `models`, or `fact` with one operator"
                .to_owned(),
        ),
        _ => one(error.masked_with(describe(error.instance())).to_string()),
    }
}

/// `an object`, `a string`.
fn article(kind: &str) -> String {
    let kind = match kind {
        "object" => "mapping",
        "array" => "list",
        other => other,
    };
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {kind}")
    } else {
        format!("a {kind}")
    }
}

/// A value for a message: short scalars as written, other things by kind.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 40 => format!("`{s}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::Bool(b) => format!("`{b}`"),
        other => kind_of(other).to_owned(),
    }
}

/// The keys the schema allows where `additionalProperties` failed, in schema order.
fn allowed_keys(schema: &Value, schema_path: &str) -> Vec<String> {
    let mut segments = pointer_segments(schema_path);
    segments.pop(); // `additionalProperties`
    let mut node = schema;
    for segment in &segments {
        node = match node {
            Value::Object(map) => match map.get(segment) {
                Some(next) => next,
                None => return Vec::new(),
            },
            Value::Array(items) => match segment.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(next) => next,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
    }
    node.get("properties")
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Node {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn the_shipped_schema_compiles() {
        assert!(VALIDATOR.is_ok(), "{:?}", VALIDATOR.as_ref().err());
    }

    #[test]
    fn nodes_keep_their_positions_and_become_json() {
        let t = tree("a:\n  b: [1, x, true]\n  c: { d: null }\n");
        assert_eq!(
            t.to_json(),
            serde_json::json!({"a": {"b": [1, "x", true], "c": {"d": null}}})
        );
        let x = t.at_path(["a", "b", "1"]).unwrap();
        assert_eq!((x.at.line(), x.at.column()), (2, 10));
        let a = t.at_path(["a"]).unwrap();
        assert_eq!(a.key_position("c"), Some(Position { line: 3, column: 3 }));
        assert!(t.at_path(["a", "b", "9"]).is_none());
        assert_eq!(pointer_segments("/a~1b/c~0d/0"), ["a/b", "c~d", "0"]);
    }
}
