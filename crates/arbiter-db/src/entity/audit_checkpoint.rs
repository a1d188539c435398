//! `audit_checkpoints`: signed checkpoints of the tenant chains (append-only, by trigger).

use sea_orm::entity::prelude::*;

/// One signed checkpoint: the chain of `tenant` had `size` entries, the last one `root_hash`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_checkpoints")]
pub struct Model {
    /// The tenant whose chain is signed.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant: String,
    /// Number of entries covered (last seq + 1).
    #[sea_orm(primary_key, auto_increment = false)]
    pub size: i64,
    /// The `entry_hash` of entry `size - 1`.
    pub root_hash: String,
    /// When it was signed (RFC 3339, seconds, `Z`).
    pub issued_at: String,
    /// The signed note, exactly as published.
    pub note: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
