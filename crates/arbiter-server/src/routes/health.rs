//! `/healthz`, `/readyz` and `/metrics`.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes; no authentication.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The database is reachable, the process is not shutting down (503 `draining` from SIGTERM on,
/// while it finishes its in-flight work: take it out of rotation) and every detector running in
/// this process is healthy. The body shows each vendor's health (`providers`: circuit, budget,
/// problem) and each built detector's own health check (`detectors`: `healthy`, `problem`).
/// A vendor that is down does not make the process unready, since its routes answer with an
/// error naming it (or fail over) and every replica shares the vendor. A detector of this process
/// that fails its check (the local one with no analysis thread) does: 503 `detector
/// unavailable`, since every image routed to it would fail here while another replica may serve
/// it.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready"), (status = 503, description = "Not ready")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let detectors = state.pipeline.detectors();
    let providers: serde_json::Map<String, serde_json::Value> = detectors
        .providers()
        .iter()
        .map(|provider| {
            let status = provider.status();
            let shown = json!({
                "healthy": status.healthy,
                "circuit": status.circuit.as_str(),
                "problem": status.problem,
                "budget_left": status.budget_left,
            });
            (status.name, shown)
        })
        .collect();
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    if let Err(err) = state.pipeline.db().conn().ping().await {
        tracing::warn!(error = %err, "database not reachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "database unreachable"})),
        );
    }
    let health = detectors.health().await;
    let unready = health.iter().find(|h| h.blocks_readiness());
    if let Some(failing) = unready {
        tracing::warn!(detector = %failing.name, problem = ?failing.problem, "detector unavailable");
    }
    let shown: serde_json::Map<String, serde_json::Value> = health
        .iter()
        .map(|h| {
            let shown = json!({"healthy": h.healthy(), "problem": h.problem});
            (h.name.clone(), shown)
        })
        .collect();
    let (code, status) = match unready {
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "detector unavailable"),
        None => (StatusCode::OK, "ready"),
    };
    (
        code,
        Json(json!({"status": status, "providers": providers, "detectors": shown})),
    )
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_replica(&state.config.replica.id)
            + &state.metrics.render()
            + &arbiter_providers::metrics::render(state.pipeline.detectors().providers()),
    )
}

/// Which replica answers: `/metrics` counts this process only.
fn render_replica(replica: &str) -> String {
    format!(
        "# HELP arbiter_replica_info The replica these metrics are of (each process counts its \
         own).\n# TYPE arbiter_replica_info gauge\narbiter_replica_info{{replica=\"{replica}\"}} 1\n"
    )
}
