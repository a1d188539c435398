//! `/console/scan`: up to 10 images analysed on the path of `POST /v1/analyze`. The page is
//! `arbiter_console::pages::scan`'s; this module reads the upload and counts the scan against
//! the tenant's plan, as the API counts a request.

use super::html::answer;
use super::{SignedIn, require};
use crate::ratelimit::{Refusal, tenant_plan};
use crate::state::AppState;
use arbiter_console::area::Scan;
use arbiter_console::pages::Page;
use arbiter_console::pages::scan::{self, ScanForm, Spent};
use arbiter_console::{Area, Session};
use arbiter_db::sea_orm::DbErr;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// A scan posted by a person allowed to scan, its upload (multipart) read into the form; an
/// upload that cannot be read gets a page with the status it calls for.
pub struct Scanned(Session, ScanForm);

impl FromRequest<AppState> for Scanned {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let mut multipart = Multipart::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let session = require(state, &headers, Area::Scan).await?;
        let unreadable = |err: MultipartError| {
            let status = err.status().as_u16();
            answer(scan::unreadable(&session, status, &err.body_text()))
        };
        let mut posted = ScanForm::default();
        while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let data = field.bytes().await.map_err(unreadable)?;
            posted.field(&name, file_name.as_deref(), &data);
        }
        Ok(Self(session, posted))
    }
}

/// `GET /console/scan`: the upload form.
pub async fn page(State(state): State<AppState>, SignedIn(session, _): SignedIn<Scan>) -> Response {
    answer(scan::page(state.pipeline.flows(), &session))
}

/// `POST /console/scan`: analyses the uploaded images and shows each result.
pub async fn submit(
    State(state): State<AppState>,
    Scanned(session, posted): Scanned,
) -> Result<Response, Response> {
    let input = scan::check(state.pipeline.flows(), &session, &posted).map_err(answer)?;
    admit(&state, &session, posted.uploads.len()).await?;
    Ok(answer(scan::results(&state, &session, posted, input).await))
}

/// Counts a scan against the tenant's plan, as the API counts a request: one request in the
/// minute and each image in the day's quota. Over either limit, a 429 page that says which and
/// when to try again (and `Retry-After`).
async fn admit(state: &AppState, session: &Session, images: usize) -> Result<(), Response> {
    let failed = |err: DbErr| answer(Page::server_error(&err));
    let (db, limits) = (state.pipeline.db(), &state.config.rate_limits);
    let plan = tenant_plan(db, limits, &session.tenant)
        .await
        .map_err(failed)?;
    let counted = state
        .limiter
        .check_counting(&session.tenant, &plan, images as u64);
    let (_, refusal) = counted.await.map_err(failed)?;
    let (spent, retry_after) = match refusal {
        None => return Ok(()),
        Some(Refusal::RateLimit { retry_after }) => (Spent::Minute(plan.per_minute), retry_after),
        Some(Refusal::Quota { retry_after }) => (Spent::Day(plan.per_day), retry_after),
    };
    let mut response = answer(scan::too_many(session, spent, images, retry_after));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    Err(response)
}
