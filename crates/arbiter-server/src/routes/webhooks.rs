//! `/v1/webhooks/endpoints` and `/v1/webhooks/deliveries`: a tenant's registered receivers, and
//! the outbox with every attempt, failed deliveries and replay.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::keys::Scope;
use crate::state::AppState;
use arbiter_core::ErrorCode;
use arbiter_db::entity::{webhook_attempt, webhook_delivery, webhook_endpoint};
use arbiter_db::webhooks as repo;
use arbiter_webhooks::OutboxError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The routes, behind the `webhooks` scope.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/webhooks/endpoints",
            post(create_endpoint).get(list_endpoints),
        )
        .route(
            "/v1/webhooks/endpoints/{endpoint_id}",
            delete(delete_endpoint),
        )
        .route("/v1/webhooks/deliveries", get(list_deliveries))
        .route("/v1/webhooks/deliveries/{delivery_id}", get(get_delivery))
        .route(
            "/v1/webhooks/deliveries/{delivery_id}/replay",
            post(replay_delivery),
        )
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::Webhooks),
            auth::require,
        ))
}

impl From<OutboxError> for ApiError {
    fn from(err: OutboxError) -> Self {
        ApiError::internal(&err)
    }
}

/// A new endpoint.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where deliveries go: an http or https URL whose host resolves, at registration, to
    /// addresses the server may reach (public ones unless `outbound.allow_cidrs`). That last
    /// rule depends on DNS and the server's configuration: the document cannot state it.
    #[schema(pattern = "^https?://[^/?#]+")]
    pub url: String,
    /// Events it receives (`analysis.complete`, `analysis.failed`, `batch.complete`, or a flow's
    /// action event), each 1 to 64 of `a-z 0-9 . _`; none or empty: every event.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9._]{1,64}$")]
    pub events: Vec<String>,
    /// A label for people.
    #[serde(default)]
    pub description: Option<String>,
}

/// An endpoint as listed (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// `ep_...`.
    pub endpoint_id: String,
    /// Where deliveries go.
    pub url: String,
    /// Events it receives; empty: every event.
    pub events: Vec<String>,
    /// A label for people.
    pub description: Option<String>,
    /// When it was disabled (it answered 410 Gone).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why.
    pub disabled_reason: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for EndpointView {
    fn from(row: webhook_endpoint::Model) -> Self {
        Self {
            events: serde_json::from_str(&row.events).unwrap_or_default(),
            endpoint_id: row.endpoint_id,
            url: row.url,
            description: row.description,
            disabled_at: row.disabled_at,
            disabled_reason: row.disabled_reason,
            created_at: row.created_at,
        }
    }
}

/// A registered endpoint with its secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointCreated {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// Its `whsec_` signing secret. Keep it now: it is not shown again.
    pub secret: String,
}

/// A list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListOf<T> {
    /// The items.
    pub data: Vec<T>,
}

/// Checks event names: 1 to 64 of `a-z 0-9 . _`.
pub fn check_events(events: &[String]) -> Result<(), ApiError> {
    for event in events {
        if event.is_empty()
            || event.len() > 64
            || !event
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
        {
            return Err(ApiError::bad_request(format!(
                "events: {event:?} is not an event name such as {}",
                arbiter_webhooks::EVENTS.join(", ")
            )));
        }
    }
    Ok(())
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
        (status = 401, description = "Missing, unknown or revoked API key", body = ErrorBody),
        (status = 403, description = "The key lacks the webhooks scope", body = ErrorBody),
        (status = 409, description = "The tenant has as many endpoints as it may have", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_endpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let result: Result<EndpointCreated, ApiError> = async {
        check_events(&new.events)?;
        state
            .webhooks
            .check_destination(&new.url)
            .await
            .map_err(|why| ApiError::bad_request(format!("url: {why}")))?;
        let cipher = state.webhooks.cipher().await.map_err(OutboxError::from)?;
        let txn = state.pipeline.db().begin_write().await?;
        let limit = state.config.webhooks.max_endpoints_per_tenant;
        let registered = arbiter_db::webhooks::list_endpoints(&txn, &caller.key.tenant)
            .await?
            .len();
        if registered >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "this tenant has {registered} webhook endpoints, the most it may have \
                     (webhooks.max_endpoints_per_tenant: {limit}); delete one first"
                ),
            ));
        }
        let (row, secret) = arbiter_webhooks::create_endpoint(
            &txn,
            cipher,
            &caller.key.tenant,
            &new.url,
            &new.events,
            new.description.as_deref(),
            state.clock.now(),
        )
        .await?;
        txn.commit().await?;
        Ok(EndpointCreated {
            endpoint: row.into(),
            secret: secret.expose().to_owned(),
        })
    }
    .await;
    result.map(|created| (StatusCode::CREATED, Json(created)))
}

/// List the tenant's webhook endpoints.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    responses(
        (status = 200, description = "The endpoints", body = ListOf<EndpointView>),
        (status = 401, description = "Missing, unknown or revoked API key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_endpoints(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ListOf<EndpointView>>, ApiError> {
    repo::list_endpoints(state.pipeline.db().conn(), &caller.key.tenant)
        .await
        .map(|rows| {
            Json(ListOf {
                data: rows.into_iter().map(Into::into).collect(),
            })
        })
        .map_err(ApiError::from)
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
    ),
    security(("bearer" = []))
)]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(endpoint_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted =
        repo::delete_endpoint(state.pipeline.db().conn(), &caller.key.tenant, &endpoint_id)
            .await
            .map_err(ApiError::from)?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no endpoint {endpoint_id} for this tenant"
        )))
    }
}

/// One stored attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// The status code; none when there was no answer in time.
    pub status_code: Option<i32>,
    /// How long it took.
    pub duration_ms: i64,
    /// The start of the answer's body.
    pub response_body: String,
    /// Why there was no answer.
    pub error: Option<String>,
}

impl From<webhook_attempt::Model> for AttemptView {
    fn from(row: webhook_attempt::Model) -> Self {
        Self {
            attempt: row.attempt,
            attempted_at: row.attempted_at,
            status_code: row.status_code,
            duration_ms: row.duration_ms,
            response_body: row.response_body,
            error: row.error,
        }
    }
}

/// A delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// `msg_...`, the `webhook-id` header.
    pub delivery_id: String,
    /// The event.
    pub event: String,
    /// Where it goes.
    pub url: String,
    /// The registered endpoint, if any.
    pub endpoint_id: Option<String>,
    /// The request it is about.
    pub request_id: Option<String>,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// The batch it is about.
    pub batch_id: Option<String>,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's status code.
    pub last_status: Option<i32>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
    /// When it succeeded or was abandoned.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt (on `GET /v1/webhooks/deliveries/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptView>>,
}

impl From<webhook_delivery::Model> for DeliveryView {
    fn from(row: webhook_delivery::Model) -> Self {
        Self {
            next_attempt_at: (row.status == repo::PENDING)
                .then(|| DateTime::from_timestamp_millis(row.next_attempt_ms))
                .flatten(),
            delivery_id: row.delivery_id,
            event: row.event,
            url: row.url,
            endpoint_id: row.endpoint_id,
            request_id: row.request_id,
            reference_id: row.reference_id,
            batch_id: row.batch_id,
            status: row.status,
            attempts: row.attempts,
            last_status: row.last_status,
            last_error: row.last_error,
            created_at: row.created_at,
            finished_at: row.finished_at,
            attempt_log: None,
        }
    }
}

/// Query of the delivery list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Only deliveries with this status: `pending`, `succeeded` or `failed`.
    #[param(pattern = "^(pending|succeeded|failed)$")]
    pub status: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u64>,
}

/// List deliveries, newest first; `?status=failed` lists the abandoned ones.
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries",
    tag = "webhooks",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "The deliveries", body = ListOf<DeliveryView>),
        (status = 400, description = "Unknown status", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<DeliveryQuery>,
) -> Result<Json<ListOf<DeliveryView>>, ApiError> {
    let result = async {
        let status = match query.status.as_deref() {
            None => None,
            Some(s @ (repo::PENDING | repo::SUCCEEDED | repo::FAILED)) => Some(s),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "status {other:?} is not pending, succeeded or failed"
                )));
            }
        };
        let limit = query.limit.unwrap_or(100).clamp(1, 1000);
        let rows = repo::list_deliveries(
            state.pipeline.db().conn(),
            &caller.key.tenant,
            status,
            limit,
        )
        .await?;
        Ok(ListOf {
            data: rows.into_iter().map(Into::into).collect(),
        })
    }
    .await;
    result.map(Json)
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
    ),
    security(("bearer" = []))
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
    let row = repo::get_delivery(conn, tenant, delivery_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {delivery_id} for this tenant")))?;
    let attempts = repo::attempts(conn, delivery_id).await?;
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
    ),
    security(("bearer" = []))
)]
pub async fn replay_delivery(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(delivery_id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let result = async {
        let tenant = &caller.key.tenant;
        let conn = state.pipeline.db().conn();
        let now = state.clock.now().timestamp_millis();
        if !repo::replay(conn, tenant, &delivery_id, now).await? {
            return match repo::get_delivery(conn, tenant, &delivery_id).await? {
                None => Err(ApiError::not_found(format!(
                    "no delivery {delivery_id} for this tenant"
                ))),
                Some(_) => Err(ApiError::bad_request(format!(
                    "delivery {delivery_id} is still pending; replay it once it has succeeded or failed"
                ))),
            };
        }
        state.webhooks.wake.notify_waiters();
        delivery_view(&state, tenant, &delivery_id).await
    }
    .await;
    result.map(|view| (StatusCode::ACCEPTED, Json(view)))
}
