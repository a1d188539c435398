//! `api_keys`: API keys, stored only as hashes of their secrets.

use sea_orm::entity::prelude::*;

/// A stored API key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    /// The public id (`key_...`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The tenant the key acts for.
    pub tenant: String,
    /// A label for people.
    pub name: String,
    /// The rate-limit plan.
    pub plan: String,
    /// Allowed scopes, as a JSON array.
    pub scopes: String,
    /// Allowed client networks (CIDR), as a JSON array; empty allows any.
    pub allow_ips: String,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_hash: String,
    /// When the key was created.
    pub created_at: DateTimeUtc,
    /// When the key was revoked.
    pub revoked_at: Option<DateTimeUtc>,
    /// The flow that decides uploads made with it through the RD-compatible endpoints.
    pub flow: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
