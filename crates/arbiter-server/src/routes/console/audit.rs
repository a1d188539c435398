//! `/console/audit`: the tenant's audit trail, its checkpoints and verification (the page is
//! `arbiter_console::pages::audit`'s), and the export bundle as a download
//! (`/console/audit/export`), streamed as the API streams it.

use super::SignedIn;
use super::html::answer;
use crate::routes::audit::export_tar;
use crate::state::AppState;
use arbiter_audit::ExportRange;
use arbiter_console::area::Audit;
use arbiter_console::pages::audit::{self, AuditQuery};
use axum::extract::{Query, State};
use axum::response::Response;

/// `GET /console/audit`.
pub async fn page(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
    SignedIn(session, _): SignedIn<Audit>,
) -> Response {
    let vkey = state.audit.signer.verifier_key();
    answer(audit::page(state.pipeline.db(), &vkey, &session, &query).await)
}

/// `GET /console/audit/export`: the tenant's whole chain as the export bundle (a tar archive).
pub async fn export(
    State(state): State<AppState>,
    SignedIn(session, _): SignedIn<Audit>,
) -> Response {
    let range = ExportRange::default();
    export_tar(&state, &session.tenant, &range)
        .await
        .unwrap_or_else(|err| {
            let status = err.code.http_status();
            answer(audit::export_refused(&session, status, &err.message))
        })
}
