//! `GET /v1/requests/{request_id}`.

use crate::analyze::{AnalyzeReply, reply};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::keys::Scope;
use crate::pipeline::Decided;
use crate::state::AppState;
use arbiter_core::{Analysis, Decision, Facts, RequestId};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};

/// The route, behind the `requests:read` scope.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/requests/{request_id}", get(get_request))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::RequestsRead),
            auth::require,
        ))
}

/// A stored result.
///
/// Answers the same body as the original `POST /v1/analyze`, for the caller's tenant only: another
/// tenant's request is not found.
#[utoipa::path(
    get,
    path = "/v1/requests/{request_id}",
    tag = "analysis",
    params(("request_id" = String, Path, description = "The request's id (req_...)")),
    responses(
        (status = 200, description = "The stored result", body = AnalyzeReply),
        (status = 401, description = "Missing, unknown or revoked API key", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
        (status = 429, description = "Rate limit or quota exceeded", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_request(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(current): Extension<RequestId>,
    Path(request_id): Path<String>,
) -> Result<Json<AnalyzeReply>, ApiError> {
    stored_result(&state, &caller.key.tenant, &request_id)
        .await
        .map(Json)
        .map_err(|err| err.for_request(&current))
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
