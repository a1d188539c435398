//! `/console/requests`: the tenant's analysed images, searchable, a page at a time; one
//! request's page, its report card and the replay of its decision. The pages are
//! `arbiter_console::pages::requests`' and the report card `arbiter_console::pages::reports`'.

use super::html::{answer, pdf};
use super::{Posted, SignedIn};
use crate::state::AppState;
use arbiter_console::area::Requests;
use arbiter_console::pages::reports;
use arbiter_console::pages::requests::{self, Search};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::de::IgnoredAny;

/// `GET /console/requests`.
pub async fn list(
    State(state): State<AppState>,
    Query(search): Query<Search>,
    SignedIn(session, _): SignedIn<Requests>,
) -> Response {
    let pipeline = &state.pipeline;
    answer(requests::list(pipeline.db(), pipeline.flows(), &session, &search).await)
}

/// `GET /console/requests/{request_id}`.
pub async fn detail(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    SignedIn(session, _): SignedIn<Requests>,
) -> Response {
    answer(requests::detail(state.pipeline.db(), &session, &request_id).await)
}

/// `GET /console/requests/{request_id}/report.pdf`.
pub async fn report(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    SignedIn(session, _): SignedIn<Requests>,
) -> Response {
    let vkey = state.verifier_key();
    pdf(reports::request(state.engine(), &vkey, &session, &request_id).await)
}

/// `POST /console/requests/{request_id}/replay`: re-decides the recorded facts under the
/// recorded policy version, as `arbiter replay REQUEST_ID` does, and shows the request's page
/// with the outcome. The form carries nothing but its CSRF token.
pub async fn replay(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    Posted(session, _, _): Posted<Requests, IgnoredAny>,
) -> Response {
    answer(requests::replay(state.pipeline.db(), &session, &request_id).await)
}
