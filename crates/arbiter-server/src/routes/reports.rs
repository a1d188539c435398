//! PDF report cards: `GET /v1/requests/{request_id}/report.pdf`, and the case report that
//! `routes::flows` serves at each served case flow's `<case path>/report.pdf`.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::keys::Scope;
use crate::reports;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes, behind the `requests:read` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new().routes(routes!(get_request_report));
    auth::scoped(routes, state, Scope::RequestsRead)
}

/// The PDF response, named for download.
pub(crate) fn pdf_response(bytes: Vec<u8>, name: &str) -> Response {
    // Ids in a file name keep to the characters case and request ids are made of.
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"report-{name}.pdf\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// A request's report card (PDF).
///
/// One page: the image's thumbnail (when one was kept), SHA-256 and reference id, the verdict
/// colour-coded with each model's or provider's result and its evidence, the heatmap where there
/// is one, the decision with its fired rules and the policy's id, version and SHA-256, review
/// outcomes, and the request's audit entries (seq and `entry_hash`) with the latest signed
/// checkpoint covering them and the verifier key, to check against an audit export.
#[utoipa::path(
    get,
    path = "/v1/requests/{request_id}/report.pdf",
    tag = "analysis",
    params(("request_id" = String, Path, description = "The request's id (req_...)")),
    responses(
        (status = 200, description = "The report", content_type = "application/pdf", body = Vec<u8>),
        (status = 404, description = "No analysed request with this id for this tenant", body = ErrorBody),
    )
)]
pub async fn get_request_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    let verifier_key = state.verifier_key();
    let report = reports::request_report(
        state.engine(),
        &verifier_key,
        &caller.key.tenant,
        &request_id,
    )
    .await?;
    Ok(pdf_response(reports::pdf(report).await?, &request_id))
}

/// A case's report card (PDF), served for each flow whose cases are served
/// (`<case path>/report.pdf`, routed by `routes::flows`).
pub(crate) async fn case_report(
    state: &AppState,
    caller: &Caller,
    flow: &str,
    case_id: &str,
) -> Result<Response, ApiError> {
    let verifier_key = state.verifier_key();
    let tenant = &caller.key.tenant;
    let report = reports::case_report(state.engine(), &verifier_key, tenant, flow, case_id).await?;
    Ok(pdf_response(
        reports::pdf(report).await?,
        &format!("{flow}-{case_id}"),
    ))
}
