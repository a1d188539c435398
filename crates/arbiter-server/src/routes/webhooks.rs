//! `/v1/webhooks/endpoints` and `/v1/webhooks/deliveries`: a tenant's registered receivers, and
//! the outbox with every attempt, failed deliveries and replay.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::keys::Scope;
use crate::routes::types::webhooks::{
    DeliveryQuery, DeliveryView, EndpointCreated, EndpointView, ListOf, NewEndpoint,
};
use crate::state::AppState;
use arbiter_core::ErrorCode;
use arbiter_db::webhooks as repo;
use arbiter_webhooks::manage::{self, ManageError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes, behind the `webhooks` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(delete_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(replay_delivery));
    auth::scoped(routes, state, Scope::Webhooks)
}

impl From<ManageError> for ApiError {
    fn from(err: ManageError) -> Self {
        match err {
            ManageError::Invalid(message) => ApiError::bad_request(message),
            ManageError::NotFound(message) => ApiError::not_found(message),
            ManageError::Full(message) => ApiError::new(ErrorCode::Conflict, message),
            err @ (ManageError::Db(_) | ManageError::Outbox(_)) => ApiError::internal(&err),
        }
    }
}

/// Register a webhook endpoint.
///
/// The answer carries the endpoint's own `whsec_` secret, shown once. Deliveries to it are
/// signed with that secret (`webhook-signature` and `X-CheckReal-Signature`). A tenant may have
/// at most `webhooks.max_endpoints_per_tenant` endpoints (20): past it, 409.
#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "Registered", body = EndpointCreated),
        (status = 400, description = "Bad URL, refused address or bad event name", body = ErrorBody),
        (status = 409, description = "The tenant has as many endpoints as it may have", body = ErrorBody),
    )
)]
pub async fn create_endpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let given = manage::NewEndpoint {
        url: &new.url,
        events: &new.events,
        description: new.description.as_deref(),
    };
    let (row, secret) = manage::register_endpoint(
        state.pipeline.db(),
        &state.webhooks,
        state.config.webhooks.max_endpoints_per_tenant,
        &caller.key.tenant,
        given,
        state.clock.now(),
    )
    .await?;
    let created = EndpointCreated {
        endpoint: row.into(),
        secret: secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// List the tenant's webhook endpoints.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    responses(
        (status = 200, description = "The endpoints", body = ListOf<EndpointView>),
    )
)]
pub async fn list_endpoints(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ListOf<EndpointView>>, ApiError> {
    let rows = repo::list_endpoints(state.pipeline.db().conn(), &caller.key.tenant).await?;
    Ok(Json(ListOf::of(rows)))
}

/// Delete a webhook endpoint; its pending deliveries fail.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/endpoints/{endpoint_id}",
    tag = "webhooks",
    params(("endpoint_id" = String, Path, description = "The endpoint (ep_...)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint for this tenant", body = ErrorBody),
    )
)]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(endpoint_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let conn = state.pipeline.db().conn();
    let deleted = repo::delete_endpoint(conn, &caller.key.tenant, &endpoint_id).await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no endpoint {endpoint_id} for this tenant"
        )))
    }
}

/// List deliveries, newest first; `?status=failed` lists the abandoned ones.
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries",
    tag = "webhooks",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "The deliveries", body = ListOf<DeliveryView>),
        (status = 400, description = "An unknown status or a malformed limit", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<ListOf<DeliveryView>>, ApiError> {
    let conn = state.pipeline.db().conn();
    let status = query.status.as_deref();
    let rows = manage::list_deliveries(conn, &caller.key.tenant, status, query.limit).await?;
    Ok(Json(ListOf::of(rows)))
}

/// One delivery with every attempt.
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries/{delivery_id}",
    tag = "webhooks",
    params(("delivery_id" = String, Path, description = "The delivery (msg_...)")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryView),
        (status = 404, description = "No such delivery for this tenant", body = ErrorBody),
    )
)]
pub async fn get_delivery(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(delivery_id): Path<String>,
) -> Result<Json<DeliveryView>, ApiError> {
    delivery_view(&state, &caller.key.tenant, &delivery_id)
        .await
        .map(Json)
}

async fn delivery_view(
    state: &AppState,
    tenant: &str,
    delivery_id: &str,
) -> Result<DeliveryView, ApiError> {
    let conn = state.pipeline.db().conn();
    let (row, attempts) = manage::delivery_with_attempts(conn, tenant, delivery_id).await?;
    let mut view = DeliveryView::from(row);
    view.attempt_log = Some(attempts.into_iter().map(Into::into).collect());
    Ok(view)
}

/// Send a delivery again: the same `webhook-id` and the same body bytes, newly signed, with a
/// fresh retry schedule.
#[utoipa::path(
    post,
    path = "/v1/webhooks/deliveries/{delivery_id}/replay",
    tag = "webhooks",
    params(("delivery_id" = String, Path, description = "The delivery (msg_...)")),
    responses(
        (status = 202, description = "Queued again", body = DeliveryView),
        (status = 404, description = "No such delivery for this tenant", body = ErrorBody),
        (status = 400, description = "The delivery is still pending", body = ErrorBody),
    )
)]
pub async fn replay_delivery(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(delivery_id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let tenant = &caller.key.tenant;
    let now = state.clock.now().timestamp_millis();
    manage::replay(state.pipeline.db().conn(), tenant, &delivery_id, now).await?;
    state.webhooks.wake.notify_waiters();
    let view = delivery_view(&state, tenant, &delivery_id).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}
