//! Requests counted per tenant and rate window (`rate_counters`), taken one at a time against
//! the windows' limits in one write transaction, so a plan's limits hold across replicas sharing
//! the database.

use crate::Db;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// One window a request is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its kind (`minute`, `day`): windows of one kind follow each other.
    pub kind: &'static str,
    /// When it started, in unix seconds.
    pub start: i64,
    /// The requests it allows.
    pub limit: u64,
}

/// What [`take`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The request was counted in every window; the new counts, in the windows' order.
    Counted(Vec<u64>),
    /// The window at this index (the first, in the windows' order, that was full) refused it;
    /// nothing was counted.
    Refused(usize),
}

/// `$n` placeholders for PostgreSQL, `?n` for SQLite.
fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    }
}

/// Counts one request of `tenant` in each of `windows` if every one of them has room, in one
/// write transaction: a window at its limit rolls back what was counted before it. A window
/// started afresh deletes the tenant's earlier windows of its kind (once per window: bounded).
pub async fn take(db: &Db, tenant: &str, windows: &[Window]) -> Result<Taken, DbErr> {
    if let Some(full) = windows.iter().position(|window| window.limit == 0) {
        return Ok(Taken::Refused(full));
    }
    let backend = db.backend();
    let upsert = placeholders(
        backend,
        "INSERT INTO rate_counters (tenant, window_kind, window_start, count) \
         VALUES ($1, $2, $3, 1) \
         ON CONFLICT (tenant, window_kind, window_start) \
         DO UPDATE SET count = rate_counters.count + 1 \
         WHERE rate_counters.count < $4 RETURNING count",
    );
    let sweep = placeholders(
        backend,
        "DELETE FROM rate_counters WHERE tenant = $1 AND window_kind = $2 AND window_start < $3",
    );
    let txn = db.begin_write().await?;
    let mut counts = Vec::with_capacity(windows.len());
    for (index, window) in windows.iter().enumerate() {
        let limit = i64::try_from(window.limit).unwrap_or(i64::MAX);
        let statement = Statement::from_sql_and_values(
            backend,
            &upsert,
            [
                tenant.into(),
                window.kind.into(),
                window.start.into(),
                limit.into(),
            ],
        );
        let Some(row) = txn.query_one_raw(statement).await? else {
            txn.rollback().await?;
            return Ok(Taken::Refused(index));
        };
        let count: i64 = row.try_get_by_index(0)?;
        if count == 1 {
            let statement = Statement::from_sql_and_values(
                backend,
                &sweep,
                [tenant.into(), window.kind.into(), window.start.into()],
            );
            txn.execute_raw(statement).await?;
        }
        counts.push(u64::try_from(count).unwrap_or_default());
    }
    txn.commit().await?;
    Ok(Taken::Counted(counts))
}

/// The requests of `tenant` counted in `window` so far.
pub async fn counted(
    conn: &impl ConnectionTrait,
    tenant: &str,
    window: &Window,
) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let sql = placeholders(
        backend,
        "SELECT count FROM rate_counters \
         WHERE tenant = $1 AND window_kind = $2 AND window_start = $3",
    );
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [tenant.into(), window.kind.into(), window.start.into()],
    );
    let count: i64 = match conn.query_one_raw(statement).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test_targets;

    fn windows(minute: i64, per_minute: u64, day: i64, per_day: u64) -> [Window; 2] {
        [
            Window {
                kind: "day",
                start: day,
                limit: per_day,
            },
            Window {
                kind: "minute",
                start: minute,
                limit: per_minute,
            },
        ]
    }

    async fn rows(db: &Db) -> i64 {
        let row = db
            .conn()
            .query_one_raw(Statement::from_string(
                db.backend(),
                "SELECT COUNT(*) FROM rate_counters",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    }

    #[tokio::test]
    async fn a_full_window_refuses_without_counting_and_a_new_one_sweeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let w = windows(60, 2, 0, 3);
            assert_eq!(
                take(&db, "acme", &w).await.unwrap(),
                Taken::Counted(vec![1, 1])
            );
            assert_eq!(
                take(&db, "acme", &w).await.unwrap(),
                Taken::Counted(vec![2, 2])
            );
            // The minute is full: the day's count is rolled back with it.
            assert_eq!(take(&db, "acme", &w).await.unwrap(), Taken::Refused(1));
            assert_eq!(
                counted(db.conn(), "acme", &w[0]).await.unwrap(),
                2,
                "{label}"
            );
            // Another tenant counts apart.
            assert_eq!(
                take(&db, "globex", &w).await.unwrap(),
                Taken::Counted(vec![1, 1])
            );
            // The next minute: the day has one left, then it is spent.
            let w = windows(120, 2, 0, 3);
            assert_eq!(
                take(&db, "acme", &w).await.unwrap(),
                Taken::Counted(vec![3, 1])
            );
            assert_eq!(take(&db, "acme", &w).await.unwrap(), Taken::Refused(0));
            assert_eq!(
                counted(db.conn(), "acme", &w[1]).await.unwrap(),
                1,
                "{label}"
            );
            // acme's minute 60 was swept when minute 120 began; globex keeps its own.
            assert_eq!(rows(&db).await, 4, "{label}");
            // A limit of 0 refuses at once.
            assert_eq!(
                take(&db, "acme", &windows(180, 0, 0, 10)).await.unwrap(),
                Taken::Refused(1)
            );
            db.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
