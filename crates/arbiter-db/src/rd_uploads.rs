//! Uploads through the Reality Defender–compatible endpoints: presigned slots, their arrival,
//! and a tenant's uploads a page at a time.

use crate::entity::rd_upload;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

/// Stores a presigned slot.
pub async fn insert(conn: &impl ConnectionTrait, row: rd_upload::Model) -> Result<(), DbErr> {
    rd_upload::Entity::insert(rd_upload::ActiveModel::from(row))
        .exec_without_returning(conn)
        .await
        .map(drop)
}

/// A slot by its request id (any tenant's: the upload URL names no tenant).
pub async fn get(
    conn: &impl ConnectionTrait,
    request_id: &str,
) -> Result<Option<rd_upload::Model>, DbErr> {
    rd_upload::Entity::find_by_id(request_id.to_owned())
        .one(conn)
        .await
}

/// Marks a slot's bytes as arrived; `false` when they had arrived already.
pub async fn mark_uploaded(
    conn: &impl ConnectionTrait,
    request_id: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = rd_upload::Entity::update_many()
        .col_expr(rd_upload::Column::UploadedAt, Expr::value(at))
        .filter(rd_upload::Column::RequestId.eq(request_id))
        .filter(rd_upload::Column::UploadedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Which uploads to list.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Part of the file name.
    pub name: Option<&'a str>,
    /// Presigned at or after.
    pub since: Option<DateTime<Utc>>,
    /// Presigned before.
    pub until: Option<DateTime<Utc>>,
}

/// A tenant's uploads, newest first: the page `page` (from 0) of `size`, and how many match in
/// all.
pub async fn page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    filter: &Filter<'_>,
    page: u64,
    size: u64,
) -> Result<(Vec<rd_upload::Model>, u64), DbErr> {
    let mut query = rd_upload::Entity::find().filter(rd_upload::Column::Tenant.eq(tenant));
    if let Some(name) = filter.name {
        query = query.filter(rd_upload::Column::FileName.contains(name));
    }
    if let Some(since) = filter.since {
        query = query.filter(rd_upload::Column::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(rd_upload::Column::CreatedAt.lt(until));
    }
    let total = query.clone().count(conn).await?;
    // A page past the end is empty without a query (and an offset past `i64::MAX` never
    // reaches the database, which cannot take it).
    let Some(offset) = page.checked_mul(size).filter(|offset| *offset < total) else {
        return Ok((Vec::new(), total));
    };
    let rows = query
        .order_by_desc(rd_upload::Column::CreatedAt)
        .order_by_desc(rd_upload::Column::RequestId)
        .offset(offset)
        .limit(size)
        .all(conn)
        .await?;
    Ok((rows, total))
}

/// A new slot's row.
pub fn new_slot(
    request_id: String,
    tenant: String,
    key_id: String,
    file_name: String,
    token_sha256: String,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rd_upload::Model {
    rd_upload::Model {
        request_id,
        tenant,
        key_id,
        file_name,
        token_sha256,
        expires_at,
        uploaded_at: None,
        created_at: now,
    }
}
