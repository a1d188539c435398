//! `jobs`: durable analysis work (batch images and asynchronous requests), claimed under a lease.

use sea_orm::entity::prelude::*;

/// One image to analyse.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    /// The request the job becomes (`req_...`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// The tenant.
    pub tenant: String,
    /// The batch, if any.
    pub batch_id: Option<String>,
    /// Position in the batch (0 for a single request).
    pub position: i32,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// Where the image is: `{"url": ...}`, `"stored"` (bytes in `image`) or `{"base64": ...}`.
    /// Kept in `job_images` (written by [`crate::jobs::insert_jobs`], read by
    /// [`crate::jobs::source`]), not in this row.
    #[sea_orm(ignore)]
    pub source: String,
    /// The image's bytes when `source` is `"stored"`; kept in `job_images.image`.
    #[sea_orm(ignore)]
    pub image: Option<Vec<u8>>,
    /// Detector options (`arbiter_core::AnalyzeOptions`), as JSON.
    pub options: String,
    /// A flow to decide under.
    pub flow: Option<String>,
    /// The flow's domain input, as JSON.
    pub facts: Option<String>,
    /// Where `analysis.complete` goes (single asynchronous requests).
    pub webhook_url: Option<String>,
    /// `queued`, `complete` or `failed`.
    pub status: String,
    /// Claims so far.
    pub attempts: i32,
    /// The token of the claim that holds the lease.
    pub lease_owner: Option<String>,
    /// The lease's end, unix milliseconds (0: not leased).
    pub lease_until_ms: i64,
    /// The verdict's label, once complete.
    pub verdict_label: Option<String>,
    /// The result as batch status shows it, as JSON.
    pub result: Option<String>,
    /// The error code, once failed.
    pub error_code: Option<String>,
    /// The error message, once failed.
    pub error_message: Option<String>,
    /// When it was submitted.
    pub created_at: DateTimeUtc,
    /// When it finished.
    pub finished_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
