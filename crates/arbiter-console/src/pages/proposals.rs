//! The policy proposals pages (`/console/policies/proposals`): four-eyes policy changes for
//! admins. A version is proposed by pasting its YAML; the proposal's page shows the diff
//! against the live version and the backtest exactly as `arbiter policy show` prints them, and
//! a second admin approves it (the signed-in person is the approver) or rejects it with a
//! reason. The rules are `arbiter_engine::policy_changes`'s; this module reads forms and renders
//! pages.

use super::Page;
use super::html::{csrf_field, escape, layout, url_encode};
use crate::Session;
use arbiter_engine::Pipeline;
use arbiter_engine::policies::{PoliciesConfig, PolicySource};
use arbiter_engine::policy_changes::{self, ChangeError, Proposal, ProposeWith};
use arbiter_policy::Policy;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

/// Proposals listed, newest first.
const LISTED: u64 = 100;

/// The name a pasted policy is reported under (`pasted policy:LINE:COLUMN: ...`).
const PASTED: &str = "pasted policy";

/// What the proposal pages use: the database, flows and live policies, and the `policies:`
/// settings (where approved versions go live, the backtest's days).
#[derive(Clone, Copy)]
pub struct Desk<'a> {
    /// The database, the flows and the live policies.
    pub pipeline: &'a Pipeline,
    /// The `policies:` settings.
    pub config: &'a PoliciesConfig,
}

/// The status a refused change is answered with; none for a failure (500).
fn status_of(err: &ChangeError) -> Option<u16> {
    match err {
        ChangeError::Invalid(_)
        | ChangeError::BadUser(_)
        | ChangeError::Unchanged { .. }
        | ChangeError::NoSuchVersion { .. }
        | ChangeError::EmptyReason => Some(400),
        ChangeError::NotFound(_) => Some(404),
        ChangeError::SelfApproval { .. } => Some(403),
        ChangeError::NotPending { .. } | ChangeError::Stale { .. } => Some(409),
        ChangeError::NotActivated(_)
        | ChangeError::MissingText(_)
        | ChangeError::Db(_)
        | ChangeError::Audit(_) => None,
    }
}

fn notice(text: &str) -> String {
    format!(
        r#"<div class="notice" role="alert" id="proposal-error"><pre>{}</pre></div>"#,
        escape(text)
    )
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Where approved versions go live, for the pages' note.
fn source_note(source: PolicySource) -> &'static str {
    match source {
        PolicySource::Database => {
            "This deployment's policies live in the database (<code>policies.source: database</code>): an approved version goes live at once on this server and within <code>policies.poll_interval_ms</code> on the others."
        }
        PolicySource::Files => {
            "This deployment's policies are files (<code>policies.source: files</code>): an approval is recorded here, and the version goes live on servers with <code>policies.source: database</code>; this server keeps its files."
        }
    }
}

/// Where a proposal's page is.
pub fn location(id: &str) -> String {
    format!("/console/policies/proposals/{}", url_encode(id))
}

/// The proposals page: the proposals, newest first, and the form proposing a version.
pub async fn list(desk: Desk<'_>, session: &Session) -> Page {
    list_page(desk, session, 200, "", "").await
}

async fn list_page(
    desk: Desk<'_>,
    session: &Session,
    status: u16,
    error: &str,
    pasted: &str,
) -> Page {
    let proposals = match policy_changes::list(desk.pipeline.db(), LISTED).await {
        Ok(proposals) => proposals,
        Err(err) => return Page::server_error(&err),
    };
    let rows: String = proposals
        .iter()
        .map(|p| {
            format!(
                r#"<tr><td><a href="/console/policies/proposals/{id}">{id}</a></td><td>{flow}</td><td>{policy} v{version}{rollback}</td><td>{by}</td><td data-state="{state}">{state}</td><td class="hide-narrow">{at}</td></tr>"#,
                id = escape(&p.proposal_id),
                flow = escape(&p.flow),
                policy = escape(&p.policy.id),
                version = p.policy.version,
                rollback = p
                    .rollback_to
                    .map_or_else(String::new, |v| format!(" (rollback to v{v})")),
                by = escape(&p.proposed_by),
                state = escape(&p.status),
                at = time(p.proposed_at),
            )
        })
        .collect();
    let table = if rows.is_empty() {
        r#"<p class="muted" id="no-proposals">No policy change has been proposed yet.</p>"#
            .to_owned()
    } else {
        format!(
            r#"<div class="table-wrap"><table id="proposals"><thead><tr><th scope="col">Proposal</th><th scope="col">Flow</th><th scope="col">Version</th><th scope="col">Author</th><th scope="col">State</th><th scope="col" class="hide-narrow">Proposed</th></tr></thead><tbody>{rows}</tbody></table></div>"#
        )
    };
    let error = if error.is_empty() {
        String::new()
    } else {
        notice(error)
    };
    let body = format!(
        r#"<p>A policy change goes live only when a second admin approves it. <a href="/console/policies">Live policies</a></p>
<p class="muted">{note}</p>
<h2>Proposals</h2>{table}
<h2>Propose a new version</h2>{error}
<form method="post" action="/console/policies/proposals" id="propose">{csrf}
<label for="policy">Policy (YAML, with a higher <code>metadata.version</code> than the live one)</label><textarea id="policy" name="policy" rows="16" spellcheck="false">{pasted}</textarea>
<button type="submit">Propose</button></form>"#,
        note = source_note(desk.config.source),
        csrf = csrf_field(&session.csrf),
        pasted = escape(pasted),
    );
    Page {
        status,
        html: layout(
            "Policy proposals",
            Some(session),
            "/console/policies",
            &body,
        ),
    }
}

/// The form proposing a version.
#[derive(Debug, Default, Deserialize)]
pub struct ProposeForm {
    policy: Option<String>,
}

/// Proposes the pasted YAML on behalf of the signed-in admin: the new proposal's page (to go
/// to), or the proposals page with the refusal.
pub async fn propose(
    desk: Desk<'_>,
    session: &Session,
    given: ProposeForm,
    now: DateTime<Utc>,
) -> Result<String, Page> {
    let text = given.policy.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(list_page(
            desk,
            session,
            400,
            "Paste the policy's YAML to propose it.",
            &text,
        )
        .await);
    }
    let policy = match Policy::from_yaml(&text, PASTED) {
        Ok(policy) => policy,
        Err(err) => {
            let error = format!("{err}\n{PASTED}: not proposed");
            return Err(list_page(desk, session, 400, &error, &text).await);
        }
    };
    let seed = desk.pipeline.policies().snapshot();
    let with = ProposeWith {
        flows: desk.pipeline.flows(),
        seed: &seed,
        backtest_days: desk.config.backtest_days,
        now,
    };
    match policy_changes::propose(desk.pipeline.db(), with, policy, &session.user).await {
        Ok(proposal) => Ok(location(&proposal.proposal_id)),
        Err(err) => match status_of(&err) {
            Some(status) => {
                let error = format!("{err}\n{PASTED}: not proposed");
                Err(list_page(desk, session, status, &error, &text).await)
            }
            None => Err(Page::server_error(&err)),
        },
    }
}

/// A proposal's page: its checks, diff and backtest, and the forms deciding it while pending.
pub async fn detail(desk: Desk<'_>, session: &Session, id: &str) -> Page {
    detail_page(desk, session, id, 200, "").await
}

async fn detail_page(
    desk: Desk<'_>,
    session: &Session,
    id: &str,
    status: u16,
    error: &str,
) -> Page {
    let proposal = match policy_changes::show(desk.pipeline.db(), id).await {
        Ok(proposal) => proposal,
        Err(ChangeError::NotFound(_)) => {
            return Page::message(
                404,
                Some(session),
                "No such proposal",
                &format!("There is no policy proposal {id}."),
            );
        }
        Err(err) => return Page::server_error(&err),
    };
    let error = if error.is_empty() {
        String::new()
    } else {
        notice(error)
    };
    let body = format!(
        "{error}{}",
        detail_body(session, &proposal, source_note(desk.config.source))
    );
    Page {
        status,
        html: layout(
            &format!("Proposal {}", proposal.proposal_id),
            Some(session),
            "/console/policies",
            &body,
        ),
    }
}

fn detail_body(session: &Session, p: &Proposal, note: &str) -> String {
    let checks = &p.checks;
    let decided = match (&p.decided_by, p.decided_at) {
        (Some(by), Some(at)) => format!(
            "<dt>{}</dt><dd>by {} at {}</dd>",
            escape(&p.status),
            escape(by),
            time(at)
        ),
        _ => String::new(),
    };
    let reason = p.reason.as_deref().map_or_else(String::new, |r| {
        format!("<dt>Reason</dt><dd>{}</dd>", escape(r))
    });
    let rollback = p.rollback_to.map_or_else(String::new, |v| {
        format!("<dt>Rollback</dt><dd>restores version {v}</dd>")
    });
    let warnings: String = checks
        .warnings
        .iter()
        .map(|w| format!("<li>{}</li>", escape(w)))
        .collect();
    let warnings = if warnings.is_empty() {
        String::new()
    } else {
        format!("<h3>Lint warnings</h3><ul>{warnings}</ul>")
    };
    let diff = match (&checks.live, &checks.diff_text) {
        (Some(live), Some(diff)) => format!(
            r#"<h2>Diff against the live version</h2><p>Compared with {} v{} (<span class="mono">SHA-256 {}</span>), the live version when it was proposed.</p><pre id="diff">{}</pre>"#,
            escape(&live.id),
            live.version,
            escape(&live.sha256),
            escape(diff)
        ),
        _ => r#"<h2>Diff against the live version</h2><p class="muted" id="diff">The flow had no live version to compare with.</p>"#.to_owned(),
    };
    let backtest = &checks.backtest;
    let forms = if p.status == "pending" {
        let own = if p.proposed_by == session.user {
            r#"<p class="muted">You proposed this change: a second admin approves it (four-eyes rule).</p>"#
        } else {
            ""
        };
        format!(
            r#"<h2>Decide</h2>{own}<div class="cards"><form method="post" action="/console/policies/proposals/{id}/approve" class="card" id="approve">{csrf}<p>Approve as <strong>{user}</strong>: the version goes live for flow {flow}.</p><button type="submit">Approve</button></form>
<form method="post" action="/console/policies/proposals/{id}/reject" class="card" id="reject">{csrf}<label for="reason">Reason</label><input type="text" id="reason" name="reason" required><button type="submit" class="secondary">Reject</button></form></div>"#,
            id = escape(&p.proposal_id),
            csrf = csrf_field(&session.csrf),
            user = escape(&session.user),
            flow = escape(&p.flow),
        )
    } else {
        String::new()
    };
    format!(
        r#"<p><a href="/console/policies/proposals">All proposals</a></p>
<dl><dt>State</dt><dd data-state="{state}">{state}</dd><dt>Flow</dt><dd>{flow}</dd><dt>Policy</dt><dd>{policy} version {version}, <span class="mono">SHA-256 {sha}</span></dd>{rollback}<dt>Proposed</dt><dd>by {by} at {at}</dd>{decided}{reason}<dt>Embedded tests</dt><dd>{passed} passed, {failed} failed</dd></dl>
{warnings}
{diff}
<h2>Backtest</h2><p>The stored decisions of {since} .. {until} replayed through the proposed version: {replayed} replayed, {changed} change action, {reason_only} change reason only.</p><pre id="backtest">{report}</pre>
{forms}
<p class="muted">{note}</p>"#,
        state = escape(&p.status),
        flow = escape(&p.flow),
        policy = escape(&p.policy.id),
        version = p.policy.version,
        sha = escape(&p.policy.sha256),
        by = escape(&p.proposed_by),
        at = time(p.proposed_at),
        passed = checks.tests.passed,
        failed = checks.tests.failed,
        since = time(backtest.since),
        until = time(backtest.until),
        replayed = backtest.replayed,
        changed = backtest.changed,
        reason_only = backtest.reason_only,
        report = escape(&backtest.report),
    )
}

/// The approval and rejection forms.
#[derive(Debug, Default, Deserialize)]
pub struct DecideForm {
    reason: Option<String>,
}

/// The answer to an approval or rejection: the proposal's page (to go to), or it with the
/// refusal.
async fn decided(
    desk: Desk<'_>,
    session: &Session,
    id: &str,
    result: Result<Proposal, ChangeError>,
) -> Result<String, Page> {
    match result {
        Ok(proposal) => Ok(location(&proposal.proposal_id)),
        Err(err) => Err(match status_of(&err) {
            Some(404) => Page::message(404, Some(session), "No such proposal", &err.to_string()),
            Some(status) => detail_page(desk, session, id, status, &err.to_string()).await,
            None => Page::server_error(&err),
        }),
    }
}

/// The signed-in admin approves a proposal (never the proposer); with `policies.source:
/// database` the version goes live at once on this server. The proposal's page (to go to), or
/// it with the refusal.
pub async fn approve(
    desk: Desk<'_>,
    session: &Session,
    id: &str,
    now: DateTime<Utc>,
) -> Result<String, Page> {
    let db = desk.pipeline.db();
    let flows = desk.pipeline.flows();
    let result = policy_changes::approve(db, flows, id, &session.user, now).await;
    if result.is_ok()
        && desk.config.source == PolicySource::Database
        && let Err(err) =
            policy_changes::sync_from_database(db, desk.pipeline.policies(), flows).await
    {
        tracing::warn!(error = %err, "cannot read the approved policy versions");
    }
    decided(desk, session, id, result).await
}

/// The signed-in admin rejects a proposal, with a reason. The proposal's page (to go to), or
/// it with the refusal.
pub async fn reject(
    desk: Desk<'_>,
    session: &Session,
    id: &str,
    given: DecideForm,
    now: DateTime<Utc>,
) -> Result<String, Page> {
    let reason = given.reason.unwrap_or_default();
    if reason.trim().is_empty() {
        return Err(detail_page(desk, session, id, 400, "A rejection needs a reason.").await);
    }
    let result = policy_changes::reject(desk.pipeline.db(), id, &session.user, &reason, now).await;
    decided(desk, session, id, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_their_statuses_and_failures_none() {
        assert_eq!(status_of(&ChangeError::EmptyReason), Some(400));
        assert_eq!(status_of(&ChangeError::NotFound("pp_1".into())), Some(404));
        assert_eq!(status_of(&ChangeError::MissingText("x".into())), None);
    }

    #[test]
    fn a_proposal_is_linked_by_its_encoded_id() {
        assert_eq!(location("pp_1"), "/console/policies/proposals/pp_1");
        assert_eq!(location("a/b c"), "/console/policies/proposals/a%2Fb+c");
    }

    #[test]
    fn times_are_whole_seconds_in_utc() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T20:01:02.345+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time(at), "2026-12-06T19:01:02Z");
    }

    #[test]
    fn the_note_says_where_approvals_go_live() {
        assert!(source_note(PolicySource::Database).contains("goes live at once"));
        assert!(source_note(PolicySource::Files).contains("this server keeps its files"));
    }

    #[test]
    fn a_notice_is_escaped() {
        assert_eq!(
            notice("a <b>"),
            r#"<div class="notice" role="alert" id="proposal-error"><pre>a &lt;b&gt;</pre></div>"#
        );
    }
}
