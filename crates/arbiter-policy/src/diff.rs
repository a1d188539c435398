//! What changed between two versions of a policy: rules added, removed and changed, and the
//! settings around them.

use crate::policy::{Policy, Rule};
use serde::Serialize;
use std::fmt;

/// One rule present in both versions whose meaning changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    /// The rule's id.
    pub id: String,
    /// Each change, for a human (`action adjuster_review -> siu_escalation`).
    pub changes: Vec<String>,
}

/// The differences between two versions of a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    /// Changes outside the rules: metadata, evaluation settings, actions, default, tests.
    pub settings: Vec<String>,
    /// Rules only in the new version, in its order.
    pub added: Vec<String>,
    /// Rules only in the old version, in its order.
    pub removed: Vec<String>,
    /// Rules in both whose condition, outcome, mode, description or position changed.
    pub changed: Vec<RuleChange>,
}

impl PolicyDiff {
    /// Whether the two versions decide alike (settings may still differ).
    pub fn rules_unchanged(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Whether nothing at all differs.
    pub fn is_empty(&self) -> bool {
        self.rules_unchanged() && self.settings.is_empty()
    }
}

impl Policy {
    /// Compares this (old) version with a new one.
    pub fn diff(&self, new: &Policy) -> PolicyDiff {
        let old = self;
        let mut diff = PolicyDiff::default();
        let mut setting = |name: &str, a: String, b: String| {
            if a != b {
                diff.settings.push(format!("{name}: {a} -> {b}"));
            }
        };
        setting("id", old.id().to_owned(), new.id().to_owned());
        setting("flow", old.flow.clone(), new.flow.clone());
        setting(
            "version",
            old.version().to_string(),
            new.version().to_string(),
        );
        setting(
            "strategy",
            format!("{:?}", old.strategy),
            format!("{:?}", new.strategy),
        );
        setting(
            "on_missing_fact",
            format!("{:?}", old.on_missing_fact),
            format!("{:?}", new.on_missing_fact),
        );
        let on_error = |p: &Policy| {
            p.on_error.map_or("(default's action)".to_owned(), |i| {
                p.actions[i].name.clone()
            })
        };
        setting("on_error", on_error(old), on_error(new));
        let default = |p: &Policy| {
            format!(
                "{} ({})",
                p.actions[p.default.action].name, p.default.reason
            )
        };
        setting("default", default(old), default(new));
        for action in &old.actions {
            match new.action(&action.name) {
                None => diff
                    .settings
                    .push(format!("action removed: {}", action.name)),
                Some(a) if a.severity != action.severity => diff.settings.push(format!(
                    "action {}: severity {} -> {}",
                    action.name, action.severity, a.severity
                )),
                Some(a) if a.metadata != action.metadata => {
                    diff.settings
                        .push(format!("action {}: metadata changed", action.name));
                }
                Some(_) => {}
            }
        }
        for action in &new.actions {
            if old.action(&action.name).is_none() {
                diff.settings.push(format!(
                    "action added: {} (severity {})",
                    action.name, action.severity
                ));
            }
        }
        let tests = |p: &Policy| p.tests.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let (old_tests, new_tests) = (tests(old), tests(new));
        let added_tests = new_tests.iter().filter(|t| !old_tests.contains(t)).count();
        let removed_tests = old_tests.iter().filter(|t| !new_tests.contains(t)).count();
        if added_tests + removed_tests > 0 {
            diff.settings.push(format!(
                "tests: {added_tests} added, {removed_tests} removed ({} -> {})",
                old_tests.len(),
                new_tests.len()
            ));
        }

        let find = |p: &'_ Policy, id: &str| p.rules.iter().position(|r| r.id == id);
        for rule in &new.rules {
            if find(old, &rule.id).is_none() {
                diff.added.push(rule.id.clone());
            }
        }
        for rule in &old.rules {
            if find(new, &rule.id).is_none() {
                diff.removed.push(rule.id.clone());
            }
        }
        // Order matters under first_match: compare positions among the rules both versions have.
        let common = |p: &Policy, q: &Policy| {
            p.rules
                .iter()
                .filter(|r| find(q, &r.id).is_some())
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        let (old_order, new_order) = (common(old, new), common(new, old));
        for (new_index, id) in new_order.iter().enumerate() {
            let (Some(a), Some(b)) = (find(old, id), find(new, id)) else {
                continue;
            };
            let mut changes = rule_changes(old, &old.rules[a], new, &new.rules[b]);
            let old_index = old_order.iter().position(|x| x == id).unwrap_or(new_index);
            if old_index != new_index {
                changes.push(format!(
                    "moved: position {} -> {} among the rules both versions have",
                    old_index + 1,
                    new_index + 1
                ));
            }
            if !changes.is_empty() {
                diff.changed.push(RuleChange {
                    id: id.clone(),
                    changes,
                });
            }
        }
        diff
    }
}

fn rule_changes(old: &Policy, a: &Rule, new: &Policy, b: &Rule) -> Vec<String> {
    let mut changes = Vec::new();
    if a.mode != b.mode {
        changes.push(format!("mode: {:?} -> {:?}", a.mode, b.mode).to_lowercase());
    }
    if a.when != b.when {
        changes.push(format!("when: {} -> {}", a.when, b.when));
    }
    let (action_a, action_b) = (
        &old.actions[a.then.action].name,
        &new.actions[b.then.action].name,
    );
    if action_a != action_b {
        changes.push(format!("action: {action_a} -> {action_b}"));
    }
    if a.then.reason != b.then.reason {
        changes.push(format!("reason: {} -> {}", a.then.reason, b.then.reason));
    }
    if a.then.tags != b.then.tags {
        changes.push(format!(
            "tags: [{}] -> [{}]",
            a.then.tags.join(", "),
            b.then.tags.join(", ")
        ));
    }
    let text = |r: &Rule| {
        r.description
            .as_ref()
            .map(|(t, _)| t.clone())
            .unwrap_or_default()
    };
    if text(a) != text(b) {
        changes.push("description changed".to_owned());
    }
    changes
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no differences");
        }
        for setting in &self.settings {
            writeln!(f, "~ {setting}")?;
        }
        for id in &self.added {
            writeln!(f, "+ rule {id}")?;
        }
        for id in &self.removed {
            writeln!(f, "- rule {id}")?;
        }
        for change in &self.changed {
            writeln!(f, "~ rule {}", change.id)?;
            for line in &change.changes {
                writeln!(f, "    {line}")?;
            }
        }
        write!(
            f,
            "{} added, {} removed, {} changed",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::Policy;

    const OLD: &str = "apiVersion: arbiter/v1
kind: Policy
metadata: { id: t, flow: insurance, version: 1 }
actions:
  siu_escalation: { severity: 3 }
  adjuster_review: { severity: 2 }
  proceed: { severity: 0 }
default: { action: proceed, reason: NO_RULE_MATCHED }
rules:
  - id: siu-high
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: siu_escalation, reason: HIGH }
  - id: review-medium
    when: { fact: verdict.risk_level, eq: MEDIUM }
    then: { action: adjuster_review, reason: MEDIUM }
  - id: review-inconclusive
    when: { fact: verdict.label, eq: INCONCLUSIVE }
    then: { action: adjuster_review, reason: INCONCLUSIVE }
";

    #[test]
    fn added_removed_changed_and_moved_rules_are_listed() {
        let new = OLD
            .replace("version: 1", "version: 2")
            .replace(
                "  - id: review-inconclusive\n    when: { fact: verdict.label, eq: INCONCLUSIVE }\n    then: { action: adjuster_review, reason: INCONCLUSIVE }\n",
                "",
            )
            .replace("eq: MEDIUM }\n    then: { action: adjuster_review", "in: [MEDIUM, HIGH] }\n    then: { action: siu_escalation")
            .replace(
                "rules:\n",
                "rules:\n  - id: large-claim\n    mode: shadow\n    when: { fact: claim.amount, gte: 25000 }\n    then: { action: adjuster_review, reason: LARGE }\n",
            );
        let old = Policy::from_yaml(OLD, "old.yaml").unwrap();
        let new = Policy::from_yaml(&new, "new.yaml").unwrap();
        let diff = old.diff(&new);
        insta::assert_snapshot!(diff.to_string(), @r"
        ~ version: 1 -> 2
        + rule large-claim
        - rule review-inconclusive
        ~ rule review-medium
            when: verdict.risk_level eq MEDIUM -> verdict.risk_level in [MEDIUM, HIGH]
            action: adjuster_review -> siu_escalation
        1 added, 1 removed, 1 changed
        ");
        assert!(old.diff(&old).is_empty());
        assert_eq!(old.diff(&old).to_string(), "no differences");
    }

    #[test]
    fn reordering_is_a_change_under_first_match() {
        let swapped = OLD.replace(
            "  - id: siu-high\n    when: { fact: verdict.risk_level, eq: HIGH }\n    then: { action: siu_escalation, reason: HIGH }\n",
            "",
        ) + "  - id: siu-high\n    when: { fact: verdict.risk_level, eq: HIGH }\n    then: { action: siu_escalation, reason: HIGH }\n";
        let old = Policy::from_yaml(OLD, "old.yaml").unwrap();
        let new = Policy::from_yaml(&swapped, "new.yaml").unwrap();
        let diff = old.diff(&new);
        assert_eq!(diff.changed.len(), 3, "{diff}");
        assert_eq!(
            diff.changed[2].changes,
            ["moved: position 1 -> 3 among the rules both versions have"]
        );
    }
}
