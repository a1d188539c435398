//! `webhook_endpoints`: a tenant's registered receivers, each with its own sealed secret.

use sea_orm::entity::prelude::*;

/// A registered endpoint.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    /// `ep_...`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub endpoint_id: String,
    /// The tenant.
    pub tenant: String,
    /// Where deliveries go.
    pub url: String,
    /// Event names it receives, as a JSON array; empty receives every event.
    pub events: String,
    /// A label for people.
    pub description: Option<String>,
    /// Its `whsec_` secret, sealed.
    pub secret: String,
    /// When it was disabled (410 Gone).
    pub disabled_at: Option<DateTimeUtc>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// When it was registered.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
