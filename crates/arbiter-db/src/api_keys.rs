//! Stored API keys.

use crate::entity::api_key;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

/// Inserts a key (inside the caller's transaction).
pub async fn insert(conn: &impl ConnectionTrait, key: api_key::Model) -> Result<(), DbErr> {
    let row = api_key::ActiveModel {
        id: Set(key.id),
        tenant: Set(key.tenant),
        name: Set(key.name),
        plan: Set(key.plan),
        scopes: Set(key.scopes),
        allow_ips: Set(key.allow_ips),
        secret_hash: Set(key.secret_hash),
        created_at: Set(key.created_at),
        revoked_at: Set(key.revoked_at),
    };
    api_key::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A key by id, revoked or not.
pub async fn get(conn: &impl ConnectionTrait, id: &str) -> Result<Option<api_key::Model>, DbErr> {
    api_key::Entity::find_by_id(id.to_owned()).one(conn).await
}

/// Every key, oldest first; only one tenant's when given.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: Option<&str>,
) -> Result<Vec<api_key::Model>, DbErr> {
    let mut query = api_key::Entity::find();
    if let Some(tenant) = tenant {
        query = query.filter(api_key::Column::Tenant.eq(tenant));
    }
    query
        .order_by_asc(api_key::Column::CreatedAt)
        .all(conn)
        .await
}

/// Marks a key revoked; `false` when there is no such live key.
pub async fn revoke(
    conn: &impl ConnectionTrait,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = api_key::Entity::update_many()
        .col_expr(
            api_key::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Some(at)),
        )
        .filter(api_key::Column::Id.eq(id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}
