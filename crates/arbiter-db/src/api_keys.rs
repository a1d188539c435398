//! Stored API keys.

use crate::entity::api_key;
use crate::group::{GroupLookup, GroupRead};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
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
        flow: Set(key.flow),
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

/// Key lookups of concurrent callers answered together ([`GroupRead`]): a burst of requests
/// costs the database one read, not one each. Every lookup still reads the database: a key
/// revoked a moment ago is seen revoked.
pub type Lookups = GroupRead<KeyLookup>;

/// Keys by id, revoked or not, as [`get`] reads them.
#[derive(Debug)]
pub struct KeyLookup;

impl GroupLookup for KeyLookup {
    type Query = String;
    type Found = Option<api_key::Model>;

    async fn read(
        &self,
        conn: &DatabaseConnection,
        ids: &[String],
    ) -> Result<Vec<Option<api_key::Model>>, DbErr> {
        let rows = api_key::Entity::find()
            .filter(api_key::Column::Id.is_in(ids.iter().cloned()))
            .all(conn)
            .await?;
        Ok(ids
            .iter()
            .map(|id| rows.iter().find(|row| &row.id == id).cloned())
            .collect())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, testing};

    fn key(id: &str) -> api_key::Model {
        api_key::Model {
            id: id.to_owned(),
            tenant: "acme".to_owned(),
            name: id.to_owned(),
            plan: "starter".to_owned(),
            scopes: "[]".to_owned(),
            allow_ips: "[]".to_owned(),
            secret_hash: format!("hash of {id}"),
            created_at: Utc::now(),
            revoked_at: None,
            flow: None,
        }
    }

    /// Lookups made at once are each answered with their own key (or none), and a key revoked
    /// between two lookups is seen revoked by the second.
    #[tokio::test]
    async fn concurrent_lookups_each_get_their_own_key_and_see_revocation_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            for id in ["key_a", "key_b", "key_c"] {
                insert(db.conn(), key(id)).await.unwrap();
            }
            let lookups = Lookups::start(db.conn().clone(), KeyLookup);
            let ids: Vec<String> = (0..40)
                .map(|n| ["key_a", "key_b", "key_c", "key_x"][n % 4].to_owned())
                .collect();
            let found =
                futures_util::future::join_all(ids.iter().map(|id| lookups.get(id.clone()))).await;
            for (id, found) in ids.iter().zip(found) {
                let name = found.unwrap().map(|row| row.name);
                let expected = (id != "key_x").then(|| id.clone());
                assert_eq!(name, expected, "{label}");
            }

            assert!(
                lookups
                    .get("key_b".to_owned())
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked_at
                    .is_none()
            );
            assert!(revoke(db.conn(), "key_b", Utc::now()).await.unwrap());
            let revoked = lookups.get("key_b".to_owned()).await.unwrap().unwrap();
            assert!(revoked.revoked_at.is_some(), "{label}");
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
