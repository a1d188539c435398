//! Stored requests: results by id, and the idempotency cache.

use crate::entity::request;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

/// Inserts a completed request (inside the caller's transaction).
pub async fn insert(conn: &impl ConnectionTrait, row: request::Model) -> Result<(), DbErr> {
    let row = request::ActiveModel {
        request_id: Set(row.request_id),
        tenant: Set(row.tenant),
        reference_id: Set(row.reference_id),
        image_sha256: Set(row.image_sha256),
        cache_key: Set(row.cache_key),
        cached_from: Set(row.cached_from),
        status: Set(row.status),
        analysis: Set(row.analysis),
        created_at: Set(row.created_at),
    };
    request::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A tenant's request by id; another tenant's request is not found.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_id: &str,
) -> Result<Option<request::Model>, DbErr> {
    request::Entity::find_by_id(request_id.to_owned())
        .filter(request::Column::Tenant.eq(tenant))
        .one(conn)
        .await
}

/// The newest original (not itself cached) result for a cache key since `since`.
pub async fn find_cached(
    conn: &impl ConnectionTrait,
    tenant: &str,
    cache_key: &str,
    since: DateTime<Utc>,
) -> Result<Option<request::Model>, DbErr> {
    request::Entity::find()
        .filter(request::Column::Tenant.eq(tenant))
        .filter(request::Column::CacheKey.eq(cache_key))
        .filter(request::Column::CachedFrom.is_null())
        .filter(request::Column::CreatedAt.gte(since))
        .order_by_desc(request::Column::CreatedAt)
        .one(conn)
        .await
}
