//! `webhook_secrets`: the tenant's secret for `webhook_url` deliveries, sealed, with the previous
//! one while a rotation's overlap lasts.

use sea_orm::entity::prelude::*;

/// A tenant's webhook secret.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_secrets")]
pub struct Model {
    /// The tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant: String,
    /// The current secret, sealed.
    pub secret: String,
    /// The previous secret, sealed, during the overlap.
    pub previous: Option<String>,
    /// The end of the overlap, unix milliseconds.
    pub previous_until_ms: Option<i64>,
    /// When the current secret was made.
    pub rotated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
