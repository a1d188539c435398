//! The policy file as written: serde types that mirror the YAML, with source positions.
//!
//! Every struct denies unknown keys, so a typo (`on_mising_fact`) is an error at its line and
//! column rather than a silently ignored setting. Meaning (actions exist, one operator per
//! condition, ...) is checked when these types are compiled (see `compile.rs`).

use crate::{MissingFact, RuleMode, Strategy};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;
use std::fmt;

/// Just enough of a file to tell whether it is a policy at all.
#[derive(Debug, Deserialize)]
pub(crate) struct RawHeader {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
}

/// A whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(rename = "apiVersion")]
    #[allow(dead_code, reason = "checked by RawHeader before the full parse")]
    pub api_version: Spanned<String>,
    #[allow(dead_code, reason = "checked by RawHeader before the full parse")]
    pub kind: Spanned<String>,
    pub metadata: RawMetadata,
    #[serde(default)]
    pub evaluation: RawEvaluation,
    pub actions: Spanned<RawActions>,
    pub default: Spanned<RawOutcome>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub tests: Vec<Spanned<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetadata {
    pub id: Spanned<String>,
    pub flow: Spanned<String>,
    pub version: Spanned<u32>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub changelog: Vec<RawChangelogEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChangelogEntry {
    pub version: u32,
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    pub summary: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvaluation {
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub on_missing_fact: MissingFact,
    #[serde(default)]
    pub on_error: Option<Spanned<String>>,
}

/// `actions:` in file order: name -> free-form mapping that must hold `severity`.
#[derive(Debug)]
pub(crate) struct RawActions(pub Vec<RawAction>);

/// One entry of `actions:`: its name and its mapping.
pub(crate) type RawAction = (Spanned<String>, Spanned<Map<String, Value>>);

impl<'de> Deserialize<'de> for RawActions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ActionsVisitor;

        impl<'de> Visitor<'de> for ActionsVisitor {
            type Value = RawActions;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of action names to { severity: N, ... }")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawActions, A::Error> {
                let mut actions = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    actions.push(entry);
                }
                Ok(RawActions(actions))
            }
        }

        deserializer.deserialize_map(ActionsVisitor)
    }
}

/// `default:` and a rule's `then:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutcome {
    pub action: Spanned<String>,
    pub reason: Spanned<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: Option<Spanned<String>>,
    #[serde(default)]
    pub mode: RuleMode,
    pub when: Spanned<RawCondition>,
    pub then: Spanned<RawOutcome>,
}

/// A condition node with every key it may hold; compiling checks that exactly one shape is used
/// (`all`, `any`, `not`, or `fact` with one operator).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCondition {
    #[serde(default)]
    pub all: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    #[serde(default)]
    pub any: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    #[serde(default)]
    pub not: Option<Box<Spanned<RawCondition>>>,
    #[serde(default)]
    pub models: Option<Spanned<RawModels>>,
    #[serde(default)]
    pub fact: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "present")]
    pub eq: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub ne: Option<Spanned<Value>>,
    #[serde(default, rename = "in", deserialize_with = "present")]
    pub in_: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub not_in: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub gt: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub gte: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub lt: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub lte: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub between: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub exists: Option<Spanned<Value>>,
}

impl RawCondition {
    /// The operators present, in a fixed order, with their values.
    pub(crate) fn operators(&self) -> Vec<(&'static str, &Spanned<Value>)> {
        operators([
            ("eq", &self.eq),
            ("ne", &self.ne),
            ("in", &self.in_),
            ("not_in", &self.not_in),
            ("gt", &self.gt),
            ("gte", &self.gte),
            ("lt", &self.lt),
            ("lte", &self.lte),
            ("between", &self.between),
            ("exists", &self.exists),
        ])
    }
}

fn operators<'a>(
    all: [(&'static str, &'a Option<Spanned<Value>>); 10],
) -> Vec<(&'static str, &'a Spanned<Value>)> {
    all.into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
        .collect()
}

/// `models: { where: {...}, among: [...], at_least: N, at_most: N }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModels {
    #[serde(rename = "where")]
    pub where_: Spanned<RawModelWhere>,
    #[serde(default)]
    pub among: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub at_least: Option<Spanned<u32>>,
    #[serde(default)]
    pub at_most: Option<Spanned<u32>>,
}

/// The tests each model result must pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModelWhere {
    #[serde(default)]
    pub score: Option<Spanned<RawOps>>,
    #[serde(default)]
    pub label: Option<Spanned<RawOps>>,
}

/// One operator and its value, as in a leaf without `fact`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOps {
    #[serde(default, deserialize_with = "present")]
    pub eq: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub ne: Option<Spanned<Value>>,
    #[serde(default, rename = "in", deserialize_with = "present")]
    pub in_: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub not_in: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub gt: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub gte: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub lt: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub lte: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub between: Option<Spanned<Value>>,
    #[serde(default, deserialize_with = "present")]
    pub exists: Option<Spanned<Value>>,
}

impl RawOps {
    /// The operators present, in a fixed order, with their values.
    pub(crate) fn operators(&self) -> Vec<(&'static str, &Spanned<Value>)> {
        operators([
            ("eq", &self.eq),
            ("ne", &self.ne),
            ("in", &self.in_),
            ("not_in", &self.not_in),
            ("gt", &self.gt),
            ("gte", &self.gte),
            ("lt", &self.lt),
            ("lte", &self.lte),
            ("between", &self.between),
            ("exists", &self.exists),
        ])
    }
}

/// An operator's value, `Some` even when it is `null` (plain `Option` would read `eq: null` as
/// no operator at all).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Spanned<Value>>, D::Error> {
    Spanned::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTest {
    pub name: Spanned<String>,
    pub input: Spanned<Value>,
    pub expect: Spanned<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    #[serde(default)]
    pub action: Option<Spanned<String>>,
    #[serde(default)]
    pub reason: Option<Spanned<String>>,
    #[serde(default)]
    pub fired: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub not_fired: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub shadow: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub description: Option<String>,
}
