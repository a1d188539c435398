//! `webhook_attempts`: every attempt of every delivery.

use sea_orm::entity::prelude::*;

/// One attempt.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The delivery.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When it was made.
    pub attempted_at: DateTimeUtc,
    /// The answer's status code; none when there was no answer in time.
    pub status_code: Option<i32>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// The answer's body, cut to a bounded size.
    pub response_body: String,
    /// Why there was no answer.
    pub error: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
