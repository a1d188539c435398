//! `/console/review?queue=Q`: the review queues. A claim or resolution made here names the
//! signed-in person (the review item's `claimed_by` / `resolved_by`, the `review.claimed` and
//! `review.resolved` audit entries' `actor`), never an id typed into a form; it is made through the key id
//! `console`, so a claim made here is not another key's.

use super::html::{self, csrf_field, escape, url_encode};
use super::{posted, require};
use crate::review::{self, ItemView, LABELS, Resolve};
use crate::state::AppState;
use arbiter_console::{Area, Session};
use arbiter_db::entity::review_item;
use arbiter_db::review::{self as repo, Actor, ItemFilter};
use arbiter_db::sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The key id claims and resolutions made in the console are recorded under.
pub const CONSOLE_KEY: &str = "console";

/// Open items per page.
const PAGE: u64 = 25;

/// The page's query.
#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    /// The queue shown; all queues when absent.
    pub queue: Option<String>,
    /// The last open item of the previous page.
    pub after: Option<String>,
    /// A message after a claim or resolution.
    pub done: Option<String>,
}

/// `GET /console/review`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Response {
    let session = match require(&state, &headers, Area::Review).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let queue = query.queue.as_deref().filter(|q| !q.is_empty());
    let conn = state.pipeline.db().conn();
    let loaded = async {
        let queues: Vec<String> = review_item::Entity::find()
            .select_only()
            .column(review_item::Column::Queue)
            .distinct()
            .filter(review_item::Column::Tenant.eq(&session.tenant))
            .order_by_asc(review_item::Column::Queue)
            .into_tuple()
            .all(conn)
            .await?;
        let claimed = repo::list(
            conn,
            &session.tenant,
            &ItemFilter {
                queue,
                status: Some(repo::CLAIMED),
                ..ItemFilter::default()
            },
            200,
        )
        .await?;
        let open = repo::list(
            conn,
            &session.tenant,
            &ItemFilter {
                queue,
                status: Some(repo::OPEN),
                after: query.after.as_deref().filter(|a| !a.is_empty()),
                ..ItemFilter::default()
            },
            PAGE + 1,
        )
        .await?;
        Ok::<_, DbErr>((queues, claimed, open))
    }
    .await;
    let (queues, claimed, mut open) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => return html::server_error(&err),
    };
    let more = open.len() as u64 > PAGE;
    open.truncate(usize::try_from(PAGE).unwrap_or(usize::MAX));
    let options: String = std::iter::once(String::new())
        .chain(queues)
        .map(|name| {
            let selected = if Some(name.as_str()) == queue || (name.is_empty() && queue.is_none()) {
                " selected"
            } else {
                ""
            };
            let text = if name.is_empty() { "All queues" } else { &name };
            format!(
                r#"<option value="{}"{selected}>{}</option>"#,
                escape(&name),
                escape(text)
            )
        })
        .collect();
    let (mine, others): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .map(ItemView::from)
        .partition(|item| item.claimed_by.as_deref() == Some(&session.user));
    let back = queue.map_or_else(String::new, |q| format!("?queue={}", url_encode(q)));
    let mine_html: String = mine
        .iter()
        .map(|item| resolve_card(&state, &session, item, &back))
        .collect();
    let others_html: String = others
        .iter()
        .map(|item| {
            format!(
                r#"<article class="card"><h3>{}</h3>{}<p><strong>Claimed by {}</strong>.</p></article>"#,
                escape(&item.item_id),
                facts(item),
                escape(item.claimed_by.as_deref().unwrap_or(""))
            )
        })
        .collect();
    let last_open = open.last().map(|item| item.item_id.clone());
    let open_html: String = open
        .into_iter()
        .map(ItemView::from)
        .map(|item| {
            format!(
                r#"<article class="card" data-item="{id}"><h3>{id}</h3>{facts}<form method="post" action="/console/review/{id}/claim{back}">{csrf}<button type="submit">Claim</button></form></article>"#,
                id = escape(&item.item_id),
                facts = facts(&item),
                csrf = csrf_field(&session.csrf),
            )
        })
        .collect();
    let next = match last_open {
        Some(last) if more => format!(
            r#"<div class="pager"><a class="button secondary" rel="next" href="/console/review?queue={}&amp;after={}">More open items</a></div>"#,
            url_encode(queue.unwrap_or("")),
            url_encode(&last)
        ),
        _ => String::new(),
    };
    let done = query.done.as_deref().map_or_else(String::new, |d| {
        format!(r#"<p class="ok" role="status">{}</p>"#, escape(d))
    });
    let body = format!(
        r#"{done}<form method="get" action="/console/review" class="filters"><div><label for="queue">Queue</label><select id="queue" name="queue">{options}</select></div><div><button type="submit">Show</button></div></form>
<p class="muted">Keyboard: with an item you hold, press <span class="kbd">F</span> confirmed fake, <span class="kbd">A</span> confirmed authentic, <span class="kbd">P</span> false positive, <span class="kbd">U</span> unclear; then Enter resolves.</p>
<h2>Held by you</h2>{mine}
<h2>Open</h2>{open}{next}
<h2>Held by others</h2>{others}"#,
        mine = or_none(mine_html, "You hold no items."),
        open = or_none(open_html, "No open items."),
        others = or_none(others_html, "No items held by others."),
    );
    html::page("Review", &session, "/console/review", &body)
}

fn or_none(html: String, none: &str) -> String {
    if html.is_empty() {
        format!(r#"<p class="muted">{none}</p>"#)
    } else {
        format!(r#"<div class="cards">{html}</div>"#)
    }
}

fn facts(item: &ItemView) -> String {
    format!(
        r#"<p>Queue <strong>{queue}</strong>, flow {flow}. The policy decided <strong>{action}</strong> ({reason}).</p><p><a href="/console/requests/{request}">Request {request}</a>{reference}<br><span class="mono">SHA-256 {sha}</span></p>"#,
        queue = escape(&item.queue),
        flow = escape(&item.flow),
        action = escape(&item.action),
        reason = escape(&item.reason),
        request = escape(&item.request_id),
        reference = item
            .reference_id
            .as_deref()
            .map_or_else(String::new, |r| format!(", reference {}", escape(r))),
        sha = escape(&item.image_sha256),
    )
}

fn resolve_card(state: &AppState, session: &Session, item: &ItemView, back: &str) -> String {
    let id = escape(&item.item_id);
    let labels: String = LABELS
        .iter()
        .enumerate()
        .map(|(n, (label, _))| {
            let checked = if n == 0 { " checked" } else { "" };
            format!(
                r#"<label><input type="radio" name="label" value="{label}"{checked}> {}</label>"#,
                label.replace('_', " ")
            )
        })
        .collect();
    let actions: String = std::iter::once(String::new())
        .chain(
            state
                .pipeline
                .flows()
                .get(&item.flow)
                .map(|flow| {
                    flow.actions()
                        .iter()
                        .map(|a| a.name.to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .map(|name| {
            let text = if name.is_empty() {
                "The default for the label".to_owned()
            } else {
                name.clone()
            };
            format!(
                r#"<option value="{}">{}</option>"#,
                escape(&name),
                escape(&text)
            )
        })
        .collect();
    format!(
        r#"<article class="card" data-item="{id}"><h3>{id}</h3>{facts}
<form method="post" action="/console/review/{id}/resolve{back}" class="resolve">{csrf}
<fieldset class="radio"><legend>Label</legend>{labels}</fieldset>
<label for="note-{id}">Note</label><textarea id="note-{id}" name="note" maxlength="4000"></textarea>
<label for="action-{id}">Action</label><select id="action-{id}" name="action">{actions}</select>
<button type="submit">Resolve</button></form></article>"#,
        facts = facts(item),
        csrf = csrf_field(&session.csrf),
    )
}

/// Back to the review page after a form, with a message.
fn back_to(query: &QueueQuery, done: &str) -> Response {
    let mut location = format!("/console/review?done={}", url_encode(done));
    if let Some(queue) = query.queue.as_deref().filter(|q| !q.is_empty()) {
        location.push_str(&format!("&queue={}", url_encode(queue)));
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// `POST /console/review/{item_id}/claim`.
pub async fn claim(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(item_id): Path<String>,
    Query(query): Query<QueueQuery>,
    body: Bytes,
) -> Response {
    // The claim form carries nothing but its CSRF token.
    let (session, _) = match posted::<IgnoredAny>(&state, &headers, Area::Review, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let actor = Actor {
        reviewer: &session.user,
        key: Some(CONSOLE_KEY),
    };
    match review::claim(
        state.pipeline.db(),
        &session.tenant,
        &item_id,
        actor,
        state.clock.now(),
    )
    .await
    {
        Ok(_) => back_to(&query, &format!("You claimed {item_id}.")),
        Err(err) => refusal(&session, &err.into()),
    }
}

fn refusal(session: &Session, err: &crate::error::ApiError) -> Response {
    let status = match err.code.http_status() {
        500..=599 => return html::server_error(&err.message),
        code => StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
    };
    html::message(status, Some(session), "Review", &err.message)
}

/// A resolution form.
#[derive(Deserialize)]
pub struct ResolveForm {
    label: Option<String>,
    note: Option<String>,
    action: Option<String>,
}

/// `POST /console/review/{item_id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(item_id): Path<String>,
    Query(query): Query<QueueQuery>,
    body: Bytes,
) -> Response {
    let (session, resolution) =
        match posted::<ResolveForm>(&state, &headers, Area::Review, &body).await {
            Ok(posted) => posted,
            Err(response) => return response,
        };
    let note = resolution
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let action = resolution.action.as_deref().filter(|a| !a.is_empty());
    let request = Resolve {
        reviewer: &session.user,
        key: Some(CONSOLE_KEY),
        label: resolution.label.as_deref().unwrap_or(""),
        note,
        action,
    };
    match review::resolve(
        state.pipeline.db(),
        state.pipeline.flows(),
        &session.tenant,
        &item_id,
        &request,
        state.clock.now(),
    )
    .await
    {
        Ok((item, queued)) => {
            if queued > 0 {
                state.webhooks.wake.notify_waiters();
            }
            back_to(
                &query,
                &format!(
                    "You resolved {item_id} as {} ({}).",
                    item.label.unwrap_or_default(),
                    item.resolved_action.unwrap_or_default()
                ),
            )
        }
        Err(err) => refusal(&session, &err.into()),
    }
}
