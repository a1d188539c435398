//! The cases of each flow that keeps them, at the flow's console path (`CaseConsole.path`:
//! `/console/claims`, `/console/kyc`): the searchable list, one case's page, and its report
//! card. The pages are `arbiter_console::pages::cases`' and the report card
//! `arbiter_console::pages::reports`'.

use super::SignedIn;
use super::html::{answer, pdf};
use crate::state::AppState;
use arbiter_console::area::Requests;
use arbiter_console::pages::cases::{self, CaseKind, Search};
use arbiter_console::pages::reports;
use axum::extract::{Path, Query, State};
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
                    .route(&format!("{path}/{{case_id}}/report.pdf"), get(report))
                    .layer(Extension(kind)),
            )
        })
}

/// `GET /console/<path>`: the tenant's cases of the kind.
pub async fn list(
    State(state): State<AppState>,
    Extension(kind): Extension<CaseKind>,
    Query(search): Query<Search>,
    SignedIn(session, _): SignedIn<Requests>,
) -> Response {
    answer(cases::list(state.pipeline.db(), &session, kind, &search).await)
}

/// `GET /console/<path>/{case_id}`: one case's page.
pub async fn page(
    State(state): State<AppState>,
    Extension(kind): Extension<CaseKind>,
    Path(case_id): Path<String>,
    SignedIn(session, _): SignedIn<Requests>,
) -> Response {
    answer(cases::page(state.engine(), &session, kind, &case_id).await)
}

/// `GET /console/<path>/{case_id}/report.pdf`: the case's report card.
pub async fn report(
    State(state): State<AppState>,
    Extension(kind): Extension<CaseKind>,
    Path(case_id): Path<String>,
    SignedIn(session, _): SignedIn<Requests>,
) -> Response {
    let vkey = state.verifier_key();
    pdf(reports::case(state.engine(), &vkey, &session, kind, &case_id).await)
}
