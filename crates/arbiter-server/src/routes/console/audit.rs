//! `/console/audit`: the tenant's audit trail, its checkpoints and verification (the page is
//! `arbiter_console::pages::audit`'s), and the export bundle as a download
//! (`/console/audit/export`), streamed as the API streams it.

use super::html::{self, answer};
use super::require;
use crate::error::ApiError;
use crate::routes::audit::export_tar;
use crate::state::AppState;
use arbiter_audit::ExportRange;
use arbiter_console::Area;
use arbiter_console::pages::audit::{self, AuditQuery, Entries};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

/// `GET /console/audit`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let session = match require(&state, &headers, Area::Audit).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let params = query.entry_params();
    let conn = state.pipeline.db().conn();
    let entries = match arbiter_audit::query::entries_page(conn, &session.tenant, &params).await {
        Ok(page) => Entries::Found {
            entries: page.entries,
            next_cursor: page.next_cursor,
        },
        Err(err) if err.is_invalid() => Entries::Refused(err.to_string()),
        Err(err) => return html::server_error(&ApiError::from(err).message),
    };
    let vkey = state.audit.signer.verifier_key();
    answer(audit::page(state.pipeline.db(), &vkey, &session, &query, entries).await)
}

/// `GET /console/audit/export`: the tenant's whole chain as the export bundle (a tar archive).
pub async fn export(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Audit).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match export_tar(&state, &session.tenant, &ExportRange::default()).await {
        Ok(response) => response,
        Err(err) => answer(audit::export_refused(
            &session,
            err.code.http_status(),
            &err.message,
        )),
    }
}
