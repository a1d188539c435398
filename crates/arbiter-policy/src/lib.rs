//! Arbiter's policy language: load a YAML policy, validate it with `file:line:column`
//! diagnostics, compile it once, and decide what to do about a set of facts.
//!
//! ```
//! use arbiter_core::Facts;
//! use arbiter_policy::Policy;
//!
//! let policy = Policy::from_yaml(
//!     r#"
//! apiVersion: arbiter/v1
//! kind: Policy
//! metadata: { id: demo, flow: insurance, version: 1 }
//! actions:
//!   adjuster_review: { severity: 2 }
//!   proceed: { severity: 0 }
//! default: { action: proceed, reason: NO_RULE_MATCHED }
//! rules:
//!   - id: review-high
//!     when: { fact: verdict.risk_level, eq: HIGH }
//!     then: { action: adjuster_review, reason: HIGH_RISK }
//! "#,
//!     "demo.yaml",
//! )?;
//! let mut facts = Facts::new();
//! facts.set_path("verdict.risk_level", "HIGH".into());
//! let decision = policy.decide(&facts);
//! assert_eq!(decision.action, "adjuster_review");
//! assert_eq!(decision.fired, ["review-high"]);
//! # Ok::<(), arbiter_policy::PolicyError>(())
//! ```
//!
//! The language is described in this crate's `README.md`.
#![forbid(unsafe_code)]

mod backtest;
mod catalog;
mod compile;
mod condition;
mod diagnostic;
mod diff;
mod explain;
mod lint;
mod operator;
mod policy;
mod settings;
mod shape;
mod suggest;
mod syntax;
mod template;
mod testing;
mod validate;
mod value;

pub use backtest::{
    BacktestReport, BacktestWindow, ChangedDecision, RuleHits, RulePrecision, StoredDecision,
};
pub use catalog::{FactCatalog, FactType};
pub use compile::{API_VERSION, KIND, MAX_DEPTH, MAX_POLICY_BYTES, facts_from_text};
pub use diagnostic::{Diagnostic, DiagnosticKind, PolicyError, Position, Severity};
pub use diff::{PolicyDiff, RuleChange};
pub use explain::{ConditionTrace, Explanation, RuleTrace, TraceResult};
pub use policy::{
    ChangelogEntry, EVALUATION_ERROR, Policy, PolicyAction, RuleInfo, check_vocabulary,
};
pub use settings::{MissingFact, RuleMode, Strategy};
pub use shape::POLICY_SCHEMA;
pub use testing::{RuleCoverage, TestReport, TestResult};

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn shipped(name: &str) -> Policy {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../policies")
            .join(name);
        Policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn assert_tests_pass(policy: &Policy, at_least: usize) {
        let report = policy.run_tests();
        assert!(report.all_passed(), "{report}");
        assert!(
            report.results.len() >= at_least,
            "only {} tests",
            report.results.len()
        );
    }

    /// The action with the lowest severity.
    fn most_permissive(policy: &Policy) -> &str {
        policy
            .actions()
            .min_by_key(|a| a.severity())
            .map(PolicyAction::name)
            .unwrap()
    }

    #[test]
    fn shipped_insurance_policy_passes_its_tests() {
        let policy = shipped("insurance-fnol.yaml");
        assert_eq!(
            (policy.id(), policy.flow()),
            ("insurance.fnol", "insurance")
        );
        assert_eq!(
            policy
                .actions()
                .map(|a| (a.name(), a.severity()))
                .collect::<Vec<_>>(),
            [
                ("siu_escalation", 3),
                ("adjuster_review", 2),
                ("proceed", 0)
            ]
        );
        assert_tests_pass(&policy, 8);
    }

    #[test]
    fn shipped_ugc_policy_passes_its_tests() {
        let policy = shipped("ugc-moderation.yaml");
        assert_eq!((policy.id(), policy.flow()), ("ugc.moderation", "ugc"));
        assert_eq!(
            policy
                .actions()
                .map(|a| (a.name(), a.severity()))
                .collect::<Vec<_>>(),
            [("auto_reject", 3), ("hold_for_review", 2), ("publish", 0)]
        );
        assert_tests_pass(&policy, 8);
    }

    #[test]
    fn shipped_kyc_policy_passes_its_tests_and_fails_safe() {
        let policy = shipped("kyc.yaml");
        assert_eq!((policy.id(), policy.flow()), ("kyc.verification", "kyc"));
        assert_eq!(
            policy
                .actions()
                .map(|a| (a.name(), a.severity()))
                .collect::<Vec<_>>(),
            [("reject", 3), ("step_up_verification", 2), ("approve", 0)]
        );
        assert_tests_pass(&policy, 8);
        assert_eq!(policy.on_missing_fact(), MissingFact::NoMatch);
        // With nothing known, KYC steps up.
        let decision = policy.decide(&arbiter_core::Facts::new());
        assert_eq!(decision.action, "step_up_verification");
    }

    #[test]
    fn shipped_policies_match_the_editor_schema() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let schema = std::fs::read_to_string(root.join("schema/policy.schema.json")).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let as_json = |yaml: &str| -> serde_json::Value {
            serde_saphyr::from_str_with_options(
                yaml,
                serde_saphyr::options! { strict_booleans: true },
            )
            .unwrap()
        };
        for name in ["insurance-fnol.yaml", "ugc-moderation.yaml", "kyc.yaml"] {
            let yaml = std::fs::read_to_string(root.join(name)).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&as_json(&yaml))
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:#?}");
        }
        // The schema rejects what the compiler rejects for shape: two operators in a leaf.
        let yaml = std::fs::read_to_string(root.join("kyc.yaml"))
            .unwrap()
            .replace(
                "{ fact: image_role, eq: selfie }",
                "{ fact: image_role, eq: selfie, ne: x }",
            );
        assert!(!validator.is_valid(&as_json(&yaml)));
        assert!(Policy::from_yaml(&yaml, "kyc.yaml").is_err());
    }

    #[test]
    fn shipped_policies_never_let_an_evaluation_error_through() {
        for name in ["insurance-fnol.yaml", "ugc-moderation.yaml", "kyc.yaml"] {
            let policy = shipped(name);
            // Facts of the wrong type make ordering operators fail: the decision must then not
            // be the most permissive action.
            let mut facts = arbiter_core::Facts::new();
            facts.set_path("claim.amount", "lots".into());
            facts.set_path("claim.capture_days_before_incident", "a week".into());
            facts.set_path("uploader.prior_strikes", "many".into());
            facts.set_path("uploader.account_age_days", "new".into());
            facts.set_path("verdict.label", "MANIPULATED".into());
            facts.set_path("verdict.risk_level", "MEDIUM".into());
            let decision = policy.decide(&facts);
            assert_ne!(
                decision.action,
                most_permissive(&policy),
                "{name}: {decision:?}"
            );
        }
    }
}
