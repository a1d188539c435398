//! `GET /v1/requests/{request_id}/trail`: one request's whole story from the audit log.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::keys::Scope;
use crate::routes::types::trail::Trail;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route, behind the `audit:read` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    auth::scoped(
        OpenApiRouter::new().routes(routes!(get_trail)),
        state,
        Scope::AuditRead,
    )
}

/// A request's audit trail.
///
/// Every audit entry about the request, in chain order: its analysis or decision, webhooks
/// abandoned, review resolutions. Each carries its `seq` and `entry_hash`, so the trail can be
/// checked against an export or a signed checkpoint.
#[utoipa::path(
    get,
    path = "/v1/requests/{request_id}/trail",
    tag = "audit",
    params(("request_id" = String, Path, description = "The request's id (req_...)")),
    responses(
        (status = 200, description = "The request's entries, oldest first", body = Trail),
        (status = 404, description = "No audit entry about this request for this tenant", body = ErrorBody),
    )
)]
pub async fn get_trail(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(request_id): Path<String>,
) -> Result<Json<Trail>, ApiError> {
    Ok(Json(trail(&state, &caller.key.tenant, &request_id).await?))
}

/// Every entry of `tenant`'s chain about `request_id`, oldest first.
pub async fn trail(state: &AppState, tenant: &str, request_id: &str) -> Result<Trail, ApiError> {
    let entries = arbiter_audit::request_trail(state.pipeline.db().conn(), tenant, request_id)
        .await
        .map_err(|err| ApiError::internal(&err))?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!(
            "no audit entry about request {request_id} for this tenant"
        )));
    }
    Ok(Trail {
        request_id: request_id.to_owned(),
        entries: entries
            .iter()
            .map(arbiter_audit::query::entry_json)
            .collect::<Result<_, _>>()?,
    })
}
