//! A fake Reality Defender: presign, upload, media detail, as `reference/reality-defender.md`
//! describes them and the SDKs' recorded bodies show them. Scripted per test: how many polls
//! stay pending and in which of the two pending shapes, 404s after the upload, failures (429
//! with `Retry-After`, 5xx, quota codes), stalls, a malformed or never-final answer.

use super::{Failure, json_response, next_failure, serve, stall};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API key the fake accepts.
pub const API_KEY: &str = "rd-test-key";

/// What the fake does.
#[derive(Debug, Clone)]
pub struct Script {
    /// The final media detail body (any text: a malformed one is answered as it is).
    pub final_body: String,
    /// Pending answers before the final one.
    pub pending_polls: u32,
    /// Pending as `resultsSummary: null` (RD since 2026) rather than an ANALYZING summary.
    pub null_pending: bool,
    /// 404s answered to the first polls after the upload.
    pub not_found_polls: u32,
    /// The analysis never finishes.
    pub never_finish: bool,
    /// The analysis takes this long after the upload (polls before then are pending).
    pub analysis_time: Duration,
    /// Answers given instead of presigning, one per presign call, first to last.
    pub presign_failures: VecDeque<Failure>,
    /// Answers given instead of the media detail, one per poll.
    pub poll_failures: VecDeque<Failure>,
    /// Each presign answer waits this long.
    pub stall: Duration,
    /// The base of the upload URL handed back, instead of the fake's own address.
    pub upload_base: Option<String>,
}

impl Script {
    /// An analysis that ends with `final_body` after one pending poll.
    pub fn answering(final_body: &str) -> Self {
        Self {
            final_body: final_body.to_owned(),
            pending_polls: 1,
            null_pending: true,
            not_found_polls: 0,
            never_finish: false,
            analysis_time: Duration::ZERO,
            presign_failures: VecDeque::new(),
            poll_failures: VecDeque::new(),
            stall: Duration::ZERO,
            upload_base: None,
        }
    }
}

/// A final answer of RD's shape: `status` with `finalScore` (0..100, or null) and models.
pub fn final_body(status: &str, final_score: Option<f64>, models: &[(&str, &str, f64)]) -> String {
    let models: Vec<serde_json::Value> = models
        .iter()
        .map(|(name, status, score)| {
            serde_json::json!({
                "name": name, "data": {"score": score, "decision": status, "raw_score": score},
                "error": null, "code": null, "status": status, "predictionNumber": score,
                "normalizedPredictionNumber": score * 100.0, "rollingAvgNumber": null,
                "finalScore": score * 100.0,
            })
        })
        .collect();
    serde_json::json!({
        "requestId": "{requestId}", "name": "image.jpg", "filename": "image.jpg",
        "originalFileName": "image.jpg", "uploadedDate": "2026-12-04T15:16:16.809Z",
        "mediaType": "IMAGE", "overallStatus": status,
        "resultsSummary": {"status": status, "metadata": {"finalScore": final_score}},
        "models": models, "heatmaps": {}, "webhookUrls": [], "releaseVersion": "2.3.1",
        "media_metadata_info": {"file_size": 12345, "gps_information": {}, "audio_length": null},
    })
    .to_string()
}

/// What the fake saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Presign requests received, whatever was answered.
    pub presign_attempts: u32,
    /// Presign calls answered with an upload URL.
    pub presigns: u32,
    /// Uploads received.
    pub uploads: u32,
    /// Uploads that carried an `X-API-KEY` header (there should be none).
    pub uploads_with_api_key: u32,
    /// Media detail requests.
    pub polls: u32,
}

struct Media {
    uploaded: Option<Instant>,
    polls: u32,
}

struct Inner {
    base_url: String,
    script: Script,
    counts: Counts,
    media: HashMap<String, Media>,
    next_id: u64,
}

/// A running fake.
#[derive(Clone)]
pub struct FakeRealityDefender {
    /// Its base URL (`http://127.0.0.1:port`).
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeRealityDefender {
    /// Starts a fake following `script` on a loopback port.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner {
            base_url: String::new(),
            script,
            counts: Counts::default(),
            media: HashMap::new(),
            next_id: 0,
        }));
        let router = Router::new()
            .route("/api/files/aws-presigned", post(presign))
            .route("/upload/{id}", put(upload))
            .route("/api/media/users/{id}", get(detail))
            .with_state(inner.clone());
        let base_url = serve(router).await?;
        lock(&inner).base_url = base_url.clone();
        Ok(Self { base_url, inner })
    }

    /// What it saw so far.
    pub fn counts(&self) -> Counts {
        lock(&self.inner).counts.clone()
    }

    /// Changes its script (for the next calls).
    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut lock(&self.inner).script);
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY)
}

fn unauthorised() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        r#"{"code":"unauthorized","errno":401,"response":"Invalid API key"}"#.to_owned(),
    )
}

async fn presign(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stall_for = {
        let mut inner = lock(&inner);
        inner.counts.presign_attempts += 1;
        inner.script.stall
    };
    stall(stall_for).await;
    if !authorised(&headers) {
        return unauthorised();
    }
    // JSON (TS, Go, Rust, Java) or form-urlencoded (Python) `fileName`.
    let text = String::from_utf8_lossy(&body);
    let named = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("fileName")
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        })
        .or_else(|| {
            text.split('&')
                .find_map(|pair| pair.strip_prefix("fileName=").map(str::to_owned))
        });
    let mut inner = lock(&inner);
    if let Some(failure) = next_failure(&mut inner.script.presign_failures) {
        return failure;
    }
    if named.is_none_or(|n| n.is_empty()) {
        return json_response(
            StatusCode::BAD_REQUEST,
            r#"{"code":"error","errno":400,"response":"fileName is required"}"#.to_owned(),
        );
    }
    inner.next_id += 1;
    let id = format!("5e9ac2b7-77da-4a26-a1c4-{:012x}", inner.next_id);
    inner.media.insert(
        id.clone(),
        Media {
            uploaded: None,
            polls: 0,
        },
    );
    inner.counts.presigns += 1;
    let base = inner
        .script
        .upload_base
        .clone()
        .unwrap_or_else(|| inner.base_url.clone());
    let body = serde_json::json!({
        "code": "success", "errno": 0, "requestId": id, "mediaId": format!("media-{id}"),
        "response": {"signedUrl": format!("{base}/upload/{id}?X-Amz-Signature=fake")},
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn upload(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let mut inner = lock(&inner);
    inner.counts.uploads += 1;
    if headers.contains_key("x-api-key") {
        inner.counts.uploads_with_api_key += 1;
    }
    match inner.media.get_mut(&id) {
        Some(media) => {
            media.uploaded = Some(Instant::now());
            // S3 answers 200 with an empty body.
            StatusCode::OK.into_response()
        }
        None => StatusCode::FORBIDDEN.into_response(),
    }
}

async fn detail(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&headers) {
        return unauthorised();
    }
    let mut inner = lock(&inner);
    inner.counts.polls += 1;
    if let Some(failure) = next_failure(&mut inner.script.poll_failures) {
        return failure;
    }
    let script = inner.script.clone();
    let not_found = || {
        json_response(
            StatusCode::NOT_FOUND,
            r#"{"code":"not-found","errno":404,"response":"Resource not found"}"#.to_owned(),
        )
    };
    let Some(media) = inner.media.get_mut(&id) else {
        return not_found();
    };
    let Some(uploaded) = media.uploaded else {
        return not_found();
    };
    media.polls += 1;
    if media.polls <= script.not_found_polls {
        return not_found();
    }
    let pending = script.never_finish
        || media.polls <= script.not_found_polls + script.pending_polls
        || uploaded.elapsed() < script.analysis_time;
    let body = if !pending {
        script.final_body.replace("{requestId}", &id)
    } else if script.null_pending {
        serde_json::json!({"requestId": id, "overallStatus": "ANALYZING", "mediaType": "IMAGE",
            "resultsSummary": null, "models": []})
        .to_string()
    } else {
        serde_json::json!({"requestId": id, "overallStatus": "ANALYZING", "mediaType": "IMAGE",
            "resultsSummary": {"status": "ANALYZING", "metadata": {"finalScore": null}},
            "models": [{"name": "rd-elm-img", "status": "ANALYZING", "finalScore": null, "data": null}]})
        .to_string()
    };
    json_response(StatusCode::OK, body)
}
