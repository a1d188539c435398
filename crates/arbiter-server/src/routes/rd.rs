//! The Reality Defender–compatible endpoints, so RD's own SDKs work against Arbiter by changing
//! only their base URL: presign, upload, media detail, the media list, feedback, and a clear
//! refusal of social links. `X-API-KEY` carries an Arbiter API key (its tenant, scopes, networks
//! and rate limits apply as on `/v1`); every answer, errors included, is JSON in RD's shapes.
//! The shapes and the verdict mapping are `arbiter_providers::reality_defender::facade`.

use crate::analyze::ImageSource;
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::keys::Scope;
use crate::state::AppState;
use arbiter_core::ErrorCode;
use arbiter_engine::EngineError;
use arbiter_engine::reality_defender::{self as rd, Feedback, PageQuery, Presigned};
use arbiter_jobs::queue;
use arbiter_providers::reality_defender::facade::{self, file_name};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::SubsecRound;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// The routes at the root, beside `/v1`.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    // The key comes as `X-API-KEY`, and a refusal in RD's shape.
    let x_api_key = auth::KeyScheme {
        name: "x_api_key",
        error_body: None,
    };
    let scoped = |scope, router| auth::scoped_as(router, state, scope, x_api_key);
    OpenApiRouter::new()
        .merge(scoped(
            Scope::Analyze,
            OpenApiRouter::new().routes(routes!(presign)),
        ))
        .merge(scoped(
            Scope::RequestsRead,
            OpenApiRouter::new()
                .routes(routes!(media_detail))
                .routes(routes!(media_page)),
        ))
        .merge(scoped(
            Scope::Review,
            OpenApiRouter::new().routes(routes!(feedback)),
        ))
        .routes(routes!(upload).layer(DefaultBodyLimit::disable()))
        .routes(routes!(social))
        .layer(middleware::from_fn(rd_shape))
}

/// Reads `X-API-KEY` as the API key, and answers every error in RD's shape
/// (`{code, errno, response}`, JSON).
async fn rd_shape(mut request: Request, next: Next) -> Response {
    if let Some(key) = request.headers().get("x-api-key").cloned()
        && let Ok(bearer) = HeaderValue::from_str(&format!(
            "Bearer {}",
            key.to_str().unwrap_or_default().trim()
        ))
    {
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
    }
    let upload = request.method() == axum::http::Method::PUT;
    let response = next.run(request).await;
    let status = response.status();
    if status.is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    if upload {
        // A refused upload's body may be partly unread: the connection is not reused, so the
        // client's next request does not meet the rest of it.
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let Some(body) = facade::error_of(status.as_u16(), &bytes) else {
        return Response::from_parts(parts, bytes.into());
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, body.to_string().into())
}

/// The presign body, as the document states it; [`file_name`] reads it from JSON or a form.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "the document's schema of a body read by file_name"
)]
struct PresignBody {
    /// The file's name; only its base name (after the last `/` or `\`) is kept, and it must
    /// not be blank.
    #[schema(rename = "fileName", pattern = "[^/\\\\\\s][^/\\\\]*$")]
    file_name: String,
}

/// Presign an upload (RD: `POST /api/files/aws-presigned`).
///
/// JSON or form-urlencoded `fileName`. Answers `requestId`, `mediaId` and `response.signedUrl`,
/// an absolute URL (from the request's `Host`) holding an unguessable token that works for an
/// hour; PUT the image's bytes to it.
#[utoipa::path(
    post,
    path = "/api/files/aws-presigned",
    tag = "reality-defender",
    request_body(content = PresignBody, description = "As JSON, or the same field form-urlencoded"),
    responses(
        (status = 200, description = "{code, errno, requestId, mediaId, response: {signedUrl}}", body = Object),
        (status = 400, description = "No fileName", body = Object),
    )
)]
pub async fn presign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let name = file_name(form, &body).map_err(EngineError::from)?;
    let now = state.clock.now().trunc_subsecs(3);
    let key_id = caller.key.id.to_string();
    let db = state.pipeline.db();
    let Presigned { request_id, token } =
        rd::presign(db, &caller.key.tenant, &key_id, name, now).await?;
    let base = super::batches::base_url(&headers);
    Ok(Json(facade::presign_answer(
        request_id.as_str(),
        &token,
        &base,
    )))
}

/// The upload URL's query.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    /// The token the presign answer put in the URL.
    token: Option<String>,
}

/// Upload the presigned image (RD: `PUT` to `signedUrl`).
///
/// Raw bytes of any content type, authorised by the URL's token (an `X-API-KEY` may be sent or
/// not). The intake limits apply (413, 422). When this answers 200 (empty body) the analysis is
/// queued and the media detail answers ANALYZING.
#[utoipa::path(
    put,
    path = "/api/files/upload/{request_id}",
    tag = "reality-defender",
    params(("request_id" = String, Path, description = "The presigned requestId"), ("token" = String, Query, description = "The token of the presign answer's signedUrl")),
    request_body(content = Vec<u8>, description = "The image's bytes", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Received; the analysis is queued"),
        (status = 401, description = "The key that presigned the upload is revoked", body = Object),
        (status = 403, description = "An unknown, wrong or expired upload URL", body = Object),
        (status = 409, description = "The image was uploaded already", body = Object),
        (status = 413, description = "Image too large", body = Object),
        (status = 422, description = "Unsupported, too small or corrupt image", body = Object),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    request: Request,
) -> Result<StatusCode, ApiError> {
    let conn = state.pipeline.db().conn();
    let now = state.clock.now().trunc_subsecs(3);
    let slot = rd::open_slot(conn, &request_id, query.token.as_deref(), now).await?;
    let limits = state.pipeline.limits();
    let limit = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(request.into_body(), limit.saturating_add(1))
        .await
        .map_err(|_| too_large(limits.max_bytes))?;
    if bytes.len() > limit {
        return Err(too_large(limits.max_bytes));
    }
    let media = ImageSource::Bytes(Vec::from(bytes)).take_in(limits)?;
    let (id, call) = rd::upload_call(conn, &state.config.flows, &slot, media).await?;
    let base = super::batches::base_url(&headers);
    queue::submit_single(&state.job_context(), &slot.tenant, &id, call, None, &base).await?;
    rd::mark_uploaded(state.pipeline.db(), &request_id, now).await?;
    Ok(StatusCode::OK)
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::FileSizeExceeded,
        format!("the image is larger than the {max}-byte limit"),
    )
}

/// One result in RD's media-detail shape (RD: `GET /api/media/users/{requestId}`).
///
/// While the image waits: `overallStatus` and `resultsSummary.status` ANALYZING with an explicit
/// null `finalScore`, and `models: []`. When analysed: `overallStatus` equal to
/// `resultsSummary.status` (AUTHENTIC, FAKE, SUSPICIOUS, NOT_APPLICABLE, UNABLE_TO_EVALUATE),
/// `finalScore` 0–100 or null, `models` one entry per model and detector that ran. Another
/// tenant's id is not found.
#[utoipa::path(
    get,
    path = "/api/media/users/{request_id}",
    tag = "reality-defender",
    params(("request_id" = String, Path, description = "The requestId")),
    responses(
        (status = 200, description = "The media detail", body = Object),
        (status = 404, description = "No such request for this tenant", body = Object),
    )
)]
pub async fn media_detail(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(request_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let conn = state.pipeline.db().conn();
    Ok(Json(
        rd::media_detail(conn, &caller.key.tenant, &request_id).await?,
    ))
}

/// The tenant's uploads a page at a time, newest first (RD: `GET /api/v2/media/users/pages/{n}`).
///
/// Pages count from 0; `size`, `name` (part of the file name), `startDate` and `endDate`
/// (inclusive days) filter. Answers `totalItems`, `totalPages`, `currentPage`,
/// `currentPageItemsCount` and `mediaList` (media details).
#[utoipa::path(
    get,
    path = "/api/v2/media/users/pages/{page}",
    tag = "reality-defender",
    params(
        ("page" = u64, Path, description = "The page, from 0"),
        ("size" = Option<u64>, Query, minimum = 1, maximum = 100, description = "Items per page (1 to 100, default 10)"),
        ("name" = Option<String>, Query, description = "Part of the file name"),
        ("startDate" = Option<String>, Query, format = Date, description = "The first day, YYYY-MM-DD"),
        ("endDate" = Option<String>, Query, format = Date, description = "The last day, YYYY-MM-DD"),
    ),
    responses(
        (status = 200, description = "A page of media details", body = Object),
        (status = 400, description = "A malformed date", body = Object),
    )
)]
pub async fn media_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(page): Path<u64>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let conn = state.pipeline.db().conn();
    Ok(Json(
        rd::media_page(conn, &caller.key.tenant, page, &query).await?,
    ))
}

/// Label a result (RD: `POST /api/v2/user-feedback`).
///
/// The label becomes a resolved review item on the request (queue `feedback`, the key as
/// reviewer), with its `review.resolved` audit entry, so it counts in `policy backtest`'s
/// precision like a reviewer's label. Answers 201 with `id`, `userId`, `requestId`,
/// `institutionId`, `category`, `label` and `createdAt`.
#[utoipa::path(
    post,
    path = "/api/v2/user-feedback",
    tag = "reality-defender",
    request_body(content = Feedback),
    responses(
        (status = 201, description = "The feedback, recorded as a review label", body = Object),
        (status = 400, description = "An unknown label, or no such result", body = Object),
    )
)]
pub async fn feedback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = state.clock.now().trunc_subsecs(3);
    let key_id = caller.key.id.to_string();
    let (db, flows) = (state.pipeline.db(), state.pipeline.flows());
    let record = rd::feedback(db, flows, &caller.key.tenant, &key_id, &body, now).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Social links (RD: `POST /api/files/social`): Arbiter does not fetch them.
#[utoipa::path(
    post,
    path = "/api/files/social",
    tag = "reality-defender",
    responses((status = 400, description = "Social links are not supported", body = Object))
)]
pub async fn social(_body: Bytes) -> Response {
    // The body is read (and dropped), so the client is not cut off while it sends.
    (
        StatusCode::BAD_REQUEST,
        Json(facade::error_body(
            "error",
            400,
            "social links are not supported by this server: download the media and upload the file",
        )),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{json, mint, new_key, state};
    use axum::body::Body;
    use serde_json::json;
    use tower::ServiceExt as _;

    fn app(state: &AppState) -> axum::Router {
        let (routes, _) = router(state).split_for_parts();
        routes.with_state(state.clone())
    }

    fn with_key(method: &str, path: &str, key: Option<&str>, body: &str) -> Request {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "rd.example");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.body(Body::from(body.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn a_refusal_is_answered_in_rd_s_shape_with_the_key_from_x_api_key() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let app = app(&state);
        let path = "/api/media/users/req_01J0000000000000000000000";
        let missing = app
            .clone()
            .oneshot(with_key("GET", path, None, ""))
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(missing.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            json(missing).await,
            json!({
                "code": "unauthorized",
                "errno": 401,
                "response": "missing, unknown or revoked API key; send Authorization: Bearer <key>",
            })
        );
        let (_, analyst) = mint(&state, new_key(&[Scope::Analyze])).await;
        let forbidden = app
            .clone()
            .oneshot(with_key("GET", path, Some(&analyst), ""))
            .await;
        assert_eq!(
            json(forbidden.unwrap()).await,
            json!({
                "code": "forbidden",
                "errno": 403,
                "response": "this API key lacks the requests:read scope",
            })
        );
        // A reader's key, blanks around it, reaches the route: an unknown id is RD's not-found.
        let (_, reader) = mint(&state, new_key(&[Scope::RequestsRead])).await;
        let padded = format!(" {reader} ");
        let unknown = app
            .oneshot(with_key("GET", path, Some(&padded), ""))
            .await
            .unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let body = json(unknown).await;
        assert_eq!(
            (&body["code"], &body["errno"]),
            (&json!("not-found"), &json!(404))
        );
    }

    #[tokio::test]
    async fn a_refused_upload_closes_the_connection_and_other_refusals_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let app = app(&state);
        let path = "/api/files/upload/req_01J0000000000000000000000?token=wrong";
        let upload = app
            .clone()
            .oneshot(with_key("PUT", path, None, "bytes"))
            .await
            .unwrap();
        assert_eq!(upload.status(), StatusCode::FORBIDDEN);
        assert_eq!(upload.headers()[header::CONNECTION], "close");
        assert_eq!(
            json(upload).await,
            json!({"code": "forbidden", "errno": 403, "response": "this upload URL is not valid"})
        );
        let social = app
            .oneshot(with_key("POST", "/api/files/social", None, "{}"))
            .await
            .unwrap();
        assert_eq!(social.status(), StatusCode::BAD_REQUEST);
        assert!(social.headers().get(header::CONNECTION).is_none());
        // A body in RD's shape already goes out as it is.
        let body = json(social).await;
        assert_eq!(body["code"], "error");
        assert_eq!(body["errno"], 400);
        assert!(
            body["response"]
                .as_str()
                .unwrap()
                .starts_with("social links are not supported")
        );
    }

    #[tokio::test]
    async fn a_presign_answers_an_upload_url_on_the_request_s_host() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let (_, key) = mint(&state, new_key(&[Scope::Analyze])).await;
        let body = r#"{"fileName": "photos/cat.png"}"#;
        let request = with_key("POST", "/api/files/aws-presigned", Some(&key), body);
        let response = app(&state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("x-ratelimit-remaining"));
        let answer = json(response).await;
        let request_id = answer["requestId"].as_str().unwrap();
        assert!(request_id.starts_with("req_"), "{answer}");
        let url = answer["response"]["signedUrl"].as_str().unwrap();
        let upload = format!("http://rd.example/api/files/upload/{request_id}?token=");
        assert!(url.starts_with(&upload), "{url}");
        assert!(url.len() > upload.len(), "{url}");
    }
}
