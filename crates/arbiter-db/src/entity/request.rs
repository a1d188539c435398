//! `requests`: one row per analysis request, with the response body it got; also the
//! idempotency cache (same tenant, image and options within the TTL).

use sea_orm::entity::prelude::*;

/// A stored request.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "requests")]
pub struct Model {
    /// The request's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// The tenant.
    pub tenant: String,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// SHA-256 of the image.
    pub image_sha256: String,
    /// SHA-256 over (image, detector, options): requests with the same key share results.
    pub cache_key: String,
    /// The request whose result this one reused, if it came from the cache.
    pub cached_from: Option<String>,
    /// `complete`.
    pub status: String,
    /// The analysis (`arbiter_core::Analysis`), as JSON.
    pub analysis: String,
    /// When the request completed.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
