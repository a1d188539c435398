//! `console_sign_in_failures`: failed console sign-ins, counted for the throttle.

use sea_orm::entity::prelude::*;

/// One failed sign-in.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "console_sign_in_failures")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The tenant typed.
    pub tenant: String,
    /// The user id typed.
    pub user_id: String,
    /// When.
    pub at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
