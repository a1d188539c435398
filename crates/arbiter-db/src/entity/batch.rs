//! `batches`: one row per `POST /v1/analyze/batch`, with running counts.

use sea_orm::entity::prelude::*;

/// A batch of analysis jobs.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "batches")]
pub struct Model {
    /// `batch_...`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub batch_id: String,
    /// The tenant.
    pub tenant: String,
    /// The caller's reference for the batch.
    pub batch_reference_id: Option<String>,
    /// Images in the batch.
    pub total: i32,
    /// Images analysed.
    pub completed: i32,
    /// Images that failed.
    pub failed: i32,
    /// `PROCESSING` or `COMPLETE`.
    pub status: String,
    /// Where `batch.complete` goes.
    pub webhook_url: Option<String>,
    /// When it was submitted.
    pub created_at: DateTimeUtc,
    /// When its last image finished.
    pub completed_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
