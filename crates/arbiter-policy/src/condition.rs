//! Compiled conditions and their evaluation.
//!
//! Everything that can be decided once is decided when the policy is compiled: fact paths are
//! split into segments, comparison values are typed, dates are parsed. Evaluating a condition
//! allocates nothing unless it fails. What each operator does is in `operator.rs`.

use crate::diagnostic::Position;
use crate::operator::{Op, OpText};
use crate::settings::MissingFact;
use arbiter_core::Facts;
use serde_json::Value;
use std::fmt;

/// A dotted fact path (`verdict.risk_level`), split once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FactPath {
    text: Box<str>,
    segments: Box<[Box<str>]>,
}

impl FactPath {
    /// Splits a path; `None` when a segment is empty (`a..b`, `.a`, ``).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let segments: Box<[Box<str>]> = text.split('.').map(Box::from).collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || s.chars().any(char::is_whitespace))
        {
            return None;
        }
        Some(Self {
            text: text.into(),
            segments,
        })
    }

    /// The path as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The fact's value; `None` when missing or null.
    pub(crate) fn lookup<'f>(&self, facts: &'f Facts) -> Option<&'f Value> {
        facts.get_segments(self.segments.iter().map(|s| &**s))
    }
}

/// Where a compiled node came from in the policy file. Two spans always compare equal, so
/// moving a rule does not make it "changed".
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span(pub Option<Position>);

impl PartialEq for Span {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `{fact: path, <op>: value}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    pub fact: FactPath,
    pub op: Op,
    /// The `fact:` value's position.
    pub fact_at: Span,
    /// The operator value's position.
    pub value_at: Span,
}

/// A field of a model result a quantifier can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModelField {
    Score,
    Label,
}

impl ModelField {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ModelField::Score => "score",
            ModelField::Label => "label",
        }
    }
}

/// `models: { where: { score: { gte: 0.9 } }, at_least: 2 }`: how many model results
/// (`models.<name>`) satisfy every test of `where`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Quantifier {
    /// Only these models count (`among: [gan, diffusion]`); all of them when `None`.
    pub among: Option<Box<[Box<str>]>>,
    /// The tests each model result must pass, all of them.
    pub tests: Box<[(ModelField, Op)]>,
    pub at_least: u32,
    pub at_most: Option<u32>,
    pub at: Span,
}

impl Quantifier {
    /// Whether model `name` is one the quantifier looks at.
    pub(crate) fn considers(&self, name: &str) -> bool {
        self.among
            .as_ref()
            .is_none_or(|among| among.iter().any(|m| &**m == name))
    }

    /// Whether one model result passes every test. A field that is missing or null (a model
    /// that did not run has no score) fails its test.
    pub(crate) fn matches(&self, name: &str, result: &Value) -> Result<bool, EvalError> {
        for (field, op) in self.tests.iter() {
            let value = result.get(field.name()).filter(|v| !v.is_null());
            let passed = match value {
                None => false,
                Some(value) => op.test(value).map_err(|found| EvalError::NotComparable {
                    fact: format!("models.{name}.{}", field.name()),
                    op: op.name(),
                    wanted: op.wanted(),
                    found,
                })?,
            };
            if !passed {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether `count` matching models satisfies the bounds.
    pub(crate) fn holds(&self, count: u32) -> bool {
        count >= self.at_least && self.at_most.is_none_or(|most| count <= most)
    }

    /// `where` as text (`score gte 0.9, label in [SYNTHETIC]`).
    pub(crate) fn where_text(&self) -> String {
        self.tests
            .iter()
            .map(|(field, op)| format!("{} {}", field.name(), OpText(op)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A compiled `when:` node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    All(Box<[Condition]>),
    Any(Box<[Condition]>),
    Not(Box<Condition>),
    Leaf(Leaf),
    Models(Box<Quantifier>),
}

/// Why a condition could not be evaluated. Built only on failure, so it may allocate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EvalError {
    /// The fact is missing and the policy says `on_missing_fact: error`.
    Missing { fact: String },
    /// The fact's value does not fit an ordering operator (`gt` on a string that is not a date,
    /// a date compared with a number, ...).
    NotComparable {
        fact: String,
        op: &'static str,
        wanted: &'static str,
        found: &'static str,
    },
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Missing { fact } => {
                write!(f, "fact `{fact}` is missing (on_missing_fact: error)")
            }
            EvalError::NotComparable {
                fact,
                op,
                wanted,
                found,
            } => write!(f, "`{op}` needs {wanted} for fact `{fact}`, found {found}"),
        }
    }
}

impl Condition {
    /// Evaluates the condition. `all` and `any` stop at the first operand that settles the
    /// result, so an error in a later operand is not reached.
    pub(crate) fn eval(&self, facts: &Facts, on_missing: MissingFact) -> Result<bool, EvalError> {
        match self {
            Condition::All(nodes) => {
                for node in nodes.iter() {
                    if !node.eval(facts, on_missing)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Any(nodes) => {
                for node in nodes.iter() {
                    if node.eval(facts, on_missing)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(node) => Ok(!node.eval(facts, on_missing)?),
            Condition::Leaf(leaf) => leaf.eval(facts, on_missing),
            Condition::Models(q) => {
                let Some(Value::Object(models)) = facts.get_segments(std::iter::once("models"))
                else {
                    return match on_missing {
                        MissingFact::NoMatch => Ok(false),
                        MissingFact::Error => Err(EvalError::Missing {
                            fact: "models".to_owned(),
                        }),
                    };
                };
                let mut count = 0u32;
                for (name, result) in models {
                    if q.considers(name) && q.matches(name, result)? {
                        count += 1;
                    }
                }
                Ok(q.holds(count))
            }
        }
    }
}

impl Leaf {
    pub(crate) fn eval(&self, facts: &Facts, on_missing: MissingFact) -> Result<bool, EvalError> {
        let Some(value) = self.fact.lookup(facts) else {
            return self.on_missing(on_missing);
        };
        self.op
            .test(value)
            .map_err(|found| EvalError::NotComparable {
                fact: self.fact.as_str().to_owned(),
                op: self.op.name(),
                wanted: self.op.wanted(),
                found,
            })
    }

    /// The result of the leaf when its fact is missing.
    pub(crate) fn on_missing(&self, on_missing: MissingFact) -> Result<bool, EvalError> {
        match (self.op.presence(), on_missing) {
            // `exists` tests presence itself.
            (Some(present), _) => Ok(!present),
            // A missing fact satisfies no comparison, `ne` and `not_in` included.
            (None, MissingFact::NoMatch) => Ok(false),
            (None, MissingFact::Error) => Err(EvalError::Missing {
                fact: self.fact.as_str().to_owned(),
            }),
        }
    }
}

impl fmt::Display for Condition {
    /// A one-line rendering: `all(verdict.risk_level eq HIGH, not(claim.amount lt 100))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, name: &str, nodes: &[Condition]| {
            write!(f, "{name}(")?;
            for (i, node) in nodes.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{node}")?;
            }
            f.write_str(")")
        };
        match self {
            Condition::All(nodes) => list(f, "all", nodes),
            Condition::Any(nodes) => list(f, "any", nodes),
            Condition::Not(node) => write!(f, "not({node})"),
            Condition::Leaf(leaf) => write!(f, "{} {}", leaf.fact.as_str(), OpText(&leaf.op)),
            Condition::Models(q) => {
                write!(f, "models(where {}", q.where_text())?;
                if let Some(among) = &q.among {
                    write!(f, ", among [{}]", among.join(", "))?;
                }
                write!(f, ", at_least {}", q.at_least)?;
                if let Some(most) = q.at_most {
                    write!(f, ", at_most {most}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::CmpOp;
    use crate::value::{Bound, Num, Scalar, parse_instant};
    use serde_json::json;

    fn facts(value: Value) -> Facts {
        Facts::from_map(value.as_object().unwrap().clone())
    }

    fn leaf(path: &str, op: Op) -> Condition {
        Condition::Leaf(Leaf {
            fact: FactPath::parse(path).unwrap(),
            op,
            fact_at: Span::default(),
            value_at: Span::default(),
        })
    }

    fn s(text: &str) -> Scalar {
        Scalar::Str(text.into())
    }

    fn date(text: &str) -> Bound {
        Bound::Date(text.into(), parse_instant(text).unwrap())
    }

    fn eval(condition: &Condition, facts: &Facts, on_missing: MissingFact) -> Result<bool, String> {
        condition.eval(facts, on_missing).map_err(|e| e.to_string())
    }

    fn sample() -> Facts {
        facts(json!({
            "verdict": { "label": "AI_GENERATED", "confidence": 0.94, "risk_level": "HIGH" },
            "claim": { "amount": 12000, "incident_date": "2024-05-01", "note": "n/a" },
            "liveness": { "passed": false, "score": null },
            "reported_at": "2024-05-01T10:30:00+02:00",
        }))
    }

    #[test]
    fn fact_paths_reject_empty_segments() {
        assert!(FactPath::parse("a.b").is_some());
        for bad in ["", ".a", "a.", "a..b", "a b"] {
            assert!(FactPath::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn eq_and_ne_compare_numbers_numerically_and_other_types_exactly() {
        let f = sample();
        let m = MissingFact::NoMatch;
        assert_eq!(
            eval(&leaf("verdict.risk_level", Op::Eq(s("HIGH"))), &f, m),
            Ok(true)
        );
        assert_eq!(
            eval(&leaf("verdict.risk_level", Op::Eq(s("high"))), &f, m),
            Ok(false)
        );
        assert_eq!(
            eval(
                &leaf("claim.amount", Op::Eq(Scalar::Num(Num::Float(12000.0)))),
                &f,
                m
            ),
            Ok(true)
        );
        assert_eq!(
            eval(
                &leaf("claim.amount", Op::Eq(Scalar::Num(Num::Int(12000)))),
                &f,
                m
            ),
            Ok(true)
        );
        assert_eq!(
            eval(
                &leaf("verdict.confidence", Op::Eq(Scalar::Num(Num::Float(0.94)))),
                &f,
                m
            ),
            Ok(true)
        );
        // A number never equals a string, even one that spells it.
        assert_eq!(
            eval(&leaf("claim.amount", Op::Eq(s("12000"))), &f, m),
            Ok(false)
        );
        assert_eq!(
            eval(&leaf("liveness.passed", Op::Eq(Scalar::Bool(false))), &f, m),
            Ok(true)
        );
        assert_eq!(
            eval(&leaf("liveness.passed", Op::Ne(Scalar::Bool(true))), &f, m),
            Ok(true)
        );
        assert_eq!(
            eval(&leaf("verdict.label", Op::Ne(s("AI_GENERATED"))), &f, m),
            Ok(false)
        );
        assert_eq!(
            eval(&leaf("verdict.label", Op::Ne(s("AUTHENTIC"))), &f, m),
            Ok(true)
        );
    }

    #[test]
    fn in_and_not_in_test_membership() {
        let f = sample();
        let m = MissingFact::NoMatch;
        let labels: Box<[Scalar]> = Box::new([s("AI_GENERATED"), s("MANIPULATED")]);
        assert_eq!(
            eval(&leaf("verdict.label", Op::In(labels.clone())), &f, m),
            Ok(true)
        );
        assert_eq!(
            eval(&leaf("verdict.label", Op::NotIn(labels.clone())), &f, m),
            Ok(false)
        );
        assert_eq!(
            eval(&leaf("verdict.risk_level", Op::In(labels.clone())), &f, m),
            Ok(false)
        );
        assert_eq!(
            eval(&leaf("verdict.risk_level", Op::NotIn(labels)), &f, m),
            Ok(true)
        );
        let amounts: Box<[Scalar]> = Box::new([Scalar::Num(Num::Float(12000.0)), s("x")]);
        assert_eq!(
            eval(&leaf("claim.amount", Op::In(amounts)), &f, m),
            Ok(true)
        );
    }

    #[test]
    fn ordering_operators_compare_numbers_and_dates() {
        let f = sample();
        let m = MissingFact::NoMatch;
        let num = |n: i64| Bound::Num(Num::Int(n));
        assert_eq!(
            eval(&leaf("claim.amount", Op::Cmp(CmpOp::Gt, num(11999))), &f, m),
            Ok(true)
        );
        assert_eq!(
            eval(&leaf("claim.amount", Op::Cmp(CmpOp::Gt, num(12000))), &f, m),
            Ok(false)
        );
        assert_eq!(
            eval(
                &leaf("claim.amount", Op::Cmp(CmpOp::Gte, num(12000))),
                &f,
                m
            ),
            Ok(true)
        );
        assert_eq!(
            eval(&leaf("claim.amount", Op::Cmp(CmpOp::Lt, num(12000))), &f, m),
            Ok(false)
        );
        assert_eq!(
            eval(
                &leaf("claim.amount", Op::Cmp(CmpOp::Lte, num(12000))),
                &f,
                m
            ),
            Ok(true)
        );
        let float = Bound::Num(Num::Float(0.85));
        assert_eq!(
            eval(
                &leaf("verdict.confidence", Op::Cmp(CmpOp::Gt, float)),
                &f,
                m
            ),
            Ok(true)
        );
        // Dates compare in time order; a bare date is midnight UTC.
        let d = |op, text| leaf("claim.incident_date", Op::Cmp(op, date(text)));
        assert_eq!(eval(&d(CmpOp::Gte, "2024-05-01"), &f, m), Ok(true));
        assert_eq!(eval(&d(CmpOp::Gt, "2024-05-01"), &f, m), Ok(false));
        assert_eq!(eval(&d(CmpOp::Lt, "2024-05-01T00:00:01Z"), &f, m), Ok(true));
        // 10:30+02:00 is 08:30Z: before 09:00Z although it sorts after it as text.
        let r = |op, text| leaf("reported_at", Op::Cmp(op, date(text)));
        assert_eq!(eval(&r(CmpOp::Lt, "2024-05-01T09:00:00Z"), &f, m), Ok(true));
    }

    #[test]
    fn ordering_a_fact_of_the_wrong_type_is_an_evaluation_error() {
        let f = sample();
        for on_missing in [MissingFact::NoMatch, MissingFact::Error] {
            let cmp = leaf("verdict.label", Op::Cmp(CmpOp::Gt, Bound::Num(Num::Int(1))));
            assert_eq!(
                eval(&cmp, &f, on_missing),
                Err("`gt` needs a number for fact `verdict.label`, found a string".into())
            );
            let cmp = leaf("claim.note", Op::Cmp(CmpOp::Lt, date("2024-01-01")));
            assert_eq!(
                eval(&cmp, &f, on_missing),
                Err("`lt` needs an RFC 3339 date for fact `claim.note`, found a string".into())
            );
            let cmp = leaf("claim.amount", Op::Cmp(CmpOp::Lt, date("2024-01-01")));
            assert!(eval(&cmp, &f, on_missing).is_err());
            let between = leaf("liveness.passed", Op::Between(Num::Int(0), Num::Int(1)));
            assert_eq!(
                eval(&between, &f, on_missing),
                Err("`between` needs a number for fact `liveness.passed`, found a boolean".into())
            );
        }
    }

    #[test]
    fn between_is_inclusive() {
        let f = sample();
        let m = MissingFact::NoMatch;
        let b = |lo, hi| leaf("claim.amount", Op::Between(lo, hi));
        assert_eq!(eval(&b(Num::Int(12000), Num::Int(20000)), &f, m), Ok(true));
        assert_eq!(eval(&b(Num::Int(0), Num::Float(12000.0)), &f, m), Ok(true));
        assert_eq!(eval(&b(Num::Int(12001), Num::Int(20000)), &f, m), Ok(false));
        assert_eq!(
            eval(&b(Num::Float(0.5), Num::Float(11999.5)), &f, m),
            Ok(false)
        );
    }

    #[test]
    fn exists_tests_presence_and_null_counts_as_missing() {
        let f = sample();
        for on_missing in [MissingFact::NoMatch, MissingFact::Error] {
            assert_eq!(
                eval(&leaf("liveness.passed", Op::Exists(true)), &f, on_missing),
                Ok(true)
            );
            assert_eq!(
                eval(&leaf("liveness.passed", Op::Exists(false)), &f, on_missing),
                Ok(false)
            );
            assert_eq!(
                eval(&leaf("liveness.score", Op::Exists(true)), &f, on_missing),
                Ok(false)
            );
            assert_eq!(
                eval(&leaf("liveness.score", Op::Exists(false)), &f, on_missing),
                Ok(true)
            );
            assert_eq!(
                eval(&leaf("nope.nothing", Op::Exists(false)), &f, on_missing),
                Ok(true)
            );
        }
    }

    #[test]
    fn missing_facts_match_nothing_under_no_match() {
        let f = sample();
        let m = MissingFact::NoMatch;
        let ops = [
            Op::Eq(s("x")),
            Op::Ne(s("x")),
            Op::In(Box::new([s("x")])),
            Op::NotIn(Box::new([s("x")])),
            Op::Cmp(CmpOp::Gt, Bound::Num(Num::Int(0))),
            Op::Cmp(CmpOp::Gte, Bound::Num(Num::Int(0))),
            Op::Cmp(CmpOp::Lt, Bound::Num(Num::Int(0))),
            Op::Cmp(CmpOp::Lte, date("2024-01-01")),
            Op::Between(Num::Int(0), Num::Int(1)),
        ];
        for op in ops {
            let name = op.name();
            // `liveness.score` is null, `claim.missing` absent: both are missing.
            for path in ["liveness.score", "claim.missing", "claim.amount.deeper"] {
                assert_eq!(
                    eval(&leaf(path, op.clone()), &f, m),
                    Ok(false),
                    "{name} {path}"
                );
            }
        }
    }

    #[test]
    fn missing_facts_are_errors_under_error() {
        let f = sample();
        let cond = leaf("claim.missing", Op::Ne(s("x")));
        assert_eq!(
            eval(&cond, &f, MissingFact::Error),
            Err("fact `claim.missing` is missing (on_missing_fact: error)".into())
        );
        let cond = leaf(
            "liveness.score",
            Op::Cmp(CmpOp::Gte, Bound::Num(Num::Int(0))),
        );
        assert!(eval(&cond, &f, MissingFact::Error).is_err());
    }

    #[test]
    fn combinators_short_circuit_in_order() {
        let f = sample();
        let e = MissingFact::Error;
        let yes = || leaf("verdict.risk_level", Op::Eq(s("HIGH")));
        let no = || leaf("verdict.risk_level", Op::Eq(s("LOW")));
        let broken = || leaf("claim.missing", Op::Eq(s("x")));
        assert_eq!(
            eval(&Condition::All(Box::new([yes(), yes()])), &f, e),
            Ok(true)
        );
        assert_eq!(
            eval(&Condition::All(Box::new([yes(), no()])), &f, e),
            Ok(false)
        );
        assert_eq!(
            eval(&Condition::All(Box::new([no(), broken()])), &f, e),
            Ok(false)
        );
        assert!(eval(&Condition::All(Box::new([yes(), broken()])), &f, e).is_err());
        assert_eq!(
            eval(&Condition::Any(Box::new([no(), yes()])), &f, e),
            Ok(true)
        );
        assert_eq!(
            eval(&Condition::Any(Box::new([no(), no()])), &f, e),
            Ok(false)
        );
        assert_eq!(
            eval(&Condition::Any(Box::new([yes(), broken()])), &f, e),
            Ok(true)
        );
        assert!(eval(&Condition::Any(Box::new([no(), broken()])), &f, e).is_err());
        assert_eq!(eval(&Condition::Not(Box::new(no())), &f, e), Ok(true));
        assert_eq!(eval(&Condition::Not(Box::new(yes())), &f, e), Ok(false));
        assert!(eval(&Condition::Not(Box::new(broken())), &f, e).is_err());
        // Under no_match a missing fact makes the leaf false, so `not` of it is true.
        let m = MissingFact::NoMatch;
        assert_eq!(eval(&Condition::Not(Box::new(broken())), &f, m), Ok(true));
    }
}
