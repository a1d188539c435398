//! `/console/audit`: the tenant's audit trail, filtered as `GET /v1/audit/entries` allows,
//! newest first; its signed checkpoints; the result of verifying the live chain; and the export
//! bundle as a download (`/console/audit/export`).

use super::html::{self, escape, url_encode};
use super::require;
use crate::routes::audit::{entries_page, export_tar};
use crate::routes::types::audit::EntriesQuery;
use crate::state::AppState;
use arbiter_audit::{ExportRange, Order};
use arbiter_console::Area;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

/// Entries per page.
const PAGE: u64 = 50;

/// The page's query: the API's filters, and whether to verify the chain.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    reference_id: Option<String>,
    request_id: Option<String>,
    image_sha256: Option<String>,
    event: Option<String>,
    flow: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    verify: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A table of audit entries (export lines as JSON), with what each says in a few words.
pub fn entry_rows(entries: &[Value]) -> String {
    if entries.is_empty() {
        return r#"<p class="muted" id="no-entries">No audit entries.</p>"#.to_owned();
    }
    let rows: String = entries
        .iter()
        .map(|entry| {
            let mut said = Vec::new();
            for key in ["actor", "role", "reason", "label", "action", "queue", "flow", "key_id", "request_id", "reference_id"] {
                if let Some(value) = entry[key].as_str() {
                    said.push(format!("{key} {}", escape(value)));
                }
            }
            if let Some(actions) = entry["actions"].as_array() {
                let names: Vec<&str> = actions.iter().filter_map(Value::as_str).collect();
                said.push(format!("actions {}", escape(&names.join(", "))));
            }
            format!(
                r#"<tr><td>{seq}</td><td class="hide-narrow">{ts}</td><td><code>{event}</code></td><td>{said}</td><td class="mono hide-narrow">{hash}…</td></tr>"#,
                seq = entry["seq"].as_u64().unwrap_or(0),
                ts = escape(entry["ts"].as_str().unwrap_or("")),
                event = escape(entry["event"].as_str().unwrap_or("")),
                said = said.join("; "),
                hash = escape(entry["entry_hash"].as_str().and_then(|h| h.get(..16)).unwrap_or("")),
            )
        })
        .collect();
    format!(
        r#"<div class="table-wrap"><table class="entries"><thead><tr><th scope="col">Seq</th><th scope="col" class="hide-narrow">Time</th><th scope="col">Event</th><th scope="col">What</th><th scope="col" class="hide-narrow">Entry hash</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    )
}

/// `GET /console/audit`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let session = match require(&state, &headers, Area::Audit).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let api_query = EntriesQuery {
        reference_id: given(&query.reference_id),
        request_id: given(&query.request_id),
        image_sha256: given(&query.image_sha256),
        event: given(&query.event),
        flow: given(&query.flow),
        action: given(&query.action),
        since: given(&query.since),
        until: given(&query.until),
        order: Some("desc".to_owned()),
        limit: Some(PAGE),
        cursor: given(&query.cursor),
    };
    let (entries, notice) = match entries_page(&state, &session.tenant, &api_query).await {
        Ok(page) => (Some(page), String::new()),
        Err(err) if err.code.http_status() < 500 => (
            None,
            format!(
                r#"<p class="notice" role="alert">{}</p>"#,
                escape(&err.message)
            ),
        ),
        Err(err) => return html::server_error(&err.message),
    };
    let conn = state.pipeline.db().conn();
    let checkpoints =
        match arbiter_audit::checkpoints_page(conn, &session.tenant, Order::Desc, None, 10).await {
            Ok(page) => page.checkpoints,
            Err(err) => return html::server_error(&err),
        };
    let verified = if query.verify.is_some() {
        let vkey = state.audit.signer.verifier_key();
        // Only the signed-in tenant's chain: another tenant's entries are not this person's to
        // read, nor to wait for.
        match arbiter_audit::verify_tenant(conn, &session.tenant, Some(&vkey)).await {
            Ok(report) => {
                let problems = &report.problems;
                if problems.is_empty() {
                    format!(
                        r#"<p class="ok" role="status" id="verify-result">The live chain verifies: {} entries and {} checkpoints checked, no problems.</p>"#,
                        report.entries, report.checkpoints
                    )
                } else {
                    let items: String = problems
                        .iter()
                        .map(|p| format!("<li>{}</li>", escape(&p.to_string())))
                        .collect();
                    format!(
                        r#"<div class="notice" role="alert" id="verify-result"><p>The chain does not verify:</p><ul>{items}</ul></div>"#
                    )
                }
            }
            Err(err) => return html::server_error(&err),
        }
    } else {
        String::new()
    };
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or(""));
    let filters = format!(
        r#"<form method="get" action="/console/audit" class="filters" role="search">
<div><label for="request_id">Request id</label><input type="text" id="request_id" name="request_id" value="{}"></div>
<div><label for="reference_id">Reference id</label><input type="text" id="reference_id" name="reference_id" value="{}"></div>
<div><label for="image_sha256">Image SHA-256</label><input type="text" id="image_sha256" name="image_sha256" value="{}"></div>
<div><label for="event">Event</label><input type="text" id="event" name="event" value="{}" placeholder="review.resolved"></div>
<div><label for="flow">Flow</label><input type="text" id="flow" name="flow" value="{}"></div>
<div><label for="action">Action</label><input type="text" id="action" name="action" value="{}"></div>
<div><label for="since">Since (RFC 3339)</label><input type="text" id="since" name="since" value="{}"></div>
<div><label for="until">Until (RFC 3339)</label><input type="text" id="until" name="until" value="{}"></div>
<div><button type="submit">Search</button></div>
</form>"#,
        value(&query.request_id),
        value(&query.reference_id),
        value(&query.image_sha256),
        value(&query.event),
        value(&query.flow),
        value(&query.action),
        value(&query.since),
        value(&query.until),
    );
    let (table, next) = match &entries {
        Some(page) => {
            let next = page.next_cursor.as_deref().map_or_else(String::new, |cursor| {
                let mut link = String::from("/console/audit?");
                for (key, v) in [
                    ("request_id", &query.request_id),
                    ("reference_id", &query.reference_id),
                    ("image_sha256", &query.image_sha256),
                    ("event", &query.event),
                    ("flow", &query.flow),
                    ("action", &query.action),
                    ("since", &query.since),
                    ("until", &query.until),
                ] {
                    if let Some(v) = given(v) {
                        link.push_str(&format!("{key}={}&amp;", url_encode(&v)));
                    }
                }
                format!(
                    r#"<div class="pager"><a class="button secondary" rel="next" href="{link}cursor={}">Older entries</a></div>"#,
                    url_encode(cursor)
                )
            });
            (entry_rows(&page.entries), next)
        }
        None => (String::new(), String::new()),
    };
    let checkpoint_rows: String = checkpoints
        .iter()
        .map(|cp| {
            format!(
                r#"<tr><td>{}</td><td>{}</td><td class="mono">{}</td></tr>"#,
                cp.size,
                escape(&cp.issued_at),
                escape(&cp.root_hash)
            )
        })
        .collect();
    let checkpoints_html = if checkpoint_rows.is_empty() {
        r#"<p class="muted">No signed checkpoints yet: the signer signs a chain as it grows and at shutdown.</p>"#.to_owned()
    } else {
        format!(
            r#"<div class="table-wrap"><table><thead><tr><th scope="col">Size</th><th scope="col">Signed</th><th scope="col">Root hash</th></tr></thead><tbody>{checkpoint_rows}</tbody></table></div>"#
        )
    };
    let body = format!(
        r#"{notice}{verified}{filters}
<h2>Entries, newest first</h2>{table}{next}
<h2>Checkpoints</h2>{checkpoints_html}
<h2>Verify and export</h2>
<form method="get" action="/console/audit"><input type="hidden" name="verify" value="1"><button type="submit">Verify the live chain</button></form>
<p><a class="button secondary" href="/console/audit/export" download>Download the export bundle (tar)</a></p>
<p class="muted">Unpack the bundle and run <code>arbiter audit verify --export DIR --vkey FILE</code> or <code>tools/verify_audit.py DIR FILE</code>. The verifier key: <code>{vkey}</code></p>"#,
        vkey = escape(&state.audit.signer.verifier_key().to_string()),
    );
    html::page("Audit", &session, "/console/audit", &body)
}

/// `GET /console/audit/export`: the tenant's whole chain as the export bundle (a tar archive).
pub async fn export(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Audit).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match export_tar(&state, &session.tenant, &ExportRange::default()).await {
        Ok(response) => response,
        Err(err) if err.code.http_status() < 500 => html::message(
            StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            Some(&session),
            "Audit export",
            &err.message,
        ),
        Err(err) => html::server_error(&err.message),
    }
}
