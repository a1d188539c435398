//! `/v1/audit/...`: the caller's tenant's audit trail, its signed checkpoints, the verifier key
//! and the export bundle, behind the `audit:read` scope. Another tenant's entries are never
//! listed and read as not found.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiQuery, ErrorBody};
use crate::keys::Scope;
use crate::state::AppState;
use arbiter_audit::query::{
    self, CheckpointParams, CheckpointsPage, EntriesPage, EntryParams, ExportParams, QueryError,
};
use arbiter_audit::stream::BUSY_RETRY_SECS;
use arbiter_audit::{ExportError, ExportRange};
use arbiter_core::ErrorCode;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes, behind the `audit:read` scope.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(list_entries))
        .routes(routes!(get_entry))
        .routes(routes!(list_checkpoints))
        .routes(routes!(verifier_key))
        .routes(routes!(export_bundle));
    auth::scoped(routes, state, Scope::AuditRead)
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        if err.is_invalid() {
            ApiError::bad_request(err.to_string())
        } else {
            ApiError::internal(&err)
        }
    }
}

/// List the audit trail.
///
/// The caller's tenant's entries, filtered, oldest or newest first, a page at a time: pass the
/// `next_cursor` of one page as `cursor` to get the next.
#[utoipa::path(
    get,
    path = "/v1/audit/entries",
    tag = "audit",
    params(EntryParams),
    responses(
        (status = 200, description = "A page of entries", body = EntriesPage),
        (status = 400, description = "A malformed filter, order, limit or cursor", body = ErrorBody),
    )
)]
pub async fn list_entries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<EntryParams>,
) -> Result<Json<EntriesPage>, ApiError> {
    let conn = state.pipeline.db().conn();
    Ok(Json(
        query::entries_page(conn, &caller.key.tenant, &params).await?,
    ))
}

/// Read one entry.
///
/// The entry at `seq` in the chain of `tenant`, which must be the caller's tenant: any other
/// tenant's entry is not found.
#[utoipa::path(
    get,
    path = "/v1/audit/entries/{tenant}/{seq}",
    tag = "audit",
    params(
        ("tenant" = String, Path, description = "The caller's tenant"),
        ("seq" = u64, Path, description = "The entry's position in the chain, from 0"),
    ),
    responses(
        (status = 200, description = "The entry as in an export line", body = Object),
        (status = 404, description = "No such entry for this tenant", body = ErrorBody),
    )
)]
pub async fn get_entry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, seq)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found(format!("no audit entry {tenant}/{seq}"));
    let seq: u64 = seq.parse().map_err(|_| not_found())?;
    if tenant != caller.key.tenant {
        return Err(not_found());
    }
    let stored = arbiter_audit::chain::entry(state.pipeline.db().conn(), &tenant, seq)
        .await
        .map_err(|err| ApiError::internal(&err))?
        .ok_or_else(not_found)?;
    Ok(Json(query::entry_json(&stored)?))
}

/// List signed checkpoints.
///
/// The caller's tenant's checkpoints: C2SP signed notes (Ed25519) of the chain's size and the
/// hash of its last entry, checked with the key of `GET /v1/audit/vkey`.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoints",
    tag = "audit",
    params(CheckpointParams),
    responses(
        (status = 200, description = "A page of checkpoints", body = CheckpointsPage),
        (status = 400, description = "A malformed order, limit or cursor", body = ErrorBody),
    )
)]
pub async fn list_checkpoints(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<CheckpointParams>,
) -> Result<Json<CheckpointsPage>, ApiError> {
    let conn = state.pipeline.db().conn();
    Ok(Json(
        query::checkpoints_page(conn, &caller.key.tenant, &params).await?,
    ))
}

/// The verifier key.
///
/// `<log name>+<hex key id>+<base64 key>`, the key checkpoints are signed with. Auditors should
/// also obtain it through a channel independent of this server.
#[utoipa::path(
    get,
    path = "/v1/audit/vkey",
    tag = "audit",
    responses(
        (status = 200, description = "The verifier key and a newline", body = String, content_type = "text/plain"),
    )
)]
pub async fn verifier_key(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", state.audit.signer.verifier_key()),
    )
}

/// Export the audit bundle.
///
/// The caller's tenant's chain as a tar archive of the bundle `arbiter audit export` writes:
/// `entries.jsonl`, `checkpoints/cp-<size>.txt`, `vkey.txt` and `SHA256SUMS`. Unpack it and run
/// `arbiter audit verify --export DIR --vkey FILE` or `tools/verify_audit.py DIR FILE`. A range
/// starts at a checkpoint boundary.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "audit",
    params(ExportParams),
    responses(
        (status = 200, description = "The bundle as a tar archive", content_type = "application/x-tar"),
        (status = 400, description = "A start that is not a checkpoint boundary, or a malformed time", body = ErrorBody),
        (status = 404, description = "No entries in the range", body = ErrorBody),
        (status = 503, description = "As many exports as allowed are under way; Retry-After says when to try again", body = ErrorBody),
    )
)]
pub async fn export_bundle(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let since = params.since.as_deref();
    let range = query::export_range(params.from_seq, since, params.until.as_deref())?;
    export_tar(&state, &caller.key.tenant, &range).await
}

/// Streams the bundle as a tar archive ([`arbiter_audit::stream::stream`]); the route only
/// answers the export's errors and sets the archive's headers. At most
/// `audit.max_concurrent_exports` at once: each holds its place until its archive has been sent.
pub(crate) async fn export_tar(
    state: &AppState,
    tenant: &str,
    range: &ExportRange,
) -> Result<Response, ApiError> {
    let vkey = state.audit.signer.verifier_key();
    let conn = state.pipeline.db().conn();
    let body = arbiter_audit::stream::stream(conn, tenant, range, &vkey, &state.audit.exports)
        .await
        .map_err(|err| export_error(state, err))?;
    let filename = format!(
        "attachment; filename=\"{}\"",
        arbiter_audit::stream::file_name(tenant)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The answer to an export that could not start.
fn export_error(state: &AppState, err: ExportError) -> ApiError {
    match err {
        ExportError::Busy => ApiError {
            retry_after: Some(BUSY_RETRY_SECS),
            ..ApiError::new(
                ErrorCode::ServiceUnavailable,
                format!(
                    "as many audit exports as allowed are under way (audit.max_concurrent_exports: \
                     {}); try again in {BUSY_RETRY_SECS} s",
                    state.config.audit.max_concurrent_exports
                ),
            )
        },
        ExportError::Empty { .. } => ApiError::not_found("no audit entries in the range"),
        err @ (ExportError::NotABoundary { .. } | ExportError::TwoStarts) => {
            ApiError::bad_request(err.to_string())
        }
        err => ApiError::internal(&err),
    }
}
