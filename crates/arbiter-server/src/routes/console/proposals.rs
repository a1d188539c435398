//! `/console/policies/proposals`: four-eyes policy changes for admins. A version is proposed by
//! pasting its YAML; the proposal's page shows the diff against the live version and the
//! backtest exactly as `arbiter policy show` prints them, and a second admin approves it (the
//! signed-in person is the approver) or rejects it with a reason. The rules are
//! `crate::policy_changes`'s; this module reads forms and renders pages.

use super::html::{self, csrf_field, escape};
use super::{posted, require};
use crate::config::PolicySource;
use crate::policy_changes::{self, ChangeError, Proposal, ProposeWith};
use crate::state::AppState;
use arbiter_console::{Area, Session};
use arbiter_policy::Policy;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use serde::Deserialize;

/// Proposals listed, newest first.
const LISTED: u64 = 100;

/// The name a pasted policy is reported under (`pasted policy:LINE:COLUMN: ...`).
const PASTED: &str = "pasted policy";

/// The status a refused change is answered with.
fn status_of(err: &ChangeError) -> Option<StatusCode> {
    match err {
        ChangeError::Invalid(_)
        | ChangeError::BadUser(_)
        | ChangeError::Unchanged { .. }
        | ChangeError::NoSuchVersion { .. }
        | ChangeError::EmptyReason => Some(StatusCode::BAD_REQUEST),
        ChangeError::NotFound(_) => Some(StatusCode::NOT_FOUND),
        ChangeError::SelfApproval { .. } => Some(StatusCode::FORBIDDEN),
        ChangeError::NotPending { .. } | ChangeError::Stale { .. } => Some(StatusCode::CONFLICT),
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

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Where approved versions go live, for the pages' note.
fn source_note(state: &AppState) -> &'static str {
    match state.config.policies.source {
        PolicySource::Database => {
            "This deployment's policies live in the database (<code>policies.source: database</code>): an approved version goes live at once on this server and within <code>policies.poll_interval_ms</code> on the others."
        }
        PolicySource::Files => {
            "This deployment's policies are files (<code>policies.source: files</code>): an approval is recorded here, and the version goes live on servers with <code>policies.source: database</code>; this server keeps its files."
        }
    }
}

/// `GET /console/policies/proposals`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Policies).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    list_page(&state, &session, StatusCode::OK, "", "").await
}

async fn list_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    error: &str,
    pasted: &str,
) -> Response {
    let proposals = match policy_changes::list(state.pipeline.db(), LISTED).await {
        Ok(proposals) => proposals,
        Err(err) => return html::server_error(&err),
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
        note = source_note(state),
        csrf = csrf_field(&session.csrf),
        pasted = escape(pasted),
    );
    html::respond(
        status,
        html::layout(
            "Policy proposals",
            Some(session),
            "/console/policies",
            &body,
        ),
    )
}

/// The form proposing a version.
#[derive(Deserialize)]
pub struct ProposeForm {
    policy: Option<String>,
}

/// `POST /console/policies/proposals`: proposes the pasted YAML on behalf of the signed-in
/// admin, then shows the proposal.
pub async fn propose(
    State(state): State<AppState>,
    headers: HeaderMap,
    body_bytes: Bytes,
) -> Response {
    let (session, given) =
        match posted::<ProposeForm>(&state, &headers, Area::Policies, &body_bytes).await {
            Ok(posted) => posted,
            Err(response) => return response,
        };
    let text = given.policy.unwrap_or_default();
    if text.trim().is_empty() {
        return list_page(
            &state,
            &session,
            StatusCode::BAD_REQUEST,
            "Paste the policy's YAML to propose it.",
            &text,
        )
        .await;
    }
    let policy = match Policy::from_yaml(&text, PASTED) {
        Ok(policy) => policy,
        Err(err) => {
            let error = format!("{err}\n{PASTED}: not proposed");
            return list_page(&state, &session, StatusCode::BAD_REQUEST, &error, &text).await;
        }
    };
    let seed = state.pipeline.policies().snapshot();
    let with = ProposeWith {
        flows: state.pipeline.flows(),
        seed: &seed,
        backtest_days: state.config.policies.backtest_days,
        now: state.clock.now(),
    };
    match policy_changes::propose(state.pipeline.db(), with, policy, &session.user).await {
        Ok(proposal) => see_proposal(&proposal.proposal_id),
        Err(err) => match status_of(&err) {
            Some(status) => {
                let error = format!("{err}\n{PASTED}: not proposed");
                list_page(&state, &session, status, &error, &text).await
            }
            None => html::server_error(&err),
        },
    }
}

/// A redirect to a proposal's page.
fn see_proposal(id: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                format!("/console/policies/proposals/{}", html::url_encode(id)),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// `GET /console/policies/proposals/{proposal_id}`.
pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(proposal_id): Path<String>,
) -> Response {
    let session = match require(&state, &headers, Area::Policies).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    detail_page(&state, &session, &proposal_id, StatusCode::OK, "").await
}

async fn detail_page(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    error: &str,
) -> Response {
    let proposal = match policy_changes::show(state.pipeline.db(), id).await {
        Ok(proposal) => proposal,
        Err(ChangeError::NotFound(_)) => {
            return html::message(
                StatusCode::NOT_FOUND,
                Some(session),
                "No such proposal",
                &format!("There is no policy proposal {id}."),
            );
        }
        Err(err) => return html::server_error(&err),
    };
    let error = if error.is_empty() {
        String::new()
    } else {
        notice(error)
    };
    let body = format!(
        "{error}{}",
        detail_body(session, &proposal, source_note(state))
    );
    html::respond(
        status,
        html::layout(
            &format!("Proposal {}", proposal.proposal_id),
            Some(session),
            "/console/policies",
            &body,
        ),
    )
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
#[derive(Deserialize)]
pub struct DecideForm {
    reason: Option<String>,
}

async fn decide_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Session, DecideForm), Response> {
    let (session, given) = posted::<DecideForm>(state, headers, Area::Policies, body).await?;
    Ok((session, given))
}

/// The answer to an approval or rejection: the proposal's page, or it with the refusal.
async fn decided(
    state: &AppState,
    session: &Session,
    id: &str,
    result: Result<Proposal, ChangeError>,
) -> Response {
    match result {
        Ok(proposal) => see_proposal(&proposal.proposal_id),
        Err(err) => match status_of(&err) {
            Some(StatusCode::NOT_FOUND) => html::message(
                StatusCode::NOT_FOUND,
                Some(session),
                "No such proposal",
                &err.to_string(),
            ),
            Some(status) => detail_page(state, session, id, status, &err.to_string()).await,
            None => html::server_error(&err),
        },
    }
}

/// `POST /console/policies/proposals/{proposal_id}/approve`: the signed-in admin approves (never
/// the proposer); on a server with `policies.source: database` the version goes live at once.
pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(proposal_id): Path<String>,
    body: Bytes,
) -> Response {
    let session = match decide_form(&state, &headers, &body).await {
        Ok((session, _)) => session,
        Err(response) => return response,
    };
    let db = state.pipeline.db();
    let flows = state.pipeline.flows();
    let result =
        policy_changes::approve(db, flows, &proposal_id, &session.user, state.clock.now()).await;
    if result.is_ok()
        && state.config.policies.source == PolicySource::Database
        && let Err(err) =
            policy_changes::sync_from_database(db, state.pipeline.policies(), flows).await
    {
        tracing::warn!(error = %err, "cannot read the approved policy versions");
    }
    decided(&state, &session, &proposal_id, result).await
}

/// `POST /console/policies/proposals/{proposal_id}/reject`: the signed-in admin rejects it, with
/// a reason.
pub async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(proposal_id): Path<String>,
    body: Bytes,
) -> Response {
    let (session, given) = match decide_form(&state, &headers, &body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let reason = given.reason.unwrap_or_default();
    if reason.trim().is_empty() {
        return detail_page(
            &state,
            &session,
            &proposal_id,
            StatusCode::BAD_REQUEST,
            "A rejection needs a reason.",
        )
        .await;
    }
    let result = policy_changes::reject(
        state.pipeline.db(),
        &proposal_id,
        &session.user,
        &reason,
        state.clock.now(),
    )
    .await;
    decided(&state, &session, &proposal_id, result).await
}
