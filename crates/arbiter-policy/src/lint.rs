//! Lints: legal policies that are probably wrong. Unreachable rules, impossible conditions,
//! untested rules, unused actions.
//!
//! Reachability works on each condition's disjunctive normal form (an `any` of `all`s of
//! literals): rule B is shadowed by an earlier rule A when every way B can match is a way A
//! already matches. The analysis is sound but not complete: it reports only what it can prove.

use crate::catalog::{FactCatalog, FactType};
use crate::condition::{Condition, FactPath, Leaf};
use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::operator::{Interval, OpText, Values, interval_of, num_of, same, values};
use crate::policy::{Policy, Rule};
use crate::settings::{RuleMode, Strategy};
use std::collections::BTreeSet;

/// Conditions whose normal form would have more alternatives than this are not analysed.
const MAX_TERMS: usize = 64;

impl Policy {
    /// The warnings for this policy: rules that can never fire (after a catch-all, or shadowed
    /// by an earlier rule under `first_match`), conditions that can never be true (with a
    /// catalog, also against the facts' ranges: `verdict.confidence gt 1`), rules no embedded
    /// test makes fire, and actions nothing produces. In file order.
    pub fn lints(&self, catalog: Option<&FactCatalog>) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let warn = |out: &mut Vec<Diagnostic>, at, kind, message: String| {
            out.push(Diagnostic::warning(&self.origin, at, kind, message));
        };

        // Impossible conditions.
        let mut impossible = vec![false; self.rules.len()];
        for (i, rule) in self.rules.iter().enumerate() {
            let mut leaf_warnings = 0;
            for_each_leaf(&rule.when, &mut |leaf| {
                if let Some(reason) = catalog.and_then(|c| out_of_range(leaf, c)) {
                    leaf_warnings += 1;
                    warn(
                        &mut out,
                        leaf.value_at.0,
                        DiagnosticKind::Impossible,
                        format!(
                            "`{} {}` can never be true: {reason}",
                            leaf.fact.as_str(),
                            OpText(&leaf.op)
                        ),
                    );
                }
            });
            if let Some(terms) = dnf(&rule.when, false)
                && let Some(reason) = terms
                    .iter()
                    .map(|term| contradiction(term, catalog))
                    .collect::<Option<Vec<String>>>()
            {
                impossible[i] = true;
                if leaf_warnings == 0 {
                    let reason = reason.into_iter().next().unwrap_or_default();
                    warn(
                        &mut out,
                        rule.position,
                        DiagnosticKind::Impossible,
                        format!("rule `{}` can never match: {reason}", rule.id),
                    );
                }
            }
        }

        // Unreachable rules under first_match.
        if self.strategy == Strategy::FirstMatch {
            let enforced: Vec<(usize, &Rule)> = self
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.mode == RuleMode::Enforce)
                .collect();
            let forms: Vec<Option<Vec<Term<'_>>>> =
                enforced.iter().map(|(_, r)| dnf(&r.when, false)).collect();
            for (j, (index_j, rule_j)) in enforced.iter().enumerate() {
                if impossible[*index_j] {
                    continue;
                }
                let Some(terms_j) = &forms[j] else { continue };
                for (i, (_, rule_i)) in enforced[..j].iter().enumerate() {
                    let Some(terms_i) = &forms[i] else { continue };
                    let line = rule_i.position.map(|p| p.line).unwrap_or_default();
                    let message = if is_tautology(terms_i) {
                        format!(
                            "rule `{}` can never fire: rule `{}` (line {line}) matches every \
                             input and comes first (first_match)",
                            rule_j.id, rule_i.id
                        )
                    } else if covers(terms_i, terms_j) {
                        format!(
                            "rule `{}` can never fire: every input it matches is matched first \
                             by rule `{}` (line {line}) under first_match",
                            rule_j.id, rule_i.id
                        )
                    } else {
                        continue;
                    };
                    warn(
                        &mut out,
                        rule_j.position,
                        DiagnosticKind::Unreachable,
                        message,
                    );
                    break;
                }
            }
        }

        // Rules no test covers.
        let report = self.run_tests();
        let mut covered: BTreeSet<&str> = BTreeSet::new();
        for result in &report.results {
            covered.extend(result.decision.fired.iter().map(String::as_str));
            covered.extend(result.decision.shadow.iter().map(|h| h.rule.as_str()));
        }
        for rule in &self.rules {
            if !covered.contains(rule.id.as_str()) {
                let verb = match rule.mode {
                    RuleMode::Enforce => "fire",
                    RuleMode::Shadow => "match",
                };
                warn(
                    &mut out,
                    rule.position,
                    DiagnosticKind::Untested,
                    format!("no embedded test makes rule `{}` {verb}", rule.id),
                );
            }
        }

        // Actions nothing produces.
        for (index, action) in self.actions.iter().enumerate() {
            let produced = self.default.action == index
                || self.on_error == Some(index)
                || self.rules.iter().any(|r| r.then.action == index);
            if !produced {
                warn(
                    &mut out,
                    action.position,
                    DiagnosticKind::UnusedAction,
                    format!(
                        "no rule, the default or on_error produces action `{}`",
                        action.name
                    ),
                );
            }
        }
        out.sort_by_key(|d| d.position);
        out
    }
}

fn for_each_leaf<'a>(condition: &'a Condition, f: &mut impl FnMut(&'a Leaf)) {
    match condition {
        Condition::All(nodes) | Condition::Any(nodes) => {
            for node in nodes.iter() {
                for_each_leaf(node, f);
            }
        }
        Condition::Not(node) => for_each_leaf(node, f),
        Condition::Leaf(leaf) => f(leaf),
        Condition::Models(_) => {}
    }
}

/// One literal of a normal form.
#[derive(Debug, Clone, Copy)]
enum Lit<'a> {
    /// The leaf holds.
    Pos(&'a Leaf),
    /// The leaf does not hold (its fact may be missing).
    Neg(&'a Leaf),
    /// The fact is present (true) or missing (false).
    Exists(&'a FactPath, bool),
    /// Something the analysis does not model (a model quantifier).
    Opaque,
}

/// A conjunction of literals.
type Term<'a> = Vec<Lit<'a>>;

/// The condition as an `any` of `all`s of literals (negated when `negated`); `None` when it
/// would have more than [`MAX_TERMS`] alternatives.
fn dnf(condition: &Condition, negated: bool) -> Option<Vec<Term<'_>>> {
    let (conjunction, nodes) = match condition {
        Condition::Leaf(leaf) => {
            let lit = match (leaf.op.presence(), negated) {
                (Some(present), _) => Lit::Exists(&leaf.fact, present != negated),
                (_, false) => Lit::Pos(leaf),
                (_, true) => Lit::Neg(leaf),
            };
            return Some(vec![vec![lit]]);
        }
        Condition::Models(_) => return Some(vec![vec![Lit::Opaque]]),
        Condition::Not(node) => return dnf(node, !negated),
        Condition::All(nodes) => (!negated, nodes),
        Condition::Any(nodes) => (negated, nodes),
    };
    if conjunction {
        let mut terms: Vec<Term<'_>> = vec![Vec::new()];
        for node in nodes.iter() {
            let alternatives = dnf(node, negated)?;
            let mut next = Vec::with_capacity(terms.len() * alternatives.len());
            for term in &terms {
                for alternative in &alternatives {
                    let mut joined = term.clone();
                    joined.extend(alternative.iter().copied());
                    next.push(joined);
                }
            }
            if next.len() > MAX_TERMS {
                return None;
            }
            terms = next;
        }
        Some(terms)
    } else {
        let mut terms = Vec::new();
        for node in nodes.iter() {
            terms.extend(dnf(node, negated)?);
            if terms.len() > MAX_TERMS {
                return None;
            }
        }
        Some(terms)
    }
}

/// Whether the normal form is true for every input: it has a term with no literal, or a fact
/// both present and missing in two single-literal terms.
fn is_tautology(terms: &[Term<'_>]) -> bool {
    if terms.iter().any(Vec::is_empty) {
        return true;
    }
    let single = |want: bool| {
        terms.iter().filter_map(move |t| match t.as_slice() {
            [Lit::Exists(fact, b)] if *b == want => Some(fact.as_str()),
            _ => None,
        })
    };
    single(true).any(|present| single(false).any(|missing| missing == present))
}

/// Whether every term of `later` implies some term of `earlier`.
fn covers(earlier: &[Term<'_>], later: &[Term<'_>]) -> bool {
    later
        .iter()
        .all(|b| earlier.iter().any(|a| term_implies(b, a)))
}

/// Whether conjunction `b` implies conjunction `a`: each literal of `a` follows from one of `b`.
fn term_implies(b: &[Lit<'_>], a: &[Lit<'_>]) -> bool {
    a.iter().all(|la| b.iter().any(|lb| lit_implies(*lb, *la)))
}

fn fact_of<'a>(lit: Lit<'a>) -> Option<&'a FactPath> {
    match lit {
        Lit::Pos(leaf) | Lit::Neg(leaf) => Some(&leaf.fact),
        Lit::Exists(fact, _) => Some(fact),
        Lit::Opaque => None,
    }
}

fn lit_implies(b: Lit<'_>, a: Lit<'_>) -> bool {
    let (Some(fb), Some(fa)) = (fact_of(b), fact_of(a)) else {
        return false;
    };
    if fb != fa {
        return false;
    }
    match (b, a) {
        (Lit::Exists(_, x), Lit::Exists(_, y)) => x == y,
        // Any comparison that holds needs the fact to be present.
        (Lit::Pos(_), Lit::Exists(_, true)) => true,
        (Lit::Neg(lb), Lit::Neg(la)) => lb.op == la.op,
        (Lit::Pos(lb), Lit::Pos(la)) => lb.op == la.op || values(&lb.op).subset_of(&values(&la.op)),
        _ => false,
    }
}

/// The range of a numeric fact in the catalog.
fn catalog_range(fact: &FactPath, catalog: Option<&FactCatalog>) -> Option<(Interval, String)> {
    match catalog?.get(fact.as_str())? {
        kind @ FactType::Number { min, max, .. } if min.is_some() || max.is_some() => Some((
            Interval {
                lo: (min.unwrap_or(f64::NEG_INFINITY), true),
                hi: (max.unwrap_or(f64::INFINITY), true),
            },
            format!("`{}` is {}", fact.as_str(), kind.describe()),
        )),
        _ => None,
    }
}

/// Why a leaf can never hold given its fact's range in the catalog.
fn out_of_range(leaf: &Leaf, catalog: &FactCatalog) -> Option<String> {
    let interval = interval_of(&leaf.op)?;
    let (range, described) = catalog_range(&leaf.fact, Some(catalog))?;
    interval.intersect(range).is_empty().then_some(described)
}

/// Why a conjunction can never hold, if the analysis can tell.
fn contradiction(term: &[Lit<'_>], catalog: Option<&FactCatalog>) -> Option<String> {
    let facts: BTreeSet<&str> = term
        .iter()
        .filter_map(|l| fact_of(*l).map(FactPath::as_str))
        .collect();
    for fact in facts {
        let on_fact: Vec<Lit<'_>> = term
            .iter()
            .copied()
            .filter(|l| fact_of(*l).is_some_and(|f| f.as_str() == fact))
            .collect();
        let present = on_fact
            .iter()
            .any(|l| matches!(l, Lit::Pos(_) | Lit::Exists(_, true)));
        let missing = on_fact.iter().any(|l| matches!(l, Lit::Exists(_, false)));
        if present && missing {
            return Some(format!("`{fact}` cannot be both present and missing"));
        }
        let positives: Vec<&Leaf> = on_fact
            .iter()
            .filter_map(|l| match l {
                Lit::Pos(leaf) => Some(*leaf),
                _ => None,
            })
            .collect();
        let both = |a: &Leaf, b: &Leaf| {
            format!(
                "`{fact} {}` and `{fact} {}` cannot both hold",
                OpText(&a.op),
                OpText(&b.op)
            )
        };
        // Numeric ranges, including the fact's own range.
        let mut range = Interval::ALL;
        let mut first: Option<&Leaf> = None;
        for leaf in &positives {
            if let Some(interval) = interval_of(&leaf.op) {
                range = range.intersect(interval);
                if range.is_empty() {
                    return Some(match first {
                        Some(earlier) => both(earlier, leaf),
                        None => format!("`{fact} {}` is empty", OpText(&leaf.op)),
                    });
                }
                first = first.or(Some(leaf));
            }
        }
        if let (Some(leaf), Some(path)) = (first, positives.first().map(|l| &l.fact))
            && let Some((own, described)) = catalog_range(path, catalog)
            && range.intersect(own).is_empty()
        {
            return Some(format!("`{fact} {}`: {described}", OpText(&leaf.op)));
        }
        // Value sets: `eq A` with `eq B`, `in` lists with nothing in common.
        for (i, a) in positives.iter().enumerate() {
            for b in &positives[i + 1..] {
                let disjoint = match (values(&a.op), values(&b.op)) {
                    (Values::Set(x), Values::Set(y)) => {
                        !x.iter().any(|p| y.iter().any(|q| same(p, q)))
                    }
                    (Values::Set(x), Values::Except(y)) | (Values::Except(y), Values::Set(x)) => {
                        x.iter().all(|p| y.iter().any(|q| same(p, q)))
                    }
                    (Values::Set(x), Values::Range(r)) | (Values::Range(r), Values::Set(x)) => {
                        x.iter().all(|p| num_of(p).is_none_or(|n| !r.contains(n)))
                    }
                    _ => false,
                };
                if disjoint {
                    return Some(both(a, b));
                }
            }
        }
    }
    None
}
