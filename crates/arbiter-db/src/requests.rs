//! Stored requests: results by id, and the idempotency cache.

use crate::entity::request;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QueryTrait, Statement,
};

/// Inserts completed requests (inside the caller's transaction).
pub async fn insert(
    conn: &impl ConnectionTrait,
    rows: impl IntoIterator<Item = request::Model>,
) -> Result<(), DbErr> {
    crate::insert_rows(conn, rows.into_iter().map(request::ActiveModel::from)).await
}

/// The insert of completed requests, as one statement for the caller to run (inside its
/// transaction).
pub fn insert_statement(
    backend: DbBackend,
    rows: impl IntoIterator<Item = request::Model>,
) -> Statement {
    request::Entity::insert_many(rows.into_iter().map(request::ActiveModel::from)).build(backend)
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
