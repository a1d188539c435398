//! `console_users`: the people who sign in to the console.

use sea_orm::entity::prelude::*;

/// One console user of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "console_users")]
pub struct Model {
    /// The tenant the user works for.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant: String,
    /// The user's id (an id, never a name: it goes into the audit log).
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// `admin`, `reviewer`, `auditor` or `analyst`.
    pub role: String,
    /// The argon2id hash of the password (PHC string).
    pub password_hash: String,
    /// A disabled user cannot sign in, and their sessions stop working.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
