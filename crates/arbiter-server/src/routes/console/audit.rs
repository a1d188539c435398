//! `/console/audit`: the tenant's audit trail, its checkpoints and verification (the page is
//! `arbiter_console::pages::audit`'s), and the export bundle as a download
//! (`/console/audit/export`), streamed as the API streams it.

use super::html::{self, answer};
use super::require;
use crate::routes::audit::{entries_page, export_tar};
use crate::routes::types::audit::EntriesQuery;
use crate::state::AppState;
use arbiter_audit::ExportRange;
use arbiter_console::Area;
use arbiter_console::pages::audit::{self, AuditQuery, Entries, PAGE, given};
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
    let api_query = EntriesQuery {
        reference_id: given(&query.reference_id),
        request_id: given(&query.request_id),
        image_sha256: given(&query.image_sha256),
        event: given(&query.event),
        flow: given(&query.flow),
        action: given(&query.action),
        since: given(&query.since),
        until: given(&query.until),
        order: Some("desc".to_owned()),
        limit: Some(PAGE),
        cursor: given(&query.cursor),
    };
    let entries = match entries_page(&state, &session.tenant, &api_query).await {
        Ok(page) => Entries::Found {
            entries: page.entries,
            next_cursor: page.next_cursor,
        },
        Err(err) if err.code.http_status() < 500 => Entries::Refused(err.message),
        Err(err) => return html::server_error(&err.message),
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
