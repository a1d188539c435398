//! The review page (`/console/review?queue=Q`): the review queues. A claim or resolution made
//! here names the signed-in person (the review item's `claimed_by` / `resolved_by`, the
//! `review.claimed` and `review.resolved` audit entries' `actor`), never an id typed into a
//! form; it is made through the key id [`CONSOLE_KEY`], so a claim made here is not another
//! key's.

use super::Page;
use super::html::{csrf_field, escape, url_encode};
use crate::Session;
use arbiter_db::Db;
use arbiter_db::entity::review_item;
use arbiter_db::review::{self as repo, Actor, ItemFilter};
use arbiter_db::sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use arbiter_engine::review::{self, ItemView, LABELS, Resolve};
use arbiter_engine::{EngineError, FlowRegistry};
use chrono::{DateTime, Utc};
use serde::Deserialize;

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

/// The review page: the queues to choose from, the items the person holds (with the resolve
/// form), open items (a page of them) and items held by others.
pub async fn page(db: &Db, flows: &FlowRegistry, session: &Session, query: &QueueQuery) -> Page {
    let queue = query.queue.as_deref().filter(|q| !q.is_empty());
    let conn = db.conn();
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
        Err(err) => return Page::server_error(&err),
    };
    let more = open.len() as u64 > PAGE;
    open.truncate(usize::try_from(PAGE).unwrap_or(usize::MAX));
    let (mine, others): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .map(ItemView::from)
        .partition(|item| item.claimed_by.as_deref() == Some(&session.user));
    let back = queue.map_or_else(String::new, |q| format!("?queue={}", url_encode(q)));
    let mine_html: String = mine
        .iter()
        .map(|item| resolve_card(flows, session, item, &back))
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
        options = queue_options(&queues, queue),
        mine = or_none(mine_html, "You hold no items."),
        open = or_none(open_html, "No open items."),
        others = or_none(others_html, "No items held by others."),
    );
    Page::ok("Review", session, "/console/review", &body)
}

/// The queue chooser's options: all queues first, then each queue; `chosen` is selected.
fn queue_options(queues: &[String], chosen: Option<&str>) -> String {
    std::iter::once("")
        .chain(queues.iter().map(String::as_str))
        .map(|name| {
            let selected = if Some(name) == chosen || (name.is_empty() && chosen.is_none()) {
                " selected"
            } else {
                ""
            };
            let text = if name.is_empty() { "All queues" } else { name };
            format!(
                r#"<option value="{}"{selected}>{}</option>"#,
                escape(name),
                escape(text)
            )
        })
        .collect()
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

fn resolve_card(flows: &FlowRegistry, session: &Session, item: &ItemView, back: &str) -> String {
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
            flows
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

/// Where a form goes back to: the review page with a message, in the queue it was shown.
pub fn back_to(query: &QueueQuery, done: &str) -> String {
    let mut location = format!("/console/review?done={}", url_encode(done));
    if let Some(queue) = query.queue.as_deref().filter(|q| !q.is_empty()) {
        location.push_str(&format!("&queue={}", url_encode(queue)));
    }
    location
}

/// The page for a claim or resolution the engine refused: its status and message, or the 500
/// page for a failure.
fn refusal(session: &Session, err: &EngineError) -> Page {
    match err.code().http_status() {
        500..=599 => Page::server_error(err),
        status => Page::message(status, Some(session), "Review", &err.caller_message()),
    }
}

/// Claims an item for the signed-in person: where to go back to (the review page with a
/// message), or the refusal's page.
pub async fn claim(
    db: &Db,
    session: &Session,
    item_id: &str,
    query: &QueueQuery,
    now: DateTime<Utc>,
) -> Result<String, Page> {
    let actor = Actor {
        reviewer: &session.user,
        key: Some(CONSOLE_KEY),
    };
    match review::claim(db, &session.tenant, item_id, actor, now).await {
        Ok(_) => Ok(back_to(query, &format!("You claimed {item_id}."))),
        Err(err) => Err(refusal(session, &err)),
    }
}

/// A resolution form.
#[derive(Debug, Default, Deserialize)]
pub struct ResolveForm {
    label: Option<String>,
    note: Option<String>,
    action: Option<String>,
}

/// Resolves an item as the signed-in person (waking the webhook deliveries it queued): where to
/// go back to (the review page with a message), or the refusal's page.
pub async fn resolve(
    engine: arbiter_engine::Engine<'_>,
    session: &Session,
    item_id: &str,
    query: &QueueQuery,
    resolution: ResolveForm,
) -> Result<String, Page> {
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
        engine.pipeline.db(),
        engine.pipeline.flows(),
        &session.tenant,
        item_id,
        &request,
        engine.clock.now(),
    )
    .await
    {
        Ok((item, queued)) => {
            if queued > 0 {
                engine.deliveries_wake.notify_waiters();
            }
            Ok(back_to(
                query,
                &format!(
                    "You resolved {item_id} as {} ({}).",
                    item.label.unwrap_or_default(),
                    item.resolved_action.unwrap_or_default()
                ),
            ))
        }
        Err(err) => Err(refusal(session, &err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_to_keeps_the_queue_shown() {
        let query = QueueQuery {
            queue: Some("siu team".to_owned()),
            ..QueueQuery::default()
        };
        assert_eq!(
            back_to(&query, "You claimed rev_1."),
            "/console/review?done=You+claimed+rev_1.&queue=siu+team"
        );
        let all = QueueQuery {
            queue: Some(String::new()),
            ..QueueQuery::default()
        };
        assert_eq!(back_to(&all, "ok"), "/console/review?done=ok");
    }

    #[test]
    fn the_chosen_queue_is_selected_and_escaped() {
        let queues = vec!["a<b".to_owned(), "siu".to_owned()];
        let all = queue_options(&queues, None);
        assert!(
            all.starts_with(r#"<option value="" selected>All queues</option>"#),
            "{all}"
        );
        assert!(
            all.contains(r#"<option value="a&lt;b">a&lt;b</option>"#),
            "{all}"
        );
        let one = queue_options(&queues, Some("siu"));
        assert!(
            one.starts_with(r#"<option value="">All queues</option>"#),
            "{one}"
        );
        assert!(
            one.contains(r#"<option value="siu" selected>siu</option>"#),
            "{one}"
        );
    }

    #[test]
    fn empty_lists_say_so() {
        assert_eq!(
            or_none(String::new(), "None."),
            r#"<p class="muted">None.</p>"#
        );
        assert_eq!(
            or_none("<p>x</p>".to_owned(), "None."),
            r#"<div class="cards"><p>x</p></div>"#
        );
    }
}
