//! `console_sessions`: signed-in console sessions.

use sea_orm::entity::prelude::*;

/// One session; the token itself lives only in the person's cookie.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "console_sessions")]
pub struct Model {
    /// SHA-256 (hex) of the session token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_sha256: String,
    /// The tenant.
    pub tenant: String,
    /// The user signed in.
    pub user_id: String,
    /// The CSRF token every form of this session carries.
    pub csrf_token: String,
    /// When the session began.
    pub created_at: DateTimeUtc,
    /// When it stops working.
    pub expires_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
