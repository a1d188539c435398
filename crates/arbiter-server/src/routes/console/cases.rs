//! `/console/claims` and `/console/kyc`: the tenant's insurance claims and KYC sessions,
//! searchable by case id, or an image's request id, reference id or SHA-256, by action and by
//! opening day, newest first, a page at a time through the database (keyset paging on the
//! opening time and case id); and one case's page with its images, each image's verdict and
//! decision, the case's assessment, fired rules, policy version, review outcomes and audit
//! trail, and a link to its PDF report.

use super::html::{self, escape, url_encode, verdict_badge};
use super::require;
use crate::state::AppState;
use arbiter_console::{Area, Session};
use arbiter_db::cases::CaseFilter;
use arbiter_db::entity::case;
use arbiter_db::review::ItemFilter;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Rows per page.
pub const PAGE: u64 = 50;

/// A kind of case the console lists: its flow and its words.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// The flow whose cases these are.
    pub flow: &'static str,
    /// The list's path.
    pub path: &'static str,
    /// The list's title.
    pub title: &'static str,
    /// One case, in words.
    pub noun: &'static str,
}

/// Insurance claims.
pub const CLAIMS: Kind = Kind {
    flow: "insurance",
    path: "/console/claims",
    title: "Claims",
    noun: "Claim",
};

/// KYC sessions.
pub const KYC: Kind = Kind {
    flow: "kyc",
    path: "/console/kyc",
    title: "KYC sessions",
    noun: "KYC session",
};

/// The search form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    /// A case id, or an image's request id, reference id or SHA-256.
    pub q: Option<String>,
    /// Only cases decided with this action.
    pub action: Option<String>,
    /// Only cases opened on or after this day (`YYYY-MM-DD`, UTC).
    pub since: Option<String>,
    /// Only cases opened on or before this day (`YYYY-MM-DD`, UTC).
    pub until: Option<String>,
    /// The last case id of the previous page.
    pub after: Option<String>,
}

fn given(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The start of a day given as `YYYY-MM-DD`, or a message naming the field.
fn day(field: &str, value: Option<&String>) -> Result<Option<NaiveDate>, String> {
    given(value)
        .map(|text| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| format!("{field}: {text:?} is not a day (YYYY-MM-DD)"))
        })
        .transpose()
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// `GET /console/claims`.
pub async fn claims(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    list(&state, &headers, CLAIMS, &search).await
}

/// `GET /console/kyc`.
pub async fn sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    list(&state, &headers, KYC, &search).await
}

/// `GET /console/claims/{claim_id}`.
pub async fn claim(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(claim_id): Path<String>,
) -> Response {
    detail(&state, &headers, CLAIMS, &claim_id).await
}

/// `GET /console/kyc/{session_id}`.
pub async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
) -> Response {
    detail(&state, &headers, KYC, &session_id).await
}

async fn list(state: &AppState, headers: &HeaderMap, kind: Kind, search: &Search) -> Response {
    let session = match require(state, headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let days = day("since", search.since.as_ref())
        .and_then(|since| Ok((since, day("until", search.until.as_ref())?)));
    let (notice, rows, more) = match days {
        Err(message) => (message, Vec::new(), false),
        Ok((since, until)) => {
            let filter = CaseFilter {
                text: given(search.q.as_ref()),
                action: given(search.action.as_ref()),
                since: since.map(start_of),
                before: until.and_then(|d| d.succ_opt()).map(start_of),
                after: given(search.after.as_ref()),
            };
            match arbiter_db::cases::page(
                state.pipeline.db().conn(),
                &session.tenant,
                kind.flow,
                &filter,
                PAGE,
            )
            .await
            {
                Ok((rows, more)) => (String::new(), rows, more),
                Err(err) => return html::server_error(&err),
            }
        }
    };
    let status = if notice.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let body = list_body(kind, search, &notice, &rows, more);
    html::respond(
        status,
        html::layout(kind.title, Some(&session), kind.path, &body),
    )
}

fn list_body(
    kind: Kind,
    search: &Search,
    notice: &str,
    rows: &[case::Model],
    more: bool,
) -> String {
    let body_rows: String = rows
        .iter()
        .map(|row| {
            format!(
                r#"<tr><td><a href="{path}/{link}">{id}</a></td><td class="hide-narrow">{time}</td><td>{images}</td><td>{status}</td><td>{action}</td></tr>"#,
                path = kind.path,
                link = url_encode(&row.case_id),
                id = escape(&row.case_id),
                time = row.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                images = row.images,
                status = if row.complete { "decided" } else { "pending" },
                action = escape(row.action.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or(""));
    let next = match rows.last() {
        Some(last) if more => format!(
            r#"<a class="button secondary" rel="next" href="{path}?q={q}&amp;action={action}&amp;since={since}&amp;until={until}&amp;after={after}">Older {title}</a>"#,
            path = kind.path,
            title = kind.title.to_lowercase(),
            q = url_encode(search.q.as_deref().unwrap_or("")),
            action = url_encode(search.action.as_deref().unwrap_or("")),
            since = url_encode(search.since.as_deref().unwrap_or("")),
            until = url_encode(search.until.as_deref().unwrap_or("")),
            after = url_encode(&last.case_id),
        ),
        _ => String::new(),
    };
    let first = if given(search.after.as_ref()).is_some() {
        format!(
            r#"<a class="button secondary" href="{}">Newest {}</a>"#,
            kind.path,
            kind.title.to_lowercase()
        )
    } else {
        String::new()
    };
    let notice = if notice.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="notice" role="alert">{}</p>"#, escape(notice))
    };
    let table = if rows.is_empty() {
        r#"<p class="muted" id="no-cases">Nothing matches.</p>"#.to_owned()
    } else {
        format!(
            r#"<div class="table-wrap"><table id="cases"><thead><tr><th scope="col">{noun}</th><th scope="col" class="hide-narrow">Opened</th><th scope="col">Images</th><th scope="col">Status</th><th scope="col">Action</th></tr></thead><tbody>{body_rows}</tbody></table></div>"#,
            noun = kind.noun,
        )
    };
    format!(
        r#"<form method="get" action="{path}" class="filters" role="search">
<div><label for="q">{noun} id, request id, reference id or SHA-256</label><input type="search" id="q" name="q" value="{q}"></div>
<div><label for="action">Action</label><input type="text" id="action" name="action" value="{action}"></div>
<div><label for="since">Opened from</label><input type="date" id="since" name="since" value="{since}"></div>
<div><label for="until">Opened until</label><input type="date" id="until" name="until" value="{until}"></div>
<div><button type="submit">Search</button></div>
</form>
{notice}{table}
<div class="pager">{first}{next}</div>"#,
        path = kind.path,
        noun = kind.noun,
        q = value(&search.q),
        action = value(&search.action),
        since = value(&search.since),
        until = value(&search.until),
    )
}

/// What a case's page shows beside the case view: per image its thumbnail, the case's review
/// items and its audit trail.
struct Around {
    thumbnails: Vec<Option<Vec<u8>>>,
    reviews: Vec<arbiter_db::entity::review_item::Model>,
    trail: Vec<Value>,
}

async fn detail(state: &AppState, headers: &HeaderMap, kind: Kind, case_id: &str) -> Response {
    let session = match require(state, headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let view = match crate::cases::get(state.engine(), &session.tenant, kind.flow, case_id).await {
        Ok(view) => view,
        Err(err) if err.code().http_status() == 404 => {
            return html::message(
                StatusCode::NOT_FOUND,
                Some(&session),
                &format!("No such {}", kind.noun.to_lowercase()),
                &format!(
                    "There is no {} {case_id} for this tenant.",
                    kind.noun.to_lowercase()
                ),
            );
        }
        Err(err) => return html::server_error(&err),
    };
    let around = match around(state, &session.tenant, &view).await {
        Ok(around) => around,
        Err(err) => return html::server_error(&err),
    };
    let body = detail_body(&session, kind, &view, &around);
    html::page(
        &format!("{} {case_id}", kind.noun),
        &session,
        kind.path,
        &body,
    )
}

async fn around(
    state: &AppState,
    tenant: &str,
    view: &crate::cases::CaseView,
) -> Result<Around, arbiter_db::sea_orm::DbErr> {
    let conn = state.pipeline.db().conn();
    let mut thumbnails = Vec::with_capacity(view.images.len());
    let mut trail: Vec<Value> = Vec::new();
    for image in &view.images {
        let sha = image["image_sha256"].as_str().unwrap_or_default();
        thumbnails.push(
            arbiter_db::thumbnails::get(conn, tenant, sha)
                .await?
                .map(|t| t.png),
        );
        if let Some(request_id) = image["request_id"].as_str()
            && let Ok(found) = crate::routes::trail::trail(state, tenant, request_id).await
        {
            trail.extend(found.entries);
        }
    }
    // The images' trails share the case's entries (`case.decided` names the deciding image):
    // one chain order, each entry once.
    trail.sort_by_key(|entry| entry["seq"].as_u64());
    trail.dedup_by_key(|entry| entry["seq"].as_u64());
    let filter = ItemFilter {
        case_id: Some(&view.case_id),
        ..ItemFilter::default()
    };
    let reviews = arbiter_db::review::list(conn, tenant, &filter, 200)
        .await?
        .into_iter()
        .filter(|item| item.flow == view.flow)
        .collect();
    Ok(Around {
        thumbnails,
        reviews,
        trail,
    })
}

/// A decision summary (`action`, `reason`, `fired`, `policy`) as a definition list.
fn decision_list(decision: &Value) -> String {
    let fired: Vec<&str> = decision["fired"]
        .as_array()
        .map(|rules| rules.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!(
        r#"<dt>Action</dt><dd><strong>{action}</strong> ({reason})</dd><dt>Rules fired</dt><dd>{fired}</dd><dt>Policy</dt><dd>{policy} version {version}, <span class="mono">SHA-256 {sha}</span></dd>"#,
        action = escape(decision["action"].as_str().unwrap_or("")),
        reason = escape(decision["reason"].as_str().unwrap_or("")),
        fired = if fired.is_empty() {
            "none".to_owned()
        } else {
            escape(&fired.join(", "))
        },
        policy = escape(decision["policy"]["id"].as_str().unwrap_or("")),
        version = decision["policy"]["version"].as_u64().unwrap_or(0),
        sha = escape(decision["policy"]["sha256"].as_str().unwrap_or("")),
    )
}

fn detail_body(
    session: &Session,
    kind: Kind,
    view: &crate::cases::CaseView,
    around: &Around,
) -> String {
    let assessment = match &view.decision {
        Some(decision) => format!(
            r#"<dl id="assessment"><dt>Status</dt><dd>{status}</dd>{decision}<dt>Deciding image</dt><dd><a href="/console/requests/{link}">{request}</a> {reference}</dd></dl>"#,
            status = status_words(view),
            decision = decision_list(decision),
            link = url_encode(decision["request_id"].as_str().unwrap_or("")),
            request = escape(decision["request_id"].as_str().unwrap_or("")),
            reference = escape(decision["reference_id"].as_str().unwrap_or("")),
        ),
        None => format!(
            r#"<dl id="assessment"><dt>Status</dt><dd>{}</dd></dl><p class="muted">No decision yet.</p>"#,
            status_words(view)
        ),
    };
    let facts = serde_json::to_string_pretty(&view.facts).unwrap_or_default();
    let images: String = view
        .images
        .iter()
        .zip(&around.thumbnails)
        .map(|(image, thumbnail)| {
            let picture = thumbnail.as_ref().map_or_else(
                || r#"<p class="muted">No thumbnail kept.</p>"#.to_owned(),
                |png| {
                    format!(
                        r#"<div class="figure"><img src="data:image/png;base64,{}" alt="Thumbnail of image {}"></div>"#,
                        base64::engine::general_purpose::STANDARD.encode(png),
                        image["n"]
                    )
                },
            );
            let request_id = image["request_id"].as_str().unwrap_or("");
            format!(
                r#"<section class="case-image"><h3>Image {n}{role}</h3>{picture}<dl><dt>Request</dt><dd><a href="/console/requests/{link}">{request}</a></dd><dt>Reference</dt><dd>{reference}</dd><dt>SHA-256</dt><dd class="mono">{sha}</dd><dt>Verdict</dt><dd>{badge} at {confidence} confidence</dd>{decision}</dl></section>"#,
                n = image["n"],
                role = image["role"]
                    .as_str()
                    .map_or_else(String::new, |r| format!(" ({})", escape(r))),
                link = url_encode(request_id),
                request = escape(request_id),
                reference = escape(image["reference_id"].as_str().unwrap_or("—")),
                sha = escape(image["image_sha256"].as_str().unwrap_or("")),
                badge = verdict_badge(image["verdict"]["label"].as_str().unwrap_or("")),
                confidence = html::percent(image["verdict"]["confidence"].as_f64()),
                decision = decision_list(&image["decision"]),
            )
        })
        .collect();
    let reviews: String = around
        .reviews
        .iter()
        .map(|item| {
            let view = crate::review::ItemView::from(item.clone());
            format!(
                r#"<li>{queue} ({request}): {status}{by}{label}</li>"#,
                queue = escape(&view.queue),
                request = escape(&view.request_id),
                status = escape(&view.status),
                by = view
                    .claimed_by
                    .as_deref()
                    .map_or_else(String::new, |b| format!(", held by {}", escape(b))),
                label = view.label.as_deref().map_or_else(String::new, |l| format!(
                    ", labelled {} by {}, action {}",
                    escape(l),
                    escape(view.resolved_by.as_deref().unwrap_or("")),
                    escape(view.resolved_action.as_deref().unwrap_or("")),
                )),
            )
        })
        .collect();
    let audit_link = if session.role.may(Area::Audit) {
        r#"<p class="muted">Each entry can be checked in the <a href="/console/audit">audit trail</a>.</p>"#
    } else {
        ""
    };
    format!(
        r#"<p><a class="button secondary" href="{path}/{link}/report.pdf">Download report (PDF)</a></p>
<h2>Assessment</h2>{assessment}
<p class="muted">Opened {opened}; last changed {changed}.{missing}</p>
<h3>Case facts</h3><pre>{facts}</pre>
<h2>Images</h2>{images}
<h2>Review</h2>{reviews}
<h2>Audit trail</h2>{trail}{audit_link}"#,
        path = kind.path,
        link = url_encode(&view.case_id),
        opened = view.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        changed = view.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        missing = if view.missing.is_empty() {
            String::new()
        } else {
            format!(" Evidence missing: {}.", escape(&view.missing.join(", ")))
        },
        facts = escape(&facts),
        images = if images.is_empty() {
            r#"<p class="muted">No images yet.</p>"#.to_owned()
        } else {
            format!(r#"<div class="case-images">{images}</div>"#)
        },
        reviews = if reviews.is_empty() {
            r#"<p class="muted">Not sent for review.</p>"#.to_owned()
        } else {
            format!(r#"<ul id="reviews">{reviews}</ul>"#)
        },
        trail = super::audit::entry_rows(&around.trail),
    )
}

fn status_words(view: &crate::cases::CaseView) -> String {
    if view.status == "decided" {
        "decided: all the evidence is in".to_owned()
    } else {
        format!(
            "pending: the decision is provisional until {} arrive{}",
            escape(&view.missing.join(", ")),
            if view.missing.len() == 1 { "s" } else { "" }
        )
    }
}
