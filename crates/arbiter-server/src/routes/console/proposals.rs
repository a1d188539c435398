//! `/console/policies/proposals`: four-eyes policy changes for admins: propose a version, see a
//! proposal's diff and backtest, approve or reject it. The pages are
//! `arbiter_console::pages::proposals`'.

use super::html::answer;
use super::login::see_other;
use super::{posted, require};
use crate::state::AppState;
use arbiter_console::Area;
use arbiter_console::pages::Page;
use arbiter_console::pages::proposals::{self, DecideForm, Desk, ProposeForm};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

/// What the proposal pages use, from the state.
fn desk(state: &AppState) -> Desk<'_> {
    Desk {
        pipeline: &state.pipeline,
        config: &state.config.policies,
    }
}

/// A proposal's page (a redirect to it), or the refusal's page.
fn to_proposal(result: Result<String, Page>) -> Response {
    match result {
        Ok(location) => see_other(&location),
        Err(page) => answer(page),
    }
}

/// `GET /console/policies/proposals`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Policies).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    answer(proposals::list(desk(&state), &session).await)
}

/// `POST /console/policies/proposals`: proposes the pasted YAML on behalf of the signed-in
/// admin, then shows the proposal.
pub async fn propose(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (session, given) =
        match posted::<ProposeForm>(&state, &headers, Area::Policies, &body).await {
            Ok(posted) => posted,
            Err(response) => return response,
        };
    let now = state.clock.now();
    to_proposal(proposals::propose(desk(&state), &session, given, now).await)
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
    answer(proposals::detail(desk(&state), &session, &proposal_id).await)
}

/// `POST /console/policies/proposals/{proposal_id}/approve`: the signed-in admin approves (never
/// the proposer); on a server with `policies.source: database` the version goes live at once.
pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(proposal_id): Path<String>,
    body: Bytes,
) -> Response {
    let (session, _) = match posted::<DecideForm>(&state, &headers, Area::Policies, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let now = state.clock.now();
    to_proposal(proposals::approve(desk(&state), &session, &proposal_id, now).await)
}

/// `POST /console/policies/proposals/{proposal_id}/reject`: the signed-in admin rejects it, with
/// a reason.
pub async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(proposal_id): Path<String>,
    body: Bytes,
) -> Response {
    let (session, given) = match posted::<DecideForm>(&state, &headers, Area::Policies, &body).await
    {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let now = state.clock.now();
    to_proposal(proposals::reject(desk(&state), &session, &proposal_id, given, now).await)
}
