//! The policy file as written: serde types that mirror the YAML, with source positions.
//!
//! Every struct denies unknown keys, so a typo (`on_mising_fact`) is an error at its line and
//! column rather than a silently ignored setting. Meaning (actions exist, one operator per
//! condition, ...) is checked when these types are compiled (see `compile.rs`). The operator keys
//! come from the operators' table (`operator.rs`).

use crate::operator::{OPERATORS, OperatorSpec};
use crate::settings::{MissingFact, RuleMode, Strategy};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;
use std::fmt;
use std::sync::LazyLock;

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
/// (`all`, `any`, `not`, `models`, or `fact` with one operator).
#[derive(Debug, Default)]
pub(crate) struct RawCondition {
    pub all: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    pub any: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    pub not: Option<Box<Spanned<RawCondition>>>,
    pub models: Option<Spanned<RawModels>>,
    pub fact: Option<Spanned<String>>,
    /// The operators present (any key of [`OPERATORS`]).
    pub ops: RawOps,
}

/// The keys of a condition node other than its operators.
const CONDITION_KEYS: [&str; 5] = ["all", "any", "not", "models", "fact"];

/// Every key a condition node may hold, for the message about an unknown one.
static CONDITION_FIELDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    CONDITION_KEYS
        .into_iter()
        .chain(OPERATORS.iter().map(|spec| spec.name))
        .collect()
});

/// Every operator's key, for the message about an unknown one.
static OPERATOR_FIELDS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| OPERATORS.iter().map(|spec| spec.name).collect());

impl RawCondition {
    /// The operators present, in the order of [`OPERATORS`], with their values.
    pub(crate) fn operators(&self) -> Vec<(&'static OperatorSpec, &Spanned<Value>)> {
        self.ops.operators()
    }
}

impl<'de> Deserialize<'de> for RawCondition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConditionVisitor;

        impl<'de> Visitor<'de> for ConditionVisitor {
            type Value = RawCondition;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct RawCondition")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCondition, A::Error> {
                let mut raw = RawCondition::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "all" => set(&mut raw.all, "all", &mut map)?,
                        "any" => set(&mut raw.any, "any", &mut map)?,
                        "not" => set(&mut raw.not, "not", &mut map)?,
                        "models" => set(&mut raw.models, "models", &mut map)?,
                        "fact" => set(&mut raw.fact, "fact", &mut map)?,
                        other => raw.ops.read(other, &mut map, CONDITION_FIELDS.as_slice())?,
                    }
                }
                Ok(raw)
            }
        }

        deserializer.deserialize_map(ConditionVisitor)
    }
}

/// Reads a key's value once, as `#[serde(default)]` on an `Option` does: `null` is `None`.
fn set<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    key: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = map.next_value::<Option<T>>()?;
    Ok(())
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

/// The operators of a condition node or of a model field (`score: { gte: 0.9 }`), each with its
/// value, by their place in [`OPERATORS`]. A value is kept even when it is `null` (reading
/// `eq: null` as no operator at all would hide the mistake).
#[derive(Debug, Default)]
pub(crate) struct RawOps(Vec<(usize, Spanned<Value>)>);

impl RawOps {
    /// The operators present, in the order of [`OPERATORS`], with their values.
    pub(crate) fn operators(&self) -> Vec<(&'static OperatorSpec, &Spanned<Value>)> {
        let mut present: Vec<&(usize, Spanned<Value>)> = self.0.iter().collect();
        present.sort_by_key(|(index, _)| *index);
        present
            .into_iter()
            .map(|(index, value)| (&OPERATORS[*index], value))
            .collect()
    }

    /// Reads the value of operator `key`; a key that is no operator is an unknown field of a
    /// node that may hold `fields`.
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        fields: &'static [&'static str],
    ) -> Result<(), A::Error> {
        let Some(index) = OPERATORS.iter().position(|spec| spec.name == key) else {
            return Err(de::Error::unknown_field(key, fields));
        };
        if self.0.iter().any(|(i, _)| *i == index) {
            return Err(de::Error::duplicate_field(OPERATORS[index].name));
        }
        self.0.push((index, map.next_value()?));
        Ok(())
    }
}

impl<'de> Deserialize<'de> for RawOps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OpsVisitor;

        impl<'de> Visitor<'de> for OpsVisitor {
            type Value = RawOps;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct RawOps")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawOps, A::Error> {
                let mut ops = RawOps::default();
                while let Some(key) = map.next_key::<String>()? {
                    ops.read(&key, &mut map, OPERATOR_FIELDS.as_slice())?;
                }
                Ok(ops)
            }
        }

        deserializer.deserialize_map(OpsVisitor)
    }
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
