//! `job_images`: the image of a job still to be analysed, apart from the job's small row.

use sea_orm::entity::prelude::*;

/// One job's image.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_images")]
pub struct Model {
    /// The job's request id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// Where the image is: `{"url": ...}`, `"stored"` (the bytes are in `image`), or
    /// `{"base64": ...}` (rows written before `image` existed).
    pub source: String,
    /// The image's bytes, when `source` is `"stored"` (BLOB on SQLite, BYTEA on PostgreSQL).
    pub image: Option<Vec<u8>>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
