//! The policies page (`/console/policies`): the live policies with their YAML, the status of
//! each watched file, and a simulator (facts in, the decision and its explanation out; nothing
//! is recorded).

use super::Page;
use super::html::{csrf_field, escape, layout};
use crate::Session;
use arbiter_core::Facts;
use arbiter_engine::LivePolicies;
use serde::Deserialize;
use serde_json::Value;

/// An example of facts for the simulator.
const EXAMPLE_FACTS: &str =
    r#"{"verdict": {"label": "AI_GENERATED", "confidence": 0.94, "risk_level": "HIGH"}}"#;

/// The policies page, with the example facts in the simulator.
pub fn page(policies: &LivePolicies, session: &Session) -> Page {
    Page::ok(
        "Policies",
        session,
        "/console/policies",
        &body(policies, session, "", EXAMPLE_FACTS, ""),
    )
}

fn body(live: &LivePolicies, session: &Session, chosen: &str, facts: &str, result: &str) -> String {
    let store = live.snapshot();
    let mut policies: Vec<_> = store.all().collect();
    policies.sort_by(|a, b| a.id().cmp(b.id()));
    let sections: String = policies
        .iter()
        .map(|policy| {
            format!(
                r#"<section class="card"><h2>{id}</h2><p>{title}Flow <strong>{flow}</strong>, version {version}.<br><span class="mono">SHA-256 {sha}</span></p><details><summary>The YAML</summary><pre>{source}</pre></details></section>"#,
                id = escape(policy.id()),
                title = policy
                    .title()
                    .map_or_else(String::new, |t| format!("{}. ", escape(t))),
                flow = escape(policy.flow()),
                version = policy.version(),
                sha = escape(policy.sha256()),
                source = escape(policy.source()),
            )
        })
        .collect();
    let files = live.files();
    let files_html = if files.is_empty() {
        r#"<p class="muted">No policy directory is watched: the policies built into the binary are live.</p>"#.to_owned()
    } else {
        let rows: String = files
            .iter()
            .map(|file| {
                format!(
                    r#"<tr><td>{}</td><td class="mono">{}</td><td>{}</td></tr>"#,
                    escape(&file.file),
                    escape(file.sha256.get(..16).unwrap_or(&file.sha256)),
                    file.error.as_deref().map_or_else(
                        || "live".to_owned(),
                        |e| format!("not activated: {}", escape(e))
                    )
                )
            })
            .collect();
        format!(
            r#"<div class="table-wrap"><table><thead><tr><th scope="col">File</th><th scope="col">SHA-256</th><th scope="col">Status</th></tr></thead><tbody>{rows}</tbody></table></div>"#
        )
    };
    let options: String = policies
        .iter()
        .map(|policy| {
            let selected = if policy.id() == chosen {
                " selected"
            } else {
                ""
            };
            format!(
                r#"<option value="{id}"{selected}>{id}</option>"#,
                id = escape(policy.id())
            )
        })
        .collect();
    format!(
        r#"<p><a class="button secondary" href="/console/policies/proposals" id="proposals-link">Policy proposals</a> Propose a new version, or approve or reject one (four-eyes: a second admin approves).</p>
<h2>Simulator</h2>
<form method="post" action="/console/policies/simulate">{csrf}
<label for="policy">Policy</label><select id="policy" name="policy">{options}</select>
<label for="facts">Facts (JSON, as a policy sees them)</label><textarea id="facts" name="facts">{facts}</textarea>
<button type="submit">Simulate</button></form>
{result}
<h2>Watched files</h2>{files_html}
<h2>Live policies</h2><div class="cards">{sections}</div>"#,
        csrf = csrf_field(&session.csrf),
        facts = escape(facts),
    )
}

/// The simulator's form.
#[derive(Debug, Default, Deserialize)]
pub struct SimulateForm {
    policy: Option<String>,
    facts: Option<String>,
}

/// A refusal of the simulator's input.
fn alert(text: &str) -> String {
    format!(r#"<p class="notice" role="alert">{text}</p>"#)
}

/// The simulator's facts as a JSON object, or the refusal (escaped HTML) saying why not.
fn simulated_facts(facts: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str::<Value>(facts) {
        Err(err) => Err(alert(&format!(
            "The facts are not JSON: {}.",
            escape(&err.to_string())
        ))),
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(alert("The facts must be a JSON object.")),
    }
}

/// Runs the chosen live policy over the posted facts (nothing is recorded) and shows the
/// decision and its explanation above the page; 400 for an unknown policy or facts that are not
/// a JSON object.
pub fn simulate(live: &LivePolicies, session: &Session, sim: SimulateForm) -> Page {
    let chosen = sim.policy.unwrap_or_default();
    let facts = sim.facts.unwrap_or_default();
    let store = live.snapshot();
    let (status, result) = match (store.by_id(&chosen), simulated_facts(&facts)) {
        (None, _) => (
            400,
            alert(&format!("There is no live policy {}.", escape(&chosen))),
        ),
        (_, Err(refusal)) => (400, refusal),
        (Some(policy), Ok(map)) => {
            let (decision, explanation) = policy.explain(&Facts::from_map(map));
            let explanation = serde_json::to_string_pretty(&explanation).unwrap_or_default();
            (
                200,
                format!(
                    r#"<div class="ok" role="status" id="simulation"><p>Decision: <strong>{action}</strong> ({reason}); rules fired: {fired}.</p></div><details open><summary>Explanation</summary><pre>{explanation}</pre></details>"#,
                    action = escape(&decision.action),
                    reason = escape(&decision.reason),
                    fired = if decision.fired.is_empty() {
                        "none".to_owned()
                    } else {
                        escape(&decision.fired.join(", "))
                    },
                    explanation = escape(&explanation),
                ),
            )
        }
    };
    Page {
        status,
        html: layout(
            "Policies",
            Some(session),
            "/console/policies",
            &body(live, session, &chosen, &facts, &result),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_facts_must_be_a_json_object() {
        let map = simulated_facts(r#"{"a": 1}"#).unwrap();
        assert_eq!(map["a"], 1);
        assert_eq!(
            simulated_facts("[1]").unwrap_err(),
            r#"<p class="notice" role="alert">The facts must be a JSON object.</p>"#
        );
        let err = simulated_facts("{<").unwrap_err();
        assert!(
            err.starts_with(r#"<p class="notice" role="alert">The facts are not JSON: "#),
            "{err}"
        );
        assert!(!err.contains("{<"), "{err}");
    }

    #[test]
    fn the_example_facts_are_an_object() {
        assert!(simulated_facts(EXAMPLE_FACTS).is_ok());
    }
}
