//! Why a decision was made: every rule evaluated, every condition with its fact, operator,
//! expected and actual values and result.
//!
//! Explaining walks the same compiled conditions as [`Policy::decide`], recording as it goes;
//! `decide` itself records nothing and stays allocation-light.

use crate::condition::{Condition, EvalError, Leaf, Quantifier};
use crate::policy::{Policy, Rule};
use crate::settings::{MissingFact, RuleMode, Strategy};
use crate::value::ValueText;
use arbiter_core::{Decision, Facts};
use serde::Serialize;
use serde_json::Value;
use std::fmt::{self, Write};

/// The result of one condition node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceResult {
    /// The node is true.
    True,
    /// The node is false.
    False,
    /// The node could not be evaluated (see the explanation's `error`).
    Error,
    /// The node was not evaluated: an earlier operand of `all`/`any` settled the result.
    Skipped,
}

impl TraceResult {
    fn of(result: &Result<bool, EvalError>) -> Self {
        match result {
            Ok(true) => TraceResult::True,
            Ok(false) => TraceResult::False,
            Err(_) => TraceResult::Error,
        }
    }
}

impl fmt::Display for TraceResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceResult::True => "true",
            TraceResult::False => "false",
            TraceResult::Error => "error",
            TraceResult::Skipped => "not evaluated",
        })
    }
}

/// One condition node and how it evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum ConditionTrace {
    /// `all: [...]`.
    All {
        /// The node's result.
        result: TraceResult,
        /// Each operand, in order.
        items: Vec<ConditionTrace>,
    },
    /// `any: [...]`.
    Any {
        /// The node's result.
        result: TraceResult,
        /// Each operand, in order.
        items: Vec<ConditionTrace>,
    },
    /// `not: ...`.
    Not {
        /// The node's result.
        result: TraceResult,
        /// The negated node.
        item: Box<ConditionTrace>,
    },
    /// `{fact, <operator>: expected}`.
    Fact {
        /// The fact path.
        fact: String,
        /// The operator (`eq`, `in`, `gte`, ...).
        operator: &'static str,
        /// The value the policy compares with.
        expected: Value,
        /// The fact's value; `None` when missing or null.
        actual: Option<Value>,
        /// The result.
        result: TraceResult,
    },
    /// `models: {where, among, at_least, at_most}`.
    Models {
        /// The tests of `where`, as text (`score gte 0.9`).
        condition: String,
        /// `at_least`.
        at_least: u32,
        /// `at_most`, if set.
        at_most: Option<u32>,
        /// The models that passed every test.
        matching: Vec<String>,
        /// The result.
        result: TraceResult,
    },
}

impl ConditionTrace {
    /// The node's result.
    pub fn result(&self) -> TraceResult {
        match self {
            ConditionTrace::All { result, .. }
            | ConditionTrace::Any { result, .. }
            | ConditionTrace::Not { result, .. }
            | ConditionTrace::Fact { result, .. }
            | ConditionTrace::Models { result, .. } => *result,
        }
    }
}

/// One rule and how it evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTrace {
    /// The rule's id.
    pub id: String,
    /// Enforced or shadow.
    pub mode: RuleMode,
    /// The action it takes when it matches.
    pub action: String,
    /// Whether it was evaluated; under `first_match` the enforced rules after the deciding one
    /// (or after an evaluation error) are not.
    pub evaluated: bool,
    /// Whether it matched (false when not evaluated or on error).
    pub matched: bool,
    /// Why it could not be evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its description rendered with the facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its condition, node by node (absent when not evaluated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionTrace>,
}

/// Why a decision was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The policy's id, version and SHA-256.
    pub policy: arbiter_core::PolicyRef,
    /// `first_match` or `collect_all`.
    pub strategy: Strategy,
    /// Every rule in file order.
    pub rules: Vec<RuleTrace>,
    /// The rule whose action was taken; `None` for the default or an evaluation error.
    pub decided_by: Option<String>,
}

impl Policy {
    /// Decides like [`Policy::decide`] and explains the decision: every rule with every
    /// condition's fact, operator, expected value, actual value and result, plus each evaluated
    /// rule's rendered description.
    pub fn explain(&self, facts: &Facts) -> (Decision, Explanation) {
        let decision = self.decide(facts);
        let mut stopped = false;
        let mut rules = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let evaluate = rule.mode == RuleMode::Shadow || !stopped;
            let trace = if evaluate {
                let (result, condition) = trace(&rule.when, facts, self.on_missing_fact);
                let matched = result == Ok(true);
                if rule.mode == RuleMode::Enforce
                    && (result.is_err() || (matched && self.strategy == Strategy::FirstMatch))
                {
                    stopped = true;
                }
                RuleTrace {
                    id: rule.id.clone(),
                    mode: rule.mode,
                    action: self.actions[rule.then.action].name.clone(),
                    evaluated: true,
                    matched,
                    error: result.err().map(|e| e.to_string()),
                    description: rule.description.as_ref().map(|(_, t)| t.render(facts)),
                    condition: Some(condition),
                }
            } else {
                not_evaluated(self, rule)
            };
            rules.push(trace);
        }
        let decided_by = decision
            .fired
            .iter()
            .find(|id| {
                self.rules.iter().any(|r| {
                    &r.id == *id
                        && self.actions[r.then.action].name == decision.action
                        && r.then.reason == decision.reason
                })
            })
            .cloned();
        let explanation = Explanation {
            policy: self.policy_ref(),
            strategy: self.strategy,
            rules,
            decided_by,
        };
        (decision, explanation)
    }
}

fn not_evaluated(policy: &Policy, rule: &Rule) -> RuleTrace {
    RuleTrace {
        id: rule.id.clone(),
        mode: rule.mode,
        action: policy.actions[rule.then.action].name.clone(),
        evaluated: false,
        matched: false,
        error: None,
        description: None,
        condition: None,
    }
}

/// Evaluates like [`Condition::eval`], recording every node.
fn trace(
    condition: &Condition,
    facts: &Facts,
    on_missing: MissingFact,
) -> (Result<bool, EvalError>, ConditionTrace) {
    match condition {
        Condition::All(nodes) | Condition::Any(nodes) => {
            let all = matches!(condition, Condition::All(_));
            let mut items = Vec::with_capacity(nodes.len());
            let mut result = Ok(all);
            for node in nodes.iter() {
                if result != Ok(all) {
                    items.push(skipped(node));
                    continue;
                }
                let (r, item) = trace(node, facts, on_missing);
                items.push(item);
                match r {
                    Ok(value) if value != all => result = Ok(value),
                    Ok(_) => {}
                    Err(error) => result = Err(error),
                }
            }
            let outcome = TraceResult::of(&result);
            let node = if all {
                ConditionTrace::All {
                    result: outcome,
                    items,
                }
            } else {
                ConditionTrace::Any {
                    result: outcome,
                    items,
                }
            };
            (result, node)
        }
        Condition::Not(node) => {
            let (r, item) = trace(node, facts, on_missing);
            let result = r.map(|v| !v);
            (
                result.clone(),
                ConditionTrace::Not {
                    result: TraceResult::of(&result),
                    item: Box::new(item),
                },
            )
        }
        Condition::Leaf(leaf) => {
            let result = leaf.eval(facts, on_missing);
            (
                result.clone(),
                leaf_trace(leaf, facts, TraceResult::of(&result)),
            )
        }
        Condition::Models(q) => {
            let result = condition.eval(facts, on_missing);
            let matching = matching_models(q, facts);
            (
                result.clone(),
                models_trace(q, matching, TraceResult::of(&result)),
            )
        }
    }
}

fn matching_models(q: &Quantifier, facts: &Facts) -> Vec<String> {
    let Some(Value::Object(models)) = facts.get("models") else {
        return Vec::new();
    };
    models
        .iter()
        .filter(|(name, result)| q.considers(name) && q.matches(name, result) == Ok(true))
        .map(|(name, _)| name.clone())
        .collect()
}

fn leaf_trace(leaf: &Leaf, facts: &Facts, result: TraceResult) -> ConditionTrace {
    ConditionTrace::Fact {
        fact: leaf.fact.as_str().to_owned(),
        operator: leaf.op.name(),
        expected: leaf.op.expected(),
        actual: leaf.fact.lookup(facts).cloned(),
        result,
    }
}

fn models_trace(q: &Quantifier, matching: Vec<String>, result: TraceResult) -> ConditionTrace {
    ConditionTrace::Models {
        condition: q.where_text(),
        at_least: q.at_least,
        at_most: q.at_most,
        matching,
        result,
    }
}

/// A node that was not evaluated, with its shape.
fn skipped(condition: &Condition) -> ConditionTrace {
    let result = TraceResult::Skipped;
    match condition {
        Condition::All(nodes) => ConditionTrace::All {
            result,
            items: nodes.iter().map(skipped).collect(),
        },
        Condition::Any(nodes) => ConditionTrace::Any {
            result,
            items: nodes.iter().map(skipped).collect(),
        },
        Condition::Not(node) => ConditionTrace::Not {
            result,
            item: Box::new(skipped(node)),
        },
        Condition::Leaf(leaf) => ConditionTrace::Fact {
            fact: leaf.fact.as_str().to_owned(),
            operator: leaf.op.name(),
            expected: leaf.op.expected(),
            actual: None,
            result,
        },
        Condition::Models(q) => models_trace(q, Vec::new(), result),
    }
}

impl fmt::Display for Explanation {
    /// An indented tree: one block per rule, one line per condition node.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in &self.rules {
            let mode = match rule.mode {
                RuleMode::Enforce => "",
                RuleMode::Shadow => " (shadow)",
            };
            let status = if !rule.evaluated {
                "not evaluated (an earlier rule decided)".to_owned()
            } else if let Some(error) = &rule.error {
                format!("ERROR: {error}")
            } else if rule.matched {
                "MATCHED".to_owned()
            } else {
                "no match".to_owned()
            };
            writeln!(f, "rule {}{mode} -> {}: {status}", rule.id, rule.action)?;
            if let Some(condition) = &rule.condition {
                write_node(f, condition, 1)?;
            }
            if let Some(description) = &rule.description {
                writeln!(f, "  description: {description}")?;
            }
        }
        Ok(())
    }
}

fn write_node(f: &mut fmt::Formatter<'_>, node: &ConditionTrace, depth: usize) -> fmt::Result {
    let indent = "  ".repeat(depth);
    match node {
        ConditionTrace::All { result, items } | ConditionTrace::Any { result, items } => {
            let name = if matches!(node, ConditionTrace::All { .. }) {
                "all"
            } else {
                "any"
            };
            writeln!(f, "{indent}{name}: {result}")?;
            for item in items {
                write_node(f, item, depth + 1)?;
            }
        }
        ConditionTrace::Not { result, item } => {
            writeln!(f, "{indent}not: {result}")?;
            write_node(f, item, depth + 1)?;
        }
        ConditionTrace::Fact {
            fact,
            operator,
            expected,
            actual,
            result,
        } => {
            let mut line = format!("{indent}{fact} {operator} {}", ValueText(expected));
            if *result != TraceResult::Skipped {
                match actual {
                    Some(value) => {
                        let _ = write!(line, " (actual: {})", ValueText(value));
                    }
                    None => line.push_str(" (actual: missing)"),
                }
            }
            writeln!(f, "{line}: {result}")?;
        }
        ConditionTrace::Models {
            condition,
            at_least,
            at_most,
            matching,
            result,
        } => {
            let most = at_most
                .map(|m| format!(", at_most {m}"))
                .unwrap_or_default();
            writeln!(
                f,
                "{indent}models where {condition}, at_least {at_least}{most} (matching: [{}]): {result}",
                matching.join(", ")
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: &str = "apiVersion: arbiter/v1
kind: Policy
metadata: { id: t, flow: insurance, version: 1 }
evaluation: { on_error: adjuster_review }
actions:
  siu_escalation: { severity: 3 }
  adjuster_review: { severity: 2 }
  proceed: { severity: 0 }
default: { action: proceed, reason: NO_RULE_MATCHED }
rules:
  - id: siu-high
    description: '{verdict.label} at {verdict.confidence}'
    when:
      all:
        - { fact: verdict.risk_level, eq: HIGH }
        - { fact: verdict.label, in: [AI_GENERATED, MANIPULATED] }
    then: { action: siu_escalation, reason: HIGH }
  - id: models-agree
    when:
      any:
        - { models: { where: { score: { gte: 0.9 } }, at_least: 2 } }
        - not: { fact: claim.amount, lt: 1000 }
    then: { action: adjuster_review, reason: MODELS }
  - id: trial
    mode: shadow
    when: { fact: verdict.confidence, gt: 0.5 }
    then: { action: siu_escalation, reason: TRIAL }
";

    fn facts(value: Value) -> Facts {
        Facts::from_map(value.as_object().unwrap().clone())
    }

    #[test]
    fn every_evaluated_rule_and_condition_is_explained() {
        let policy = Policy::from_yaml(POLICY, "t.yaml").unwrap();
        let input = facts(json!({
            "verdict": { "label": "AUTHENTIC", "confidence": 0.7, "risk_level": "MEDIUM" },
            "models": { "gan": { "score": 0.95 }, "noise": { "score": 0.91 }, "splicing": { "score": 0.1 } },
            "claim": { "amount": 500 },
        }));
        let (decision, explanation) = policy.explain(&input);
        assert_eq!(decision, policy.decide(&input));
        assert_eq!(explanation.decided_by.as_deref(), Some("models-agree"));
        insta::assert_snapshot!(explanation.to_string(), @r"
        rule siu-high -> siu_escalation: no match
          all: false
            verdict.risk_level eq HIGH (actual: MEDIUM): false
            verdict.label in [AI_GENERATED, MANIPULATED]: not evaluated
          description: AUTHENTIC at 0.7
        rule models-agree -> adjuster_review: MATCHED
          any: true
            models where score gte 0.9, at_least 2 (matching: [gan, noise]): true
            not: not evaluated
              claim.amount lt 1000: not evaluated
        rule trial (shadow) -> siu_escalation: MATCHED
          verdict.confidence gt 0.5 (actual: 0.7): true
        ");
        let json = serde_json::to_value(&explanation).unwrap();
        assert_eq!(
            json["rules"][0]["condition"]["items"][0]["actual"],
            "MEDIUM"
        );
        assert_eq!(json["rules"][0]["condition"]["items"][0]["result"], "false");
        assert_eq!(
            json["rules"][0]["condition"]["items"][1]["result"],
            "skipped"
        );
    }

    #[test]
    fn rules_after_the_deciding_one_and_errors_are_shown() {
        let policy = Policy::from_yaml(POLICY, "t.yaml").unwrap();
        let input = facts(json!({
            "verdict": { "label": "AI_GENERATED", "confidence": 0.9, "risk_level": "HIGH" },
        }));
        let (decision, explanation) = policy.explain(&input);
        assert_eq!(decision.action, "siu_escalation");
        assert!(explanation.rules[0].matched);
        assert!(!explanation.rules[1].evaluated);
        assert!(explanation.rules[2].evaluated, "shadow rules always run");

        let input =
            facts(json!({ "verdict": { "risk_level": "LOW" }, "claim": { "amount": "lots" } }));
        let (decision, explanation) = policy.explain(&input);
        assert_eq!(decision.reason, crate::EVALUATION_ERROR);
        assert_eq!(explanation.decided_by, None);
        let rule = &explanation.rules[1];
        assert_eq!(
            rule.error.as_deref(),
            Some("`lt` needs a number for fact `claim.amount`, found a string")
        );
        assert_eq!(
            rule.condition.as_ref().map(ConditionTrace::result),
            Some(TraceResult::Error)
        );
    }
}
