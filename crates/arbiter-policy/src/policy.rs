//! A compiled policy and how it decides.

use crate::condition::{Condition, EvalError, Span};
use crate::diagnostic::{Diagnostic, DiagnosticKind, PolicyError, Position};
use crate::settings::{MissingFact, RuleMode, Strategy};
use crate::template::Template;
use arbiter_core::{ActionSpec, Decision, Facts, PolicyRef, ShadowHit};
use serde::Serialize;
use serde_json::{Map, Value};

/// The reason a decision carries when a condition could not be evaluated.
pub const EVALUATION_ERROR: &str = "EVALUATION_ERROR";

/// One action of a policy's vocabulary (`actions:`).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyAction {
    pub(crate) name: String,
    pub(crate) severity: u8,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) position: Option<Position>,
}

impl PolicyAction {
    /// The action's name (`siu_escalation`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Higher is stricter; 0 is the most permissive.
    pub fn severity(&self) -> u8 {
        self.severity
    }

    /// The action's other keys (`review_queue: siu`), free-form.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }
}

/// One entry of `metadata.changelog`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangelogEntry {
    /// The policy version the entry describes.
    pub version: u32,
    /// When it changed, as written (`2025-11-24`).
    pub date: Option<String>,
    /// Who changed it.
    pub author: Option<String>,
    /// What changed.
    pub summary: String,
}

/// What a rule (or the default) decides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// Index into [`Policy::actions`].
    pub action: usize,
    pub reason: String,
    pub tags: Vec<String>,
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub id: String,
    pub description: Option<(String, Template)>,
    pub mode: RuleMode,
    pub when: Condition,
    pub then: Outcome,
    pub position: Option<Position>,
    /// Where the description is.
    pub description_at: Span,
}

/// What an embedded test expects; every field is optional, at least one is set.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Expect {
    pub action: Option<String>,
    pub reason: Option<String>,
    /// Exactly these enforced rules fire (in any order).
    pub fired: Option<Vec<String>>,
    /// None of these rules fire.
    pub not_fired: Vec<String>,
    /// Exactly these shadow rules match (in any order).
    pub shadow: Option<Vec<String>>,
    /// The rendered description of the deciding rule.
    pub description: Option<String>,
}

/// A compiled embedded test.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolicyTest {
    pub name: String,
    pub position: Option<Position>,
    pub input: Facts,
    pub expect: Expect,
}

/// A read-only view of one rule, for listings and explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo<'a> {
    /// The rule's id.
    pub id: &'a str,
    /// Enforced or shadow.
    pub mode: RuleMode,
    /// The action it takes when it matches.
    pub action: &'a str,
    /// The reason code it gives.
    pub reason: &'a str,
    /// Its tags (`then.tags`).
    pub tags: &'a [String],
    /// Its description template as written.
    pub description: Option<&'a str>,
}

/// A compiled policy: validated once, then used for any number of decisions.
///
/// Build one with [`Policy::load`] or [`Policy::from_yaml`]; share it behind an `Arc` and swap
/// the `Arc` to reload.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) origin: String,
    /// The exact text it was compiled from (its `sha256` is of this text).
    pub(crate) source: std::sync::Arc<str>,
    pub(crate) policy_ref: PolicyRef,
    pub(crate) flow: String,
    pub(crate) title: Option<String>,
    pub(crate) owner: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) changelog: Vec<ChangelogEntry>,
    pub(crate) strategy: Strategy,
    pub(crate) on_missing_fact: MissingFact,
    pub(crate) on_error: Option<usize>,
    pub(crate) actions: Vec<PolicyAction>,
    pub(crate) default: Outcome,
    pub(crate) rules: Vec<Rule>,
    pub(crate) tests: Vec<PolicyTest>,
}

impl Policy {
    /// The exact text the policy was compiled from, whose SHA-256 is [`Policy::sha256`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `metadata.id` (`insurance.fnol`).
    pub fn id(&self) -> &str {
        &self.policy_ref.id
    }

    /// `metadata.flow` (`insurance`).
    pub fn flow(&self) -> &str {
        &self.flow
    }

    /// `metadata.version`, from 1.
    pub fn version(&self) -> u32 {
        self.policy_ref.version
    }

    /// Lowercase hex SHA-256 of the exact file bytes.
    pub fn sha256(&self) -> &str {
        &self.policy_ref.sha256
    }

    /// `metadata.title`.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// `metadata.owner`.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// `metadata.description`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// `metadata.changelog`, as written.
    pub fn changelog(&self) -> &[ChangelogEntry] {
        &self.changelog
    }

    /// The file name diagnostics use.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `evaluation.strategy`.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// `evaluation.on_missing_fact`.
    pub fn on_missing_fact(&self) -> MissingFact {
        self.on_missing_fact
    }

    /// The id, version and file hash every decision records.
    pub fn policy_ref(&self) -> PolicyRef {
        self.policy_ref.clone()
    }

    /// The names in `actions:`, in file order.
    pub fn action_names(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| a.name.as_str())
    }

    /// The actions in `actions:`, in file order.
    pub fn actions(&self) -> impl Iterator<Item = &PolicyAction> {
        self.actions.iter()
    }

    /// The action named `name`, if the policy declares it.
    pub fn action(&self, name: &str) -> Option<&PolicyAction> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// The rules, in file order.
    pub fn rules(&self) -> impl Iterator<Item = RuleInfo<'_>> {
        self.rules.iter().map(|rule| RuleInfo {
            id: &rule.id,
            mode: rule.mode,
            action: &self.actions[rule.then.action].name,
            reason: &rule.then.reason,
            tags: &rule.then.tags,
            description: rule.description.as_ref().map(|(text, _)| text.as_str()),
        })
    }

    /// How many embedded tests the policy has.
    pub fn test_count(&self) -> usize {
        self.tests.len()
    }

    /// Decides what to do about one set of facts.
    ///
    /// Enforced rules are evaluated in file order following the strategy; shadow rules are all
    /// evaluated and reported in [`Decision::shadow`]. If a condition cannot be evaluated the
    /// decision takes the `on_error` action (or the default's) with reason `EVALUATION_ERROR`,
    /// and its description says what failed.
    pub fn decide(&self, facts: &Facts) -> Decision {
        let mut fired = Vec::new();
        let mut winner: Option<&Rule> = None;
        for rule in self.rules.iter().filter(|r| r.mode == RuleMode::Enforce) {
            match rule.when.eval(facts, self.on_missing_fact) {
                Ok(false) => {}
                Ok(true) => {
                    fired.push(rule.id.clone());
                    if self.strategy == Strategy::FirstMatch {
                        winner = Some(rule);
                        break;
                    }
                    // collect_all: strictly more severe replaces, so ties keep the first.
                    if winner.is_none_or(|w| self.severity(&rule.then) > self.severity(&w.then)) {
                        winner = Some(rule);
                    }
                }
                Err(error) => return self.error_decision(rule, &error, facts),
            }
        }
        let (outcome, description) = match winner {
            Some(rule) => (
                &rule.then,
                rule.description.as_ref().map(|(_, t)| t.render(facts)),
            ),
            None => (&self.default, None),
        };
        self.decision(outcome.action, &outcome.reason, fired, facts, description)
    }

    fn severity(&self, outcome: &Outcome) -> u8 {
        self.actions[outcome.action].severity
    }

    fn error_decision(&self, rule: &Rule, error: &EvalError, facts: &Facts) -> Decision {
        let action = self.on_error.unwrap_or(self.default.action);
        let description = format!("evaluation error in rule `{}`: {error}", rule.id);
        self.decision(
            action,
            EVALUATION_ERROR,
            Vec::new(),
            facts,
            Some(description),
        )
    }

    fn decision(
        &self,
        action: usize,
        reason: &str,
        fired: Vec<String>,
        facts: &Facts,
        description: Option<String>,
    ) -> Decision {
        let action = &self.actions[action];
        Decision {
            action: action.name.clone(),
            reason: reason.to_owned(),
            fired,
            shadow: self.shadow_hits(facts),
            description,
            severity: action.severity,
            policy: self.policy_ref.clone(),
        }
    }

    /// Every shadow rule that matches. A shadow rule that cannot be evaluated is not a hit and
    /// never affects the decision.
    fn shadow_hits(&self, facts: &Facts) -> Vec<ShadowHit> {
        self.rules
            .iter()
            .filter(|rule| rule.mode == RuleMode::Shadow)
            .filter(|rule| rule.when.eval(facts, self.on_missing_fact) == Ok(true))
            .map(|rule| ShadowHit {
                rule: rule.id.clone(),
                action: self.actions[rule.then.action].name.clone(),
            })
            .collect()
    }
}

/// Checks that every action the policy declares is in its flow's vocabulary.
///
/// A policy declares its actions under `actions:`, and every rule, the default and `on_error`
/// must name one of them, so checking the declarations covers every action the policy can take.
pub fn check_vocabulary(policy: &Policy, flow_actions: &[ActionSpec]) -> Result<(), PolicyError> {
    let known = || {
        flow_actions
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let diagnostics: Vec<Diagnostic> = policy
        .actions
        .iter()
        .filter(|action| !flow_actions.iter().any(|spec| spec.name == action.name))
        .map(|action| {
            Diagnostic::new(
                &policy.origin,
                action.position,
                DiagnosticKind::Vocabulary,
                format!(
                    "action `{}` is not in the `{}` flow's vocabulary ({})",
                    action.name,
                    policy.flow,
                    known()
                ),
            )
        })
        .collect();
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::invalid(diagnostics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::ActionSpec;
    use serde_json::json;

    /// A policy with the insurance vocabulary, the given evaluation settings and rules.
    fn policy(evaluation: &str, rules: &str) -> Policy {
        let source = format!(
            "apiVersion: arbiter/v1
kind: Policy
metadata: {{ id: t, flow: insurance, version: 1 }}
evaluation: {evaluation}
actions:
  siu_escalation: {{ severity: 3, review_queue: siu }}
  adjuster_review: {{ severity: 2 }}
  proceed: {{ severity: 0 }}
default: {{ action: proceed, reason: NO_RULE_MATCHED }}
rules:
{rules}"
        );
        Policy::from_yaml(&source, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn facts(value: serde_json::Value) -> Facts {
        Facts::from_map(value.as_object().unwrap().clone())
    }

    const OVERLAPPING: &str = "
  - id: review-any-ai
    when: { fact: verdict.label, in: [AI_GENERATED, MANIPULATED] }
    then: { action: adjuster_review, reason: AI_LABEL }
  - id: siu-high
    description: '{verdict.label} at {verdict.confidence} on {claim.amount}'
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: siu_escalation, reason: HIGH_RISK_IMAGE }
  - id: review-high-too
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: adjuster_review, reason: ALSO_HIGH }
  - id: siu-high-again
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: siu_escalation, reason: SECOND_SIU }
";

    fn high_ai() -> Facts {
        facts(
            json!({"verdict": {"label": "AI_GENERATED", "confidence": 0.94, "risk_level": "HIGH"}}),
        )
    }

    #[test]
    fn the_model_quantifier_counts_models_that_pass_every_test() {
        let rules = "
  - id: two-models-agree
    when: { models: { where: { score: { gte: 0.9 } }, at_least: 2 } }
    then: { action: siu_escalation, reason: MODELS_AGREE }
  - id: one-generator-model
    when:
      models:
        where: { score: { gt: 0.5 }, label: { in: [SYNTHETIC] } }
        among: [gan, diffusion]
    then: { action: adjuster_review, reason: ONE_MODEL }
  - id: no-model-at-all
    when: { models: { where: { label: { ne: NOT_RUN } }, at_most: 0 } }
    then: { action: adjuster_review, reason: NO_MODEL_RAN }
";
        let p = policy("{ strategy: first_match }", rules);
        let decide = |models: serde_json::Value| p.decide(&facts(json!({ "models": models })));
        let d = decide(json!({
            "gan": { "score": 0.95, "label": "SYNTHETIC" },
            "noise": { "score": 0.9, "label": "SYNTHETIC" },
            "splicing": { "score": 0.1, "label": "AUTHENTIC" },
        }));
        assert_eq!(d.fired, ["two-models-agree"]);
        // One model at 0.9 is not two; `among` limits the second rule to gan and diffusion.
        let d = decide(json!({
            "noise": { "score": 0.95, "label": "SYNTHETIC" },
            "diffusion": { "score": 0.6, "label": "SYNTHETIC" },
        }));
        assert_eq!(d.fired, ["one-generator-model"]);
        let d = decide(json!({
            "noise": { "score": 0.95, "label": "SYNTHETIC" },
            "diffusion": { "score": 0.6, "label": "SUSPICIOUS" },
        }));
        assert_eq!(d.action, "proceed");
        // A model that did not run has a null score: it never passes a score test.
        let d = decide(json!({
            "gan": { "score": null, "label": "NOT_RUN" },
            "diffusion": { "score": null, "label": "NOT_RUN" },
        }));
        assert_eq!(d.fired, ["no-model-at-all"]);
        // Without a `models` fact the quantifier is false under no_match.
        assert_eq!(p.decide(&Facts::new()).action, "proceed");
        // A score of the wrong type is an evaluation error naming the model.
        let d = decide(json!({ "gan": { "score": "high", "label": "SYNTHETIC" } }));
        assert_eq!(d.reason, EVALUATION_ERROR);
        assert_eq!(
            d.description.as_deref(),
            Some(
                "evaluation error in rule `two-models-agree`: `gte` needs a number for fact `models.gan.score`, found a string"
            )
        );
    }

    #[test]
    fn quantifier_mistakes_are_reported() {
        let source = |when: &str| {
            format!(
                "apiVersion: arbiter/v1\nkind: Policy\nmetadata: {{ id: t, flow: insurance, version: 1 }}\n\
                 actions: {{ proceed: {{ severity: 0 }} }}\ndefault: {{ action: proceed, reason: X }}\n\
                 rules:\n  - id: r\n    when: {when}\n    then: {{ action: proceed, reason: X }}\n"
            )
        };
        let cases = [
            (
                "{ models: { where: { score: { gte: 0.9 } }, among: [gam] } }",
                "t.yaml:8:63: unknown model `gam` (did you mean `gan`?); the models are gan, diffusion, noise, metadata, frequency, splicing",
            ),
            (
                "{ models: { where: { score: { gte: 0.9 } }, at_least: 7 } }",
                "t.yaml:8:65: `at_least: 7` can never hold: only 6 models are counted",
            ),
            (
                "{ models: { where: { score: { gte: 0.9 } }, at_least: 3, at_most: 2 } }",
                "t.yaml:8:77: `at_most: 2` is below `at_least: 3`: no count satisfies both",
            ),
            (
                "{ models: { where: { score: { gte: 0.9, lt: 1 } } } }",
                "t.yaml:8:39: `score` has several operators (gte, lt); a model field takes one",
            ),
            (
                "{ models: { where: {} } }",
                "t.yaml:8:30: `where` needs `score`, `label` or both, like { score: { gte: 0.9 } }",
            ),
        ];
        for (when, expected) in cases {
            let error = Policy::from_yaml(&source(when), "t.yaml").unwrap_err();
            assert_eq!(error.to_string(), expected, "{when}");
        }
    }

    #[test]
    fn first_match_takes_the_first_matching_rule_in_order() {
        let p = policy("{ strategy: first_match }", OVERLAPPING);
        let d = p.decide(&high_ai());
        assert_eq!(d.action, "adjuster_review");
        assert_eq!(d.reason, "AI_LABEL");
        assert_eq!(d.fired, ["review-any-ai"]);
        assert_eq!(d.severity, 2);
        assert_eq!(d.description, None);
        assert_eq!(d.policy, p.policy_ref());
    }

    #[test]
    fn collect_all_fires_every_match_and_the_most_severe_wins_first_on_ties() {
        let p = policy("{ strategy: collect_all }", OVERLAPPING);
        let d = p.decide(&high_ai());
        assert_eq!(d.action, "siu_escalation");
        // `siu-high` and `siu-high-again` tie on severity: the first in file order decides.
        assert_eq!(d.reason, "HIGH_RISK_IMAGE");
        assert_eq!(
            d.fired,
            [
                "review-any-ai",
                "siu-high",
                "review-high-too",
                "siu-high-again"
            ]
        );
        assert_eq!(d.severity, 3);
        assert_eq!(d.description.as_deref(), Some("AI_GENERATED at 0.94 on ?"));
    }

    #[test]
    fn no_match_takes_the_default() {
        for strategy in ["first_match", "collect_all"] {
            let p = policy(&format!("{{ strategy: {strategy} }}"), OVERLAPPING);
            let d = p.decide(&facts(
                json!({"verdict": {"label": "AUTHENTIC", "risk_level": "LOW"}}),
            ));
            assert_eq!(
                (d.action.as_str(), d.reason.as_str()),
                ("proceed", "NO_RULE_MATCHED")
            );
            assert!(d.fired.is_empty());
            assert_eq!(d.severity, 0);
        }
    }

    #[test]
    fn shadow_rules_are_reported_but_never_decide() {
        let rules = "
  - id: trial-siu-any-ai
    mode: shadow
    when: { fact: verdict.label, eq: AI_GENERATED }
    then: { action: siu_escalation, reason: TRIAL }
  - id: review-high
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: adjuster_review, reason: HIGH }
  - id: trial-after-the-match
    mode: shadow
    when: { fact: verdict.confidence, gt: 0.9 }
    then: { action: siu_escalation, reason: TRIAL }
  - id: trial-broken
    mode: shadow
    when: { fact: verdict.label, gt: 3 }
    then: { action: siu_escalation, reason: TRIAL }
";
        for strategy in ["first_match", "collect_all"] {
            let p = policy(&format!("{{ strategy: {strategy} }}"), rules);
            let d = p.decide(&high_ai());
            assert_eq!(d.action, "adjuster_review", "{strategy}");
            assert_eq!(d.fired, ["review-high"]);
            // Shadow rules after the deciding rule are evaluated too; a shadow rule that
            // cannot be evaluated is no hit and no error.
            assert_eq!(
                d.shadow,
                [
                    ShadowHit {
                        rule: "trial-siu-any-ai".into(),
                        action: "siu_escalation".into()
                    },
                    ShadowHit {
                        rule: "trial-after-the-match".into(),
                        action: "siu_escalation".into()
                    },
                ]
            );
            let d = p.decide(&facts(json!({"verdict": {"label": "AUTHENTIC"}})));
            assert_eq!(d.action, "proceed");
            assert!(d.shadow.is_empty());
        }
    }

    #[test]
    fn evaluation_errors_take_on_error_with_reason_evaluation_error() {
        let rules = "
  - id: large-claim
    when: { fact: claim.amount, gte: 25000 }
    then: { action: siu_escalation, reason: LARGE }
";
        let p = policy(
            "{ on_missing_fact: error, on_error: adjuster_review }",
            rules,
        );
        let d = p.decide(&high_ai());
        assert_eq!(d.action, "adjuster_review");
        assert_eq!(d.reason, EVALUATION_ERROR);
        assert!(d.fired.is_empty());
        assert_eq!(d.severity, 2);
        assert_eq!(
            d.description.as_deref(),
            Some(
                "evaluation error in rule `large-claim`: fact `claim.amount` is missing \
                 (on_missing_fact: error)"
            )
        );
        // A fact of the wrong type is an error whatever on_missing_fact says.
        let p = policy("{ on_error: siu_escalation }", rules);
        let d = p.decide(&facts(json!({"claim": {"amount": "lots"}})));
        assert_eq!(
            (d.action.as_str(), d.reason.as_str()),
            ("siu_escalation", EVALUATION_ERROR)
        );
        // Under no_match the missing fact simply does not match.
        let d = p.decide(&high_ai());
        assert_eq!(
            (d.action.as_str(), d.reason.as_str()),
            ("proceed", "NO_RULE_MATCHED")
        );
    }

    #[test]
    fn without_on_error_an_evaluation_error_takes_the_default_action() {
        let rules = "
  - id: large-claim
    when: { fact: claim.amount, gte: 25000 }
    then: { action: siu_escalation, reason: LARGE }
";
        let p = policy("{ on_missing_fact: error }", rules);
        let d = p.decide(&Facts::new());
        assert_eq!(
            (d.action.as_str(), d.reason.as_str()),
            ("proceed", EVALUATION_ERROR)
        );
    }

    #[test]
    fn collect_all_stops_at_an_evaluation_error() {
        let rules = "
  - id: siu-high
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: siu_escalation, reason: HIGH }
  - id: broken
    when: { fact: claim.amount, gt: 1 }
    then: { action: proceed, reason: X }
";
        let p = policy(
            "{ strategy: collect_all, on_missing_fact: error, on_error: adjuster_review }",
            rules,
        );
        let d = p.decide(&high_ai());
        assert_eq!(
            (d.action.as_str(), d.reason.as_str()),
            ("adjuster_review", EVALUATION_ERROR)
        );
    }

    #[test]
    fn accessors_expose_metadata_and_vocabulary() {
        let p = policy("{ strategy: collect_all }", OVERLAPPING);
        assert_eq!(p.id(), "t");
        assert_eq!(p.flow(), "insurance");
        assert_eq!(p.version(), 1);
        assert_eq!(p.origin(), "t.yaml");
        assert_eq!(p.strategy(), Strategy::CollectAll);
        assert_eq!(p.on_missing_fact(), MissingFact::NoMatch);
        assert_eq!(
            p.action_names().collect::<Vec<_>>(),
            ["siu_escalation", "adjuster_review", "proceed"]
        );
        let siu = p.action("siu_escalation").unwrap();
        assert_eq!(siu.severity(), 3);
        assert_eq!(siu.metadata().get("review_queue"), Some(&json!("siu")));
        assert!(!siu.metadata().contains_key("severity"));
        let rules: Vec<_> = p.rules().map(|r| (r.id, r.action, r.reason)).collect();
        assert_eq!(rules[1], ("siu-high", "siu_escalation", "HIGH_RISK_IMAGE"));
        assert_eq!(
            p.rules().nth(1).unwrap().description,
            Some("{verdict.label} at {verdict.confidence} on {claim.amount}")
        );
    }

    #[test]
    fn sha256_is_of_the_exact_bytes() {
        let source = "apiVersion: arbiter/v1
kind: Policy
metadata: { id: t, flow: insurance, version: 1 }
actions: { proceed: { severity: 0 } }
default: { action: proceed, reason: NONE }
";
        let a = Policy::from_yaml(source, "a.yaml").unwrap();
        // Golden value: `printf '%s' "$source" | sha256sum`.
        assert_eq!(
            a.sha256(),
            "c3de66f19ab49cd12b58bce7a7b02b79c9212dd2a32ef5e66f89797acbcbbd9a"
        );
        // A comment changes the hash but not the meaning.
        let b = Policy::from_yaml(&format!("# edited\n{source}"), "b.yaml").unwrap();
        assert_ne!(a.sha256(), b.sha256());
        assert_eq!(a.policy_ref().sha256.len(), 64);
    }

    #[test]
    fn load_reads_files_and_rejects_oversized_and_non_utf8_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        let source = "apiVersion: arbiter/v1\nkind: Policy\nmetadata: { id: t, flow: ugc, version: 2 }\nactions: { publish: { severity: 0 } }\ndefault: { action: publish, reason: OK }\n";
        std::fs::write(&good, source).unwrap();
        let p = Policy::load(&good).unwrap();
        assert_eq!(p.version(), 2);
        assert_eq!(p.sha256(), Policy::from_yaml(source, "x").unwrap().sha256());
        assert_eq!(p.origin(), good.display().to_string());

        let big = dir.path().join("big.yaml");
        let mut text = String::from(source);
        text.push_str(&format!("# {}\n", "x".repeat(crate::MAX_POLICY_BYTES)));
        std::fs::write(&big, &text).unwrap();
        let error = Policy::load(&big).unwrap_err();
        assert_eq!(error.diagnostics()[0].kind, DiagnosticKind::File);
        assert_eq!(
            error.to_string(),
            format!(
                "{}: the file is larger than 1048576 bytes (1 MiB), the limit for a policy",
                big.display()
            )
        );
        assert!(Policy::from_yaml(&text, "big.yaml").is_err());

        let latin1 = dir.path().join("latin1.yaml");
        std::fs::write(&latin1, b"apiVersion: arbiter/v1\n# caf\xe9\n").unwrap();
        let error = Policy::load(&latin1).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:2:6: the file is not UTF-8 text (policies are UTF-8 YAML)",
                latin1.display()
            )
        );

        let missing = dir.path().join("missing.yaml");
        let error = Policy::load(&missing).unwrap_err();
        assert!(matches!(error, PolicyError::Read { .. }), "{error:?}");
        assert!(error.to_string().starts_with(&format!(
            "{}: cannot read the policy file: ",
            missing.display()
        )));
    }

    #[test]
    fn vocabulary_check_names_actions_the_flow_does_not_know() {
        let p = policy("{}", OVERLAPPING);
        let spec = |name| ActionSpec {
            name,
            severity: 0,
            description: "",
        };
        let flow = [
            spec("siu_escalation"),
            spec("adjuster_review"),
            spec("proceed"),
        ];
        assert!(check_vocabulary(&p, &flow).is_ok());
        let error = check_vocabulary(&p, &flow[..2]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.yaml:8:3: action `proceed` is not in the `insurance` flow's vocabulary \
             (siu_escalation, adjuster_review)"
        );
        assert_eq!(error.diagnostics()[0].kind, DiagnosticKind::Vocabulary);
    }
}
