//! The Reality Defender–compatible endpoints, so RD's own SDKs work against Arbiter by changing
//! only their base URL: presign, upload, media detail, the media list, feedback, and a clear
//! refusal of social links. `X-API-KEY` carries an Arbiter API key (its tenant, scopes, networks
//! and rate limits apply as on `/v1`); every answer, errors included, is JSON in RD's shapes.
//! The shapes and the verdict mapping are `arbiter_providers::reality_defender::facade`.

use crate::analyze::{AnalyzeCall, ImageSource};
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::keys::Scope;
use crate::review::{self, Resolve};
use crate::state::AppState;
use arbiter_core::{AnalyzeOptions, ErrorCode, RequestId};
use arbiter_db::rd_uploads;
use arbiter_providers::reality_defender::facade::{
    self, AnalysisState, Media, day, reference_id, review_label, same,
};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// How long an upload URL works after it is presigned.
const UPLOAD_URL_TTL: Duration = Duration::hours(1);

/// The most items a list page holds.
const MAX_PAGE_SIZE: u64 = 100;

/// The routes at the root, beside `/v1`.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let scoped = |scope: Scope, router: OpenApiRouter<AppState>| {
        router.route_layer(middleware::from_fn_with_state(
            (state.clone(), scope),
            auth::require,
        ))
    };
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
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let code = parsed["error"]["code"].as_str().unwrap_or_default();
    let message = parsed["error"]["message"].as_str().map_or_else(
        || String::from_utf8_lossy(&bytes).into_owned(),
        str::to_owned,
    );
    let slug = match code {
        "INVALID_API_KEY" => "unauthorized",
        "FORBIDDEN" => "forbidden",
        "NOT_FOUND" => "not-found",
        "FILE_SIZE_EXCEEDED" => "file-too-large",
        "RATE_LIMIT_EXCEEDED" => "too-many-requests",
        "QUOTA_EXCEEDED" => "upload-limit-reached",
        "" if parsed.get("code").is_some() => return Response::from_parts(parts, bytes.into()),
        _ => "error",
    };
    let body = facade::error_body(slug, status.as_u16(), &message).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, body.into())
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

/// `fileName` from a JSON body (TS, Go, Rust, Java) or a form-urlencoded one (Python); other
/// fields (`fileSize`) are ignored. Only the base name is kept, at most 200 characters.
fn file_name(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let given = if form {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map_err(|err| ApiError::bad_request(format!("the form body is malformed: {err}")))?
            .into_iter()
            .find_map(|(name, value)| (name == "fileName").then_some(value))
    } else {
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| ApiError::bad_request(format!("the body is not JSON: {err}")))?;
        value["fileName"].as_str().map(str::to_owned)
    };
    let given = given.unwrap_or_default();
    let base = given.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() {
        return Err(ApiError::bad_request("fileName is required"));
    }
    Ok(base.chars().take(200).collect())
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
        (status = 401, description = "Missing, unknown or revoked X-API-KEY", body = Object),
        (status = 429, description = "Rate limit or quota exceeded", body = Object),
    ),
    security(("x_api_key" = []))
)]
pub async fn presign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let name = file_name(&headers, &body)?;
    let request_id = RequestId::new();
    let token = token()?;
    let now = state.clock.now().trunc_subsecs(3);
    let slot = rd_uploads::new_slot(
        request_id.to_string(),
        caller.key.tenant.clone(),
        caller.key.id.to_string(),
        name,
        hex::encode(Sha256::digest(token.as_bytes())),
        now + UPLOAD_URL_TTL,
        now,
    );
    let txn = state.pipeline.db().begin_write().await?;
    rd_uploads::insert(&txn, slot).await?;
    txn.commit().await?;
    let base = super::batches::base_url(&headers);
    Ok(Json(json!({
        "code": "success",
        "errno": 0,
        "requestId": request_id,
        "mediaId": format!("media_{}", &request_id.as_str()[4..]),
        "response": {"signedUrl": format!("{base}/api/files/upload/{request_id}?token={token}")},
    })))
}

/// 32 random bytes, hex.
fn token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| ApiError::internal(&err))?;
    Ok(hex::encode(bytes))
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
    async {
        let refused = || ApiError::new(ErrorCode::Forbidden, "this upload URL is not valid");
        let slot = rd_uploads::get(state.pipeline.db().conn(), &request_id)
            .await?
            .ok_or_else(refused)?;
        let presented = hex::encode(Sha256::digest(query.token.unwrap_or_default().as_bytes()));
        if !same(presented.as_bytes(), slot.token_sha256.as_bytes()) {
            return Err(refused());
        }
        let now = state.clock.now().trunc_subsecs(3);
        if now >= slot.expires_at {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "this upload URL has expired: presign again",
            ));
        }
        if slot.uploaded_at.is_some() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "this image was uploaded already",
            ));
        }
        let limits = state.pipeline.limits();
        let limit = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
        let bytes = axum::body::to_bytes(request.into_body(), limit.saturating_add(1))
            .await
            .map_err(|_| too_large(limits.max_bytes))?;
        if bytes.len() > limit {
            return Err(too_large(limits.max_bytes));
        }
        let media = ImageSource::Bytes(Vec::from(bytes)).take_in(limits)?;
        // The key that presigned the upload must still be live: a revocation holds at once.
        let key = crate::keys::get(state.pipeline.db().conn(), &slot.key_id)
            .await?
            .filter(|key| key.revoked_at.is_none())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidApiKey,
                    "the API key that presigned this upload is revoked",
                )
            })?;
        let flow = key
            .flow
            .filter(|flow| state.config.flows.enabled(flow))
            .map(|flow| (flow, json!({})));
        let call = AnalyzeCall {
            source: media,
            options: AnalyzeOptions::default(),
            reference_id: Some(reference_id(&slot.file_name)),
            flow,
        };
        let id: RequestId = request_id.parse().map_err(|err| ApiError::internal(&err))?;
        let base = super::batches::base_url(&headers);
        crate::jobs::submit_single(&state, &slot.tenant, &id, call, None, &base).await?;
        let txn = state.pipeline.db().begin_write().await?;
        rd_uploads::mark_uploaded(&txn, &request_id, now).await?;
        txn.commit().await?;
        Ok(StatusCode::OK)
    }
    .await
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::FileSizeExceeded,
        format!("the image is larger than the {max}-byte limit"),
    )
}

/// One request in RD's media-detail shape: pending, final or failed. Never a 404 for an id
/// issued to the tenant.
async fn detail(state: &AppState, tenant: &str, request_id: &str) -> Result<Value, ApiError> {
    let conn = state.pipeline.db().conn();
    let slot = rd_uploads::get(conn, request_id)
        .await?
        .filter(|slot| slot.tenant == tenant);
    let name = |fallback: Option<&str>| {
        slot.as_ref()
            .map(|s| s.file_name.clone())
            .or_else(|| fallback.map(str::to_owned))
            .unwrap_or_else(|| request_id.to_owned())
    };
    let uploaded = |fallback: DateTime<Utc>| slot.as_ref().map_or(fallback, |s| s.created_at);
    match super::requests::stored_result(state, tenant, request_id).await {
        Ok(reply) => {
            let result = &reply.result;
            let name = name(result.reference_id.as_deref());
            let media = Media {
                request_id,
                file_name: &name,
                uploaded: uploaded(result.processed_at),
                file_size: Some(result.image_info.file_size_bytes),
            };
            let standing = AnalysisState::Final {
                verdict: &result.verdict,
                model_results: &result.model_results,
                providers: &result.providers,
            };
            Ok(facade::media_detail(&media, &standing))
        }
        Err(err) if err.code == ErrorCode::NotFound => {
            let job = arbiter_db::jobs::get(conn, tenant, request_id).await?;
            if job.is_none() && slot.is_none() {
                return Err(err);
            }
            let name = name(job.as_ref().and_then(|j| j.reference_id.as_deref()));
            let media = Media {
                request_id,
                file_name: &name,
                uploaded: uploaded(job.as_ref().map_or_else(Utc::now, |j| j.created_at)),
                file_size: None,
            };
            let standing = match &job {
                Some(job) if job.status == arbiter_db::jobs::FAILED => AnalysisState::Failed {
                    code: job.error_code.as_deref().unwrap_or("INTERNAL_ERROR"),
                    message: job.error_message.as_deref().unwrap_or_default(),
                },
                _ => AnalysisState::Pending,
            };
            Ok(facade::media_detail(&media, &standing))
        }
        Err(err) => Err(err),
    }
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
        (status = 401, description = "Missing, unknown or revoked X-API-KEY", body = Object),
        (status = 404, description = "No such request for this tenant", body = Object),
    ),
    security(("x_api_key" = []))
)]
pub async fn media_detail(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(request_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    detail(&state, &caller.key.tenant, &request_id)
        .await
        .map(Json)
}

/// The list query.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Items per page (default 10, at most 100).
    size: Option<u64>,
    /// Part of the file name.
    name: Option<String>,
    /// The first day, `YYYY-MM-DD` (unpadded months and days are read too).
    #[serde(rename = "startDate")]
    start_date: Option<String>,
    /// The last day, inclusive.
    #[serde(rename = "endDate")]
    end_date: Option<String>,
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
        (status = 401, description = "Missing, unknown or revoked X-API-KEY", body = Object),
    ),
    security(("x_api_key" = []))
)]
pub async fn media_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(page): Path<u64>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let size = query.size.unwrap_or(10).clamp(1, MAX_PAGE_SIZE);
    let filter = rd_uploads::Filter {
        name: query.name.as_deref().filter(|n| !n.is_empty()),
        since: query
            .start_date
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| day(d, "startDate"))
            .transpose()?,
        until: query
            .end_date
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| day(d, "endDate").map(|end| end + Duration::days(1)))
            .transpose()?,
    };
    let tenant = &caller.key.tenant;
    let (rows, total) =
        rd_uploads::page(state.pipeline.db().conn(), tenant, &filter, page, size).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(detail(&state, tenant, &row.request_id).await?);
    }
    Ok(Json(json!({
        "totalItems": total,
        "totalPages": total.div_ceil(size),
        "currentPage": page,
        "currentPageItemsCount": items.len(),
        "mediaList": items,
    })))
}

/// RD's feedback body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Feedback {
    /// The request: one of this tenant's results (another answers 400).
    #[schema(pattern = "^req_[0-9A-HJKMNP-TV-Z]{26}$")]
    request_id: String,
    /// `REAL`, `SYNTHETIC`, `MANIPULATED` or `UNKNOWN`.
    #[schema(pattern = "^(REAL|SYNTHETIC|MANIPULATED|UNKNOWN)$")]
    label: String,
    /// `FALSE_POSITIVE`, `FALSE_NEGATIVE`, `CONFIRMATION` or `OTHER`.
    #[schema(pattern = "^(FALSE_POSITIVE|FALSE_NEGATIVE|CONFIRMATION|OTHER)$")]
    feedback_category: Option<String>,
    /// A comment.
    comment: Option<String>,
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
        (status = 401, description = "Missing, unknown or revoked X-API-KEY", body = Object),
    ),
    security(("x_api_key" = []))
)]
pub async fn feedback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let given: Feedback = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad_request(format!("the body is not RD's feedback: {err}")))?;
    let label = review_label(&given.label, given.feedback_category.as_deref())?;
    let tenant = &caller.key.tenant;
    let reply = super::requests::stored_result(&state, tenant, &given.request_id)
        .await
        .map_err(|_| ApiError::bad_request("Media result does not exist!"))?;
    let now = state.clock.now().trunc_subsecs(3);
    let (flow, action) =
        reply
            .decision
            .as_ref()
            .map_or(("none".to_owned(), "none".to_owned()), |d| {
                (
                    d["flow"].as_str().unwrap_or("none").to_owned(),
                    d["action"].as_str().unwrap_or("none").to_owned(),
                )
            });
    let item = review::feedback_item(tenant, &reply.result, &flow, &action, now);
    let item_id = item.item_id.clone();
    let txn = state.pipeline.db().begin_write().await?;
    arbiter_db::review::insert(&txn, [item]).await?;
    txn.commit().await?;
    let key_id = caller.key.id.to_string();
    let note = given
        .comment
        .as_deref()
        .map(|c| c.chars().take(1000).collect::<String>());
    review::resolve(
        state.pipeline.db(),
        state.pipeline.flows(),
        tenant,
        &item_id,
        &Resolve {
            reviewer: &key_id,
            key: Some(&key_id),
            label,
            note: note.as_deref(),
            action: None,
        },
        now,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": item_id,
            "userId": key_id,
            "requestId": given.request_id,
            "institutionId": tenant,
            "category": given.feedback_category.unwrap_or_else(|| "OTHER".to_owned()),
            "label": given.label,
            "comment": given.comment,
            "createdAt": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })),
    ))
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

    #[test]
    fn file_names_come_from_json_or_a_form_and_keep_their_base_name() {
        let json_type = HeaderMap::new();
        assert_eq!(
            file_name(
                &json_type,
                br#"{"fileName":"dir/photo 1.jpg","fileSize":3}"#
            )
            .unwrap(),
            "photo 1.jpg"
        );
        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            file_name(&form, b"fileName=selfie%20a.png").unwrap(),
            "selfie a.png"
        );
        assert!(file_name(&json_type, b"{}").is_err());
        assert!(file_name(&form, b"other=1").is_err());
    }
}
