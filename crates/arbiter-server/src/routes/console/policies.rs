//! `/console/policies`: the live policies with their YAML, the status of each watched file,
//! and a simulator (facts in, the decision and its explanation out; nothing is recorded).

use super::html::{self, csrf_field, escape};
use super::{posted, require};
use crate::state::AppState;
use arbiter_console::{Area, Session};
use arbiter_core::Facts;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

/// An example of facts for the simulator.
const EXAMPLE_FACTS: &str =
    r#"{"verdict": {"label": "AI_GENERATED", "confidence": 0.94, "risk_level": "HIGH"}}"#;

/// `GET /console/policies`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Policies).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    html::page(
        "Policies",
        &session,
        "/console/policies",
        &body(&state, &session, "", EXAMPLE_FACTS, ""),
    )
}

fn body(state: &AppState, session: &Session, chosen: &str, facts: &str, result: &str) -> String {
    let store = state.pipeline.policies().snapshot();
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
    let files = state.pipeline.policies().files();
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
#[derive(Deserialize)]
pub struct SimulateForm {
    policy: Option<String>,
    facts: Option<String>,
}

/// `POST /console/policies/simulate`.
pub async fn simulate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body_bytes: Bytes,
) -> Response {
    let (session, sim) =
        match posted::<SimulateForm>(&state, &headers, Area::Policies, &body_bytes).await {
            Ok(posted) => posted,
            Err(response) => return response,
        };
    let chosen = sim.policy.unwrap_or_default();
    let facts = sim.facts.unwrap_or_default();
    let store = state.pipeline.policies().snapshot();
    let (status, result) = match (store.by_id(&chosen), serde_json::from_str::<Value>(&facts)) {
        (None, _) => (
            StatusCode::BAD_REQUEST,
            format!(
                r#"<p class="notice" role="alert">There is no live policy {}.</p>"#,
                escape(&chosen)
            ),
        ),
        (_, Err(err)) => (
            StatusCode::BAD_REQUEST,
            format!(
                r#"<p class="notice" role="alert">The facts are not JSON: {}.</p>"#,
                escape(&err.to_string())
            ),
        ),
        (Some(_), Ok(value)) if !value.is_object() => (
            StatusCode::BAD_REQUEST,
            r#"<p class="notice" role="alert">The facts must be a JSON object.</p>"#.to_owned(),
        ),
        (Some(policy), Ok(value)) => {
            let map = value.as_object().cloned().unwrap_or_default();
            let (decision, explanation) = policy.explain(&Facts::from_map(map));
            let explanation = serde_json::to_string_pretty(&explanation).unwrap_or_default();
            (
                StatusCode::OK,
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
    html::respond(
        status,
        html::layout(
            "Policies",
            Some(&session),
            "/console/policies",
            &body(&state, &session, &chosen, &facts, &result),
        ),
    )
}
