//! The cases of each flow that keeps them, at the flow's console path (`CaseConsole.path`:
//! `/console/claims`, `/console/kyc`): the searchable list, one case's page, and its report card
//! (`reports::case`). The pages are `arbiter_console::pages::cases`'.

use super::html::answer;
use super::require;
use crate::state::AppState;
use arbiter_console::Area;
use arbiter_console::pages::cases::{self, CaseKind, Search};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};

/// For each kind of case the build keeps: its list at `/console/<path>`, a case's page at
/// `/console/<path>/{case_id}` and its report at `/console/<path>/{case_id}/report.pdf`.
pub fn router(state: &AppState) -> Router<AppState> {
    cases::kinds(state.pipeline.flows())
        .into_iter()
        .fold(Router::new(), |router, kind| {
            let path = kind.path();
            router.merge(
                Router::new()
                    .route(&path, get(list))
                    .route(&format!("{path}/{{case_id}}"), get(page))
                    .route(
                        &format!("{path}/{{case_id}}/report.pdf"),
                        get(super::reports::case),
                    )
                    .layer(Extension(kind)),
            )
        })
}

/// `GET /console/<path>`: the tenant's cases of the kind.
pub async fn list(
    State(state): State<AppState>,
    Extension(kind): Extension<CaseKind>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let session = match require(&state, &headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    answer(cases::list(state.pipeline.db(), &session, kind, &search).await)
}

/// `GET /console/<path>/{case_id}`: one case's page.
pub async fn page(
    State(state): State<AppState>,
    Extension(kind): Extension<CaseKind>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Response {
    let session = match require(&state, &headers, Area::Requests).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    answer(cases::page(state.engine(), &session, kind, &case_id).await)
}
