//! `audit_entries`: the hash-chained, append-only audit log (refused UPDATE and DELETE by trigger).

use sea_orm::entity::prelude::*;

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_entries")]
pub struct Model {
    /// The tenant whose chain this entry is in.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant: String,
    /// Position in the tenant's chain, gapless from 0.
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// The event (`decision.recorded`, ...).
    pub event: String,
    /// The entry's timestamp as written in the entry.
    pub ts: String,
    /// The request the entry is about, for lookups.
    pub request_id: Option<String>,
    /// The caller's reference, for lookups.
    pub reference_id: Option<String>,
    /// The image's SHA-256, for lookups.
    pub image_sha256: Option<String>,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// SHA-256 of `canonical`.
    pub entry_hash: String,
    /// The RFC 8785 canonical JSON of the entry without `entry_hash`.
    pub canonical: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
