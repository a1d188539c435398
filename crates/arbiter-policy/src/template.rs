//! Rule descriptions: text with `{fact.path}` placeholders filled from the facts.
//!
//! `{{` and `}}` stand for literal braces. A missing fact renders as `?`.

use crate::condition::FactPath;
use arbiter_core::Facts;
use serde_json::Value;
use std::fmt::Write;

/// What the fact stands for when it is missing.
pub(crate) const MISSING: &str = "?";

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(Box<str>),
    Fact(FactPath),
}

/// A compiled description template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    parts: Box<[Part]>,
}

impl Template {
    /// Compiles a template; the error says what is wrong with it.
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, next)| next == '{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().is_some_and(|&(_, next)| next == '}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let rest = &source[at + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!(
                            "`{{` at character {} is never closed (write `{{{{` for a literal brace)",
                            source[..at].chars().count() + 1
                        ));
                    };
                    let name = rest[..end].trim();
                    let Some(path) = FactPath::parse(name) else {
                        return Err(format!(
                            "`{{{name}}}` is not a fact path like `{{verdict.label}}`"
                        ));
                    };
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text).into()));
                    }
                    parts.push(Part::Fact(path));
                    // Skip the placeholder's characters and its closing brace.
                    while chars.next_if(|&(i, _)| i <= at + 1 + end).is_some() {}
                }
                '}' => {
                    return Err(format!(
                        "`}}` at character {} has no opening `{{` (write `}}}}` for a literal brace)",
                        source[..at].chars().count() + 1
                    ));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text.into()));
        }
        Ok(Self {
            parts: parts.into(),
        })
    }

    /// The fact paths the template names, in order.
    pub(crate) fn facts(&self) -> impl Iterator<Item = &FactPath> {
        self.parts.iter().filter_map(|part| match part {
            Part::Fact(path) => Some(path),
            Part::Text(_) => None,
        })
    }

    /// The text with every placeholder replaced by its fact's value.
    pub(crate) fn render(&self, facts: &Facts) -> String {
        let mut out = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Fact(path) => match path.lookup(facts) {
                    None => out.push_str(MISSING),
                    Some(Value::String(s)) => out.push_str(s),
                    // Numbers, booleans, lists and mappings as compact JSON.
                    Some(value) => {
                        let _ = write!(out, "{value}");
                    }
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, facts: Value) -> String {
        let facts = Facts::from_map(facts.as_object().unwrap().clone());
        Template::parse(template).unwrap().render(&facts)
    }

    #[test]
    fn placeholders_take_fact_values_and_missing_ones_render_as_question_marks() {
        let facts = json!({
            "verdict": { "label": "AI_GENERATED", "confidence": 0.94 },
            "claim": { "amount": 12000, "currency": null },
            "liveness": { "passed": false },
        });
        assert_eq!(
            render(
                "{verdict.label} at {verdict.confidence} on a {claim.amount} {claim.currency} claim",
                facts.clone()
            ),
            "AI_GENERATED at 0.94 on a 12000 ? claim"
        );
        assert_eq!(
            render("liveness {liveness.passed}, { claim.id }", facts.clone()),
            "liveness false, ?"
        );
        assert_eq!(
            render("{{literal}} {verdict}", facts.clone()),
            r#"{literal} {"label":"AI_GENERATED","confidence":0.94}"#
        );
        assert_eq!(render("no placeholders", facts.clone()), "no placeholders");
        assert_eq!(render("é{verdict.label}é", facts), "éAI_GENERATEDé");
    }

    #[test]
    fn malformed_templates_are_rejected() {
        assert_eq!(
            Template::parse("at {verdict.confidence").unwrap_err(),
            "`{` at character 4 is never closed (write `{{` for a literal brace)"
        );
        assert_eq!(
            Template::parse("a } b").unwrap_err(),
            "`}` at character 3 has no opening `{` (write `}}` for a literal brace)"
        );
        assert_eq!(
            Template::parse("{}").unwrap_err(),
            "`{}` is not a fact path like `{verdict.label}`"
        );
        assert_eq!(
            Template::parse("{a..b}").unwrap_err(),
            "`{a..b}` is not a fact path like `{verdict.label}`"
        );
    }
}
