//! Backtests: the facts of stored decisions replayed through a policy (a draft, usually), and
//! the report of what would change. Reading the stored decisions and the reviewers' labels is
//! the caller's; this module counts and reports.

use crate::policy::Policy;
use crate::settings::RuleMode;
use arbiter_core::Facts;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;

/// One stored decision, as a backtest replays it.
#[derive(Debug, Clone, Copy)]
pub struct StoredDecision<'a> {
    /// The request the decision was made for.
    pub request_id: &'a str,
    /// The tenant it belongs to.
    pub tenant: &'a str,
    /// The flow it was made in; a backtest replays only its policy's flow.
    pub flow: &'a str,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// The facts the policy saw, as stored (JSON).
    pub facts: &'a str,
    /// The ids of the rules that fired, as stored (a JSON list).
    pub fired: &'a str,
    /// The action decided.
    pub action: &'a str,
    /// The reason decided.
    pub reason: &'a str,
    /// The deciding policy's id.
    pub policy_id: &'a str,
    /// The deciding policy's version.
    pub policy_version: i64,
    /// What a reviewer said of the image: `Some(true)` fake, `Some(false)` authentic, `None`
    /// when nobody labelled it or the label says neither.
    pub label_says_fake: Option<bool>,
}

/// The stretch of stored decisions a backtest replays, for the report's heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacktestWindow {
    /// The first instant, inclusive.
    pub since: DateTime<Utc>,
    /// The last instant, exclusive.
    pub until: DateTime<Utc>,
    /// Only this tenant's decisions, or every tenant's.
    pub tenant: Option<String>,
}

/// How often one rule of the policy fired: in the stored decisions and on replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHits {
    /// The rule's id.
    pub id: String,
    /// Enforced or shadow; a shadow rule's replayed hits are its matches.
    pub mode: RuleMode,
    /// Stored decisions that list the rule as fired.
    pub stored: usize,
    /// Replayed decisions in which it fires (or, for a shadow rule, matches).
    pub replayed: usize,
}

/// A stored decision whose action the policy changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedDecision {
    /// When the decision was recorded.
    pub created_at: DateTime<Utc>,
    /// Its tenant.
    pub tenant: String,
    /// Its request.
    pub request_id: String,
    /// The stored action and reason.
    pub stored: (String, String),
    /// The deciding policy's id and version.
    pub stored_policy: (String, i64),
    /// The action and reason on replay.
    pub replayed: (String, String),
    /// The rules that fire on replay.
    pub fired: Vec<String>,
}

/// How often one rule was right about the images reviewers labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePrecision {
    /// The rule's id.
    pub id: String,
    /// Labelled decisions in which it fires (or, for a shadow rule, matches).
    pub hits: usize,
    /// Those where it is right: its action flags an image labelled fake, or passes one
    /// labelled authentic.
    pub right: usize,
}

/// What a policy would have done to stored decisions. Its `Display` is the report
/// `arbiter policy backtest` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacktestReport {
    /// The policy's id.
    pub policy_id: String,
    /// The policy's version.
    pub policy_version: u32,
    /// The policy's flow.
    pub flow: String,
    /// The decisions replayed.
    pub window: BacktestWindow,
    /// Decisions of the policy's flow that were replayed.
    pub replayed: usize,
    /// Decisions of the policy's flow whose stored facts could not be read.
    pub unreadable: usize,
    /// Replayed decisions whose action changes.
    pub changed: usize,
    /// Replayed decisions whose action stays but whose reason changes.
    pub reason_only: usize,
    /// How many replayed decisions go from each stored action to each new one.
    pub actions: BTreeMap<(String, String), usize>,
    /// Each rule of the policy, in file order.
    pub rules: Vec<RuleHits>,
    /// Rules that fired in stored decisions but are not in the policy, with their hits.
    pub retired: Vec<(String, usize)>,
    /// The first changed decisions, oldest first.
    pub samples: Vec<ChangedDecision>,
    /// Replayed decisions that a reviewer labelled fake or authentic.
    pub labelled: usize,
    /// Per rule of the policy, in file order, those that fired on a labelled decision.
    pub precision: Vec<RulePrecision>,
}

impl Policy {
    /// Replays `decisions` (those of other flows are passed over) and reports what would
    /// change: actions, reasons, rule hits, up to `samples` changed decisions, and per-rule
    /// precision against the reviewers' labels.
    pub fn backtest<'a>(
        &self,
        window: BacktestWindow,
        decisions: impl IntoIterator<Item = StoredDecision<'a>>,
        samples: usize,
    ) -> BacktestReport {
        let mut replayed = 0usize;
        let mut unreadable = 0usize;
        let mut changed = 0usize;
        let mut reason_only = 0usize;
        let mut actions: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut old_hits: BTreeMap<String, usize> = BTreeMap::new();
        let mut new_hits: BTreeMap<String, usize> = BTreeMap::new();
        let mut shadow_hits: BTreeMap<String, usize> = BTreeMap::new();
        let mut shown = Vec::new();
        // Per rule of this policy: labelled decisions it fired on, and how many of those the
        // reviewers agreed with.
        let mut judged: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut labelled = 0usize;
        for row in decisions.into_iter().filter(|r| r.flow == self.flow()) {
            let Ok(facts) = serde_json::from_str::<Facts>(row.facts) else {
                unreadable += 1;
                continue;
            };
            replayed += 1;
            let decision = self.decide(&facts);
            for rule in serde_json::from_str::<Vec<String>>(row.fired).unwrap_or_default() {
                *old_hits.entry(rule).or_default() += 1;
            }
            for rule in &decision.fired {
                *new_hits.entry(rule.clone()).or_default() += 1;
            }
            for hit in &decision.shadow {
                *shadow_hits.entry(hit.rule.clone()).or_default() += 1;
            }
            if let Some(fake) = row.label_says_fake {
                labelled += 1;
                let fired = decision
                    .fired
                    .iter()
                    .chain(decision.shadow.iter().map(|hit| &hit.rule));
                for rule in fired {
                    let entry = judged.entry(rule.clone()).or_default();
                    entry.0 += 1;
                    if self.rule_flags(rule) == fake {
                        entry.1 += 1;
                    }
                }
            }
            *actions
                .entry((row.action.to_owned(), decision.action.clone()))
                .or_default() += 1;
            if row.action != decision.action {
                changed += 1;
                if shown.len() < samples {
                    shown.push(ChangedDecision {
                        created_at: row.created_at,
                        tenant: row.tenant.to_owned(),
                        request_id: row.request_id.to_owned(),
                        stored: (row.action.to_owned(), row.reason.to_owned()),
                        stored_policy: (row.policy_id.to_owned(), row.policy_version),
                        replayed: (decision.action, decision.reason),
                        fired: decision.fired,
                    });
                }
            } else if row.reason != decision.reason {
                reason_only += 1;
            }
        }
        let rules = self
            .rules()
            .map(|rule| {
                let replayed = match rule.mode {
                    RuleMode::Enforce => new_hits.get(rule.id),
                    RuleMode::Shadow => shadow_hits.get(rule.id),
                };
                RuleHits {
                    id: rule.id.to_owned(),
                    mode: rule.mode,
                    stored: old_hits.get(rule.id).copied().unwrap_or_default(),
                    replayed: replayed.copied().unwrap_or_default(),
                }
            })
            .collect();
        let retired = old_hits
            .into_iter()
            .filter(|(rule, _)| self.rules().all(|r| r.id != rule))
            .collect();
        let precision = self
            .rules()
            .filter_map(|rule| {
                let (hits, right) = judged.get(rule.id)?;
                Some(RulePrecision {
                    id: rule.id.to_owned(),
                    hits: *hits,
                    right: *right,
                })
            })
            .collect();
        BacktestReport {
            policy_id: self.id().to_owned(),
            policy_version: self.version(),
            flow: self.flow().to_owned(),
            window,
            replayed,
            unreadable,
            changed,
            reason_only,
            actions,
            rules,
            retired,
            samples: shown,
            labelled,
            precision,
        }
    }

    /// Whether a rule's action flags the image (is stricter than the policy's mildest action).
    fn rule_flags(&self, rule: &str) -> bool {
        let mildest = self.actions().map(|a| a.severity()).min().unwrap_or(0);
        self.rules()
            .find(|r| r.id == rule)
            .and_then(|r| self.action(r.action))
            .is_some_and(|action| action.severity() > mildest)
    }
}

/// An instant as the report writes it: `2026-10-01T00:00:00Z`.
const INSTANT: &str = "%Y-%m-%dT%H:%M:%SZ";

impl fmt::Display for BacktestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "backtest of {} v{} (flow {}) on decisions from {} to {}{}",
            self.policy_id,
            self.policy_version,
            self.flow,
            self.window.since.format(INSTANT),
            self.window.until.format(INSTANT),
            self.window
                .tenant
                .as_ref()
                .map(|t| format!(", tenant {t}"))
                .unwrap_or_default()
        )?;
        let (replayed, changed, reason_only) = (self.replayed, self.changed, self.reason_only);
        #[allow(clippy::cast_precision_loss, reason = "a percentage for display")]
        let share = if replayed == 0 {
            0.0
        } else {
            changed as f64 * 100.0 / replayed as f64
        };
        writeln!(
            f,
            "replayed {replayed} decisions; {changed} would change action ({share:.1}%), {reason_only} only the reason"
        )?;
        if self.unreadable > 0 {
            writeln!(
                f,
                "skipped {} decisions whose stored facts could not be read",
                self.unreadable
            )?;
        }
        if replayed > 0 {
            writeln!(f)?;
            writeln!(f, "old action -> new action")?;
            for ((old, new), count) in &self.actions {
                let mark = if old == new { "" } else { "  (changed)" };
                writeln!(f, "  {old:<24} -> {new:<24} {count:>8}{mark}")?;
            }
            writeln!(f)?;
            writeln!(f, "rule hits (stored decisions -> this policy)")?;
            for rule in &self.rules {
                let shadow = if rule.mode == RuleMode::Shadow {
                    " (shadow)"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "  {:<40} {:>8} -> {:>8}{shadow}",
                    rule.id, rule.stored, rule.replayed
                )?;
            }
            for (rule, count) in &self.retired {
                writeln!(f, "  {rule:<40} {count:>8} -> (not in this policy)")?;
            }
        }
        if !self.samples.is_empty() {
            writeln!(f)?;
            writeln!(f, "changed decisions (first {})", self.samples.len())?;
            for sample in &self.samples {
                writeln!(
                    f,
                    "  {} {} {}: {} ({}) [{} v{}] -> {} ({}) fired [{}]",
                    sample.created_at.format(INSTANT),
                    sample.tenant,
                    sample.request_id,
                    sample.stored.0,
                    sample.stored.1,
                    sample.stored_policy.0,
                    sample.stored_policy.1,
                    sample.replayed.0,
                    sample.replayed.1,
                    sample.fired.join(", ")
                )?;
            }
        }
        writeln!(f)?;
        if self.labelled == 0 {
            writeln!(
                f,
                "per-rule precision: no replayed decision has a reviewer's label yet (arbiter review resolve)"
            )?;
        } else {
            writeln!(
                f,
                "per-rule precision ({} decisions labelled by reviewers; a rule is right when it flags a fake or passes an authentic image)",
                self.labelled
            )?;
            for rule in &self.precision {
                let (hits, right) = (rule.hits, rule.right);
                #[allow(clippy::cast_precision_loss, reason = "a percentage for display")]
                let share = right as f64 * 100.0 / hits as f64;
                writeln!(
                    f,
                    "  {:<40} {right:>4} of {hits:<4} right ({share:.1}%)",
                    rule.id
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "apiVersion: arbiter/v1
kind: Policy
metadata: { id: t, flow: insurance, version: 3 }
actions:
  siu_escalation: { severity: 3 }
  adjuster_review: { severity: 2 }
  proceed: { severity: 0 }
default: { action: proceed, reason: NO_RULE_MATCHED }
rules:
  - id: siu-high
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: siu_escalation, reason: HIGH_RISK }
  - id: review-medium
    when: { fact: verdict.risk_level, eq: MEDIUM }
    then: { action: adjuster_review, reason: NEEDS_HUMAN }
  - id: trial-low
    mode: shadow
    when: { fact: verdict.risk_level, eq: LOW }
    then: { action: adjuster_review, reason: TRIAL }
";

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn stored<'a>(request_id: &'a str, facts: &'a str) -> StoredDecision<'a> {
        StoredDecision {
            request_id,
            tenant: "default",
            flow: "insurance",
            created_at: at("2026-10-02T09:30:00Z"),
            facts,
            fired: "[]",
            action: "proceed",
            reason: "NO_RULE_MATCHED",
            policy_id: "t",
            policy_version: 2,
            label_says_fake: None,
        }
    }

    fn window(tenant: Option<&str>) -> BacktestWindow {
        BacktestWindow {
            since: at("2026-10-01T00:00:00Z"),
            until: at("2026-11-01T00:00:00Z"),
            tenant: tenant.map(str::to_owned),
        }
    }

    #[test]
    fn a_backtest_counts_changes_hits_and_precision() {
        let policy = Policy::from_yaml(POLICY, "t.yaml").unwrap();
        let decisions = [
            // Escalated now, reviewed before; a reviewer called it fake.
            StoredDecision {
                fired: r#"["review-any"]"#,
                action: "adjuster_review",
                reason: "ANY",
                label_says_fake: Some(true),
                ..stored("req_1", r#"{"verdict":{"risk_level":"HIGH"}}"#)
            },
            // Reviewed as before, for another reason; a reviewer called it authentic.
            StoredDecision {
                fired: r#"["review-medium"]"#,
                action: "adjuster_review",
                reason: "OLD_REASON",
                label_says_fake: Some(false),
                ..stored("req_2", r#"{"verdict":{"risk_level":"MEDIUM"}}"#)
            },
            // Unchanged; the shadow rule matches.
            stored("req_3", r#"{"verdict":{"risk_level":"LOW"}}"#),
            // Facts that cannot be read, and a decision of another flow.
            stored("req_4", "not json"),
            StoredDecision {
                flow: "ugc",
                ..stored("req_5", "{}")
            },
        ];
        let report = policy.backtest(window(Some("default")), decisions, 10);
        assert_eq!(
            (
                report.replayed,
                report.unreadable,
                report.changed,
                report.reason_only
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(report.labelled, 2);
        assert_eq!(
            report.precision,
            [
                RulePrecision {
                    id: "siu-high".into(),
                    hits: 1,
                    right: 1
                },
                RulePrecision {
                    id: "review-medium".into(),
                    hits: 1,
                    right: 0
                },
            ]
        );
        assert_eq!(report.retired, [("review-any".to_owned(), 1)]);
        insta::assert_snapshot!(report.to_string(), @r"
        backtest of t v3 (flow insurance) on decisions from 2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z, tenant default
        replayed 3 decisions; 1 would change action (33.3%), 1 only the reason
        skipped 1 decisions whose stored facts could not be read

        old action -> new action
          adjuster_review          -> adjuster_review                 1
          adjuster_review          -> siu_escalation                  1  (changed)
          proceed                  -> proceed                         1

        rule hits (stored decisions -> this policy)
          siu-high                                        0 ->        1
          review-medium                                   1 ->        1
          trial-low                                       0 ->        1 (shadow)
          review-any                                      1 -> (not in this policy)

        changed decisions (first 1)
          2026-10-02T09:30:00Z default req_1: adjuster_review (ANY) [t v2] -> siu_escalation (HIGH_RISK) fired [siu-high]

        per-rule precision (2 decisions labelled by reviewers; a rule is right when it flags a fake or passes an authentic image)
          siu-high                                    1 of 1    right (100.0%)
          review-medium                               0 of 1    right (0.0%)
    ");
    }

    #[test]
    fn an_empty_backtest_says_so() {
        let policy = Policy::from_yaml(POLICY, "t.yaml").unwrap();
        let report = policy.backtest(window(None), [], 10);
        insta::assert_snapshot!(report.to_string(), @r"
        backtest of t v3 (flow insurance) on decisions from 2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z
        replayed 0 decisions; 0 would change action (0.0%), 0 only the reason

        per-rule precision: no replayed decision has a reviewer's label yet (arbiter review resolve)
    ");
        // Only as many samples as asked for.
        let high = stored("req_1", r#"{"verdict":{"risk_level":"HIGH"}}"#);
        let report = policy.backtest(window(None), [high, high, high], 2);
        assert_eq!((report.changed, report.samples.len()), (3, 2));
    }
}
