//! The facts a policy reads: one JSON tree addressed by dotted paths (`verdict.risk_level`,
//! `models.frequency.score`, `claim.amount`).

use crate::Analysis;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A tree of facts, addressed by dotted paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Facts(Map<String, Value>);

impl Facts {
    /// No facts at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// The facts an analysis gives every flow: `verdict.*`, `models.<name>.*`, `metadata.*`,
    /// `image.*`, `detector`, `detectors` (those that answered) and, when a route of several or
    /// a vendor ran, `providers.<name>.label|score|status`.
    pub fn from_analysis(analysis: &Analysis) -> Self {
        let mut models = Map::new();
        for (model, result) in analysis.model_results.iter() {
            models.insert(
                model.short_name().to_owned(),
                json!({ "score": result.score, "label": result.label.as_str() }),
            );
        }
        let info = &analysis.image_info;
        let mut facts = Self::new();
        facts.insert("verdict", json!(analysis.verdict));
        facts.insert("models", Value::Object(models));
        facts.insert("metadata", json!(analysis.metadata));
        facts.insert(
            "image",
            json!({
                "width": info.width,
                "height": info.height,
                "format": info.format,
                "file_size_bytes": info.file_size_bytes,
                "sha256": info.sha256,
            }),
        );
        facts.insert("detector", json!(analysis.detector));
        facts.insert("detectors", json!(analysis.detectors_ran()));
        if !analysis.providers.is_empty() {
            let mut providers = Map::new();
            for run in &analysis.providers {
                providers.insert(
                    run.name.clone(),
                    json!({
                        "label": run.verdict.map(|v| v.label.as_str()),
                        "score": run.score,
                        "status": run.status_word(),
                    }),
                );
            }
            facts.insert("providers", Value::Object(providers));
        }
        facts
    }

    /// Wraps a JSON object.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// The facts as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Sets a top-level fact (`claim`, `verdict`, ...).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.0.insert(key.into(), value);
    }

    /// Sets the fact at a dotted path, creating the objects on the way.
    pub fn set_path(&mut self, path: &str, value: Value) {
        let mut parts = path.split('.').peekable();
        let mut node = &mut self.0;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_owned(), value);
                return;
            }
            let child = node
                .entry(part.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            let Value::Object(map) = child else { return };
            node = map;
        }
    }

    /// The fact at a dotted path; `None` when any segment is missing. A JSON `null` counts as
    /// missing.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.get_segments(path.split('.'))
    }

    /// The fact at a path already split into segments.
    pub fn get_segments<'a>(&self, mut segments: impl Iterator<Item = &'a str>) -> Option<&Value> {
        let mut value = self.0.get(segments.next()?)?;
        for segment in segments {
            value = value.as_object()?.get(segment)?;
        }
        (!value.is_null()).then_some(value)
    }

    /// Merges `other` into these facts, object by object; `other` wins on conflicts.
    pub fn merge(&mut self, other: &Map<String, Value>) {
        merge_maps(&mut self.0, other);
    }
}

fn merge_maps(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                merge_maps(existing, incoming);
            }
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_nested_values_and_treat_null_as_missing() {
        let mut facts = Facts::new();
        facts.set_path("claim.amount", json!(12000));
        facts.set_path("claim.currency", json!("EUR"));
        facts.set_path("photo.role", Value::Null);
        assert_eq!(facts.get("claim.amount"), Some(&json!(12000)));
        assert_eq!(facts.get("claim.currency"), Some(&json!("EUR")));
        assert_eq!(facts.get("claim.missing"), None);
        assert_eq!(facts.get("photo.role"), None);
        assert_eq!(facts.get("claim.amount.deeper"), None);
    }

    #[test]
    fn merge_keeps_siblings_and_overrides_leaves() {
        let mut facts = Facts::new();
        facts.set_path("claim.amount", json!(1));
        facts.set_path("claim.currency", json!("USD"));
        let other = json!({"claim": {"amount": 2}, "photo": {"role": "damage"}});
        facts.merge(other.as_object().unwrap());
        assert_eq!(facts.get("claim.amount"), Some(&json!(2)));
        assert_eq!(facts.get("claim.currency"), Some(&json!("USD")));
        assert_eq!(facts.get("photo.role"), Some(&json!("damage")));
    }
}
