//! `/console/review?queue=Q`: the review queues; claim and resolve items as the signed-in
//! person. The page is `arbiter_console::pages::review`'s.

use super::html::answer;
use super::{posted, require};
use crate::state::AppState;
use arbiter_console::Area;
use arbiter_console::pages::review::{self, QueueQuery, ResolveForm};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::IgnoredAny;

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
    let db = state.pipeline.db();
    answer(review::page(db, state.pipeline.flows(), &session, &query).await)
}

/// Back to the review page after a form, or the refusal's page.
fn back(result: Result<String, arbiter_console::pages::Page>) -> Response {
    match result {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(page) => answer(page),
    }
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
    let db = state.pipeline.db();
    back(review::claim(db, &session, &item_id, &query, state.clock.now()).await)
}

/// `POST /console/review/{item_id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(item_id): Path<String>,
    Query(query): Query<QueueQuery>,
    body: Bytes,
) -> Response {
    let (session, form) = match posted::<ResolveForm>(&state, &headers, Area::Review, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    back(review::resolve(state.engine(), &session, &item_id, &query, form).await)
}
