//! A policy's settings that shape evaluation: `evaluation.strategy`,
//! `evaluation.on_missing_fact` and each rule's `mode`.

use serde::{Deserialize, Serialize};

/// How rules combine (`evaluation.strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The first enforced rule that matches decides; later rules are not evaluated.
    #[default]
    FirstMatch,
    /// Every enforced rule is evaluated and every match fires; the matching rule with the most
    /// severe action decides, the first in file order on a tie.
    CollectAll,
}

/// What a condition on a missing (absent or null) fact does (`evaluation.on_missing_fact`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingFact {
    /// The condition is false: a missing fact satisfies no comparison (`ne` and `not_in`
    /// included). Only `exists: false` is true.
    #[default]
    NoMatch,
    /// Evaluation fails and the decision takes the `on_error` action (or the default's) with
    /// reason `EVALUATION_ERROR`. `exists` still works.
    Error,
}

/// Whether a rule acts (`mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    /// The rule decides when it matches.
    #[default]
    Enforce,
    /// The rule is evaluated and its match is recorded in [`Decision::shadow`](arbiter_core::Decision::shadow), but it never
    /// decides and is not listed in [`Decision::fired`](arbiter_core::Decision::fired). For trying a rule on real traffic.
    Shadow,
}
