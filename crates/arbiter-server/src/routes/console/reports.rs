//! The report cards under the console's session: the same PDFs as
//! `GET /v1/requests/{request_id}/report.pdf` and the claim and KYC session reports, for every
//! role that reads requests (analyst, reviewer, auditor, admin), for the signed-in tenant.

use super::html;
use super::require;
use crate::error::ApiError;
use crate::reports;
use crate::state::AppState;
use arbiter_console::{Area, Session};
use arbiter_core::ErrorCode;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
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
    let made = async {
        let verifier_key = state.verifier_key();
        let report =
            reports::request_report(state.engine(), &verifier_key, &session.tenant, &request_id)
                .await?;
        Ok::<_, ApiError>(reports::pdf(report).await?)
    }
    .await;
    answer(&session, made, &request_id)
}

/// `GET /console/claims/{claim_id}/report.pdf`.
pub async fn claim(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(claim_id): Path<String>,
) -> Response {
    case(&state, &headers, "insurance", &claim_id).await
}

/// `GET /console/kyc/{session_id}/report.pdf`.
pub async fn kyc(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
) -> Response {
    case(&state, &headers, "kyc", &session_id).await
}

async fn case(state: &AppState, headers: &HeaderMap, flow: &str, case_id: &str) -> Response {
    let session = match require(state, headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let made = async {
        let verifier_key = state.verifier_key();
        let tenant = &session.tenant;
        let report =
            reports::case_report(state.engine(), &verifier_key, tenant, flow, case_id).await?;
        Ok::<_, ApiError>(reports::pdf(report).await?)
    }
    .await;
    answer(&session, made, &format!("{flow}-{case_id}"))
}

fn answer(session: &Session, made: Result<Vec<u8>, ApiError>, name: &str) -> Response {
    match made {
        Ok(bytes) => crate::routes::reports::pdf_response(bytes, name),
        Err(err) if err.code == ErrorCode::NotFound => html::message(
            StatusCode::NOT_FOUND,
            Some(session),
            "No report",
            &format!("{}.", err.message),
        ),
        Err(err) if err.code == ErrorCode::InternalError => html::server_error(&err.message),
        Err(err) => html::message(
            StatusCode::BAD_REQUEST,
            Some(session),
            "No report",
            &format!("{}.", err.message),
        ),
    }
}
