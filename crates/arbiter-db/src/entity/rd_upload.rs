//! `rd_uploads`: uploads through the Reality Defender–compatible endpoints.

use sea_orm::entity::prelude::*;

/// One presigned upload slot.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rd_uploads")]
pub struct Model {
    /// The request the upload becomes (`req_...`), the SDK's `requestId`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// The tenant.
    pub tenant: String,
    /// The API key that presigned it.
    pub key_id: String,
    /// The file name the SDK sent.
    pub file_name: String,
    /// SHA-256 of the upload URL's token (the token itself is never stored).
    pub token_sha256: String,
    /// When the upload URL stops working.
    pub expires_at: DateTimeUtc,
    /// When the bytes arrived.
    pub uploaded_at: Option<DateTimeUtc>,
    /// When the slot was presigned.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
