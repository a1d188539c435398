//! Stage 2 of validation against a flow: facts exist, compared values are possible, operators
//! fit the facts' types, actions are in the flow's vocabulary. Then the lints.

use crate::catalog::{FactCatalog, FactType};
use crate::condition::{Bound, Condition, Leaf, ModelField, Op, Scalar, Span};
use crate::diagnostic::{Diagnostic, DiagnosticKind, PolicyError};
use crate::suggest::{closest, did_you_mean};
use crate::{Policy, check_vocabulary};
use arbiter_core::Flow;

impl Policy {
    /// Checks the policy against its flow: every fact a rule or description reads must exist
    /// in the flow, every compared value must be one the fact can hold (`HGH` → "did you mean
    /// `HIGH`?"), every operator must fit its fact's type, and every action must be in the
    /// flow's vocabulary.
    ///
    /// Returns the warnings (see [`Policy::lints`]) when there is no error, else every error.
    pub fn validate_against(&self, flow: &dyn Flow) -> Result<Vec<Diagnostic>, PolicyError> {
        let catalog = FactCatalog::for_flow(flow);
        let mut errors = Vec::new();
        if flow.name() != self.flow {
            errors.push(Diagnostic::new(
                &self.origin,
                None,
                DiagnosticKind::Metadata,
                format!(
                    "the policy is for flow `{}`, not `{}`",
                    self.flow,
                    flow.name()
                ),
            ));
        }
        if let Err(error) = check_vocabulary(self, flow.actions()) {
            errors.extend(error.diagnostics().iter().cloned());
        }
        errors.extend(self.check_facts(&catalog));
        if errors.is_empty() {
            Ok(self.lints(Some(&catalog)))
        } else {
            Err(PolicyError::invalid(errors))
        }
    }

    /// Checks every fact path, value and operator against a catalog of facts.
    pub fn check_facts(&self, catalog: &FactCatalog) -> Vec<Diagnostic> {
        let mut checker = Checker {
            catalog,
            origin: &self.origin,
            out: Vec::new(),
        };
        for rule in &self.rules {
            checker.condition(&rule.when);
            if let Some((_, template)) = &rule.description {
                for fact in template.facts() {
                    if catalog.get(fact.as_str()).is_none() {
                        let message = format!(
                            "description names unknown fact `{{{}}}`{}; it would always show `?`",
                            fact.as_str(),
                            checker.flow_and_hint(fact.as_str())
                        );
                        checker.error(rule.description_at, message);
                    }
                }
            }
        }
        checker.out
    }
}

struct Checker<'a> {
    catalog: &'a FactCatalog,
    origin: &'a str,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, at: Span, message: String) {
        self.out.push(Diagnostic::new(
            self.origin,
            at.0,
            DiagnosticKind::Fact,
            message,
        ));
    }

    /// ` for the `insurance` flow (did you mean ...?)`.
    fn flow_and_hint(&self, path: &str) -> String {
        let flow = match self.catalog.flow() {
            "" => String::new(),
            flow => format!(" for the `{flow}` flow"),
        };
        format!("{flow}{}", did_you_mean(path, self.catalog.paths()))
    }

    fn condition(&mut self, condition: &Condition) {
        match condition {
            Condition::All(nodes) | Condition::Any(nodes) => {
                for node in nodes.iter() {
                    self.condition(node);
                }
            }
            Condition::Not(node) => self.condition(node),
            Condition::Leaf(leaf) => self.leaf(leaf),
            Condition::Models(q) => {
                for (field, op) in q.tests.iter() {
                    // Every model has the same fields; check against the first.
                    let path = format!("models.gan.{}", field.name());
                    if let Some(kind) = self.catalog.get(&path) {
                        let shown = format!("models.*.{}", field.name());
                        if let Some(message) = misfit(&shown, kind, op) {
                            self.error(q.at, message);
                        }
                    }
                    debug_assert!(matches!(field, ModelField::Score | ModelField::Label));
                }
            }
        }
    }

    fn leaf(&mut self, leaf: &Leaf) {
        let path = leaf.fact.as_str();
        let Some(kind) = self.catalog.get(path) else {
            let message = format!("unknown fact `{path}`{}", self.flow_and_hint(path));
            self.error(leaf.fact_at, message);
            return;
        };
        if let Some(message) = misfit(path, kind, &leaf.op) {
            self.error(leaf.value_at, message);
        }
    }
}

/// Why an operator and its value do not fit a fact of this type, if they do not.
fn misfit(path: &str, kind: &FactType, op: &Op) -> Option<String> {
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
