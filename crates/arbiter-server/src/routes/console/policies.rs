//! `/console/policies`: the live policies, the watched files and a simulator; and under
//! `/console/policies/proposals` four-eyes policy changes for admins: propose a version, see a
//! proposal's diff and backtest, approve or reject it. The pages are
//! `arbiter_console::pages::policies`' and `arbiter_console::pages::proposals`'.

use super::html::answer;
use super::{Posted, SignedIn, see_other};
use crate::state::AppState;
use arbiter_console::area::Policies;
use arbiter_console::pages::Page;
use arbiter_console::pages::policies::{self, SimulateForm};
use arbiter_console::pages::proposals::{self, DecideForm, Desk, ProposeForm};
use axum::extract::{Path, State};
use axum::response::Response;

/// `GET /console/policies`.
pub async fn page(
    State(state): State<AppState>,
    SignedIn(session, _): SignedIn<Policies>,
) -> Response {
    answer(policies::page(state.pipeline.policies(), &session))
}

/// `POST /console/policies/simulate`.
pub async fn simulate(
    State(state): State<AppState>,
    Posted(session, sim, _): Posted<Policies, SimulateForm>,
) -> Response {
    answer(policies::simulate(state.pipeline.policies(), &session, sim))
}

/// What the proposal pages use, from the state.
fn desk(state: &AppState) -> Desk<'_> {
    Desk {
        pipeline: &state.pipeline,
        config: &state.config.policies,
    }
}

/// A proposal's page (a redirect to it), or the refusal's page.
fn to_proposal(result: Result<String, Page>) -> Response {
    result.map_or_else(answer, |location| see_other(&location))
}

/// `GET /console/policies/proposals`.
pub async fn list_proposals(
    State(state): State<AppState>,
    SignedIn(session, _): SignedIn<Policies>,
) -> Response {
    answer(proposals::list(desk(&state), &session).await)
}

/// `POST /console/policies/proposals`: proposes the pasted YAML on behalf of the signed-in
/// admin, then shows the proposal.
pub async fn propose(
    State(state): State<AppState>,
    Posted(session, given, _): Posted<Policies, ProposeForm>,
) -> Response {
    to_proposal(proposals::propose(desk(&state), &session, given, state.clock.now()).await)
}

/// `GET /console/policies/proposals/{proposal_id}`.
pub async fn proposal(
    State(state): State<AppState>,
    Path(proposal_id): Path<String>,
    SignedIn(session, _): SignedIn<Policies>,
) -> Response {
    answer(proposals::detail(desk(&state), &session, &proposal_id).await)
}

/// `POST /console/policies/proposals/{proposal_id}/approve`: the signed-in admin approves (never
/// the proposer); on a server with `policies.source: database` the version goes live at once.
pub async fn approve(
    State(state): State<AppState>,
    Path(proposal_id): Path<String>,
    Posted(session, _, _): Posted<Policies, DecideForm>,
) -> Response {
    let now = state.clock.now();
    to_proposal(proposals::approve(desk(&state), &session, &proposal_id, now).await)
}

/// `POST /console/policies/proposals/{proposal_id}/reject`: the signed-in admin rejects it, with
/// a reason.
pub async fn reject(
    State(state): State<AppState>,
    Path(proposal_id): Path<String>,
    Posted(session, given, _): Posted<Policies, DecideForm>,
) -> Response {
    let now = state.clock.now();
    to_proposal(proposals::reject(desk(&state), &session, &proposal_id, given, now).await)
}
