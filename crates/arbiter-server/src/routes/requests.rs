//! `GET /v1/requests/{request_id}`.

use crate::analyze::{self, AnalyzeReply};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::keys::Scope;
use crate::state::AppState;
use arbiter_core::ErrorCode;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route, behind the `requests:read` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    auth::scoped(
        OpenApiRouter::new().routes(routes!(get_request)),
        state,
        Scope::RequestsRead,
    )
}

/// A stored result.
///
/// Answers the same body as the original `POST /v1/analyze`, for the caller's tenant only: another
/// tenant's request is not found. A request still waiting for analysis (an asynchronous request,
/// a batch image, a collected upload) answers 202 with its status; one whose analysis failed
/// answers with the error it failed with.
#[utoipa::path(
    get,
    path = "/v1/requests/{request_id}",
    tag = "analysis",
    params(("request_id" = String, Path, description = "The request's id (req_...)")),
    responses(
        (status = 200, description = "The stored result", body = AnalyzeReply),
        (status = 202, description = "Not analysed yet", body = arbiter_jobs::AsyncAccepted),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
        (status = 422, description = "The image could not be analysed", body = ErrorBody),
    )
)]
pub async fn get_request(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = &caller.key.tenant;
    let stored = analyze::stored_reply(state.pipeline.db().conn(), tenant, &request_id).await;
    match stored.map_err(ApiError::from) {
        Err(err) if err.code == ErrorCode::NotFound => {
            pending(&state, tenant, &request_id, &headers).await
        }
        other => other.map(|reply| Json(reply).into_response()),
    }
}

/// A request that has a job but no result yet: 202 with its status, or the error it failed with.
async fn pending(
    state: &AppState,
    tenant: &str,
    request_id: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let conn = state.pipeline.db().conn();
    let job = arbiter_db::jobs::get(conn, tenant, request_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no request {request_id} for this tenant")))?;
    if job.status == arbiter_db::jobs::FAILED {
        let code = job
            .error_code
            .as_deref()
            .and_then(|code| serde_json::from_value(serde_json::json!(code)).ok())
            .unwrap_or(ErrorCode::InternalError);
        return Err(ApiError::new(code, job.error_message.unwrap_or_default()));
    }
    let status = if job.status == arbiter_db::jobs::COLLECTING {
        "COLLECTED"
    } else {
        "PROCESSING"
    };
    let accepted = arbiter_jobs::AsyncAccepted {
        request_id: request_id.parse().map_err(|err| ApiError::internal(&err))?,
        reference_id: job.reference_id,
        status: status.to_owned(),
        status_url: format!(
            "{}/v1/requests/{request_id}",
            super::batches::base_url(headers)
        ),
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}
