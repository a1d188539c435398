//! `/console/scan`: up to 10 images analysed on the path of `POST /v1/analyze`. The page is
//! `arbiter_console::pages::scan`'s; this module reads the upload and counts the scan against
//! the tenant's plan, as the API counts a request.

use super::html::{self, answer};
use super::{check_csrf, require};
use crate::config::Plan;
use crate::ratelimit::Refusal;
use crate::state::AppState;
use arbiter_console::pages::scan::{self, ScanForm, Upload};
use arbiter_console::{Area, Session};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

/// `GET /console/scan`: the upload form.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Scan).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    answer(scan::page(state.pipeline.flows(), &session))
}

/// `POST /console/scan`: analyses the uploaded images and shows each result.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let session = match require(&state, &headers, Area::Scan).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let mut csrf = None;
    let mut posted = ScanForm::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(err) => {
                return html::message(
                    err.status(),
                    Some(&session),
                    "Scan refused",
                    &format!("The upload could not be read: {}", err.body_text()),
                );
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let data = match field.bytes().await {
            Ok(data) => data,
            Err(err) => {
                return html::message(
                    err.status(),
                    Some(&session),
                    "Scan refused",
                    &format!("The upload could not be read: {}", err.body_text()),
                );
            }
        };
        match name.as_str() {
            "csrf" => csrf = Some(String::from_utf8_lossy(&data).into_owned()),
            "flow" => posted.flow = String::from_utf8_lossy(&data).trim().to_owned(),
            "facts" => posted.facts = String::from_utf8_lossy(&data).into_owned(),
            "file" if !data.is_empty() => posted.uploads.push(Upload {
                name: file_name.unwrap_or_else(|| format!("image {}", posted.uploads.len() + 1)),
                bytes: data.to_vec(),
            }),
            _ => {}
        }
    }
    if let Err(response) = check_csrf(&session, csrf.as_deref()) {
        return response;
    }
    let input = match scan::check(state.pipeline.flows(), &session, &posted) {
        Ok(input) => input,
        Err(page) => return answer(page),
    };
    if let Err(response) = admit(&state, &session, posted.uploads.len()).await {
        return response;
    }
    answer(scan::results(&state, &session, posted, input).await)
}

/// The plan a tenant's console scans count against: the most generous plan among the tenant's
/// live API keys (the counters are the tenant's, shared with the API), or
/// `rate_limits.default_plan` for a tenant without keys.
pub async fn tenant_plan(
    state: &AppState,
    tenant: &str,
) -> Result<Plan, arbiter_db::sea_orm::DbErr> {
    let limits = &state.config.rate_limits;
    let keys = arbiter_db::api_keys::list(state.pipeline.db().conn(), Some(tenant)).await?;
    let best = keys
        .iter()
        .filter(|key| key.revoked_at.is_none())
        .filter_map(|key| limits.plans.get(&key.plan))
        .max_by_key(|plan| (plan.per_minute, plan.per_day))
        .or_else(|| limits.plans.get(&limits.default_plan));
    // Start-up validation makes the default plan one of the plans.
    best.copied().ok_or_else(|| {
        arbiter_db::sea_orm::DbErr::Custom("rate_limits.default_plan is not a plan".into())
    })
}

/// Counts a scan against the tenant's plan, as the API counts a request: one request in the
/// minute and each image in the day's quota. Over either limit, a 429 page that says which and
/// when to try again (and `Retry-After`).
async fn admit(state: &AppState, session: &Session, images: usize) -> Result<(), Response> {
    let counted = async {
        let plan = tenant_plan(state, &session.tenant).await?;
        let (_, refusal) = state
            .limiter
            .check_counting(&session.tenant, &plan, images as u64)
            .await?;
        Ok::<_, arbiter_db::sea_orm::DbErr>((plan, refusal))
    }
    .await;
    let (plan, refusal) = counted.map_err(|err| html::server_error(&err))?;
    let (text, retry_after) = match refusal {
        None => return Ok(()),
        Some(Refusal::RateLimit { retry_after }) => (
            format!(
                "Your organisation's plan allows {} requests a minute, and they are spent. Try again in {retry_after} seconds.",
                plan.per_minute
            ),
            retry_after,
        ),
        Some(Refusal::Quota { retry_after }) => (
            format!(
                "Your organisation's daily quota of {} images is spent (this scan has {images}); it renews at 00:00 UTC.",
                plan.per_day
            ),
            retry_after,
        ),
    };
    let mut response = html::message(
        StatusCode::TOO_MANY_REQUESTS,
        Some(session),
        "Too many scans",
        &text,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    Err(response)
}
