//! `/console/review?queue=Q`: the review queues; claim and resolve items as the signed-in
//! person. The page is `arbiter_console::pages::review`'s.

use super::html::answer;
use super::{Posted, SignedIn};
use crate::state::AppState;
use arbiter_console::area::Review;
use arbiter_console::pages::Page;
use arbiter_console::pages::review::{self, QueueQuery, ResolveForm};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::IgnoredAny;

/// `GET /console/review`.
pub async fn page(
    State(state): State<AppState>,
    Query(query): Query<QueueQuery>,
    SignedIn(session, _): SignedIn<Review>,
) -> Response {
    let pipeline = &state.pipeline;
    answer(review::page(pipeline.db(), pipeline.flows(), &session, &query).await)
}

/// Back to the review page after a form, or the refusal's page.
fn back(result: Result<String, Page>) -> Response {
    result.map_or_else(answer, |location| {
        (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
    })
}

/// `POST /console/review/{item_id}/claim`; the form carries nothing but its CSRF token.
pub async fn claim(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    Query(query): Query<QueueQuery>,
    Posted(session, _, _): Posted<Review, IgnoredAny>,
) -> Response {
    let db = state.pipeline.db();
    back(review::claim(db, &session, &item_id, &query, state.clock.now()).await)
}

/// `POST /console/review/{item_id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    Query(query): Query<QueueQuery>,
    Posted(session, form, _): Posted<Review, ResolveForm>,
) -> Response {
    back(review::resolve(state.engine(), &session, &item_id, &query, form).await)
}
