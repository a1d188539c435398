//! `GET /v1/requests/{request_id}`.

use crate::analyze::{AnalyzeReply, reply};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::keys::Scope;
use crate::pipeline::Decided;
use crate::state::AppState;
use arbiter_core::{Analysis, Decision, ErrorCode, Facts, RequestId};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, middleware};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route, behind the `requests:read` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_request))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::RequestsRead),
            auth::require,
        ))
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
        (status = 202, description = "Not analysed yet", body = crate::jobs::AsyncAccepted),
        (status = 401, description = "Missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
        (status = 422, description = "The image could not be analysed", body = ErrorBody),
        (status = 429, description = "Rate limit or quota exceeded", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_request(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = &caller.key.tenant;
    match stored_result(&state, tenant, &request_id).await {
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
    let accepted = crate::jobs::AsyncAccepted {
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

/// A tenant's stored result by id.
pub async fn stored_result(
    state: &AppState,
    tenant: &str,
    request_id: &str,
) -> Result<AnalyzeReply, ApiError> {
    let conn = state.pipeline.db().conn();
    let not_found = || ApiError::not_found(format!("no request {request_id} for this tenant"));
    let row = arbiter_db::requests::get(conn, tenant, request_id)
        .await?
        .ok_or_else(not_found)?;
    let id: RequestId = row
        .request_id
        .parse()
        .map_err(|err| ApiError::internal(&err))?;
    let analysis: Analysis =
        serde_json::from_str(&row.analysis).map_err(|err| ApiError::internal(&err))?;
    let cached_from = row
        .cached_from
        .as_deref()
        .map(str::parse::<RequestId>)
        .transpose()
        .map_err(|err| ApiError::internal(&err))?;
    let decided = match arbiter_db::decisions::get(conn, tenant, request_id).await? {
        Some(stored) => Some(Decided {
            flow: stored.flow.clone(),
            event: None,
            review_queue: None,
            facts: serde_json::from_str::<Facts>(&stored.facts)
                .map_err(|err| ApiError::internal(&err))?,
            decision: Decision {
                action: stored.action,
                reason: stored.reason,
                fired: serde_json::from_str(&stored.fired)
                    .map_err(|err| ApiError::internal(&err))?,
                shadow: Vec::new(),
                description: None,
                severity: 0,
                policy: arbiter_core::PolicyRef {
                    id: stored.policy_id,
                    version: u32::try_from(stored.policy_version).unwrap_or_default(),
                    sha256: stored.policy_sha256,
                },
            },
        }),
        None => None,
    };
    Ok(reply(
        &id,
        row.reference_id,
        row.created_at,
        analysis,
        cached_from,
        decided,
    ))
}
