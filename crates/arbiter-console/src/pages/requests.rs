//! The requests pages: the tenant's analysed images, searchable by request id, reference id or
//! SHA-256, by action and flow, newest first, a page at a time through the database (keyset
//! paging on the time-sortable request id); and one request's page with its decision, fired
//! rules, policy version, review items, audit trail, and a replay of its decision.

use super::Page;
use super::given;
use super::html::{csrf_field, escape, layout, percent, url_encode, verdict_badge};
use super::scan::{heatmap_of, models_table};
use crate::{Area, Session};
use arbiter_audit::query::QueryError;
use arbiter_db::Db;
use arbiter_db::entity::{decision, request, review_item};
use arbiter_db::review::ItemFilter;
use arbiter_db::sea_orm::DbErr;
use arbiter_engine::FlowRegistry;
use arbiter_engine::replay::ReplayError;
use arbiter_engine::review::ItemView;
use serde::Deserialize;
use serde_json::Value;

/// Rows per page.
pub const PAGE: u64 = 50;

/// The search form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    /// A request id, reference id or SHA-256.
    pub q: Option<String>,
    /// Only decisions with this action.
    pub action: Option<String>,
    /// Only decisions of this flow.
    pub flow: Option<String>,
    /// The last request id of the previous page.
    pub after: Option<String>,
}

/// A request's trail as the API shows its entries (their export lines as JSON), oldest first.
pub async fn trail(db: &Db, tenant: &str, request_id: &str) -> Result<Vec<Value>, QueryError> {
    arbiter_audit::request_trail(db.conn(), tenant, request_id)
        .await?
        .iter()
        .map(arbiter_audit::query::entry_json)
        .collect()
}

/// The list of the tenant's requests matching `search`; its flow filter offers the flows of
/// `flows`.
pub async fn list(db: &Db, flows: &FlowRegistry, session: &Session, search: &Search) -> Page {
    let conn = db.conn();
    let result = async {
        let filter = arbiter_db::requests::RequestFilter {
            text: given(search.q.as_ref()),
            action: given(search.action.as_ref()),
            flow: given(search.flow.as_ref()),
            after: given(search.after.as_ref()),
        };
        let (rows, more) = arbiter_db::requests::page(conn, &session.tenant, &filter, PAGE).await?;
        let decisions = arbiter_db::decisions::get_many(
            conn,
            &session.tenant,
            rows.iter().map(|r| r.request_id.clone()),
        )
        .await?;
        Ok::<_, DbErr>((rows, more, decisions))
    }
    .await;
    let (rows, more, decisions) = match result {
        Ok(found) => found,
        Err(err) => return Page::server_error(&err),
    };
    let body_rows: String = rows
        .iter()
        .map(|row| {
            let analysis: Value = serde_json::from_str(&row.analysis).unwrap_or(Value::Null);
            let label = analysis["verdict"]["label"].as_str().unwrap_or("");
            let decided = decisions.get(&row.request_id);
            format!(
                r#"<tr><td><a href="/console/requests/{id}">{id}</a></td><td class="hide-narrow">{time}</td><td>{reference}</td><td class="mono hide-narrow">{sha}…</td><td>{badge}</td><td>{flow}</td><td>{action}</td></tr>"#,
                id = escape(&row.request_id),
                time = row.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                reference = escape(row.reference_id.as_deref().unwrap_or("")),
                sha = escape(row.image_sha256.get(..16).unwrap_or(&row.image_sha256)),
                badge = verdict_badge(label),
                flow = escape(decided.map_or("", |d| d.flow.as_str())),
                action = escape(decided.map_or("", |d| d.action.as_str())),
            )
        })
        .collect();
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or(""));
    let flows: String = std::iter::once("")
        .chain(flows.names())
        .map(|name| {
            let selected = if search.flow.as_deref().unwrap_or("") == name {
                " selected"
            } else {
                ""
            };
            let text = if name.is_empty() { "Any" } else { name };
            format!(r#"<option value="{name}"{selected}>{text}</option>"#)
        })
        .collect();
    let next = match rows.last() {
        Some(last) if more => format!(
            r#"<a class="button secondary" rel="next" href="/console/requests?q={}&amp;action={}&amp;flow={}&amp;after={}">Older requests</a>"#,
            url_encode(search.q.as_deref().unwrap_or("")),
            url_encode(search.action.as_deref().unwrap_or("")),
            url_encode(search.flow.as_deref().unwrap_or("")),
            url_encode(&last.request_id),
        ),
        _ => String::new(),
    };
    let first = if given(search.after.as_ref()).is_some() {
        r#"<a class="button secondary" href="/console/requests">Newest requests</a>"#
    } else {
        ""
    };
    let table = if rows.is_empty() {
        r#"<p class="muted" id="no-requests">No requests match.</p>"#.to_owned()
    } else {
        format!(
            r#"<div class="table-wrap"><table id="requests"><thead><tr><th scope="col">Request</th><th scope="col" class="hide-narrow">Time</th><th scope="col">Reference</th><th scope="col" class="hide-narrow">SHA-256</th><th scope="col">Verdict</th><th scope="col">Flow</th><th scope="col">Action</th></tr></thead><tbody>{body_rows}</tbody></table></div>"#
        )
    };
    let body = format!(
        r#"<form method="get" action="/console/requests" class="filters" role="search">
<div><label for="q">Request id, reference id or SHA-256</label><input type="search" id="q" name="q" value="{q}"></div>
<div><label for="action">Action</label><input type="text" id="action" name="action" value="{action}"></div>
<div><label for="flow">Flow</label><select id="flow" name="flow">{flows}</select></div>
<div><button type="submit">Search</button></div>
</form>
{table}
<div class="pager">{first}{next}</div>"#,
        q = value(&search.q),
        action = value(&search.action),
    );
    Page::ok("Requests", session, "/console/requests", &body)
}

/// One request's page; a request this tenant does not have is a 404 page.
pub async fn detail(db: &Db, session: &Session, request_id: &str) -> Page {
    detail_page(db, session, request_id, 200, "").await
}

/// Re-decides the recorded facts under the recorded policy version, as `arbiter replay
/// REQUEST_ID` does, and shows the request's page with the outcome: identical, or each field
/// that differs; a decision that cannot be replayed is a 409 page saying why.
pub async fn replay(db: &Db, session: &Session, request_id: &str) -> Page {
    let replayed = arbiter_engine::replay::replay(db, Some(&session.tenant), request_id).await;
    let (status, outcome) = match replayed {
        Ok(replayed) if replayed.identical() => {
            let d = &replayed.decision;
            (
                200,
                format!(
                    r#"<div class="ok" role="status" id="replay" data-identical="true"><p><strong>Identical</strong>: under {policy} v{version} the recorded facts give {action} ({reason}), rules fired: {fired}.</p></div>"#,
                    policy = escape(&replayed.row.policy_id),
                    version = replayed.row.policy_version,
                    action = escape(&d.action),
                    reason = escape(&d.reason),
                    fired = if d.fired.is_empty() {
                        "none".to_owned()
                    } else {
                        escape(&d.fired.join(", "))
                    },
                ),
            )
        }
        Ok(replayed) => {
            let rows: String = replayed
                .differences
                .iter()
                .map(|d| {
                    format!(
                        r#"<tr><th scope="row">{}</th><td class="mono">{}</td><td class="mono">{}</td></tr>"#,
                        escape(&d.field),
                        escape(&d.recorded.to_string()),
                        escape(&d.replayed.to_string())
                    )
                })
                .collect();
            (
                200,
                format!(
                    r#"<div class="notice" role="alert" id="replay" data-identical="false"><p><strong>Differs from the record</strong> under {policy} v{version}:</p><div class="table-wrap"><table><thead><tr><th scope="col">Field</th><th scope="col">Recorded</th><th scope="col">Replayed</th></tr></thead><tbody>{rows}</tbody></table></div></div>"#,
                    policy = escape(&replayed.row.policy_id),
                    version = replayed.row.policy_version,
                ),
            )
        }
        Err(ReplayError::Db(err)) => return Page::server_error(&err),
        Err(err) => (
            409,
            format!(
                r#"<p class="notice" role="alert" id="replay">Cannot replay: {}.</p>"#,
                escape(&err.to_string())
            ),
        ),
    };
    detail_page(db, session, request_id, status, &outcome).await
}

async fn detail_page(
    db: &Db,
    session: &Session,
    request_id: &str,
    status: u16,
    replayed: &str,
) -> Page {
    let conn = db.conn();
    let found = async {
        let row = arbiter_db::requests::get(conn, &session.tenant, request_id).await?;
        let decided = arbiter_db::decisions::get(conn, &session.tenant, request_id).await?;
        let filter = ItemFilter {
            request_id: Some(request_id),
            ..ItemFilter::default()
        };
        let items = arbiter_db::review::list(conn, &session.tenant, &filter, 100).await?;
        Ok::<_, DbErr>((row, decided, items))
    }
    .await;
    let (row, decided, items) = match found {
        Ok(found) => found,
        Err(err) => return Page::server_error(&err),
    };
    let Some(row) = row else {
        return Page::message(
            404,
            Some(session),
            "No such request",
            &format!("There is no request {request_id} for this tenant."),
        );
    };
    let trail = match trail(db, &session.tenant, request_id).await {
        Ok(trail) => trail,
        Err(err) => return Page::server_error(&err),
    };
    let body = detail_body(session, &row, decided.as_ref(), &items, &trail, replayed);
    Page {
        status,
        html: layout(
            &format!("Request {request_id}"),
            Some(session),
            "/console/requests",
            &body,
        ),
    }
}

fn detail_body(
    session: &Session,
    row: &request::Model,
    decided: Option<&decision::Model>,
    items: &[review_item::Model],
    trail: &[Value],
    replayed: &str,
) -> String {
    let analysis: Value = serde_json::from_str(&row.analysis).unwrap_or(Value::Null);
    let label = analysis["verdict"]["label"].as_str().unwrap_or("");
    let heatmap = heatmap_of(&analysis["model_results"]).map_or_else(
        String::new,
        |png| format!(
            r#"<h2>Splicing heatmap</h2><div class="figure"><img src="data:image/png;base64,{png}" alt="Splicing heatmap of the image: brighter regions are less consistent with the rest"></div><p class="muted">Arbiter keeps the image's SHA-256, not its bytes; the heatmap is kept with the analysis.</p>"#
        ),
    );
    let decision_html = match decided {
        Some(d) => {
            let fired: Vec<String> = serde_json::from_str(&d.fired).unwrap_or_default();
            let id = url_encode(&row.request_id);
            format!(
                r#"<h2>Decision</h2><dl><dt>Flow</dt><dd>{flow}</dd><dt>Action</dt><dd><strong>{action}</strong> ({reason})</dd><dt>Rules fired</dt><dd>{fired}</dd>{description}<dt>Policy</dt><dd>{policy} version {version}, <span class="mono">SHA-256 {psha}</span></dd></dl><h3>Facts the policy saw</h3><pre>{facts}</pre>
<form method="post" action="/console/requests/{id}/replay" id="replay-form">{csrf}<button type="submit" class="secondary">Replay</button> <span class="muted">Re-decides the recorded facts under the recorded policy version, as <code>arbiter replay</code> does.</span></form>
{replayed}"#,
                csrf = csrf_field(&session.csrf),
                description = d
                    .description
                    .as_deref()
                    .map_or_else(String::new, |text| format!(
                        r#"<dt>Why</dt><dd id="description">{}</dd>"#,
                        escape(text)
                    )),
                flow = escape(&d.flow),
                action = escape(&d.action),
                reason = escape(&d.reason),
                fired = if fired.is_empty() {
                    "none".to_owned()
                } else {
                    escape(&fired.join(", "))
                },
                policy = escape(&d.policy_id),
                version = d.policy_version,
                psha = escape(&d.policy_sha256),
                facts = escape(
                    &serde_json::from_str::<Value>(&d.facts)
                        .ok()
                        .and_then(|v| serde_json::to_string_pretty(&v).ok())
                        .unwrap_or_default()
                ),
            )
        }
        None => r#"<h2>Decision</h2><p class="muted">A plain analysis: no flow decided it.</p>"#
            .to_owned(),
    };
    let reviews: String = items
        .iter()
        .map(|item| {
            let view = ItemView::from(item.clone());
            format!(
                r#"<li>{queue}: {status}{by}{label}</li>"#,
                queue = escape(&view.queue),
                status = escape(&view.status),
                by = view
                    .claimed_by
                    .as_deref()
                    .map_or_else(String::new, |b| format!(", held by {}", escape(b))),
                label = view.label.as_deref().map_or_else(String::new, |l| format!(
                    ", labelled {} by {}",
                    escape(l),
                    escape(view.resolved_by.as_deref().unwrap_or(""))
                )),
            )
        })
        .collect();
    let trail_rows = super::audit::entry_rows(trail);
    let audit_link = if session.role.may(Area::Audit) {
        format!(
            r#"<p><a href="/console/audit?request_id={}">This request in the audit trail</a></p>"#,
            url_encode(&row.request_id)
        )
    } else {
        String::new()
    };
    format!(
        r#"<p>{badge} at {confidence} confidence, {risk} risk.</p>
<p><a class="button" id="report-pdf" href="/console/requests/{report_id}/report.pdf" download>Download report (PDF)</a></p>
<dl><dt>Reference</dt><dd>{reference}</dd><dt>Image SHA-256</dt><dd class="mono">{sha}</dd><dt>Analysed</dt><dd>{time}</dd><dt>Format</dt><dd>{format}, {width}×{height}</dd></dl>
{decision_html}
<h2>Models</h2>{models}
{heatmap}
<h2>Review</h2>{reviews}
<h2>Audit trail</h2>{trail_rows}{audit_link}"#,
        badge = verdict_badge(label),
        report_id = url_encode(&row.request_id),
        confidence = percent(analysis["verdict"]["confidence"].as_f64()),
        risk = escape(analysis["verdict"]["risk_level"].as_str().unwrap_or("")),
        reference = escape(row.reference_id.as_deref().unwrap_or("—")),
        sha = escape(&row.image_sha256),
        time = row.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        format = escape(analysis["image_info"]["format"].as_str().unwrap_or("")),
        width = analysis["image_info"]["width"].as_u64().unwrap_or(0),
        height = analysis["image_info"]["height"].as_u64().unwrap_or(0),
        models = models_table(&analysis["model_results"]),
        reviews = if reviews.is_empty() {
            r#"<p class="muted">Not sent for review.</p>"#.to_owned()
        } else {
            format!("<ul>{reviews}</ul>")
        },
    )
}
