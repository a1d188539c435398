//! `POST /v1/analyze`.

use crate::analyze::{self, AnalyzeCall, AnalyzeReply};
pub use crate::analyze::{RequestOptions, parse_options};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::keys::Scope;
use crate::state::AppState;
use arbiter_core::{ErrorCode, RequestId};
pub use arbiter_engine::intake::AnalyzeRequest;
use arbiter_engine::intake::RawBody;
use arbiter_jobs::queue;
use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route, with the body limit at the edge; the handler authorizes the `analyze` scope
/// itself, while it reads the body ([`auth::require_while`]).
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    // Base64 takes 4 bytes for 3, plus room for the rest of the JSON.
    let max_image = state.config.limits.max_image_bytes;
    let body_limit = usize::try_from(max_image / 3 * 4 + 64 * 1024).unwrap_or(usize::MAX);
    let routes = OpenApiRouter::new()
        .routes(routes!(analyze_image))
        .route_layer(DefaultBodyLimit::max(body_limit));
    auth::documented(routes, Scope::Analyze, auth::KeyScheme::BEARER)
}

/// Query parameters of `POST /v1/analyze`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeQuery {
    /// Also decide under this flow's live policy: `insurance`, `ugc` or `kyc`.
    pub flow: Option<String>,
}

/// Analyse one image.
///
/// Send JSON with exactly one of `image_url` or `image_base64`, or a multipart form with a
/// `file` part (and optional `options`, `facts` as JSON text and `reference_id`). The same image
/// with the same options within the cache TTL reuses the stored detector result (`cached`).
/// With `options.webhook_url` the answer is 202 at once and the result is delivered to that URL
/// (`analysis.complete`, signed with the tenant's webhook secret).
///
/// Rules the schema cannot state: `facts` need `?flow=`, and are checked against that flow's
/// own facts schema; `options.webhook_url` must resolve to an address the server may reach.
#[utoipa::path(
    post,
    path = "/v1/analyze",
    tag = "analysis",
    params(AnalyzeQuery),
    request_body(content = AnalyzeRequest, description = "JSON, or multipart/form-data with a `file` part"),
    responses(
        (status = 200, description = "The analysis", body = AnalyzeReply),
        (status = 202, description = "Queued; the result goes to options.webhook_url", body = arbiter_jobs::AsyncAccepted),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 413, description = "Image or body too large", body = ErrorBody),
        (status = 422, description = "Unsupported, too small, corrupt or unreachable image", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
    )
)]
pub async fn analyze_image(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    request: Request,
) -> Response {
    let base = super::batches::base_url(request.headers());
    auth::require_while(
        &state,
        Scope::Analyze,
        request,
        |request| prepare(&state, request),
        |caller, (call, webhook_url)| answer(&state, caller, &request_id, call, webhook_url, &base),
    )
    .await
}

/// Analyses a prepared request for its caller, or queues it for `webhook_url`.
async fn answer(
    state: &AppState,
    caller: Caller,
    request_id: &RequestId,
    call: AnalyzeCall,
    webhook_url: Option<String>,
    base: &str,
) -> Result<Response, ApiError> {
    let tenant = &caller.key.tenant;
    let Some(url) = webhook_url else {
        let reply = analyze::analyze_for(state, tenant, request_id, call).await?;
        return Ok(Json(reply).into_response());
    };
    state
        .webhooks
        .check_destination(&url)
        .await
        .map_err(|why| ApiError::bad_request(format!("options.webhook_url: {why}")))?;
    let context = state.job_context();
    let accepted =
        queue::submit_single(&context, tenant, request_id, call, Some(url), base).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// The work on a request that needs no caller, done while its key is looked up: the query and
/// body read and checked, and an image sent in the request taken in (a URL is fetched only for
/// a known caller, and an image for a webhook is taken in by its job).
async fn prepare(
    state: &AppState,
    request: Request,
) -> Result<(AnalyzeCall, Option<String>), ApiError> {
    let Query(query) = Query::<AnalyzeQuery>::try_from_uri(request.uri())
        .map_err(|err| ApiError::bad_request(err.body_text()))?;
    let body = raw_body(request, state).await?;
    let limits = state.pipeline.limits();
    Ok(state.intake().analyze(body, query.flow, limits)?)
}

/// The multipart (or JSON) intake of `POST /v1/analyze` on its own, without a server or a
/// database: `body`, sent with `content_type`, read as [`raw_body`] reads it and its fields
/// taken as the route takes them. The fuzz target `fuzz/fuzz_targets/multipart.rs` runs it.
pub async fn intake_body(
    content_type: &str,
    body: Bytes,
) -> Result<(AnalyzeRequest, Option<Vec<u8>>), ApiError> {
    let request = Request::builder()
        .method("POST")
        .uri("/v1/analyze")
        .header(header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body))
        .map_err(|err| ApiError::bad_request(format!("cannot read the request: {err}")))?;
    Ok(raw_body(request, &()).await?.analyze_fields()?)
}

/// Reads a JSON or multipart body (multipart parts by name, in order); any other content type
/// is a 400, a body over the route's limit a 413.
pub(crate) async fn raw_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<RawBody<Bytes>, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|err| body_error(&err.body_text(), err.status().as_u16()))?;
        let mut parts = Vec::new();
        let unread = |err: MultipartError| body_error(&err.body_text(), err.status().as_u16());
        while let Some(field) = multipart.next_field().await.map_err(unread)? {
            let name = field.name().unwrap_or_default().to_owned();
            parts.push((name, field.bytes().await.map_err(unread)?));
        }
        return Ok(RawBody::Parts(parts));
    }
    if !content_type.starts_with("application/json") {
        return Err(ApiError::bad_request(
            "send application/json or multipart/form-data",
        ));
    }
    Bytes::from_request(request, state)
        .await
        .map(RawBody::Json)
        .map_err(|err| body_error(&err.body_text(), err.status().as_u16()))
}

/// A body that could not be read: over the route's limit (413), or cut off or malformed (400).
pub(crate) fn body_error(text: &str, status: u16) -> ApiError {
    if status == 413 {
        ApiError::new(
            ErrorCode::FileSizeExceeded,
            "the request body is larger than the limit; send a smaller image or an image_url",
        )
    } else {
        ApiError::bad_request(format!("cannot read the request body: {text}"))
    }
}
