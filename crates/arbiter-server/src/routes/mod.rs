//! The HTTP API: one module per resource, merged here.

pub mod analyze;
pub mod audit;
pub mod batches;
pub mod console;
pub mod flows;
pub mod health;
pub mod openapi;
pub mod policies;
pub mod rd;
pub mod reports;
pub mod requests;
pub mod review;
pub mod trail;
pub mod types;
pub mod webhooks;

use crate::error::ApiError;
use crate::state::AppState;
use arbiter_core::ErrorCode;
use arbiter_core::RequestId;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Every route, with the request-id and metrics layer around them, and the bounds on requests
/// inside it (so a refused or timed-out request has its id and is counted). The documented
/// routes are declared with their operations, which make `GET /v1/openapi.json`; the console
/// and the document itself are not in it.
pub fn router(state: AppState) -> Router {
    let bounds = Bounds {
        places: Arc::new(Semaphore::new(
            usize::try_from(state.config.limits.max_concurrent_requests).unwrap_or(usize::MAX),
        )),
        timeout: Duration::from_secs(state.config.limits.request_timeout_secs),
    };
    let (documented, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(health::router())
        .merge(analyze::router(&state))
        .merge(requests::router(&state))
        .merge(audit::router(&state))
        .merge(trail::router(&state))
        .merge(reports::router(&state))
        .merge(batches::router(&state))
        .merge(webhooks::router(&state))
        .merge(policies::router(&state))
        .merge(flows::router(&state))
        .merge(review::router(&state))
        .merge(rd::router(&state))
        .split_for_parts();
    documented
        .merge(openapi::router(openapi::served(document, &state.config)))
        .merge(console::router(&state))
        .layer(middleware::from_fn_with_state(bounds, bounded))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// The bounds on the requests a process serves: how many at once, and for how long each.
#[derive(Clone)]
struct Bounds {
    places: Arc<Semaphore>,
    timeout: Duration,
}

/// Paths served whatever the load: probes and metrics must answer when the rest is busy.
const UNBOUNDED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Seconds a caller refused for load is asked to wait.
const BUSY_RETRY_SECS: u64 = 1;

/// Serves a request within the bounds: 503 with `Retry-After` when `limits.max_concurrent_requests`
/// are being served, and 503 when it takes longer than `limits.request_timeout_secs` (reading
/// its body included; the work on it is dropped). It runs inside the request context, so a
/// refusal names its request.
async fn bounded(State(bounds): State<Bounds>, request: Request, next: Next) -> Response {
    if UNBOUNDED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_place) = bounds.places.clone().try_acquire_owned() else {
        return ApiError {
            retry_after: Some(BUSY_RETRY_SECS),
            ..ApiError::new(
                ErrorCode::ServiceUnavailable,
                "the server is serving as many requests as it may (limits.max_concurrent_requests); \
                 try again shortly",
            )
        }
        .into_response();
    };
    match tokio::time::timeout(bounds.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "the request was not answered within {} s (limits.request_timeout_secs)",
                bounds.timeout.as_secs()
            ),
        )
        .into_response(),
    }
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
    let answer = next.run(request).instrument(span.clone());
    let mut response = crate::error::answering(request_id.clone(), answer).await;
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
