//! The pages of each flow that keeps cases (insurance claims, KYC sessions): the tenant's cases
//! at `/console/<path>`, searchable by case id, or an image's request id, reference id or
//! SHA-256, by action and by opening day, newest first, a page at a time through the database
//! (keyset paging on the opening time and case id); and one case's page with its images, each
//! image's verdict and decision, the case's assessment, fired rules, policy version, review
//! outcomes and audit trail, and a link to its PDF report. Which flows keep cases, and how the
//! console names them, is each flow's [`CaseConsole`]: this module names no flow.

use super::Page;
use super::given;
use super::html::{escape, layout, percent, url_encode, verdict_badge};
use super::requests::trail;
use crate::{Area, Session};
use arbiter_audit::query::QueryError;
use arbiter_core::plugin::CaseConsole;
use arbiter_db::Db;
use arbiter_db::cases::CaseFilter;
use arbiter_db::entity::{case, review_item};
use arbiter_db::review::ItemFilter;
use arbiter_engine::cases::CaseView;
use arbiter_engine::review::ItemView;
use arbiter_engine::{Engine, FlowRegistry};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Rows per page.
pub const PAGE: u64 = 50;

/// A kind of case the console lists: its flow and how the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseKind {
    /// The flow whose cases these are (`insurance`).
    pub flow: &'static str,
    /// The list's path segment, title, navigation name and noun.
    pub console: CaseConsole,
}

impl CaseKind {
    /// The list's path (`/console/claims`).
    pub fn path(&self) -> String {
        format!("/console/{}", self.console.path)
    }
}

/// The kinds of case of the flows in `registry` that keep cases, in the registry's order (by
/// flow name).
pub fn kinds(registry: &FlowRegistry) -> Vec<CaseKind> {
    registry
        .iter()
        .filter_map(|flow| {
            flow.case().map(|spec| CaseKind {
                flow: flow.name(),
                console: spec.console,
            })
        })
        .collect()
}

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

/// The list of the tenant's cases of `kind` matching `search`; a day that is not one is a 400
/// page naming the field.
pub async fn list(db: &Db, session: &Session, kind: CaseKind, search: &Search) -> Page {
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
            match arbiter_db::cases::page(db.conn(), &session.tenant, kind.flow, &filter, PAGE)
                .await
            {
                Ok((rows, more)) => (String::new(), rows, more),
                Err(err) => return Page::server_error(&err),
            }
        }
    };
    let status = if notice.is_empty() { 200 } else { 400 };
    let body = list_body(kind, search, &notice, &rows, more);
    Page {
        status,
        html: layout(kind.console.title, Some(session), &kind.path(), &body),
    }
}

fn list_body(
    kind: CaseKind,
    search: &Search,
    notice: &str,
    rows: &[case::Model],
    more: bool,
) -> String {
    let path = kind.path();
    let console = kind.console;
    let body_rows: String = rows
        .iter()
        .map(|row| {
            format!(
                r#"<tr><td><a href="{path}/{link}">{id}</a></td><td class="hide-narrow">{time}</td><td>{images}</td><td>{status}</td><td>{action}</td></tr>"#,
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
            title = console.title.to_lowercase(),
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
            r#"<a class="button secondary" href="{path}">Newest {}</a>"#,
            console.title.to_lowercase()
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
            noun = console.noun,
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
        noun = console.noun,
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
    reviews: Vec<review_item::Model>,
    trail: Vec<Value>,
}

/// One case's page; a case this tenant does not have is a 404 page.
pub async fn page(engine: Engine<'_>, session: &Session, kind: CaseKind, case_id: &str) -> Page {
    let noun = kind.console.noun;
    let view = match arbiter_engine::cases::get(engine, &session.tenant, kind.flow, case_id).await {
        Ok(view) => view,
        Err(err) if err.code().http_status() == 404 => {
            return Page::message(
                404,
                Some(session),
                &format!("No such {}", noun.to_lowercase()),
                &format!(
                    "There is no {} {case_id} for this tenant.",
                    noun.to_lowercase()
                ),
            );
        }
        Err(err) => return Page::server_error(&err),
    };
    let around = match around(engine.pipeline.db(), &session.tenant, &view).await {
        Ok(around) => around,
        Err(err) => return Page::server_error(&err),
    };
    let body = detail_body(session, kind, &view, &around);
    Page::ok(&format!("{noun} {case_id}"), session, &kind.path(), &body)
}

async fn around(db: &Db, tenant: &str, view: &CaseView) -> Result<Around, QueryError> {
    let conn = db.conn();
    let mut thumbnails = Vec::with_capacity(view.images.len());
    let mut all: Vec<Value> = Vec::new();
    for image in &view.images {
        let sha = image["image_sha256"].as_str().unwrap_or_default();
        thumbnails.push(
            arbiter_db::thumbnails::get(conn, tenant, sha)
                .await?
                .map(|t| t.png),
        );
        if let Some(request_id) = image["request_id"].as_str() {
            all.extend(trail(db, tenant, request_id).await?);
        }
    }
    // The images' trails share the case's entries (`case.decided` names the deciding image):
    // one chain order, each entry once.
    all.sort_by_key(|entry| entry["seq"].as_u64());
    all.dedup_by_key(|entry| entry["seq"].as_u64());
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
        trail: all,
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

fn detail_body(session: &Session, kind: CaseKind, view: &CaseView, around: &Around) -> String {
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
                confidence = percent(image["verdict"]["confidence"].as_f64()),
                decision = decision_list(&image["decision"]),
            )
        })
        .collect();
    let reviews: String = around
        .reviews
        .iter()
        .map(|item| {
            let view = ItemView::from(item.clone());
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
        path = kind.path(),
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

fn status_words(view: &CaseView) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> CaseKind {
        CaseKind {
            flow: "insurance",
            console: CaseConsole {
                path: "claims",
                title: "Claims",
                nav: "Claims",
                noun: "Claim",
            },
        }
    }

    #[test]
    fn each_flow_that_keeps_cases_is_a_kind_with_its_console_path() {
        let registry = FlowRegistry::builtin().expect("the compiled flows");
        let found: Vec<(&str, String, &str)> = kinds(&registry)
            .iter()
            .map(|kind| (kind.flow, kind.path(), kind.console.nav))
            .collect();
        // UGC moderation keeps no cases.
        assert_eq!(
            found,
            [
                ("insurance", "/console/claims".to_owned(), "Claims"),
                ("kyc", "/console/kyc".to_owned(), "KYC"),
            ]
        );
        assert!(kinds(&FlowRegistry::default()).is_empty());
    }

    #[test]
    fn days_are_read_or_refused_by_field() {
        let day_of = |text: &str| day("since", Some(&text.to_owned()));
        assert_eq!(day_of(" "), Ok(None));
        assert_eq!(
            day_of("2026-02-28"),
            Ok(NaiveDate::from_ymd_opt(2026, 2, 28))
        );
        assert_eq!(
            day_of("2026-02-30"),
            Err(r#"since: "2026-02-30" is not a day (YYYY-MM-DD)"#.to_owned())
        );
        assert_eq!(
            start_of(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap_or_default()).to_rfc3339(),
            "2026-02-28T00:00:00+00:00"
        );
    }

    #[test]
    fn the_list_links_each_case_and_pages_on_with_the_search() {
        let row = case::Model {
            tenant: "acme".to_owned(),
            flow: "insurance".to_owned(),
            case_id: "CLM 1".to_owned(),
            facts: "{}".to_owned(),
            images: 2,
            complete: false,
            action: Some("siu_escalation".to_owned()),
            decision: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let search = Search {
            q: Some("<x>".to_owned()),
            after: Some("CLM 0".to_owned()),
            ..Search::default()
        };
        let body = list_body(claims(), &search, "", &[row], true);
        assert!(body.contains(r#"<a href="/console/claims/CLM+1">CLM 1</a>"#));
        assert!(body.contains("<td>pending</td><td>siu_escalation</td>"));
        assert!(body.contains(r#"value="&lt;x&gt;""#));
        assert!(body.contains(r#"href="/console/claims?q=%3Cx%3E&amp;action=&amp;since=&amp;until=&amp;after=CLM+1">Older claims</a>"#));
        assert!(
            body.contains(
                r#"<a class="button secondary" href="/console/claims">Newest claims</a>"#
            )
        );
        let empty = list_body(claims(), &Search::default(), "since: bad", &[], false);
        assert!(empty.contains(r#"<p class="notice" role="alert">since: bad</p>"#));
        assert!(empty.contains(r#"id="no-cases""#) && !empty.contains("rel=\"next\""));
    }
}
