//! `webhook_deliveries`: the outbox. One row per event and destination, with the exact body
//! bytes that are signed and sent on every attempt.

use sea_orm::entity::prelude::*;

/// A delivery.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// `msg_...`: the `webhook-id`, the same on every attempt.
    #[sea_orm(primary_key, auto_increment = false)]
    pub delivery_id: String,
    /// The tenant.
    pub tenant: String,
    /// The registered endpoint, if it goes to one (else the tenant's secret signs it).
    pub endpoint_id: Option<String>,
    /// Where it goes.
    pub url: String,
    /// `analysis.complete`, `batch.complete`, ...
    pub event: String,
    /// The request it is about.
    pub request_id: Option<String>,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// The batch it is about.
    pub batch_id: Option<String>,
    /// The exact body bytes (UTF-8 JSON).
    pub body: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due, unix milliseconds.
    pub next_attempt_ms: i64,
    /// The token of the claim that holds the lease.
    pub lease_owner: Option<String>,
    /// The lease's end, unix milliseconds (0: not leased).
    pub lease_until_ms: i64,
    /// The last attempt's status code.
    pub last_status: Option<i32>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was committed.
    pub created_at: DateTimeUtc,
    /// When it succeeded or was abandoned.
    pub finished_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
