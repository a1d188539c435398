//! `audit_heads`: one row per tenant chain, locked while an entry is appended, so that appends
//! to one chain are serialized.

use sea_orm::entity::prelude::*;

/// The head of one tenant's chain.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_heads")]
pub struct Model {
    /// The tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant: String,
    /// Number of entries in the chain (the next entry's seq).
    pub size: i64,
    /// The last entry's hash (64 zeros for an empty chain).
    pub head_hash: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
