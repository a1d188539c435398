//! A policy's embedded `tests:` and their report.

use crate::diagnostic::Position;
use crate::explain::Explanation;
use crate::policy::{Expect, Policy, PolicyTest};
use crate::settings::RuleMode;
use arbiter_core::Decision;
use std::fmt;

/// The outcome of one embedded test.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// The test's `name`.
    pub name: String,
    /// Where the test is in the policy file.
    pub position: Option<Position>,
    /// Whether every expectation held.
    pub passed: bool,
    /// On failure, each expectation that did not hold, as `expected ..., got ...`, separated
    /// by `; `. On success, a summary of the decision.
    pub message: String,
    /// The decision the policy made on the test's input.
    pub decision: Decision,
    /// For a failed test, why the policy decided as it did.
    pub explanation: Option<Explanation>,
}

/// How many embedded tests make one rule fire (or match, for a shadow rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCoverage {
    /// The rule's id.
    pub id: String,
    /// Enforced or shadow.
    pub mode: RuleMode,
    /// The number of tests whose decision lists the rule in `fired` (or `shadow`).
    pub tests: usize,
}

/// The outcome of a policy's embedded tests.
#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    /// The policy's file name, for display.
    pub origin: String,
    /// One result per test, in file order.
    pub results: Vec<TestResult>,
    /// One entry per rule, in file order.
    pub coverage: Vec<RuleCoverage>,
}

impl TestReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Whether every test passed (true for a policy without tests).
    pub fn all_passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// The share of rules at least one test covers, in percent (100 for a policy without
    /// rules).
    pub fn coverage_percent(&self) -> f64 {
        if self.coverage.is_empty() {
            return 100.0;
        }
        let covered = self.coverage.iter().filter(|c| c.tests > 0).count();
        #[allow(clippy::cast_precision_loss, reason = "counts of rules are small")]
        let percent = covered as f64 * 100.0 / self.coverage.len() as f64;
        percent
    }

    /// The tests that failed.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

impl fmt::Display for TestReport {
    /// One line per test (`ok` or `FAIL`, failures with their place and message), then a
    /// summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for result in &self.results {
            if result.passed {
                writeln!(f, "ok   {}", result.name)?;
            } else {
                let at = result.position.map(|p| format!(":{p}")).unwrap_or_default();
                writeln!(
                    f,
                    "FAIL {} ({}{at}): {}",
                    result.name, self.origin, result.message
                )?;
            }
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

impl Policy {
    /// Runs the embedded `tests:` against this policy.
    pub fn run_tests(&self) -> TestReport {
        let results: Vec<TestResult> = self.tests.iter().map(|test| self.run_test(test)).collect();
        let coverage = self
            .rules
            .iter()
            .map(|rule| RuleCoverage {
                id: rule.id.clone(),
                mode: rule.mode,
                tests: results
                    .iter()
                    .filter(|r| {
                        r.decision.fired.contains(&rule.id)
                            || r.decision.shadow.iter().any(|hit| hit.rule == rule.id)
                    })
                    .count(),
            })
            .collect();
        TestReport {
            origin: self.origin.clone(),
            results,
            coverage,
        }
    }

    fn run_test(&self, test: &PolicyTest) -> TestResult {
        let decision = self.decide(&test.input);
        let failures = check(&test.expect, &decision);
        let passed = failures.is_empty();
        let message = if passed {
            summary(&decision)
        } else {
            failures.join("; ")
        };
        let explanation = (!passed).then(|| self.explain(&test.input).1);
        TestResult {
            name: test.name.clone(),
            position: test.position,
            passed,
            message,
            decision,
            explanation,
        }
    }
}

fn summary(decision: &Decision) -> String {
    let by = if decision.fired.is_empty() {
        "no rule fired".to_owned()
    } else {
        format!("fired [{}]", decision.fired.join(", "))
    };
    format!("{} ({}), {by}", decision.action, decision.reason)
}

fn same_set(expected: &[String], actual: &[String]) -> bool {
    expected.len() == actual.len() && expected.iter().all(|e| actual.contains(e))
}

fn check(expect: &Expect, decision: &Decision) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(action) = &expect.action
        && *action != decision.action
    {
        failures.push(format!(
            "expected action `{action}`, got `{}` (reason {})",
            decision.action, decision.reason
        ));
    }
    if let Some(reason) = &expect.reason
        && *reason != decision.reason
    {
        failures.push(format!(
            "expected reason `{reason}`, got `{}`",
            decision.reason
        ));
    }
    if let Some(fired) = &expect.fired
        && !same_set(fired, &decision.fired)
    {
        failures.push(format!(
            "expected fired [{}], got [{}]",
            fired.join(", "),
            decision.fired.join(", ")
        ));
    }
    let unwanted: Vec<&str> = expect
        .not_fired
        .iter()
        .filter(|id| decision.fired.contains(id))
        .map(String::as_str)
        .collect();
    if !unwanted.is_empty() {
        failures.push(format!(
            "expected [{}] not to fire, but they fired (fired [{}])",
            unwanted.join(", "),
            decision.fired.join(", ")
        ));
    }
    if let Some(shadow) = &expect.shadow {
        let actual: Vec<String> = decision.shadow.iter().map(|hit| hit.rule.clone()).collect();
        if !same_set(shadow, &actual) {
            failures.push(format!(
                "expected shadow hits [{}], got [{}]",
                shadow.join(", "),
                actual.join(", ")
            ));
        }
    }
    if let Some(description) = &expect.description
        && Some(description) != decision.description.as_ref()
    {
        failures.push(format!(
            "expected description {description:?}, got {:?}",
            decision.description.as_deref().unwrap_or("(none)")
        ));
    }
    failures
}

#[cfg(test)]
mod tests {
    use crate::Policy;

    const POLICY: &str = "apiVersion: arbiter/v1
kind: Policy
metadata: { id: t, flow: insurance, version: 1 }
actions:
  siu_escalation: { severity: 3 }
  adjuster_review: { severity: 2 }
  proceed: { severity: 0 }
default: { action: proceed, reason: NO_RULE_MATCHED }
rules:
  - id: siu-high
    description: '{verdict.label} at {verdict.confidence}'
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: siu_escalation, reason: HIGH_RISK_IMAGE }
  - id: trial
    mode: shadow
    when: { fact: verdict.label, eq: AI_GENERATED }
    then: { action: adjuster_review, reason: TRIAL }
tests:
  - name: passes
    input: { verdict: { label: AI_GENERATED, confidence: 0.94, risk_level: HIGH } }
    expect:
      action: siu_escalation
      reason: HIGH_RISK_IMAGE
      fired: [siu-high]
      shadow: [trial]
      description: AI_GENERATED at 0.94
  - name: wrong about everything
    input: { verdict: { label: AI_GENERATED, confidence: 0.94, risk_level: HIGH } }
    expect:
      action: proceed
      reason: NO_RULE_MATCHED
      fired: []
      not_fired: [siu-high]
      shadow: []
      description: nothing
  - name: wrong action only
    input: { verdict: { label: AUTHENTIC, risk_level: LOW } }
    expect: { action: adjuster_review, fired: [] }
";

    #[test]
    fn the_report_says_what_was_expected_and_what_happened() {
        let policy = Policy::from_yaml(POLICY, "t.yaml").unwrap();
        assert_eq!(policy.test_count(), 3);
        let report = policy.run_tests();
        assert_eq!((report.passed(), report.failed()), (1, 2));
        assert!(!report.all_passed());
        assert_eq!(report.failures().count(), 2);
        assert_eq!(
            report
                .coverage
                .iter()
                .map(|c| (c.id.as_str(), c.tests))
                .collect::<Vec<_>>(),
            [("siu-high", 2), ("trial", 2)]
        );
        assert!((report.coverage_percent() - 100.0).abs() < f64::EPSILON);
        let first = &report.results[0];
        assert!(first.passed);
        assert_eq!(
            first.message,
            "siu_escalation (HIGH_RISK_IMAGE), fired [siu-high]"
        );
        assert_eq!(first.decision.action, "siu_escalation");
        insta::assert_snapshot!(report.to_string(), @r#"
        ok   passes
        FAIL wrong about everything (t.yaml:27:5): expected action `proceed`, got `siu_escalation` (reason HIGH_RISK_IMAGE); expected reason `NO_RULE_MATCHED`, got `HIGH_RISK_IMAGE`; expected fired [], got [siu-high]; expected [siu-high] not to fire, but they fired (fired [siu-high]); expected shadow hits [], got [trial]; expected description "nothing", got "AI_GENERATED at 0.94"
        FAIL wrong action only (t.yaml:36:5): expected action `adjuster_review`, got `proceed` (reason NO_RULE_MATCHED)
        1 passed, 2 failed
        "#);
    }

    #[test]
    fn a_policy_without_tests_passes_vacuously() {
        let source = POLICY.split("tests:").next().unwrap();
        let report = Policy::from_yaml(source, "t.yaml").unwrap().run_tests();
        assert!(report.all_passed());
        assert_eq!(report.to_string(), "0 passed, 0 failed");
    }
}
