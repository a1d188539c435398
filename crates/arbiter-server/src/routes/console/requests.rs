//! `/console/requests`: the tenant's analysed images, searchable, a page at a time; one
//! request's page; and the replay of its decision. The pages are
//! `arbiter_console::pages::requests`'.

use super::html::answer;
use super::{posted, require};
use crate::state::AppState;
use arbiter_console::Area;
use arbiter_console::pages::requests::{self, Search};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::de::IgnoredAny;

/// `GET /console/requests`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let session = match require(&state, &headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let pipeline = &state.pipeline;
    answer(requests::list(pipeline.db(), pipeline.flows(), &session, &search).await)
}

/// `GET /console/requests/{request_id}`.
pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Response {
    let session = match require(&state, &headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    answer(requests::detail(state.pipeline.db(), &session, &request_id).await)
}

/// `POST /console/requests/{request_id}/replay`: re-decides the recorded facts under the
/// recorded policy version, as `arbiter replay REQUEST_ID` does, and shows the request's page
/// with the outcome.
pub async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    // The replay form carries nothing but its CSRF token.
    let (session, _) = match posted::<IgnoredAny>(&state, &headers, Area::Requests, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    answer(requests::replay(state.pipeline.db(), &session, &request_id).await)
}
