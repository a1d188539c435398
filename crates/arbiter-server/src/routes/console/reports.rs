//! The report cards under the console's session, for every role that reads requests: a
//! request's at `/console/requests/{request_id}/report.pdf`, a case's at
//! `/console/<path>/{case_id}/report.pdf`. The PDFs (or the page saying why there is none) are
//! `arbiter_console::pages::reports`'; this sends them with their download headers.

use super::html::answer;
use super::require;
use crate::routes::reports::pdf_response;
use crate::state::AppState;
use arbiter_console::Area;
use arbiter_console::pages::Page;
use arbiter_console::pages::cases::CaseKind;
use arbiter_console::pages::reports::{self, Pdf};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

/// `GET /console/requests/{request_id}/report.pdf`.
pub async fn request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Response {
    let session = match require(&state, &headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let verifier_key = state.verifier_key();
    send(reports::request(state.engine(), &verifier_key, &session, &request_id).await)
}

/// `GET /console/<path>/{case_id}/report.pdf`.
pub async fn case(
    State(state): State<AppState>,
    Extension(kind): Extension<CaseKind>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Response {
    let session = match require(&state, &headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let verifier_key = state.verifier_key();
    send(reports::case(state.engine(), &verifier_key, &session, kind, &case_id).await)
}

fn send(made: Result<Pdf, Page>) -> Response {
    match made {
        Ok(pdf) => pdf_response(pdf.bytes, &pdf.name),
        Err(page) => answer(page),
    }
}
