//! `POST /v1/analyze/batch` and `GET /v1/batches/{batch_id}`.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::keys::Scope;
use crate::ratelimit::Refusal;
use crate::routes::analyze::RequestOptions;
use crate::state::AppState;
use arbiter_core::ErrorCode;
pub use arbiter_jobs::batch_body::BatchImage;
use arbiter_jobs::{BatchAccepted, BatchStatus, ReceivedBatch, queue};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json, middleware};
use serde::Deserialize;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// The routes, behind the `batch` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let body_limit = usize::try_from(state.config.jobs.max_batch_body_bytes).unwrap_or(usize::MAX);
    // A batch's request is counted in its minute by the layer, and its images in the day's
    // quota by the handler once it knows how many there are.
    let submit = routes!(submit_batch).map(|submit| {
        submit.route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::Batch),
            auth::require_counting_images_later,
        ))
    });
    let submit = OpenApiRouter::new().routes(submit);
    let status = OpenApiRouter::new().routes(routes!(get_batch));
    auth::documented(submit, Scope::Batch, auth::KeyScheme::BEARER)
        .merge(auth::scoped(status, state, Scope::Batch))
        .route_layer(DefaultBodyLimit::max(body_limit))
}

/// A batch request, as in the integration guide.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The images: 1 to the key's plan batch size (20, 100 or 1,000 by default).
    #[schema(min_items = 1, max_items = 1000)]
    pub images: Vec<BatchImage>,
    /// Options for every image, without `webhook_url` (given at the top level), a rule the
    /// document cannot state as the options are shared with `POST /v1/analyze`.
    #[serde(default)]
    pub options: Option<RequestOptions>,
    /// Where `batch.complete` goes, signed with the tenant's webhook secret (http or https; its
    /// host must resolve to an address the server may reach, which the document cannot state).
    #[serde(default)]
    #[schema(pattern = "^https?://[^/?#]+")]
    pub webhook_url: Option<String>,
    /// Your identifier for the batch: 1 to 128 letters, digits and `. _ - : / @ #`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._\\-:/@#]+$")]
    pub batch_reference_id: Option<String>,
}

/// The base of URLs in answers: the `Host` the caller used.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| format!("http://{host}"))
        .unwrap_or_default()
}

/// Submit a batch of images for asynchronous analysis.
///
/// Answers 202 at once; poll `status_url`, or give `webhook_url` for `batch.complete` with the
/// summary counts. More images than the key's plan allows is a 400 that names the limit. The
/// request counts once against the rate limit, and each image once against the day's quota: a
/// batch whose images do not all fit in what is left of it is refused whole (429
/// `QUOTA_EXCEEDED`). An image that cannot be analysed fails alone; the batch completes.
#[utoipa::path(
    post,
    path = "/v1/analyze/batch",
    tag = "batches",
    request_body = BatchRequest,
    responses(
        (status = 202, description = "Queued", body = BatchAccepted),
        (status = 400, description = "Malformed, empty, or over the plan's batch size", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 429, description = "Rate limit exceeded, or the batch's images do not all fit in what is left of the day's quota (nothing is accepted)", body = ErrorBody),
        (status = 503, description = "The batch bodies on disk take all their room (jobs.max_spooled_bytes); Retry-After says when to try again", body = ErrorBody),
    )
)]
pub async fn submit_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<BatchAccepted>), ApiError> {
    let context = state.job_context();
    let (plan, tenant) = (&caller.plan, &caller.key.tenant);
    let stream = body.into_data_stream();
    let batch_size = plan.batch_size as usize;
    let batch = ReceivedBatch::receive(&context, stream, batch_size, &caller.key.plan).await?;
    if let Some(url) = &batch.submission.webhook_url {
        state
            .webhooks
            .check_destination(url)
            .await
            .map_err(|why| ApiError::bad_request(format!("webhook_url: {why}")))?;
    }
    let count = batch.submission.images as u64;
    take_images(&state, &caller, count).await?;
    let submitted = batch.submit(&context, tenant, &base_url(&headers)).await;
    if submitted.is_err() {
        // Nothing of the batch was accepted: its images go back to the quota.
        if let Err(err) = state.limiter.give_back_images(tenant, plan, count).await {
            tracing::warn!(error = %err, "cannot give a refused batch's images back to the quota");
        }
    }
    Ok((StatusCode::ACCEPTED, Json(submitted?)))
}

/// Takes a batch's images from the tenant's quota for the day, all of them or none: 429
/// `QUOTA_EXCEEDED` with `Retry-After` when fewer are left.
async fn take_images(state: &AppState, caller: &Caller, images: u64) -> Result<(), ApiError> {
    let tenant = &caller.key.tenant;
    match state
        .limiter
        .take_images(tenant, &caller.plan, images)
        .await?
    {
        None => Ok(()),
        Some(Refusal::Quota { retry_after } | Refusal::RateLimit { retry_after }) => {
            Err(ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    ErrorCode::QuotaExceeded,
                    format!(
                        "the batch's {images} images do not fit in what is left of the daily \
                         quota of {}; nothing was accepted. It renews at 00:00 UTC",
                        caller.plan.per_day
                    ),
                )
            })
        }
    }
}

/// A batch's status and the results of the images finished so far.
///
/// For the caller's tenant only: another tenant's batch is not found.
#[utoipa::path(
    get,
    path = "/v1/batches/{batch_id}",
    tag = "batches",
    params(("batch_id" = String, Path, description = "The batch's id (batch_...)")),
    responses(
        (status = 200, description = "The batch", body = BatchStatus),
        (status = 404, description = "No such batch for this tenant", body = ErrorBody),
    )
)]
pub async fn get_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(batch_id): Path<String>,
) -> Result<([(header::HeaderName, &'static str); 1], axum::body::Body), ApiError> {
    let conn = state.pipeline.db().conn();
    let bytes = queue::batch_status(conn, &caller.key.tenant, &batch_id).await?;
    let json = [(header::CONTENT_TYPE, "application/json")];
    Ok((json, axum::body::Body::from_stream(bytes)))
}
