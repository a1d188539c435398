//! `GET /v1/policies`, `GET /v1/policies/{id}`, `POST /v1/policies/{id}/simulate`.

use crate::auth;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::keys::Scope;
use crate::routes::types::policies::{
    PolicyDetail, PolicyList, PolicySummary, RuleSummary, SimulateReply, SimulateRequest,
};
use crate::state::AppState;
use arbiter_core::Facts;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes, behind the `policies:read` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(list_policies))
        .routes(routes!(get_policy))
        .routes(routes!(simulate));
    auth::scoped(routes, state, Scope::PoliciesRead)
}

/// The live policies and the status of each watched file.
#[utoipa::path(get, path = "/v1/policies", tag = "policies",
    responses((status = 200, body = PolicyList)))]
pub async fn list_policies(State(state): State<AppState>) -> Json<PolicyList> {
    let live = state.pipeline.policies();
    let policies = live
        .snapshot()
        .all()
        .map(|p| PolicySummary::of(p))
        .collect();
    Json(PolicyList {
        policies,
        files: live.files(),
    })
}

/// One live policy.
#[utoipa::path(get, path = "/v1/policies/{id}", tag = "policies",
    params(("id" = String, Path, description = "The policy's id")),
    responses((status = 200, body = PolicyDetail), (status = 404, body = ErrorBody)))]
pub async fn get_policy(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PolicyDetail>, ApiError> {
    let store = state.pipeline.policies().snapshot();
    let policy = store
        .by_id(&id)
        .ok_or_else(|| ApiError::not_found(format!("no live policy {id}")))?;
    let rules = policy
        .rules()
        .map(|rule| RuleSummary {
            id: rule.id.to_owned(),
            mode: format!("{:?}", rule.mode).to_lowercase(),
            action: rule.action.to_owned(),
        })
        .collect();
    Ok(Json(PolicyDetail {
        summary: PolicySummary::of(policy),
        rules,
    }))
}

/// Evaluate facts under a live policy, with the explanation; nothing is recorded or sent.
#[utoipa::path(post, path = "/v1/policies/{id}/simulate", tag = "policies",
    params(("id" = String, Path, description = "The policy's id")),
    request_body = SimulateRequest,
    responses((status = 200, body = SimulateReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn simulate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<SimulateRequest>,
) -> Result<Json<SimulateReply>, ApiError> {
    let store = state.pipeline.policies().snapshot();
    let policy = store
        .by_id(&id)
        .ok_or_else(|| ApiError::not_found(format!("no live policy {id}")))?;
    let Value::Object(map) = request.facts else {
        return Err(ApiError::bad_request("facts must be a JSON object"));
    };
    let (decision, explanation) = policy.explain(&Facts::from_map(map));
    Ok(Json(SimulateReply {
        decision: serde_json::to_value(&decision).map_err(|err| ApiError::internal(&err))?,
        explanation: serde_json::to_value(&explanation).map_err(|err| ApiError::internal(&err))?,
    }))
}
