//! Webhook endpoints, tenant secrets, and the outbox of deliveries with their attempts.
//!
//! Deliveries are claimed like jobs (a lease; `FOR UPDATE SKIP LOCKED` on PostgreSQL) and an
//! attempt's outcome is written only by the claim that still holds the lease.

use crate::entity::{webhook_attempt, webhook_delivery, webhook_endpoint, webhook_secret};
use crate::jobs::claim_statement;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait,
};

/// A delivery waiting for its next attempt.
pub const PENDING: &str = "pending";
/// A delivery that got a 2xx.
pub const SUCCEEDED: &str = "succeeded";
/// A delivery abandoned after its last retry, or whose endpoint is gone.
pub const FAILED: &str = "failed";

/// Registers an endpoint (inside the caller's transaction).
pub async fn insert_endpoint(
    conn: &impl ConnectionTrait,
    row: webhook_endpoint::Model,
) -> Result<(), DbErr> {
    webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A tenant's endpoints, oldest first.
pub async fn list_endpoints(
    conn: &impl ConnectionTrait,
    tenant: &str,
) -> Result<Vec<webhook_endpoint::Model>, DbErr> {
    webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Tenant.eq(tenant))
        .order_by_asc(webhook_endpoint::Column::CreatedAt)
        .order_by_asc(webhook_endpoint::Column::EndpointId)
        .all(conn)
        .await
}

/// A tenant's endpoints as one string that changes whenever any of them is added, removed,
/// disabled or changes its URL or events (SQLite; the tenant bound to its `?`).
pub const ENDPOINTS_STAMP: &str = "(SELECT json_group_array(json_array(endpoint_id, url, events, \
     disabled_at) ORDER BY endpoint_id) FROM webhook_endpoints WHERE tenant = ?)";

/// A tenant's endpoints and their stamp ([`ENDPOINTS_STAMP`]), read in one transaction (SQLite).
pub async fn endpoints_stamped(
    conn: &sea_orm::DatabaseConnection,
    tenant: &str,
) -> Result<(Vec<webhook_endpoint::Model>, String), DbErr> {
    let txn = conn.begin().await?;
    let endpoints = list_endpoints(&txn, tenant).await?;
    let stamp = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        format!("SELECT {ENDPOINTS_STAMP}"),
        [tenant.into()],
    );
    let stamp = txn
        .query_one_raw(stamp)
        .await?
        .ok_or_else(|| DbErr::Custom("an endpoints stamp read nothing".to_owned()))?
        .try_get_by_index(0)?;
    txn.commit().await?;
    Ok((endpoints, stamp))
}

/// An endpoint by id (any tenant's when `tenant` is `None`).
pub async fn get_endpoint(
    conn: &impl ConnectionTrait,
    tenant: Option<&str>,
    endpoint_id: &str,
) -> Result<Option<webhook_endpoint::Model>, DbErr> {
    let mut query = webhook_endpoint::Entity::find_by_id(endpoint_id.to_owned());
    if let Some(tenant) = tenant {
        query = query.filter(webhook_endpoint::Column::Tenant.eq(tenant));
    }
    query.one(conn).await
}

/// Deletes a tenant's endpoint; `false` when there is none.
pub async fn delete_endpoint(
    conn: &impl ConnectionTrait,
    tenant: &str,
    endpoint_id: &str,
) -> Result<bool, DbErr> {
    let result = webhook_endpoint::Entity::delete_many()
        .filter(webhook_endpoint::Column::Tenant.eq(tenant))
        .filter(webhook_endpoint::Column::EndpointId.eq(endpoint_id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Disables an endpoint (it answered 410 Gone).
pub async fn disable_endpoint(
    conn: &impl ConnectionTrait,
    endpoint_id: &str,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<(), DbErr> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::DisabledAt, Expr::value(Some(at)))
        .col_expr(
            webhook_endpoint::Column::DisabledReason,
            Expr::value(Some(reason.to_owned())),
        )
        .filter(webhook_endpoint::Column::EndpointId.eq(endpoint_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// A tenant's secret row.
pub async fn get_secret(
    conn: &impl ConnectionTrait,
    tenant: &str,
) -> Result<Option<webhook_secret::Model>, DbErr> {
    webhook_secret::Entity::find_by_id(tenant.to_owned())
        .one(conn)
        .await
}

/// Stores a tenant's first secret unless another process stored one first.
pub async fn insert_secret_if_absent(
    conn: &impl ConnectionTrait,
    row: webhook_secret::Model,
) -> Result<(), DbErr> {
    webhook_secret::Entity::insert(webhook_secret::ActiveModel::from(row))
        .on_conflict_do_nothing_on([webhook_secret::Column::Tenant])
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Replaces a tenant's secret row (a rotation).
pub async fn replace_secret(
    conn: &impl ConnectionTrait,
    row: webhook_secret::Model,
) -> Result<(), DbErr> {
    webhook_secret::Entity::delete_by_id(row.tenant.clone())
        .exec(conn)
        .await?;
    webhook_secret::Entity::insert(webhook_secret::ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Adds deliveries to the outbox (inside the caller's transaction).
pub async fn insert_deliveries(
    conn: &impl ConnectionTrait,
    rows: Vec<webhook_delivery::Model>,
) -> Result<(), DbErr> {
    crate::insert_rows(
        conn,
        rows.into_iter().map(webhook_delivery::ActiveModel::from),
    )
    .await
}

/// The inserts of deliveries, for the caller to run.
pub fn delivery_statements(
    backend: DbBackend,
    rows: Vec<webhook_delivery::Model>,
) -> Vec<Statement> {
    crate::insert_statements(
        backend,
        rows.into_iter().map(webhook_delivery::ActiveModel::from),
    )
}

/// Claims up to `limit` pending deliveries that are due and not leased, for `token` until
/// `lease_until_ms`, oldest due first, leaving out the tenants in `skip` (those holding their
/// share of the sending capacity already).
pub async fn claim_deliveries(
    conn: &impl ConnectionTrait,
    token: &str,
    now_ms: i64,
    lease_until_ms: i64,
    limit: u32,
    skip: &[String],
) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    let skipped = if skip.is_empty() {
        String::new()
    } else {
        let places: Vec<String> = (0..skip.len()).map(|i| format!("${}", i + 6)).collect();
        format!("AND tenant NOT IN ({}) ", places.join(", "))
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until_ms = $2 \
         WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries WHERE status = 'pending' \
         AND next_attempt_ms <= $3 AND lease_until_ms < $4 {skipped}ORDER BY next_attempt_ms \
         LIMIT $5 {{lock}}) RETURNING *"
    );
    let mut values: Vec<sea_orm::Value> = vec![
        token.into(),
        lease_until_ms.into(),
        now_ms.into(),
        now_ms.into(),
        i64::from(limit).into(),
    ];
    values.extend(skip.iter().map(|tenant| tenant.as_str().into()));
    let statement = claim_statement(conn.get_database_backend(), &sql, values);
    webhook_delivery::Entity::find()
        .from_raw_sql(statement)
        .all(conn)
        .await
}

/// Frees at once, without counting an attempt, the pending deliveries held by claims of the
/// replica `replica` (tokens `<replica>.<ulid>`); returns how many. A stopping replica calls it
/// once its delivery loops have ended, so what it claimed and did not send goes to another
/// replica now rather than when the lease runs out. Replica ids are unique among the running
/// replicas, so no other process's claim matches.
pub async fn hand_back_deliveries(
    conn: &impl ConnectionTrait,
    replica: &str,
) -> Result<u64, DbErr> {
    if replica.is_empty() {
        return Ok(0);
    }
    let mut pattern = String::with_capacity(replica.len() + 2);
    for c in replica.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(".%");
    let result = webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(webhook_delivery::Column::LeaseUntilMs, Expr::value(0i64))
        .filter(
            Expr::col(webhook_delivery::Column::LeaseOwner)
                .like(LikeExpr::new(pattern).escape('\\')),
        )
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Up to `limit` tenants with deliveries due and not leased at `now_ms`.
pub async fn due_tenants(
    conn: &impl ConnectionTrait,
    now_ms: i64,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Tenant)
        .distinct()
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .filter(webhook_delivery::Column::NextAttemptMs.lte(now_ms))
        .filter(webhook_delivery::Column::LeaseUntilMs.lt(now_ms))
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
}

/// What an attempt did to its delivery.
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    /// [`PENDING`] (retry due at `next_attempt_ms`), [`SUCCEEDED`] or [`FAILED`].
    pub status: &'static str,
    /// Attempts made so far.
    pub attempts: i32,
    /// When the next attempt is due.
    pub next_attempt_ms: i64,
    /// The attempt's status code.
    pub last_status: Option<i32>,
    /// The attempt's error.
    pub last_error: Option<String>,
    /// When the delivery ended, if it did.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Records an attempt's outcome if the claim `token` still holds the delivery; `false` (and
/// nothing written) when it does not.
pub async fn update_delivery(
    conn: &impl ConnectionTrait,
    delivery_id: &str,
    token: &str,
    update: DeliveryUpdate,
) -> Result<bool, DbErr> {
    let result = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(update.status))
        .col_expr(
            webhook_delivery::Column::Attempts,
            Expr::value(update.attempts),
        )
        .col_expr(
            webhook_delivery::Column::NextAttemptMs,
            Expr::value(update.next_attempt_ms),
        )
        .col_expr(
            webhook_delivery::Column::LastStatus,
            Expr::value(update.last_status),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(update.last_error),
        )
        .col_expr(
            webhook_delivery::Column::FinishedAt,
            Expr::value(update.finished_at),
        )
        .col_expr(
            webhook_delivery::Column::LeaseOwner,
            Expr::value(None::<String>),
        )
        .col_expr(webhook_delivery::Column::LeaseUntilMs, Expr::value(0i64))
        .filter(webhook_delivery::Column::DeliveryId.eq(delivery_id))
        .filter(webhook_delivery::Column::LeaseOwner.eq(token))
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Stores one attempt.
pub async fn insert_attempt(
    conn: &impl ConnectionTrait,
    row: webhook_attempt::ActiveModel,
) -> Result<(), DbErr> {
    webhook_attempt::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A delivery's attempts, in order.
pub async fn attempts(
    conn: &impl ConnectionTrait,
    delivery_id: &str,
) -> Result<Vec<webhook_attempt::Model>, DbErr> {
    webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.eq(delivery_id))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(conn)
        .await
}

/// A tenant's deliveries, newest first, optionally of one status.
pub async fn list_deliveries(
    conn: &impl ConnectionTrait,
    tenant: &str,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    let mut query =
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::Tenant.eq(tenant));
    if let Some(status) = status {
        query = query.filter(webhook_delivery::Column::Status.eq(status));
    }
    query
        .order_by_desc(webhook_delivery::Column::CreatedAt)
        .order_by_desc(webhook_delivery::Column::DeliveryId)
        .limit(limit)
        .all(conn)
        .await
}

/// A tenant's delivery by id.
pub async fn get_delivery(
    conn: &impl ConnectionTrait,
    tenant: &str,
    delivery_id: &str,
) -> Result<Option<webhook_delivery::Model>, DbErr> {
    webhook_delivery::Entity::find_by_id(delivery_id.to_owned())
        .filter(webhook_delivery::Column::Tenant.eq(tenant))
        .one(conn)
        .await
}

/// Queues a delivery again from its first attempt, with the same id and body bytes; `false`
/// when the tenant has no such delivery or it is pending already.
pub async fn replay(
    conn: &impl ConnectionTrait,
    tenant: &str,
    delivery_id: &str,
    now_ms: i64,
) -> Result<bool, DbErr> {
    let result = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(PENDING))
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(0))
        .col_expr(webhook_delivery::Column::NextAttemptMs, Expr::value(now_ms))
        .col_expr(
            webhook_delivery::Column::LeaseOwner,
            Expr::value(None::<String>),
        )
        .col_expr(webhook_delivery::Column::LeaseUntilMs, Expr::value(0i64))
        .col_expr(
            webhook_delivery::Column::FinishedAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(webhook_delivery::Column::Tenant.eq(tenant))
        .filter(webhook_delivery::Column::DeliveryId.eq(delivery_id))
        .filter(webhook_delivery::Column::Status.ne(PENDING))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// How many deliveries have a status.
pub async fn count_deliveries(conn: &impl ConnectionTrait, status: &str) -> Result<u64, DbErr> {
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(status))
        .count(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, testing};

    fn delivery(id: &str, tenant: &str, due_ms: i64) -> webhook_delivery::Model {
        webhook_delivery::Model {
            delivery_id: id.into(),
            tenant: tenant.into(),
            endpoint_id: None,
            url: "https://example.com/hook".into(),
            event: "analysis.complete".into(),
            request_id: None,
            reference_id: None,
            batch_id: None,
            body: "{}".into(),
            status: PENDING.into(),
            attempts: 0,
            next_attempt_ms: due_ms,
            lease_owner: None,
            lease_until_ms: 0,
            last_status: None,
            last_error: None,
            created_at: Utc::now(),
            finished_at: None,
        }
    }

    #[tokio::test]
    async fn claims_leave_out_the_tenants_named_and_due_tenants_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let conn = db.conn();
            // busy's deliveries fell due first; quiet's and later's after them.
            let mut rows: Vec<_> = (0..5)
                .map(|i| delivery(&format!("msg_b{i}"), "busy", 10 + i))
                .collect();
            rows.push(delivery("msg_q0", "quiet", 100));
            rows.push(delivery("msg_l0", "later", 5_000));
            insert_deliveries(conn, rows).await.unwrap();
            let mut due = due_tenants(conn, 1_000, 10).await.unwrap();
            due.sort();
            assert_eq!(due, ["busy", "quiet"], "{label}");
            let skip = ["busy".to_owned()];
            let claimed = claim_deliveries(conn, "t1", 1_000, 9_000, 3, &skip)
                .await
                .unwrap();
            let ids: Vec<_> = claimed.iter().map(|d| d.delivery_id.as_str()).collect();
            assert_eq!(ids, ["msg_q0"], "{label}");
            let claimed = claim_deliveries(conn, "t2", 1_000, 9_000, 2, &[])
                .await
                .unwrap();
            assert_eq!(claimed.len(), 2, "{label}");
            assert!(claimed.iter().all(|d| d.tenant == "busy"), "{label}");
            let skip = ["busy".to_owned(), "quiet".to_owned()];
            let claimed = claim_deliveries(conn, "t3", 1_000, 9_000, 5, &skip)
                .await
                .unwrap();
            assert!(claimed.is_empty(), "{label}: later is not due yet");
            conn.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
