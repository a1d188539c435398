//! The durable job queue and batches.
//!
//! Workers claim queued jobs under a lease: on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so
//! replicas never take the same job; on SQLite in one statement under its single writer. A job's
//! result is written only by the claim that still holds its lease ([`finish`]), inside the
//! caller's transaction, so a worker that lost its lease writes nothing.

use crate::entity::{batch, job, job_image};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use std::collections::HashSet;

/// A queued job.
pub const QUEUED: &str = "queued";
/// A job whose image was analysed.
pub const COMPLETE: &str = "complete";
/// A job whose image could not be analysed.
pub const FAILED: &str = "failed";
/// A job gathered by a collector, not yet part of a batch (not claimable).
pub const COLLECTING: &str = "collecting";
/// A batch with images still to finish.
pub const BATCH_PROCESSING: &str = "PROCESSING";
/// A batch whose every image finished.
pub const BATCH_COMPLETE: &str = "COMPLETE";

/// The SQL of a claim: `$n` placeholders for PostgreSQL, `?n` for SQLite; `FOR UPDATE SKIP
/// LOCKED` only where it exists.
pub(crate) fn claim_statement(
    backend: DbBackend,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => sql.replace("{lock}", "FOR UPDATE SKIP LOCKED"),
        _ => sql.replace("{lock}", "").replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Inserts a batch row (inside the caller's transaction).
pub async fn insert_batch(conn: &impl ConnectionTrait, row: batch::Model) -> Result<(), DbErr> {
    batch::Entity::insert(batch::ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Inserts jobs and their images (inside the caller's transaction), in chunks the databases
/// accept.
pub async fn insert_jobs(conn: &impl ConnectionTrait, rows: Vec<job::Model>) -> Result<(), DbErr> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut chunk: Vec<_> = rows.by_ref().take(100).collect();
        let images: Vec<_> = chunk
            .iter_mut()
            .map(|row| job_image::ActiveModel {
                request_id: Set(row.request_id.clone()),
                source: Set(std::mem::take(&mut row.source)),
                image: Set(row.image.take()),
            })
            .collect();
        job::Entity::insert_many(chunk.into_iter().map(job::ActiveModel::from))
            .exec_without_returning(conn)
            .await?;
        job_image::Entity::insert_many(images)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Claims up to `limit` queued jobs whose lease is free or expired, for `token` until
/// `lease_until_ms`, shared between tenants: the tenants with claimable jobs, oldest first, each
/// get an equal part of `limit` (their oldest jobs), and what they leave goes to the oldest jobs
/// of any tenant. So one tenant's large batch does not hold up another's few images. The jobs
/// come without their images (`source` is empty): a worker reads each one with [`source`] when
/// it starts on it, so it holds only the images it is analysing.
///
/// A job's `attempts` counts its failures: one left by [`release_failed`], and one whose lease
/// expired while it was held (its holder, renewing its leases with [`renew`] as long as it
/// lives, died or stalled). Claiming alone counts nothing.
pub async fn claim(
    conn: &impl ConnectionTrait,
    token: &str,
    now_ms: i64,
    lease_until_ms: i64,
    limit: u32,
) -> Result<Vec<job::Model>, DbErr> {
    let backend = conn.get_database_backend();
    let tenants: Vec<String> = conn
        .query_all_raw(claim_statement(
            backend,
            "SELECT tenant FROM jobs WHERE status = 'queued' AND lease_until_ms < $1 \
             GROUP BY tenant ORDER BY MIN(created_at), tenant LIMIT $2",
            vec![now_ms.into(), i64::from(limit).into()],
        ))
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    let mut claimed = Vec::new();
    if tenants.len() > 1 {
        let share = limit.div_ceil(u32::try_from(tenants.len()).unwrap_or(u32::MAX));
        for tenant in &tenants {
            let left = limit.saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
            if left == 0 {
                break;
            }
            let take = Ord::min(share, left);
            claimed
                .extend(claim_some(conn, token, now_ms, lease_until_ms, take, Some(tenant)).await?);
        }
    }
    let left = limit.saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
    if left > 0 {
        claimed.extend(claim_some(conn, token, now_ms, lease_until_ms, left, None).await?);
    }
    Ok(claimed)
}

/// Claims up to `limit` of the oldest claimable jobs, of one tenant or of any.
async fn claim_some(
    conn: &impl ConnectionTrait,
    token: &str,
    now_ms: i64,
    lease_until_ms: i64,
    limit: u32,
    tenant: Option<&str>,
) -> Result<Vec<job::Model>, DbErr> {
    let of_tenant = if tenant.is_some() {
        "AND tenant = $5 "
    } else {
        ""
    };
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_until_ms = $2, \
         attempts = attempts + CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END \
         WHERE request_id IN (SELECT request_id FROM jobs WHERE status = 'queued' \
         AND lease_until_ms < $3 {of_tenant}ORDER BY created_at, position LIMIT $4 {{lock}}) \
         RETURNING *"
    );
    let mut values: Vec<sea_orm::Value> = vec![
        token.into(),
        lease_until_ms.into(),
        now_ms.into(),
        i64::from(limit).into(),
    ];
    values.extend(tenant.map(Into::into));
    let statement = claim_statement(conn.get_database_backend(), &sql, values);
    job::Entity::find().from_raw_sql(statement).all(conn).await
}

/// Extends the lease of every queued job the claim `token` still holds to `lease_until_ms`;
/// returns how many it holds (0: none is left to renew, ever).
pub async fn renew(
    conn: &impl ConnectionTrait,
    token: &str,
    lease_until_ms: i64,
) -> Result<u64, DbErr> {
    let result = job::Entity::update_many()
        .col_expr(job::Column::LeaseUntilMs, Expr::value(lease_until_ms))
        .filter(job::Column::LeaseOwner.eq(token))
        .filter(job::Column::Status.eq(QUEUED))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Frees the queued jobs the claims `tokens` hold, at once and without counting an attempt
/// (a replica stopping gives back what it claimed and did not start); returns how many.
pub async fn hand_back(conn: &impl ConnectionTrait, tokens: &[String]) -> Result<u64, DbErr> {
    let result = job::Entity::update_many()
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(job::Column::LeaseUntilMs, Expr::value(0i64))
        .filter(job::Column::LeaseOwner.is_in(tokens.iter().map(String::as_str)))
        .filter(job::Column::Status.eq(QUEUED))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Gives a job back after a passing failure (the database, a detector or vendor that failed):
/// one more attempt counted, claimable again from `retry_at_ms`. `false` when the claim `token`
/// no longer holds it.
pub async fn release_failed(
    conn: &impl ConnectionTrait,
    token: &str,
    request_id: &str,
    retry_at_ms: i64,
) -> Result<bool, DbErr> {
    let result = job::Entity::update_many()
        .col_expr(
            job::Column::Attempts,
            Expr::col(job::Column::Attempts).add(1),
        )
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(job::Column::LeaseUntilMs, Expr::value(retry_at_ms))
        .filter(job::Column::RequestId.eq(request_id))
        .filter(job::Column::LeaseOwner.eq(token))
        .filter(job::Column::Status.eq(QUEUED))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The image of a job still to be analysed (`job_images`: its source, and its bytes when
/// stored); `None` once it has ended.
pub async fn source(
    conn: &impl ConnectionTrait,
    request_id: &str,
) -> Result<Option<job_image::Model>, DbErr> {
    job_image::Entity::find_by_id(request_id.to_owned())
        .one(conn)
        .await
}

/// How a job ended.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// [`COMPLETE`] or [`FAILED`].
    pub status: &'static str,
    /// The verdict's label, when complete.
    pub verdict_label: Option<String>,
    /// The result as batch status shows it, as JSON.
    pub result: Option<String>,
    /// The error code, when failed.
    pub error_code: Option<String>,
    /// The error message, when failed.
    pub error_message: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A job column's value in a [`JobEnd`].
type ColumnValue = fn(&JobEnd) -> sea_orm::Value;

/// Ends the jobs that the claim `token` still holds, in one statement, and deletes their images;
/// returns the ids it ended. A job whose lease was lost is left as it is. Call first in the
/// transaction that writes the jobs' results: on PostgreSQL it locks their rows, so a concurrent
/// claim waits for the outcome.
pub async fn finish(
    conn: &impl ConnectionTrait,
    token: &str,
    ends: &[(&str, JobEnd)],
) -> Result<HashSet<String>, DbErr> {
    if ends.is_empty() {
        return Ok(HashSet::new());
    }
    // Each column takes its job's value: CASE request_id WHEN ... THEN ... END.
    let columns: [(job::Column, ColumnValue); 6] = [
        (job::Column::Status, |end| end.status.into()),
        (job::Column::VerdictLabel, |end| {
            end.verdict_label.clone().into()
        }),
        (job::Column::Result, |end| end.result.clone().into()),
        (job::Column::ErrorCode, |end| end.error_code.clone().into()),
        (job::Column::ErrorMessage, |end| {
            end.error_message.clone().into()
        }),
        (job::Column::FinishedAt, |end| Some(end.at).into()),
    ];
    let mut update = job::Entity::update_many();
    for (column, value) in columns {
        let mut case = CaseStatement::new();
        for (id, end) in ends {
            case = case.case(job::Column::RequestId.eq(*id), Expr::val(value(end)));
        }
        update = update.col_expr(column, case.into());
    }
    let ids = ends.iter().map(|(id, _)| *id);
    let ended = update
        .col_expr(job::Column::LeaseUntilMs, Expr::value(0i64))
        .filter(job::Column::RequestId.is_in(ids))
        .filter(job::Column::LeaseOwner.eq(token))
        .filter(job::Column::Status.eq(QUEUED))
        .exec_with_returning(conn)
        .await?;
    let ended: HashSet<String> = ended.into_iter().map(|job| job.request_id).collect();
    // An image is not needed once its result is recorded (the request row and the audit entry
    // keep its SHA-256).
    if !ended.is_empty() {
        job_image::Entity::delete_many()
            .filter(job_image::Column::RequestId.is_in(ended.iter().map(String::as_str)))
            .exec(conn)
            .await?;
    }
    Ok(ended)
}

/// Counts finished images of a batch (analysed and failed) and returns the batch as it now
/// stands (inside the caller's transaction; on PostgreSQL the row stays locked until it ends).
pub async fn count_in_batch(
    conn: &impl ConnectionTrait,
    batch_id: &str,
    completed: i32,
    failed: i32,
) -> Result<Option<batch::Model>, DbErr> {
    batch::Entity::update_many()
        .col_expr(
            batch::Column::Completed,
            Expr::col(batch::Column::Completed).add(completed),
        )
        .col_expr(
            batch::Column::Failed,
            Expr::col(batch::Column::Failed).add(failed),
        )
        .filter(batch::Column::BatchId.eq(batch_id))
        .exec(conn)
        .await?;
    find_batch(conn, batch_id).await
}

/// Marks a batch complete; `false` when it already was.
pub async fn complete_batch(
    conn: &impl ConnectionTrait,
    batch_id: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = batch::Entity::update_many()
        .col_expr(batch::Column::Status, Expr::value(BATCH_COMPLETE))
        .col_expr(batch::Column::CompletedAt, Expr::value(Some(at)))
        .filter(batch::Column::BatchId.eq(batch_id))
        .filter(batch::Column::Status.eq(BATCH_PROCESSING))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The verdict labels of a batch's completed images.
pub async fn batch_labels(
    conn: &impl ConnectionTrait,
    batch_id: &str,
) -> Result<Vec<Option<String>>, DbErr> {
    job::Entity::find()
        .select_only()
        .column(job::Column::VerdictLabel)
        .filter(job::Column::BatchId.eq(batch_id))
        .filter(job::Column::Status.eq(COMPLETE))
        .into_tuple()
        .all(conn)
        .await
}

/// A tenant's batch; another tenant's is not found.
pub async fn get_batch(
    conn: &impl ConnectionTrait,
    tenant: &str,
    batch_id: &str,
) -> Result<Option<batch::Model>, DbErr> {
    batch::Entity::find_by_id(batch_id.to_owned())
        .filter(batch::Column::Tenant.eq(tenant))
        .one(conn)
        .await
}

/// A batch by its id, whatever its tenant.
pub async fn find_batch(
    conn: &impl ConnectionTrait,
    batch_id: &str,
) -> Result<Option<batch::Model>, DbErr> {
    batch::Entity::find_by_id(batch_id.to_owned())
        .one(conn)
        .await
}

/// Up to `limit` of a batch's finished jobs after position `after`, in submission order.
pub async fn finished_in_batch(
    conn: &impl ConnectionTrait,
    batch_id: &str,
    after: i32,
    limit: u64,
) -> Result<Vec<job::Model>, DbErr> {
    job::Entity::find()
        .filter(job::Column::BatchId.eq(batch_id))
        .filter(job::Column::Position.gt(after))
        .filter(job::Column::Status.ne(QUEUED))
        .order_by_asc(job::Column::Position)
        .limit(limit)
        .all(conn)
        .await
}

/// A tenant's job by its request id.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_id: &str,
) -> Result<Option<job::Model>, DbErr> {
    job::Entity::find_by_id(request_id.to_owned())
        .filter(job::Column::Tenant.eq(tenant))
        .one(conn)
        .await
}

/// How many jobs are still queued.
pub async fn queued_count(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    job::Entity::find()
        .filter(job::Column::Status.eq(QUEUED))
        .count(conn)
        .await
}

/// A job row as it is first written.
pub fn new_job(
    request_id: String,
    tenant: String,
    source: String,
    options: String,
    created_at: DateTime<Utc>,
) -> job::Model {
    job::Model {
        request_id,
        tenant,
        batch_id: None,
        position: 0,
        reference_id: None,
        source,
        image: None,
        options,
        flow: None,
        facts: None,
        webhook_url: None,
        status: QUEUED.to_owned(),
        attempts: 0,
        lease_owner: None,
        lease_until_ms: 0,
        verdict_label: None,
        result: None,
        error_code: None,
        error_message: None,
        created_at,
        finished_at: None,
    }
}

/// How many jobs of a flow a tenant's collector holds.
pub async fn collecting(
    conn: &impl ConnectionTrait,
    tenant: &str,
    flow: &str,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    job::Entity::find()
        .filter(job::Column::Tenant.eq(tenant))
        .filter(job::Column::Flow.eq(flow))
        .filter(job::Column::Status.eq(COLLECTING))
        .count(conn)
        .await
}

/// The tenants whose collector for a flow holds a job that arrived before `before`.
pub async fn collecting_due(
    conn: &impl ConnectionTrait,
    flow: &str,
    before: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    job::Entity::find()
        .select_only()
        .column(job::Column::Tenant)
        .distinct()
        .filter(job::Column::Flow.eq(flow))
        .filter(job::Column::Status.eq(COLLECTING))
        .filter(job::Column::CreatedAt.lt(before))
        .into_tuple()
        .all(conn)
        .await
}

/// Moves up to `limit` of a tenant's collected jobs of a flow, oldest first, into a batch and
/// queues them. Returns how many moved; the caller writes the batch row.
pub async fn seal(
    conn: &impl ConnectionTrait,
    tenant: &str,
    flow: &str,
    batch_id: &str,
    limit: u64,
) -> Result<u64, DbErr> {
    let sql = "UPDATE jobs SET status = 'queued', batch_id = $1 \
         WHERE request_id IN (SELECT request_id FROM jobs WHERE tenant = $2 AND flow = $3 \
         AND status = 'collecting' ORDER BY created_at, request_id LIMIT $4 {lock})";
    let statement = claim_statement(
        conn.get_database_backend(),
        sql,
        vec![
            batch_id.into(),
            tenant.into(),
            flow.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    );
    Ok(conn.execute_raw(statement).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, testing};

    fn job(id: &str, at: DateTime<Utc>) -> job::Model {
        new_job(id.into(), "acme".into(), "{}".into(), "{}".into(), at)
    }

    fn end(at: DateTime<Utc>) -> JobEnd {
        JobEnd {
            status: COMPLETE,
            verdict_label: Some("AUTHENTIC".into()),
            result: None,
            error_code: None,
            error_message: None,
            at,
        }
    }

    #[tokio::test]
    async fn a_claim_is_shared_between_tenants_not_first_come_first_served() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let conn = db.conn();
            let early = Utc::now() - chrono::Duration::minutes(5);
            // A large batch first, then a few images of two other tenants.
            let mut rows: Vec<_> = (0..50)
                .map(|i| job::Model {
                    tenant: "big".into(),
                    position: i,
                    ..job(&format!("req_big{i:02}"), early)
                })
                .collect();
            let later = Utc::now();
            rows.push(job::Model {
                tenant: "small".into(),
                ..job("req_small1", later)
            });
            rows.push(job::Model {
                tenant: "small".into(),
                position: 1,
                ..job("req_small2", later)
            });
            rows.push(job::Model {
                tenant: "third".into(),
                ..job("req_third", later)
            });
            insert_jobs(conn, rows).await.unwrap();
            let claimed = claim(conn, "t1", 1_000, 2_000, 9).await.unwrap();
            let count = |tenant: &str| claimed.iter().filter(|j| j.tenant == tenant).count();
            assert_eq!(claimed.len(), 9, "{label}");
            assert_eq!(
                (count("small"), count("third")),
                (2, 1),
                "{label}: not behind big"
            );
            assert_eq!(count("big"), 6, "{label}: big gets the rest, oldest first");
            let mut big: Vec<_> = claimed
                .iter()
                .filter(|j| j.tenant == "big")
                .map(|j| j.request_id.as_str())
                .collect();
            big.sort_unstable();
            assert_eq!(
                big,
                [
                    "req_big00",
                    "req_big01",
                    "req_big02",
                    "req_big03",
                    "req_big04",
                    "req_big05"
                ],
                "{label}"
            );
            // With only one tenant left, it gets the whole claim.
            let next = claim(conn, "t2", 1_000, 2_000, 9).await.unwrap();
            assert_eq!(next.len(), 9, "{label}");
            assert!(next.iter().all(|j| j.tenant == "big"), "{label}");
            conn.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_renewed_lease_is_not_taken_and_only_real_failures_count() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let conn = db.conn();
            let now = Utc::now();
            insert_jobs(conn, vec![job("req_a", now), job("req_b", now)])
                .await
                .unwrap();
            let held = claim(conn, "t1", 1_000, 2_000, 5).await.unwrap();
            assert_eq!(held.len(), 2, "{label}");
            // The holder renews before its leases end: at 2,500 nobody may take them.
            assert_eq!(renew(conn, "t1", 3_000).await.unwrap(), 2, "{label}");
            assert!(
                claim(conn, "t2", 2_500, 9_000, 5).await.unwrap().is_empty(),
                "{label}"
            );
            // A passing failure gives req_a back, counted, claimable from 4,000.
            assert!(
                release_failed(conn, "t1", "req_a", 4_000).await.unwrap(),
                "{label}"
            );
            assert!(
                !release_failed(conn, "t1", "req_a", 4_000).await.unwrap(),
                "{label}"
            );
            assert_eq!(
                renew(conn, "t1", 5_000).await.unwrap(),
                1,
                "{label}: req_b only"
            );
            assert!(
                claim(conn, "t2", 3_999, 9_000, 5).await.unwrap().is_empty(),
                "{label}"
            );
            let again = claim(conn, "t2", 4_001, 9_000, 5).await.unwrap();
            let ids: Vec<_> = again
                .iter()
                .map(|j| (j.request_id.as_str(), j.attempts))
                .collect();
            assert_eq!(
                ids,
                [("req_a", 1)],
                "{label}: one failure, and no count for the claim"
            );
            // t1 ends req_b by its token; t2 cannot end what it does not hold.
            let ended = finish(conn, "t2", &[("req_b", end(now))]).await.unwrap();
            assert!(ended.is_empty(), "{label}");
            let ended = finish(conn, "t1", &[("req_b", end(now))]).await.unwrap();
            assert_eq!(ended, HashSet::from(["req_b".to_owned()]), "{label}");
            assert_eq!(
                renew(conn, "t1", 9_000).await.unwrap(),
                0,
                "{label}: nothing left to renew"
            );
            conn.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_claim_carries_no_image_and_each_image_is_read_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let conn = db.conn();
            let now = Utc::now();
            let big = |id: &str, fill: char| job::Model {
                source: format!(r#"{{"base64":"{}"}}"#, fill.to_string().repeat(4096)),
                ..job(id, now)
            };
            insert_jobs(conn, vec![big("req_a", 'A'), big("req_b", 'B')])
                .await
                .unwrap();
            let claimed = claim(conn, "t1", 1_000, 2_000, 5).await.unwrap();
            assert_eq!(claimed.len(), 2, "{label}");
            assert!(
                claimed.iter().all(|job| job.source.is_empty()),
                "{label}: a claim holds no image"
            );
            let a = source(conn, "req_a").await.unwrap().unwrap().source;
            assert!(a.starts_with(r#"{"base64":"AAAA"#), "{label}");
            assert_eq!(a.len(), 4096 + 13, "{label}");
            finish(conn, "t1", &[("req_a", end(now))]).await.unwrap();
            assert_eq!(source(conn, "req_a").await.unwrap(), None, "{label}");
            assert!(source(conn, "req_b").await.unwrap().is_some(), "{label}");
            conn.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test]
    async fn claims_are_exclusive_until_the_lease_expires_and_only_the_holder_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let conn = db.conn();
            let now = Utc::now();
            insert_jobs(conn, vec![job("req_a", now), job("req_b", now)])
                .await
                .unwrap();
            let first = claim(conn, "t1", 1_000, 2_000, 1).await.unwrap();
            assert_eq!(first.len(), 1, "{label}");
            assert_eq!(first[0].attempts, 0, "{label}: a claim is not a failure");
            assert_eq!(first[0].source, "", "{label}: claimed without its image");
            let second = claim(conn, "t2", 1_000, 2_000, 5).await.unwrap();
            assert_eq!(second.len(), 1, "{label}: the other job only");
            assert_ne!(first[0].request_id, second[0].request_id, "{label}");
            assert!(
                claim(conn, "t3", 1_500, 2_500, 5).await.unwrap().is_empty(),
                "{label}"
            );
            // t1's lease expires; t3 takes the job; t1 may no longer finish it.
            let retaken = claim(conn, "t3", 2_001, 9_000, 5).await.unwrap();
            assert_eq!(retaken.len(), 2, "{label}");
            assert!(
                retaken.iter().all(|job| job.attempts == 1),
                "{label}: a lease that expired while held counts as a failure"
            );
            let (a, b) = (first[0].request_id.as_str(), second[0].request_id.as_str());
            let ended = finish(conn, "t1", &[(a, end(now))]).await.unwrap();
            assert!(ended.is_empty(), "{label}");
            // t3 ends both in one statement, each with its own outcome.
            let failed = JobEnd {
                status: FAILED,
                verdict_label: None,
                error_code: Some("URL_UNREACHABLE".into()),
                error_message: Some("refused".into()),
                ..end(now)
            };
            let ended = finish(conn, "t3", &[(a, end(now)), (b, failed)])
                .await
                .unwrap();
            assert_eq!(
                ended,
                HashSet::from([a.to_owned(), b.to_owned()]),
                "{label}"
            );
            let ended = finish(conn, "t3", &[(a, end(now))]).await.unwrap();
            assert!(ended.is_empty(), "{label}: already ended");
            let row = |id: &str| job::Entity::find_by_id(id.to_owned()).one(conn);
            let (a_row, b_row) = (
                row(a).await.unwrap().unwrap(),
                row(b).await.unwrap().unwrap(),
            );
            assert_eq!(
                (
                    a_row.status.as_str(),
                    a_row.verdict_label.as_deref(),
                    a_row.error_code
                ),
                (COMPLETE, Some("AUTHENTIC"), None),
                "{label}"
            );
            assert_eq!(
                (
                    b_row.status.as_str(),
                    b_row.verdict_label,
                    b_row.error_message.as_deref()
                ),
                (FAILED, None, Some("refused")),
                "{label}"
            );
            assert_eq!(queued_count(conn).await.unwrap(), 0, "{label}");
            let images = job_image::Entity::find().all(conn).await.unwrap();
            assert!(images.is_empty(), "{label}: ended jobs' images are dropped");
            conn.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
