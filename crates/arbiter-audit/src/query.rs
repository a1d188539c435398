//! Reading the audit trail a page at a time, as `GET /v1/audit/...` and the console ask for it:
//! the query's values (times, order, limit, cursor) checked and parsed, and entries shown as
//! their export lines.

use crate::chain::{self, AuditError, Cursor, EntryFilter, Order, StoredEntry};
use crate::checkpoint::{self, StoredCheckpoint};
use crate::entry::EncodeError;
use crate::export::ExportRange;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::Value;

/// Entries or checkpoints per page when `limit` is not given.
pub const DEFAULT_PAGE: u64 = 100;
/// The largest `limit`.
pub const MAX_PAGE: u64 = 1000;

/// Why a page could not be read: a query value to mend, or a failure.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A time that is not RFC 3339.
    #[error("{name}: {text:?} is not an RFC 3339 time such as 2026-01-15T10:00:00Z")]
    Time {
        /// The parameter (`since`, `until`).
        name: String,
        /// What was given.
        text: String,
    },
    /// An order other than `asc` or `desc`.
    #[error("order: {0}")]
    Order(String),
    /// A limit of 0.
    #[error("limit: must be at least 1")]
    LimitZero,
    /// A limit above [`MAX_PAGE`].
    #[error("limit: at most {MAX_PAGE}")]
    LimitTooLarge,
    /// A cursor this API did not return.
    #[error("cursor: not a cursor this API returned (next_cursor)")]
    Cursor,
    /// The entries could not be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The checkpoints could not be read.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// An entry could not be shown as its export line.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An export line is not JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl QueryError {
    /// Whether the caller should mend the query (a 400), rather than a failure.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            Self::Time { .. }
                | Self::Order(_)
                | Self::LimitZero
                | Self::LimitTooLarge
                | Self::Cursor
        )
    }
}

/// An RFC 3339 time, given as the parameter `name`.
pub fn time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, QueryError> {
    value
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| QueryError::Time {
                    name: name.to_owned(),
                    text: text.to_owned(),
                })
        })
        .transpose()
}

/// `asc` (the default) or `desc`.
pub fn order(value: Option<&str>) -> Result<Order, QueryError> {
    value.map_or(Ok(Order::Asc), |text| {
        text.parse().map_err(QueryError::Order)
    })
}

/// A page's size: [`DEFAULT_PAGE`] when not given, 1 to [`MAX_PAGE`].
pub fn limit(value: Option<u64>) -> Result<u64, QueryError> {
    match value.unwrap_or(DEFAULT_PAGE) {
        0 => Err(QueryError::LimitZero),
        n if n > MAX_PAGE => Err(QueryError::LimitTooLarge),
        n => Ok(n),
    }
}

/// A `next_cursor` given back: the seq or size a page ended at.
pub fn cursor(value: Option<&str>) -> Result<Option<u64>, QueryError> {
    value
        .map(|text| text.parse::<u64>().map_err(|_| QueryError::Cursor))
        .transpose()
}

/// An entry as the API shows it: its export line as JSON.
pub fn entry_json(stored: &StoredEntry) -> Result<Value, QueryError> {
    let line = stored.to_line()?;
    Ok(serde_json::from_str(&line)?)
}

/// The query of a page of a tenant's entries, as given (every filter given must match): the
/// query parameters of `GET /v1/audit/entries`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct EntryParams {
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
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub since: Option<String>,
    /// Only entries at or before this time (RFC 3339).
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub until: Option<String>,
    /// `asc` (oldest first, the default) or `desc` (newest first).
    #[cfg_attr(feature = "openapi", param(pattern = "^(asc|desc)$"))]
    pub order: Option<String>,
    /// Entries per page (default 100, at most 1000).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page (with the same filters and order).
    #[cfg_attr(feature = "openapi", param(pattern = "^[0-9]{1,19}$"))]
    pub cursor: Option<String>,
}

/// The filter for a tenant's entries from the query.
pub fn entry_filter(tenant: &str, params: &EntryParams) -> Result<EntryFilter, QueryError> {
    let order = order(params.order.as_deref())?;
    Ok(EntryFilter {
        tenant: Some(tenant.to_owned()),
        order,
        after: cursor(params.cursor.as_deref())?.map(|seq| Cursor {
            tenant: tenant.to_owned(),
            seq,
        }),
        request_id: params.request_id.clone(),
        reference_id: params.reference_id.clone(),
        image_sha256: params.image_sha256.clone(),
        event: params.event.clone(),
        flow: params.flow.clone(),
        action: params.action.clone(),
        since: time("since", params.since.as_deref())?,
        until: time("until", params.until.as_deref())?,
        limit: None,
    })
}

/// One page of entries.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = EntryPage))]
pub struct EntriesPage {
    /// The entries, each exactly as in an export line: the canonical entry with its `seq`,
    /// `prev_hash` and `entry_hash`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub entries: Vec<Value>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One page of a tenant's entries.
pub async fn entries_page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    params: &EntryParams,
) -> Result<EntriesPage, QueryError> {
    let filter = entry_filter(tenant, params)?;
    let page = chain::page(conn, &filter, limit(params.limit)?).await?;
    Ok(EntriesPage {
        entries: page
            .entries
            .iter()
            .map(entry_json)
            .collect::<Result<_, _>>()?,
        next_cursor: page.next.map(|cursor| cursor.seq.to_string()),
    })
}

/// The query of a page of a tenant's checkpoints: the query parameters of
/// `GET /v1/audit/checkpoints`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct CheckpointParams {
    /// `asc` (smallest size first, the default) or `desc` (newest first).
    #[cfg_attr(feature = "openapi", param(pattern = "^(asc|desc)$"))]
    pub order: Option<String>,
    /// Checkpoints per page (default 100, at most 1000).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    #[cfg_attr(feature = "openapi", param(pattern = "^[0-9]{1,19}$"))]
    pub cursor: Option<String>,
}

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CheckpointPage))]
pub struct CheckpointsPage {
    /// The checkpoints.
    pub checkpoints: Vec<CheckpointView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One page of a tenant's checkpoints, from the query's `order`, `cursor` and `limit`.
pub async fn checkpoints_page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    params: &CheckpointParams,
) -> Result<CheckpointsPage, QueryError> {
    let limit = limit(params.limit)?;
    let order = order(params.order.as_deref())?;
    let after = cursor(params.cursor.as_deref())?;
    let page = checkpoint::checkpoints_page(conn, tenant, order, after, limit).await?;
    Ok(CheckpointsPage {
        next_cursor: page.next.map(|size| size.to_string()),
        checkpoints: page
            .checkpoints
            .into_iter()
            .map(CheckpointView::from)
            .collect(),
    })
}

impl From<StoredCheckpoint> for CheckpointView {
    fn from(cp: StoredCheckpoint) -> Self {
        Self {
            tenant: cp.tenant,
            size: cp.size,
            root_hash: cp.root_hash,
            issued_at: cp.issued_at,
            note: cp.note,
        }
    }
}

/// The range of an export as given: the query parameters of `GET /v1/audit/export`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Start at this seq: 0 or the size of a checkpoint.
    pub from_seq: Option<u64>,
    /// Start at the checkpoint boundary before the first entry at or after this time (RFC 3339).
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub since: Option<String>,
    /// End with the last entry at or before this time (RFC 3339).
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub until: Option<String>,
}

/// The range of an export from the query's `from_seq`, `since` and `until`.
pub fn export_range(
    from_seq: Option<u64>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<ExportRange, QueryError> {
    Ok(ExportRange {
        from_seq,
        since: time("since", since)?,
        until: time("until", until)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339() {
        let parsed = time("since", Some("2026-01-15T11:00:00+01:00")).unwrap();
        assert_eq!(parsed.unwrap().to_rfc3339(), "2026-01-15T10:00:00+00:00");
        assert!(time("since", None).unwrap().is_none());
        let err = time("until", Some("yesterday")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "until: \"yesterday\" is not an RFC 3339 time such as 2026-01-15T10:00:00Z"
        );
        assert!(err.is_invalid());
    }

    #[test]
    fn limits_default_and_bound() {
        assert_eq!(limit(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(limit(Some(1)).unwrap(), 1);
        assert_eq!(limit(Some(MAX_PAGE)).unwrap(), MAX_PAGE);
        assert_eq!(
            limit(Some(0)).unwrap_err().to_string(),
            "limit: must be at least 1"
        );
        assert_eq!(
            limit(Some(MAX_PAGE + 1)).unwrap_err().to_string(),
            "limit: at most 1000"
        );
    }

    #[test]
    fn orders_and_cursors() {
        assert_eq!(order(None).unwrap(), Order::Asc);
        assert_eq!(order(Some("desc")).unwrap(), Order::Desc);
        let err = order(Some("sideways")).unwrap_err();
        assert!(err.to_string().starts_with("order: "), "{err}");
        assert_eq!(cursor(Some("42")).unwrap(), Some(42));
        assert_eq!(
            cursor(Some("-1")).unwrap_err().to_string(),
            "cursor: not a cursor this API returned (next_cursor)"
        );
    }

    #[test]
    fn the_filter_is_the_tenants_and_checks_in_order() {
        let params = EntryParams {
            event: Some("key.created".to_owned()),
            order: Some("desc".to_owned()),
            cursor: Some("7".to_owned()),
            ..EntryParams::default()
        };
        let filter = entry_filter("acme", &params).unwrap();
        assert_eq!(filter.tenant.as_deref(), Some("acme"));
        assert_eq!(filter.order, Order::Desc);
        let after = filter.after.unwrap();
        assert_eq!((after.tenant.as_str(), after.seq), ("acme", 7));
        assert_eq!(filter.event.as_deref(), Some("key.created"));
        let bad = EntryParams {
            order: Some("up".to_owned()),
            since: Some("never".to_owned()),
            ..EntryParams::default()
        };
        assert!(matches!(
            entry_filter("acme", &bad),
            Err(QueryError::Order(_))
        ));
    }

    #[test]
    fn export_ranges_check_their_times() {
        let range = export_range(Some(3), None, Some("2026-01-15T10:00:00Z")).unwrap();
        assert_eq!(range.from_seq, Some(3));
        assert!(range.until.is_some());
        assert!(matches!(
            export_range(None, Some("soon"), None),
            Err(QueryError::Time { .. })
        ));
    }
}
