//! The HTTP API: one module per resource, merged here.

pub mod analyze;
pub mod audit;
pub mod batches;
pub mod flows;
pub mod health;
pub mod openapi;
pub mod policies;
pub mod rd;
pub mod requests;
pub mod review;
pub mod trail;
pub mod webhooks;

use crate::state::AppState;
use arbiter_core::RequestId;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// Every route, with the request-id and metrics layer around them.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(openapi::router())
        .merge(analyze::router(&state))
        .merge(requests::router(&state))
        .merge(audit::router(&state))
        .merge(trail::router(&state))
        .merge(batches::router(&state))
        .merge(webhooks::router(&state))
        .merge(policies::router(&state))
        .merge(flows::router(&state))
        .merge(review::router(&state))
        .merge(rd::router(&state))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// Gives each request an id (`X-Request-Id` on every response) and records its metrics.
async fn request_context(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = RequestId::new();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    request.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        tenant = tracing::field::Empty,
        %method,
        route = %route,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert("x-request-id", value);
    }
    state.metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
