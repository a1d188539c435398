//! Stored requests: results by id, and the idempotency cache.

use crate::entity::{decision, request};
use crate::group::{GroupLookup, GroupRead};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Query, SelectStatement, SimpleExpr, UnionType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};
use std::collections::BTreeSet;

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

/// The inserts of completed requests, for the caller to run.
pub fn insert_statements(
    backend: DbBackend,
    rows: impl IntoIterator<Item = request::Model>,
) -> Vec<Statement> {
    crate::insert_statements(backend, rows.into_iter().map(request::ActiveModel::from))
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

/// The ids of a tenant's requests that `text` names: by request id, reference id or image
/// SHA-256 (any case). One indexed lookup per column, united: an `OR` of the three would have
/// the database walk the tenant's whole list.
pub fn named_by(tenant: &str, text: &str) -> SelectStatement {
    let by = |condition: SimpleExpr| {
        Query::select()
            .column(request::Column::RequestId)
            .from(request::Entity)
            .and_where(request::Column::Tenant.eq(tenant))
            .and_where(condition)
            .to_owned()
    };
    by(request::Column::RequestId.eq(text))
        .union(
            UnionType::Distinct,
            by(request::Column::ReferenceId.eq(text)),
        )
        .union(
            UnionType::Distinct,
            by(request::Column::ImageSha256.eq(text.to_ascii_lowercase())),
        )
        .to_owned()
}

/// What a search of a tenant's requests keeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestFilter<'a> {
    /// A request id, reference id or SHA-256 ([`named_by`]).
    pub text: Option<&'a str>,
    /// Only requests decided with this action.
    pub action: Option<&'a str>,
    /// Only requests decided under this flow.
    pub flow: Option<&'a str>,
    /// Only requests older than this one (the paging cursor: the last request id of a page).
    pub after: Option<&'a str>,
}

/// One page of a tenant's requests, newest first, and whether there are more. Paging is by
/// keyset on the time-sortable request id.
pub async fn page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    filter: &RequestFilter<'_>,
    limit: u64,
) -> Result<(Vec<request::Model>, bool), DbErr> {
    let mut query = request::Entity::find().filter(request::Column::Tenant.eq(tenant));
    if let Some(text) = filter.text {
        query = query.filter(request::Column::RequestId.in_subquery(named_by(tenant, text)));
    }
    if filter.action.is_some() || filter.flow.is_some() {
        let mut decided = Query::select();
        decided
            .column(decision::Column::RequestId)
            .from(decision::Entity)
            .and_where(decision::Column::Tenant.eq(tenant));
        if let Some(action) = filter.action {
            decided.and_where(decision::Column::Action.eq(action));
        }
        if let Some(flow) = filter.flow {
            decided.and_where(decision::Column::Flow.eq(flow));
        }
        query = query.filter(request::Column::RequestId.in_subquery(decided.to_owned()));
    }
    if let Some(after) = filter.after {
        query = query.filter(request::Column::RequestId.lt(after));
    }
    let mut rows = query
        .order_by_desc(request::Column::RequestId)
        .limit(limit + 1)
        .all(conn)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((rows, more))
}

/// Earlier results by cache key ([`CachedLookup`]), for concurrent callers together
/// ([`GroupRead`]): a burst of lookups costs the database one read, not one each.
pub type CachedLookups = GroupRead<CachedLookup>;

/// A tenant's newest original (not itself cached) result for a cache key created at or after a
/// time: the query is `(tenant, cache_key, since)`.
#[derive(Debug)]
pub struct CachedLookup;

impl GroupLookup for CachedLookup {
    type Query = (String, String, DateTime<Utc>);
    type Found = Option<request::Model>;

    async fn read(
        &self,
        conn: &DatabaseConnection,
        queries: &[Self::Query],
    ) -> Result<Vec<Option<request::Model>>, DbErr> {
        let Some(oldest) = queries.iter().map(|(_, _, since)| *since).min() else {
            return Ok(Vec::new());
        };
        let tenants: BTreeSet<&str> = queries.iter().map(|(t, _, _)| t.as_str()).collect();
        let keys: BTreeSet<&str> = queries.iter().map(|(_, key, _)| key.as_str()).collect();
        // Newest first: the first row that answers a query is its newest.
        let rows = request::Entity::find()
            .filter(request::Column::Tenant.is_in(tenants))
            .filter(request::Column::CacheKey.is_in(keys))
            .filter(request::Column::CachedFrom.is_null())
            .filter(request::Column::CreatedAt.gte(oldest))
            .order_by_desc(request::Column::CreatedAt)
            .all(conn)
            .await?;
        Ok(queries
            .iter()
            .map(|(tenant, key, since)| {
                rows.iter()
                    .find(|row| {
                        &row.tenant == tenant && &row.cache_key == key && row.created_at >= *since
                    })
                    .cloned()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, testing};

    /// Queries read together are each answered with their tenant's newest original result for
    /// their key since their own time; cached answers and other tenants' results do not count.
    #[tokio::test]
    async fn cached_lookups_answer_each_query_with_its_newest_original() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-01-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let minutes = |n: i64| t0 + chrono::Duration::minutes(n);
        let row = |id: &str, tenant: &str, key: &str, from: Option<&str>, at| request::Model {
            request_id: id.to_owned(),
            tenant: tenant.to_owned(),
            reference_id: None,
            image_sha256: "0".repeat(64),
            cache_key: key.to_owned(),
            cached_from: from.map(str::to_owned),
            status: "complete".to_owned(),
            analysis: "{}".to_owned(),
            created_at: at,
        };
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let rows = [
                row("req_old", "acme", "k1", None, minutes(0)),
                row("req_new", "acme", "k1", None, minutes(10)),
                row("req_hit", "acme", "k1", Some("req_new"), minutes(20)),
                row("req_globex", "globex", "k2", None, minutes(5)),
            ];
            insert(db.conn(), rows).await.unwrap();
            let lookups = CachedLookups::start(db.conn().clone(), CachedLookup);
            let queries = [
                ("acme", "k1", minutes(-5), Some("req_new")),
                ("acme", "k1", minutes(15), None),
                ("acme", "k2", minutes(-5), None),
                ("globex", "k2", minutes(-5), Some("req_globex")),
                ("globex", "k1", minutes(-5), None),
            ];
            let asked = queries.iter().map(|(tenant, key, since, _)| {
                lookups.get(((*tenant).to_owned(), (*key).to_owned(), *since))
            });
            let found = futures_util::future::join_all(asked).await;
            for (query, found) in queries.iter().zip(found) {
                let id = found.unwrap().map(|row| row.request_id);
                assert_eq!(id.as_deref(), query.3, "{label}: {query:?}");
            }
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
