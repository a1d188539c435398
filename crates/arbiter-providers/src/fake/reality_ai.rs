//! A fake Reality AI API: `POST /v1/analyze` with a Bearer key, answering the guide's response
//! body, or scripted failures (429 with `Retry-After`, 5xx, the guide's error codes), stalls and
//! malformed bodies.

use super::{Failure, json_response, next_failure, serve, stall};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The API key the fake accepts.
pub const API_KEY: &str = "ra-test-key";

/// What the fake does.
#[derive(Debug, Clone)]
pub struct Script {
    /// The body of a successful answer.
    pub response: String,
    /// Answers given instead, one per call, first to last.
    pub failures: VecDeque<Failure>,
    /// Each answer waits this long.
    pub stall: Duration,
}

impl Script {
    /// Answers the guide's body with this verdict.
    pub fn answering(label: &str, confidence: f64, risk: &str) -> Self {
        let body = serde_json::json!({
            "request_id": "req_9f3a2b1c4d5e6f", "reference_id": null, "status": "complete",
            "processed_at": "2026-03-16T14:23:11Z",
            "verdict": {"label": label, "confidence": confidence, "risk_level": risk},
            "model_results": {
                "diffusion_detection": {"score": confidence, "label": "SYNTHETIC"},
                "splicing_detection": {"score": 0.23, "label": "AUTHENTIC", "detail": "No localized manipulation regions detected"}
            },
            "image_info": {"width": 3024, "height": 4032, "format": "JPEG", "file_size_bytes": 4821033, "sha256": "a1b2"},
            "processing_time_ms": 847,
        });
        Self {
            response: body.to_string(),
            failures: VecDeque::new(),
            stall: Duration::ZERO,
        }
    }
}

struct Inner {
    script: Script,
    calls: u32,
}

/// A running fake.
#[derive(Clone)]
pub struct FakeRealityAi {
    /// Its base URL (`http://127.0.0.1:port`).
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeRealityAi {
    /// Starts a fake following `script` on a loopback port.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner { script, calls: 0 }));
        let router = Router::new()
            .route("/v1/analyze", post(analyze))
            .with_state(inner.clone());
        Ok(Self {
            base_url: serve(router).await?,
            inner,
        })
    }

    /// Calls received.
    pub fn calls(&self) -> u32 {
        lock(&self.inner).calls
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn analyze(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stall_for = lock(&inner).script.stall;
    stall(stall_for).await;
    let mut inner = lock(&inner);
    inner.calls += 1;
    let bearer = format!("Bearer {API_KEY}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"code":"INVALID_API_KEY","message":"Missing or invalid API key","request_id":"req_1"}}"#.to_owned(),
        );
    }
    if let Some(failure) = next_failure(&mut inner.script.failures) {
        return failure;
    }
    let has_image = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .is_some_and(|v| v.get("image_base64").is_some_and(|i| i.is_string()));
    if !has_image {
        return json_response(
            StatusCode::BAD_REQUEST,
            r#"{"error":{"code":"INVALID_REQUEST","message":"image_base64 is required","request_id":"req_1"}}"#.to_owned(),
        );
    }
    json_response(StatusCode::OK, inner.script.response.clone())
}
