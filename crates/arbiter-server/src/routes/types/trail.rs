//! The answer of `GET /v1/requests/{request_id}/trail`.

use serde::Serialize;
use serde_json::Value;

/// A request's audit trail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Trail {
    /// The request.
    pub request_id: String,
    /// Every entry about it, in chain order, each exactly as in an export line (with `seq` and
    /// `entry_hash`).
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<Value>,
}
