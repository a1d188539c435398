//! `/v1/review/items`: the human-review queues.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::keys::Scope;
use crate::review::{self, ItemView, ItemsPage, Resolve};
use crate::routes::types::review::{ClaimRequest, ItemsQuery, ResolveRequest};
use crate::state::AppState;
use arbiter_db::review::{Actor, ItemFilter};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes, behind the `review` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(list_items))
        .routes(routes!(get_item))
        .routes(routes!(claim_item))
        .routes(routes!(resolve_item));
    auth::scoped(routes, state, Scope::Review)
}

/// List review items, oldest first.
#[utoipa::path(
    get,
    path = "/v1/review/items",
    tag = "review",
    params(ItemsQuery),
    responses(
        (status = 200, description = "A page of items", body = ItemsPage),
        (status = 400, description = "Bad parameter", body = ErrorBody),
    )
)]
pub async fn list_items(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<ItemsQuery>,
) -> Result<Json<ItemsPage>, ApiError> {
    let filter = ItemFilter {
        queue: params.queue.as_deref(),
        status: params.status.as_deref(),
        after: params.after.as_deref(),
        request_id: params.request_id.as_deref(),
        ..ItemFilter::default()
    };
    let conn = state.pipeline.db().conn();
    let page = review::list_page(conn, &caller.key.tenant, &filter, params.limit).await?;
    Ok(Json(page))
}

/// One review item.
#[utoipa::path(
    get,
    path = "/v1/review/items/{item_id}",
    tag = "review",
    params(("item_id" = String, Path, description = "The item (`rev_...`)")),
    responses(
        (status = 200, description = "The item", body = ItemView),
        (status = 404, description = "No such item for this tenant", body = ErrorBody),
    )
)]
pub async fn get_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(item_id): Path<String>,
) -> Result<Json<ItemView>, ApiError> {
    let conn = state.pipeline.db().conn();
    Ok(Json(review::get(conn, &caller.key.tenant, &item_id).await?))
}

/// Claim an item: it is yours until you resolve it, and the claim is recorded in the audit log
/// (`review.claimed`, with the reviewer and the API key's id). The claim belongs to the reviewer it names
/// and to the API key that made it: only that key, naming that reviewer, can resolve it. The
/// body may be left out.
#[utoipa::path(
    post,
    path = "/v1/review/items/{item_id}/claim",
    tag = "review",
    params(("item_id" = String, Path, description = "The item (`rev_...`)")),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "The claimed item", body = ItemView),
        (status = 400, description = "Malformed body or reviewer id", body = ErrorBody),
        (status = 404, description = "No such item for this tenant", body = ErrorBody),
        (status = 409, description = "Held by another reviewer or through another key, or resolved", body = ErrorBody),
    )
)]
pub async fn claim_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(item_id): Path<String>,
    body: Bytes,
) -> Result<Json<ItemView>, ApiError> {
    let body: ClaimRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ClaimRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| ApiError::bad_request(format!("invalid JSON body: {err}")))?
    };
    let reviewer = body.reviewer.unwrap_or_else(|| caller.key.id.to_string());
    let db = state.pipeline.db();
    let key_id = caller.key.id.to_string();
    let actor = Actor {
        reviewer: &reviewer,
        key: Some(&key_id),
    };
    let now = state.clock.now();
    Ok(Json(
        review::claim(db, &caller.key.tenant, &item_id, actor, now).await?,
    ))
}

/// Resolve an item with a label; recorded in the audit log (`review.resolved`, with the reviewer
/// and the API key's id) and announced as a `review.resolved` webhook. An item claimed through
/// another key, or by another reviewer, is a 409.
#[utoipa::path(
    post,
    path = "/v1/review/items/{item_id}/resolve",
    tag = "review",
    params(("item_id" = String, Path, description = "The item (`rev_...`)")),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "The resolved item", body = ItemView),
        (status = 400, description = "Unknown label or action", body = ErrorBody),
        (status = 404, description = "No such item for this tenant", body = ErrorBody),
        (status = 409, description = "Held by another reviewer or through another key, or resolved already", body = ErrorBody),
    )
)]
pub async fn resolve_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(item_id): Path<String>,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Json<ItemView>, ApiError> {
    let reviewer = body
        .reviewer
        .clone()
        .unwrap_or_else(|| caller.key.id.to_string());
    let key_id = caller.key.id.to_string();
    let resolve = Resolve {
        reviewer: &reviewer,
        key: Some(&key_id),
        label: &body.label,
        note: body.note.as_deref(),
        action: body.action.as_deref(),
    };
    let (item, queued) = review::resolve(
        state.pipeline.db(),
        state.pipeline.flows(),
        &caller.key.tenant,
        &item_id,
        &resolve,
        state.clock.now(),
    )
    .await?;
    if queued > 0 {
        state.webhooks.wake.notify_waiters();
    }
    Ok(Json(item))
}
