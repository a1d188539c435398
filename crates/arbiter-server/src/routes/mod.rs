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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{each_database, json, state};
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode, header};
    use axum::routing::get;
    use tower::ServiceExt as _;

    fn get_path(path: &str) -> HttpRequest<Body> {
        HttpRequest::get(path).body(Body::empty()).unwrap()
    }

    fn request_id_of(response: &Response) -> String {
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(id.starts_with("req_"), "{id}");
        id
    }

    #[tokio::test]
    async fn every_answer_names_its_request_and_an_error_body_names_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(state(dir.path()).await);
        let healthy = app.clone().oneshot(get_path("/healthz")).await.unwrap();
        assert_eq!(healthy.status(), StatusCode::OK);
        let first = request_id_of(&healthy);
        let refused = app
            .clone()
            .oneshot(get_path("/v1/requests/req_1"))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let id = request_id_of(&refused);
        assert_ne!(id, first, "each request has an id of its own");
        let body = json(refused).await;
        assert_eq!(body["error"]["request_id"], id.as_str());
        assert_eq!(body["error"]["code"], "INVALID_API_KEY");
        let unknown = app.oneshot(get_path("/nowhere")).await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        request_id_of(&unknown);
    }

    #[tokio::test]
    async fn requests_are_counted_by_their_route_pattern_not_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let app = router(state.clone());
        for path in ["/v1/requests/req_1", "/v1/requests/req_2", "/a", "/b"] {
            app.clone().oneshot(get_path(path)).await.unwrap();
        }
        let metrics = state.metrics.render();
        for counted in [
            r#"arbiter_http_requests_total{method="GET",route="/v1/requests/{request_id}",status="401"} 2"#,
            r#"arbiter_http_requests_total{method="GET",route="unmatched",status="404"} 2"#,
        ] {
            assert!(metrics.contains(counted), "{counted} in\n{metrics}");
        }
        assert!(!metrics.contains("req_1"), "{metrics}");
    }

    #[tokio::test]
    async fn with_no_place_left_a_request_is_refused_for_load_but_probes_answer() {
        let no_places = |config: &mut arbiter_config::Config| {
            config.limits.max_concurrent_requests = 0;
        };
        each_database(no_places, async |db, state| {
            let app = router(state);
            let busy = app
                .clone()
                .oneshot(get_path("/v1/requests/req_1"))
                .await
                .unwrap();
            assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE, "{db}");
            assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
            let id = request_id_of(&busy);
            let body = json(busy).await;
            assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
            assert_eq!(body["error"]["request_id"], id.as_str());
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("limits.max_concurrent_requests"),
                "{body}"
            );
            for probe in UNBOUNDED {
                let answer = app.clone().oneshot(get_path(probe)).await.unwrap();
                assert_eq!(answer.status(), StatusCode::OK, "{db}: {probe}");
            }
        })
        .await;
    }

    /// `/hold` answers once `release` is sent, after telling `entered`; behind `bounds`.
    fn held(
        bounds: Bounds,
    ) -> (
        Router,
        tokio::sync::mpsc::Receiver<()>,
        Arc<tokio::sync::Notify>,
    ) {
        let (entered_tx, entered) = tokio::sync::mpsc::channel(4);
        let release = Arc::new(tokio::sync::Notify::new());
        let gate = release.clone();
        let app = Router::new()
            .route(
                "/hold",
                get(move || {
                    let (entered_tx, gate) = (entered_tx.clone(), gate.clone());
                    async move {
                        entered_tx.send(()).await.unwrap();
                        gate.notified().await;
                        "done"
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(bounds, bounded));
        (app, entered, release)
    }

    #[tokio::test]
    async fn a_place_is_taken_while_a_request_is_served_and_given_back_after() {
        let bounds = Bounds {
            places: Arc::new(Semaphore::new(1)),
            timeout: Duration::from_secs(3600),
        };
        let (app, mut entered, release) = held(bounds.clone());
        let first = tokio::spawn(app.clone().oneshot(get_path("/hold")));
        entered.recv().await.unwrap();
        let second = app.clone().oneshot(get_path("/hold")).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()[header::RETRY_AFTER], "1");
        let probe = app.clone().oneshot(get_path("/healthz")).await.unwrap();
        assert_eq!(probe.status(), StatusCode::OK);
        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(bounds.places.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_request_not_answered_in_time_is_a_503_and_frees_its_place() {
        let bounds = Bounds {
            places: Arc::new(Semaphore::new(1)),
            timeout: Duration::ZERO,
        };
        let (app, _entered, _release) = held(bounds.clone());
        let late = app.oneshot(get_path("/hold")).await.unwrap();
        assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(late.headers().get(header::RETRY_AFTER).is_none());
        let body = json(late).await;
        assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
        assert_eq!(
            body["error"]["message"],
            "the request was not answered within 0 s (limits.request_timeout_secs)"
        );
        assert_eq!(bounds.places.available_permits(), 1);
    }
}
