//! The audit page: the tenant's audit trail, filtered as `GET /v1/audit/entries` allows, newest
//! first; its signed checkpoints; the result of verifying the live chain; and a link to the
//! export bundle (whose download the server streams).

use super::Page;
use super::html::{escape, url_encode};
use crate::Session;
use arbiter_audit::query::{EntryParams, entries_page};
use arbiter_audit::{Order, VerifierKey};
use arbiter_db::Db;
use serde::Deserialize;
use serde_json::Value;

/// Entries per page.
pub const PAGE: u64 = 50;

/// The page's query: the API's filters, and whether to verify the chain.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Only entries with this caller reference.
    pub reference_id: Option<String>,
    /// Only entries about this request.
    pub request_id: Option<String>,
    /// Only entries about this image.
    pub image_sha256: Option<String>,
    /// Only this event.
    pub event: Option<String>,
    /// Only decisions of this flow.
    pub flow: Option<String>,
    /// Only entries naming this action.
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only entries at or before this time (RFC 3339).
    pub until: Option<String>,
    /// The page after this cursor.
    pub cursor: Option<String>,
    /// Verify the live chain when present.
    pub verify: Option<String>,
}

impl AuditQuery {
    /// The page's entries query: the filters given, newest first, [`PAGE`] at a time.
    pub fn entry_params(&self) -> EntryParams {
        EntryParams {
            reference_id: given(&self.reference_id),
            request_id: given(&self.request_id),
            image_sha256: given(&self.image_sha256),
            event: given(&self.event),
            flow: given(&self.flow),
            action: given(&self.action),
            since: given(&self.since),
            until: given(&self.until),
            order: Some("desc".to_owned()),
            limit: Some(PAGE),
            cursor: given(&self.cursor),
        }
    }
}

/// A filter as the API takes it: trimmed, and none when empty.
pub fn given(value: &Option<String>) -> Option<String> {
    super::given(value.as_ref()).map(str::to_owned)
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

/// The link to the next page: the same filters, after `cursor`.
pub fn next_link(query: &AuditQuery, cursor: &str) -> String {
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
}

/// The audit page of the session's tenant: the entries the API's query finds (or its refusal
/// of the filters, above the form), the latest checkpoints, and the chain verified against
/// `vkey` when the query asks.
pub async fn page(db: &Db, vkey: &VerifierKey, session: &Session, query: &AuditQuery) -> Page {
    let conn = db.conn();
    let params = query.entry_params();
    let (entries, notice) = match entries_page(conn, &session.tenant, &params).await {
        Ok(page) => (Some((page.entries, page.next_cursor)), String::new()),
        Err(err) if err.is_invalid() => (
            None,
            format!(
                r#"<p class="notice" role="alert">{}</p>"#,
                escape(&err.to_string())
            ),
        ),
        Err(err) => return Page::server_error(&err),
    };
    let checkpoints =
        match arbiter_audit::checkpoints_page(conn, &session.tenant, Order::Desc, None, 10).await {
            Ok(page) => page.checkpoints,
            Err(err) => return Page::server_error(&err),
        };
    let verified = if query.verify.is_some() {
        // Only the signed-in tenant's chain: another tenant's entries are not this person's to
        // read, nor to wait for.
        match arbiter_audit::verify_tenant(conn, &session.tenant, Some(vkey)).await {
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
            Err(err) => return Page::server_error(&err),
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
        Some((entries, next_cursor)) => {
            let next = next_cursor
                .as_deref()
                .map_or_else(String::new, |cursor| next_link(query, cursor));
            (entry_rows(entries), next)
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
        vkey = escape(&vkey.to_string()),
    );
    Page::ok("Audit", session, "/console/audit", &body)
}

/// The page answering an export the server could not give (`status`, `message`): the message
/// for a refusal, the 500 page for a failure.
pub fn export_refused(session: &Session, status: u16, message: &str) -> Page {
    if status < 500 {
        Page::message(status, Some(session), "Audit export", message)
    } else {
        Page::server_error(&message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_filters_are_not_given() {
        assert_eq!(given(&None), None);
        assert_eq!(given(&Some("  ".to_owned())), None);
        assert_eq!(given(&Some(" req_1 ".to_owned())), Some("req_1".to_owned()));
        let query: AuditQuery =
            serde_urlencoded::from_str("event=review.resolved&flow=&verify=1").unwrap();
        assert_eq!(given(&query.event).as_deref(), Some("review.resolved"));
        assert_eq!(given(&query.flow), None);
        assert!(query.verify.is_some());
    }

    #[test]
    fn the_next_link_keeps_the_given_filters_encoded() {
        let query = AuditQuery {
            event: Some("review.resolved".to_owned()),
            flow: Some(" ".to_owned()),
            since: Some("2026-01-01T00:00:00+01:00".to_owned()),
            ..AuditQuery::default()
        };
        assert_eq!(
            next_link(&query, "41"),
            r#"<div class="pager"><a class="button secondary" rel="next" href="/console/audit?event=review.resolved&amp;since=2026-01-01T00%3A00%3A00%2B01%3A00&amp;cursor=41">Older entries</a></div>"#
        );
    }

    #[test]
    fn entries_say_what_they_are_about_escaped() {
        assert!(entry_rows(&[]).contains(r#"id="no-entries""#));
        let rows = entry_rows(&[json!({
            "seq": 7,
            "ts": "2026-01-01T00:00:00Z",
            "event": "review.resolved",
            "actor": "<ann>",
            "actions": ["hold", "notify"],
            "entry_hash": "0123456789abcdef0123",
        })]);
        assert!(rows.contains("<td>7</td>"));
        assert!(rows.contains("actor &lt;ann&gt;; actions hold, notify"));
        assert!(rows.contains("0123456789abcdef…"));
    }

    #[test]
    fn an_export_refusal_is_shown_and_a_failure_is_not() {
        let session = Session {
            tenant: "acme".to_owned(),
            user: "ann".to_owned(),
            role: crate::Role::Auditor,
            csrf: "t".to_owned(),
            expires_at: chrono::Utc::now(),
            cases: Vec::new(),
        };
        let refused = export_refused(&session, 404, "no audit entries in the range");
        assert_eq!(refused.status, 404);
        assert!(refused.html.contains("no audit entries in the range"));
        let failed = export_refused(&session, 500, "disk full");
        assert_eq!(failed.status, 500);
        assert!(!failed.html.contains("disk full"));
    }
}
