//! Stage 2 of validation against a flow: facts exist, compared values are possible, operators
//! fit the facts' types, actions are in the flow's vocabulary. Then the lints.

use crate::catalog::FactCatalog;
use crate::condition::{Condition, Leaf, ModelField, Span};
use crate::diagnostic::{Diagnostic, DiagnosticKind, PolicyError};
use crate::operator::misfit;
use crate::policy::{Policy, check_vocabulary};
use crate::suggest::did_you_mean;
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
