//! Queries and answers of `/v1/audit/...`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Query parameters of `GET /v1/audit/entries`. Every filter given must match.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    /// Only entries with this caller reference.
    pub reference_id: Option<String>,
    /// Only entries about this request (`req_...`).
    pub request_id: Option<String>,
    /// Only entries about this image (SHA-256 of its bytes, lowercase hex).
    pub image_sha256: Option<String>,
    /// Only this event: `decision.recorded`, `analysis.recorded`, `webhook.abandoned`,
    /// `policy.activated`, `policy.proposed`, `policy.approved`, `policy.rejected`,
    /// `review.claimed`, `review.resolved`, `case.decided`, `key.created`, `key.revoked`.
    pub event: Option<String>,
    /// Only decisions of this flow (`insurance`, `ugc`, `kyc`).
    pub flow: Option<String>,
    /// Only entries naming this action (a decision's `actions`, a review's `action`).
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only entries at or before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// `asc` (oldest first, the default) or `desc` (newest first).
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
    /// Entries per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page (with the same filters and order).
    #[param(pattern = "^[0-9]{1,19}$")]
    pub cursor: Option<String>,
}

/// One page of entries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryPage {
    /// The entries, each exactly as in an export line: the canonical entry with its `seq`,
    /// `prev_hash` and `entry_hash`.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<Value>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of `GET /v1/audit/checkpoints`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsQuery {
    /// `asc` (smallest size first, the default) or `desc` (newest first).
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
    /// Checkpoints per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,19}$")]
    pub cursor: Option<String>,
}

/// A signed checkpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckpointView {
    /// The tenant whose chain is signed.
    pub tenant: String,
    /// Entries covered (last seq + 1).
    pub size: i64,
    /// The `entry_hash` of entry `size - 1`.
    pub root_hash: String,
    /// When it was signed (RFC 3339, seconds, `Z`).
    pub issued_at: String,
    /// The C2SP signed note, exactly as signed (the file `checkpoints/cp-<size>.txt`).
    pub note: String,
}

/// One page of checkpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckpointPage {
    /// The checkpoints.
    pub checkpoints: Vec<CheckpointView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of `GET /v1/audit/export`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Start at this seq: 0 or the size of a checkpoint.
    pub from_seq: Option<u64>,
    /// Start at the checkpoint boundary before the first entry at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// End with the last entry at or before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
}
