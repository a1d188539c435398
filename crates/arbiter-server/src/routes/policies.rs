//! `GET /v1/policies`, `GET /v1/policies/{id}`, `POST /v1/policies/{id}/simulate`.

use crate::auth;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::keys::Scope;
use crate::policies::FileStatus;
use crate::state::AppState;
use arbiter_core::Facts;
use arbiter_policy::Policy;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The routes, behind the `policies:read` scope.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/policies", get(list_policies))
        .route("/v1/policies/{id}", get(get_policy))
        .route("/v1/policies/{id}/simulate", post(simulate))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::PoliciesRead),
            auth::require,
        ))
}

/// A live policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicySummary {
    /// `metadata.id`.
    pub id: String,
    /// The flow it decides for.
    pub flow: String,
    /// `metadata.version`.
    pub version: u32,
    /// SHA-256 of the file's bytes; every decision records it.
    pub sha256: String,
    /// `metadata.title`.
    pub title: Option<String>,
    /// The file it was read from.
    pub file: String,
}

impl PolicySummary {
    fn of(policy: &Policy) -> Self {
        Self {
            id: policy.id().to_owned(),
            flow: policy.flow().to_owned(),
            version: policy.version(),
            sha256: policy.sha256().to_owned(),
            title: policy.title().map(str::to_owned),
            file: policy.origin().to_owned(),
        }
    }
}

/// What is live, and what was refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyList {
    /// The live policies.
    pub policies: Vec<PolicySummary>,
    /// The watched files; a file with an `error` was not activated and the previous version stays.
    pub files: Vec<FileStatus>,
}

/// The live policies and the status of each watched file.
#[utoipa::path(get, path = "/v1/policies", tag = "policies",
    responses((status = 200, body = PolicyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
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

/// A live policy with its rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: PolicySummary,
    /// Rules in evaluation order.
    pub rules: Vec<RuleSummary>,
}

/// One rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleSummary {
    /// The rule's stable id.
    pub id: String,
    /// `enforce` or `shadow`.
    pub mode: String,
    /// The action it takes.
    pub action: String,
}

/// One live policy.
#[utoipa::path(get, path = "/v1/policies/{id}", tag = "policies",
    params(("id" = String, Path, description = "The policy's id")),
    responses((status = 200, body = PolicyDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
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

/// Facts to evaluate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// The facts, as a policy sees them (`{"verdict": {...}, "claim": {...}}`).
    #[schema(value_type = Object)]
    pub facts: Value,
}

/// The decision and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SimulateReply {
    /// The decision.
    #[schema(value_type = Object)]
    pub decision: Value,
    /// Each rule and condition evaluated, with actual values.
    #[schema(value_type = Object)]
    pub explanation: Value,
}

/// Evaluate facts under a live policy, with the explanation; nothing is recorded or sent.
#[utoipa::path(post, path = "/v1/policies/{id}/simulate", tag = "policies",
    params(("id" = String, Path, description = "The policy's id")),
    request_body = SimulateRequest,
    responses((status = 200, body = SimulateReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
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
