//! The operators of a condition: `{ fact: claim.amount, gte: 1000 }` in a leaf, and
//! `score: { gte: 0.9 }` in a model quantifier.
//!
//! [`OPERATORS`] is the one list of them: each operator's name, the value it takes and how that
//! value is compiled (with the message when it does not fit). Reading a policy (`syntax.rs`), the
//! compiler's messages (`compile.rs`), evaluation (`condition.rs`), the check against a flow's
//! facts (`validate.rs`) and the lints (`lint.rs`) all take the operators from here. The tests
//! below hold `policies/schema/policy.schema.json` and the operator table of
//! `policies/README.md` to the same list.
//!
//! Adding an operator: a row of [`OPERATORS`], a variant of [`Op`] and its arms in this file
//! (the compiler points at each one), its key in the schema and its row in the README (the tests
//! fail until both are there).

use crate::catalog::FactType;
use crate::suggest::closest;
use crate::value::{Bound, Num, Scalar, ValueText, describe, kind_of, parse_instant};
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;

/// The kind of value an operator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operand {
    /// A string, number or boolean (`eq: HIGH`).
    Scalar,
    /// A non-empty list of scalars (`in: [AI_GENERATED, MANIPULATED]`).
    ScalarList,
    /// A number or an RFC 3339 date (`gte: 2024-05-01`).
    Bound,
    /// Two numbers in order, both included (`between: [0.4, 0.7]`).
    Range,
    /// `true` or `false` (`exists: true`).
    Flag,
}

/// One operator: its key in a policy and how its value is read.
#[derive(Debug)]
pub(crate) struct OperatorSpec {
    /// The key a policy writes (`not_in`).
    pub name: &'static str,
    /// The kind of value it takes; the schema and the README are checked against it.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the tests of the schema and the README")
    )]
    pub operand: Operand,
    /// Compiles the value written in a policy (given the operator's name); the error is the
    /// diagnostic's message.
    compile: fn(&'static str, &Value) -> Result<Op, String>,
}

impl OperatorSpec {
    /// Compiles the operator's value; the error says why the value does not fit.
    pub(crate) fn compile(&self, value: &Value) -> Result<Op, String> {
        (self.compile)(self.name, value)
    }
}

/// Every operator, in the order messages list them.
pub(crate) const OPERATORS: &[OperatorSpec] = &[
    OperatorSpec {
        name: "eq",
        operand: Operand::Scalar,
        compile: |name, v| scalar(name, Some("in"), v).map(Op::Eq),
    },
    OperatorSpec {
        name: "ne",
        operand: Operand::Scalar,
        compile: |name, v| scalar(name, Some("not_in"), v).map(Op::Ne),
    },
    OperatorSpec {
        name: "in",
        operand: Operand::ScalarList,
        compile: |name, v| scalar_list(name, v).map(Op::In),
    },
    OperatorSpec {
        name: "not_in",
        operand: Operand::ScalarList,
        compile: |name, v| scalar_list(name, v).map(Op::NotIn),
    },
    OperatorSpec {
        name: "gt",
        operand: Operand::Bound,
        compile: |name, v| bound(name, v).map(|b| Op::Cmp(CmpOp::Gt, b)),
    },
    OperatorSpec {
        name: "gte",
        operand: Operand::Bound,
        compile: |name, v| bound(name, v).map(|b| Op::Cmp(CmpOp::Gte, b)),
    },
    OperatorSpec {
        name: "lt",
        operand: Operand::Bound,
        compile: |name, v| bound(name, v).map(|b| Op::Cmp(CmpOp::Lt, b)),
    },
    OperatorSpec {
        name: "lte",
        operand: Operand::Bound,
        compile: |name, v| bound(name, v).map(|b| Op::Cmp(CmpOp::Lte, b)),
    },
    OperatorSpec {
        name: "between",
        operand: Operand::Range,
        compile: |name, v| range(name, v).map(|(lo, hi)| Op::Between(lo, hi)),
    },
    OperatorSpec {
        name: "exists",
        operand: Operand::Flag,
        compile: |name, v| flag(name, v).map(Op::Exists),
    },
];

/// The operators' names for a message: `eq, ne, in, ...`.
pub(crate) fn operator_names() -> String {
    OPERATORS
        .iter()
        .map(|spec| spec.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An [`Operand::Scalar`] value (or an item of an [`Operand::ScalarList`], with no `list_form`):
/// the error says why it is not one, pointing a list at the operator's `list_form`.
fn scalar(name: &str, list_form: Option<&str>, value: &Value) -> Result<Scalar, String> {
    Scalar::from_json(value).ok_or_else(|| match (value, list_form) {
        (Value::Null, _) => format!(
            "`{name}: null` never matches (a null fact counts as missing); use `exists: false`"
        ),
        (Value::Array(_), Some(list_form)) => {
            format!("`{name}` compares with one value; use `{list_form}` for a list")
        }
        (other, _) => format!(
            "`{name}` compares with strings, numbers or booleans, found {}",
            kind_of(other)
        ),
    })
}

/// An [`Operand::ScalarList`] value.
fn scalar_list(name: &str, value: &Value) -> Result<Box<[Scalar]>, String> {
    match value {
        Value::Array(items) if items.is_empty() => {
            Err(format!("`{name}` needs at least one value"))
        }
        Value::Array(items) => items.iter().map(|item| scalar(name, None, item)).collect(),
        other => Err(format!(
            "`{name}` needs a list like [A, B], found {}",
            kind_of(other)
        )),
    }
}

/// An [`Operand::Bound`] value.
fn bound(name: &str, value: &Value) -> Result<Bound, String> {
    let bound = match value {
        Value::Number(n) => Num::from_json(n).map(Bound::Num),
        Value::String(s) => parse_instant(s).map(|i| Bound::Date(s.as_str().into(), i)),
        _ => None,
    };
    bound.ok_or_else(|| {
        format!(
            "`{name}` needs a number or an RFC 3339 date (2024-05-01, \
             2024-05-01T10:00:00Z), found {}",
            describe(value)
        )
    })
}

/// An [`Operand::Range`] value.
fn range(name: &str, value: &Value) -> Result<(Num, Num), String> {
    let bounds = match value {
        Value::Array(items) => match items.as_slice() {
            [Value::Number(lo), Value::Number(hi)] => Num::from_json(lo).zip(Num::from_json(hi)),
            _ => None,
        },
        _ => None,
    };
    match bounds {
        None => Err(format!(
            "`{name}` needs a list of two numbers [low, high], found {}",
            describe(value)
        )),
        Some((lo, hi)) if lo.as_f64() > hi.as_f64() => Err(format!(
            "`{name}` range [{lo}, {hi}] is empty: the low bound is above the high one"
        )),
        Some((lo, hi)) => Ok((lo, hi)),
    }
}

/// An [`Operand::Flag`] value.
fn flag(name: &str, value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => Err(format!(
            "`{name}` needs true or false, found {}",
            describe(other)
        )),
    }
}

/// `gt`, `gte`, `lt`, `lte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    pub(crate) fn holds(self, ordering: Ordering) -> bool {
        match self {
            CmpOp::Gt => ordering == Ordering::Greater,
            CmpOp::Gte => ordering != Ordering::Less,
            CmpOp::Lt => ordering == Ordering::Less,
            CmpOp::Lte => ordering != Ordering::Greater,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            CmpOp::Gt => "gt",
            CmpOp::Gte => "gte",
            CmpOp::Lt => "lt",
            CmpOp::Lte => "lte",
        }
    }
}

/// A leaf's operator and its compiled operand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Eq(Scalar),
    Ne(Scalar),
    In(Box<[Scalar]>),
    NotIn(Box<[Scalar]>),
    Cmp(CmpOp, Bound),
    /// Inclusive numeric range.
    Between(Num, Num),
    Exists(bool),
}

impl Op {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Eq(_) => "eq",
            Op::Ne(_) => "ne",
            Op::In(_) => "in",
            Op::NotIn(_) => "not_in",
            Op::Cmp(op, _) => op.name(),
            Op::Between(..) => "between",
            Op::Exists(_) => "exists",
        }
    }

    /// For an operator that tests only whether its fact is present (`exists`), the presence it
    /// wants; a missing fact then decides the result instead of `on_missing_fact`.
    pub(crate) fn presence(&self) -> Option<bool> {
        match self {
            Op::Exists(present) => Some(*present),
            _ => None,
        }
    }

    /// Tests a present (non-null) value; the error is the kind of value that does not fit an
    /// ordering operator.
    pub(crate) fn test(&self, value: &Value) -> Result<bool, &'static str> {
        Ok(match self {
            Op::Exists(expected) => *expected,
            Op::Eq(scalar) => scalar.matches(value),
            Op::Ne(scalar) => !scalar.matches(value),
            Op::In(list) => list.iter().any(|s| s.matches(value)),
            Op::NotIn(list) => !list.iter().any(|s| s.matches(value)),
            Op::Cmp(op, bound) => {
                let ordering = match (bound, value) {
                    (Bound::Num(bound), Value::Number(n)) => {
                        Num::from_json(n).and_then(|n| n.compare(*bound))
                    }
                    (Bound::Date(_, bound), Value::String(s)) => {
                        parse_instant(s).map(|instant| instant.cmp(bound))
                    }
                    _ => None,
                };
                op.holds(ordering.ok_or(kind_of(value))?)
            }
            Op::Between(lo, hi) => {
                let Value::Number(n) = value else {
                    return Err(kind_of(value));
                };
                let n = Num::from_json(n).ok_or(kind_of(value))?;
                n.compare(*lo).is_some_and(|o| o != Ordering::Less)
                    && n.compare(*hi).is_some_and(|o| o != Ordering::Greater)
            }
        })
    }

    /// What an ordering operator needs, for messages.
    pub(crate) fn wanted(&self) -> &'static str {
        match self {
            Op::Cmp(_, Bound::Date(..)) => "an RFC 3339 date",
            _ => "a number",
        }
    }

    /// The operand as JSON, as a policy writes it.
    pub(crate) fn expected(&self) -> Value {
        match self {
            Op::Eq(s) | Op::Ne(s) => s.to_json(),
            Op::In(list) | Op::NotIn(list) => list.iter().map(Scalar::to_json).collect(),
            Op::Cmp(_, Bound::Num(n)) => n.to_json(),
            Op::Cmp(_, Bound::Date(text, _)) => Value::String(text.to_string()),
            Op::Between(lo, hi) => Value::Array(vec![lo.to_json(), hi.to_json()]),
            Op::Exists(b) => Value::Bool(*b),
        }
    }
}

/// An operator and its operand as text: `in [AI_GENERATED, MANIPULATED]`, `gte 0.9`.
pub(crate) struct OpText<'a>(pub &'a Op);

impl fmt::Display for OpText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.name(), ValueText(&self.0.expected()))
    }
}

/// Why an operator and its value do not fit a fact of this type, if they do not.
pub(crate) fn misfit(path: &str, kind: &FactType, op: &Op) -> Option<String> {
    let name = op.name();
    let scalars: &[Scalar] = match op {
        Op::Eq(s) | Op::Ne(s) => std::slice::from_ref(s),
        Op::In(list) | Op::NotIn(list) => list,
        _ => &[],
    };
    match (kind, op) {
        (_, Op::Exists(_)) | (FactType::Any, _) => None,
        (FactType::Object, _) => Some(format!(
            "`{path}` is a group of facts, not a value: `{name}` cannot compare it; compare one \
             of its fields, or use `exists`"
        )),
        (FactType::Enum(_), Op::Cmp(..) | Op::Between(..)) => Some(format!(
            "`{name}` orders numbers and dates, but `{path}` is {}; use `eq` or `in`",
            kind.describe()
        )),
        (FactType::Enum(values), _) => scalars.iter().find_map(|s| match s {
            Scalar::Str(text) if values.iter().any(|v| **v == **text) => None,
            Scalar::Str(text) => Some(format!(
                "`{text}` is not a value of `{path}` ({}){}",
                values.join(", "),
                closest(text, values.iter().map(String::as_str))
                    .map(|c| format!("; did you mean {c}?"))
                    .unwrap_or_default()
            )),
            other => Some(format!(
                "`{path}` is {}; the {} `{}` never equals it",
                kind.describe(),
                scalar_kind(other),
                other.to_json()
            )),
        }),
        (FactType::Boolean, Op::Cmp(..) | Op::Between(..)) => Some(format!(
            "`{name}` orders numbers and dates, but `{path}` is true or false"
        )),
        (FactType::Boolean, _) => scalars.iter().find_map(|s| match s {
            Scalar::Bool(_) => None,
            other => Some(format!(
                "`{path}` is true or false; the {} `{}` never equals it",
                scalar_kind(other),
                other.to_json()
            )),
        }),
        (FactType::Number { .. }, Op::Cmp(_, Bound::Date(text, _))) => Some(format!(
            "`{path}` is {}, not a date: `{name}: {text}` cannot compare them",
            kind.describe()
        )),
        (FactType::Number { .. }, _) => scalars.iter().find_map(|s| match s {
            Scalar::Num(_) => None,
            other => Some(format!(
                "`{path}` is {}; the {} `{}` never equals it (write it without quotes)",
                kind.describe(),
                scalar_kind(other),
                other.to_json()
            )),
        }),
        (FactType::String { .. }, Op::Between(..)) => Some(format!(
            "`between` compares numbers, but `{path}` is {}",
            kind.describe()
        )),
        (FactType::String { date }, Op::Cmp(_, Bound::Num(n))) => Some(format!(
            "`{path}` is {}, not a number: `{name}: {n}` cannot compare them",
            if *date { "a date" } else { "text" }
        )),
        (FactType::String { date: false }, Op::Cmp(..)) => Some(format!(
            "`{path}` is text, not a date: `{name}` cannot order it"
        )),
        (FactType::String { .. }, _) => scalars.iter().find_map(|s| match s {
            Scalar::Str(_) => None,
            other => Some(format!(
                "`{path}` is text; the {} `{}` never equals it (quote it: \"{}\")",
                scalar_kind(other),
                other.to_json(),
                other.to_json()
            )),
        }),
    }
}

fn scalar_kind(scalar: &Scalar) -> &'static str {
    match scalar {
        Scalar::Num(_) => "number",
        Scalar::Str(_) => "text",
        Scalar::Bool(_) => "boolean",
    }
}

// What an operator accepts, as the lints model it.

/// The values a comparison accepts, as far as the analysis models them.
#[derive(Debug, Clone)]
pub(crate) enum Values<'a> {
    /// Exactly these.
    Set(Vec<&'a Scalar>),
    /// Anything present but these.
    Except(Vec<&'a Scalar>),
    /// Numbers in an interval.
    Range(Interval),
    /// Not modelled.
    Unknown,
}

/// A numeric interval; each bound is a value and whether it is included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interval {
    pub lo: (f64, bool),
    pub hi: (f64, bool),
}

impl Interval {
    pub(crate) const ALL: Interval = Interval {
        lo: (f64::NEG_INFINITY, true),
        hi: (f64::INFINITY, true),
    };

    pub(crate) fn intersect(self, other: Interval) -> Interval {
        let lo = if other.lo.0 > self.lo.0 || (other.lo.0 == self.lo.0 && !other.lo.1) {
            other.lo
        } else {
            self.lo
        };
        let hi = if other.hi.0 < self.hi.0 || (other.hi.0 == self.hi.0 && !other.hi.1) {
            other.hi
        } else {
            self.hi
        };
        Interval { lo, hi }
    }

    pub(crate) fn is_empty(self) -> bool {
        self.lo.0 > self.hi.0 || (self.lo.0 == self.hi.0 && !(self.lo.1 && self.hi.1))
    }

    pub(crate) fn contains(self, x: f64) -> bool {
        let above = x > self.lo.0 || (x == self.lo.0 && self.lo.1);
        let below = x < self.hi.0 || (x == self.hi.0 && self.hi.1);
        above && below
    }

    pub(crate) fn within(self, other: Interval) -> bool {
        let lo_ok =
            self.lo.0 > other.lo.0 || (self.lo.0 == other.lo.0 && (other.lo.1 || !self.lo.1));
        let hi_ok =
            self.hi.0 < other.hi.0 || (self.hi.0 == other.hi.0 && (other.hi.1 || !self.hi.1));
        lo_ok && hi_ok
    }
}

pub(crate) fn num_of(scalar: &Scalar) -> Option<f64> {
    match scalar {
        Scalar::Num(n) => Some(n.as_f64()),
        _ => None,
    }
}

pub(crate) fn interval_of(op: &Op) -> Option<Interval> {
    let all = Interval::ALL;
    Some(match op {
        Op::Cmp(cmp, Bound::Num(n)) => {
            let x = n.as_f64();
            match cmp {
                CmpOp::Gt => Interval {
                    lo: (x, false),
                    ..all
                },
                CmpOp::Gte => Interval {
                    lo: (x, true),
                    ..all
                },
                CmpOp::Lt => Interval {
                    hi: (x, false),
                    ..all
                },
                CmpOp::Lte => Interval {
                    hi: (x, true),
                    ..all
                },
            }
        }
        Op::Between(lo, hi) => Interval {
            lo: (lo.as_f64(), true),
            hi: (hi.as_f64(), true),
        },
        Op::Eq(Scalar::Num(n)) => Interval {
            lo: (n.as_f64(), true),
            hi: (n.as_f64(), true),
        },
        _ => return None,
    })
}

pub(crate) fn values(op: &Op) -> Values<'_> {
    if let Some(interval) = interval_of(op) {
        return Values::Range(interval);
    }
    match op {
        Op::Eq(s) => Values::Set(vec![s]),
        Op::In(list) => Values::Set(list.iter().collect()),
        Op::Ne(s) => Values::Except(vec![s]),
        Op::NotIn(list) => Values::Except(list.iter().collect()),
        _ => Values::Unknown,
    }
}

pub(crate) fn same(a: &Scalar, b: &Scalar) -> bool {
    match (num_of(a), num_of(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl Values<'_> {
    /// Whether every value accepted by `self` is accepted by `other`.
    pub(crate) fn subset_of(&self, other: &Values<'_>) -> bool {
        match (self, other) {
            (Values::Set(b), Values::Set(a)) => b.iter().all(|x| a.iter().any(|y| same(x, y))),
            (Values::Set(b), Values::Except(a)) => b.iter().all(|x| !a.iter().any(|y| same(x, y))),
            (Values::Except(b), Values::Except(a)) => {
                a.iter().all(|x| b.iter().any(|y| same(x, y)))
            }
            (Values::Set(b), Values::Range(a)) => {
                b.iter().all(|x| num_of(x).is_some_and(|n| a.contains(n)))
            }
            (Values::Range(b), Values::Range(a)) => b.within(*a),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    /// How `policies/schema/policy.schema.json` writes each kind of value.
    fn schema_of(operand: Operand) -> Value {
        match operand {
            Operand::Scalar => json!({ "$ref": "#/$defs/scalar" }),
            Operand::ScalarList => {
                json!({ "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/scalar" } })
            }
            Operand::Bound => json!({ "$ref": "#/$defs/bound" }),
            Operand::Range => {
                json!({ "type": "array", "minItems": 2, "maxItems": 2, "items": { "type": "number" } })
            }
            Operand::Flag => json!({ "type": "boolean" }),
        }
    }

    /// How the operator table of `policies/README.md` describes each kind of value.
    fn readme_of(operand: Operand) -> &'static str {
        match operand {
            Operand::Scalar => "string, number or boolean",
            Operand::ScalarList => "non-empty list of those",
            Operand::Bound => "number, or RFC 3339 date / date-time",
            Operand::Range => "`[low, high]`, two numbers",
            Operand::Flag => "`true` / `false`",
        }
    }

    /// A value each kind of operator accepts.
    fn sample(operand: Operand) -> Value {
        match operand {
            Operand::Scalar => json!("X"),
            Operand::ScalarList => json!(["X", 1]),
            Operand::Bound => json!("2024-05-01"),
            Operand::Range => json!([0, 1.5]),
            Operand::Flag => json!(true),
        }
    }

    /// The operator called `name`, if there is one.
    fn operator(name: &str) -> Option<&'static OperatorSpec> {
        OPERATORS.iter().find(|spec| spec.name == name)
    }

    fn names() -> Vec<&'static str> {
        OPERATORS.iter().map(|spec| spec.name).collect()
    }

    #[test]
    fn every_operator_has_one_name_and_compiles_to_itself() {
        let mut unique = names();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), OPERATORS.len(), "{:?}", names());
        for spec in OPERATORS {
            let op = spec.compile(&sample(spec.operand)).unwrap();
            assert_eq!(op.name(), spec.name);
            assert_eq!(operator(spec.name).map(|s| s.name), Some(spec.name));
            // What compiles is shown as it was written.
            assert_eq!(op.expected(), sample(spec.operand), "{}", spec.name);
        }
        assert!(operator("equals").is_none());
        assert_eq!(
            operator_names(),
            "eq, ne, in, not_in, gt, gte, lt, lte, between, exists"
        );
    }

    #[test]
    fn the_schema_lists_every_operator_with_its_value() {
        let schema: Value = serde_json::from_str(crate::shape::POLICY_SCHEMA).unwrap();
        let model_field = schema["$defs"]["operator"]["properties"]
            .as_object()
            .unwrap()
            .clone();
        let mut leaf = schema["$defs"]["condition"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|shape| shape["required"] == json!(["fact"]))
            .and_then(|shape| shape["properties"].as_object())
            .unwrap()
            .clone();
        assert!(leaf.remove("fact").is_some());
        for (place, properties) in [("$defs/operator", model_field), ("a leaf", leaf)] {
            let mut listed: Vec<&str> = properties.keys().map(String::as_str).collect();
            let mut expected = names();
            listed.sort_unstable();
            expected.sort_unstable();
            assert_eq!(listed, expected, "the operators of {place} in the schema");
            for spec in OPERATORS {
                assert_eq!(
                    properties[spec.name],
                    schema_of(spec.operand),
                    "`{}` in {place} of the schema",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn the_readme_table_lists_every_operator_with_its_value() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies/README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<&str> = readme
            .lines()
            .skip_while(|line| !line.starts_with("| operator | value | true when the fact |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .collect();
        let mut listed = Vec::new();
        for row in rows {
            let cells: Vec<&str> = row
                .split(" | ")
                .map(|c| c.trim_matches('|').trim())
                .collect();
            let [operators, value, _meaning] = cells.as_slice() else {
                panic!("a row of three cells: {row}");
            };
            for name in operators.split(", ") {
                let name = name.trim_matches('`');
                let spec = operator(name)
                    .unwrap_or_else(|| panic!("the README lists `{name}`, which is no operator"));
                assert_eq!(*value, readme_of(spec.operand), "the README's `{name}`");
                listed.push(spec.name);
            }
        }
        assert_eq!(
            listed,
            names(),
            "the operators in the README's table, in order"
        );
    }
}
