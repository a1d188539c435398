//! Requests counted per tenant in its current minute and images in its UTC day (`rate_counters`,
//! one row per tenant), taken against the plan's limits by one statement, so the limits hold
//! across replicas sharing the database.

use crate::Db;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// A request's windows and the plan's limits on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// The start of the request's minute, in unix seconds.
    pub minute_start: i64,
    /// The requests a minute allows.
    pub per_minute: u64,
    /// The start of the request's day, in unix seconds.
    pub day_start: i64,
    /// The requests a day allows.
    pub per_day: u64,
}

/// The requests counted in a tenant's current minute and day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// In the minute.
    pub minute: u64,
    /// In the day.
    pub day: u64,
}

/// What [`take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The request was counted; the counts with it.
    Counted(Counts),
    /// The minute or the day was full: nothing was counted. The counts as they stood.
    Refused(Counts),
}

/// `$n` placeholders for PostgreSQL, `?n` for SQLite.
fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    }
}

/// Counts one request of `tenant` if both its minute and its day have room, in one statement
/// (a conditional upsert of the tenant's row). A later window replaces the row's earlier one and
/// starts at 1; a request from a window older than the row's (a replica whose clock is behind)
/// is counted in the row's window.
pub async fn take(db: &Db, tenant: &str, windows: &Windows) -> Result<Taken, DbErr> {
    take_many(db, tenant, windows, 1, 1).await
}

/// Counts `minute` in the minute and `day` in the day of `tenant` if both have room for them,
/// in one statement; otherwise nothing is counted. A request is 1 and 1; a batch of N images,
/// whose request was counted in its minute already, is 0 and N.
pub async fn take_many(
    db: &Db,
    tenant: &str,
    windows: &Windows,
    minute: u64,
    day: u64,
) -> Result<Taken, DbErr> {
    if minute > windows.per_minute || day > windows.per_day {
        return Ok(Taken::Refused(counted(db.conn(), tenant, windows).await?));
    }
    let backend = db.backend();
    let sql = placeholders(
        backend,
        "INSERT INTO rate_counters (tenant, minute_start, minute_count, day_start, day_count) \
         VALUES ($1, $2, $6, $3, $7) \
         ON CONFLICT (tenant) DO UPDATE SET \
         minute_count = CASE WHEN excluded.minute_start > rate_counters.minute_start \
           THEN excluded.minute_count ELSE rate_counters.minute_count + excluded.minute_count END, \
         minute_start = CASE WHEN excluded.minute_start > rate_counters.minute_start \
           THEN excluded.minute_start ELSE rate_counters.minute_start END, \
         day_count = CASE WHEN excluded.day_start > rate_counters.day_start \
           THEN excluded.day_count ELSE rate_counters.day_count + excluded.day_count END, \
         day_start = CASE WHEN excluded.day_start > rate_counters.day_start \
           THEN excluded.day_start ELSE rate_counters.day_start END \
         WHERE (excluded.minute_start > rate_counters.minute_start \
                OR rate_counters.minute_count + excluded.minute_count <= $4) \
           AND (excluded.day_start > rate_counters.day_start \
                OR rate_counters.day_count + excluded.day_count <= $5) \
         RETURNING minute_count, day_count",
    );
    let limit = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [
            tenant.into(),
            windows.minute_start.into(),
            windows.day_start.into(),
            limit(windows.per_minute).into(),
            limit(windows.per_day).into(),
            limit(minute).into(),
            limit(day).into(),
        ],
    );
    match db.writer().query_one_raw(statement).await? {
        Some(row) => {
            let (minute, day): (i64, i64) = row.try_get_many_by_index()?;
            Ok(Taken::Counted(Counts {
                minute: u64::try_from(minute).unwrap_or_default(),
                day: u64::try_from(day).unwrap_or_default(),
            }))
        }
        None => Ok(Taken::Refused(counted(db.conn(), tenant, windows).await?)),
    }
}

/// Takes back `day` counted in `tenant`'s day of `windows` by [`take_many`] for work that was then
/// not accepted (never below 0; nothing when the day has passed).
pub async fn give_back(db: &Db, tenant: &str, windows: &Windows, day: u64) -> Result<(), DbErr> {
    let backend = db.backend();
    let sql = placeholders(
        backend,
        "UPDATE rate_counters SET day_count = CASE WHEN day_count > $3 THEN day_count - $3 \
         ELSE 0 END WHERE tenant = $1 AND day_start = $2",
    );
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [
            tenant.into(),
            windows.day_start.into(),
            i64::try_from(day).unwrap_or(i64::MAX).into(),
        ],
    );
    db.writer().execute_raw(statement).await.map(drop)
}

/// The requests of `tenant` counted in the minute and the day of `windows` so far.
pub async fn counted(
    conn: &impl ConnectionTrait,
    tenant: &str,
    windows: &Windows,
) -> Result<Counts, DbErr> {
    let backend = conn.get_database_backend();
    let sql = placeholders(
        backend,
        "SELECT CASE WHEN minute_start >= $2 THEN minute_count ELSE 0 END, \
         CASE WHEN day_start >= $3 THEN day_count ELSE 0 END \
         FROM rate_counters WHERE tenant = $1",
    );
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [
            tenant.into(),
            windows.minute_start.into(),
            windows.day_start.into(),
        ],
    );
    let Some(row) = conn.query_one_raw(statement).await? else {
        return Ok(Counts::default());
    };
    let (minute, day): (i64, i64) = row.try_get_many_by_index()?;
    Ok(Counts {
        minute: u64::try_from(minute).unwrap_or_default(),
        day: u64::try_from(day).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test_targets;

    fn windows(minute_start: i64, per_minute: u64, per_day: u64) -> Windows {
        Windows {
            minute_start,
            per_minute,
            day_start: 0,
            per_day,
        }
    }

    fn counts(minute: u64, day: u64) -> Counts {
        Counts { minute, day }
    }

    #[tokio::test]
    async fn many_are_taken_at_once_or_none_and_can_be_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let w = windows(60, 3, 10);
            // A request (1, 1), then a batch of 6 images counted in the day only.
            assert_eq!(
                take(&db, "acme", &w).await.unwrap(),
                Taken::Counted(counts(1, 1))
            );
            assert_eq!(
                take_many(&db, "acme", &w, 0, 6).await.unwrap(),
                Taken::Counted(counts(1, 7)),
                "{label}"
            );
            // 4 do not fit in the 3 left: nothing is counted; 3 do.
            assert_eq!(
                take_many(&db, "acme", &w, 0, 4).await.unwrap(),
                Taken::Refused(counts(1, 7)),
                "{label}"
            );
            assert_eq!(
                take_many(&db, "acme", &w, 0, 3).await.unwrap(),
                Taken::Counted(counts(1, 10))
            );
            give_back(&db, "acme", &w, 3).await.unwrap();
            assert_eq!(counted(db.conn(), "acme", &w).await.unwrap(), counts(1, 7));
            // More than a whole day's quota is refused before the database is asked, also for
            // a tenant never seen (whose first row would otherwise take it all).
            assert_eq!(
                take_many(&db, "globex", &w, 0, 11).await.unwrap(),
                Taken::Refused(Counts::default()),
                "{label}"
            );
            // A new day starts at the batch's size.
            let next = Windows {
                day_start: 86_400,
                ..windows(86_400, 3, 10)
            };
            assert_eq!(
                take_many(&db, "acme", &next, 0, 5).await.unwrap(),
                Taken::Counted(counts(0, 5)),
                "{label}"
            );
            // Giving back never goes below 0.
            give_back(&db, "acme", &next, 50).await.unwrap();
            assert_eq!(
                counted(db.conn(), "acme", &next).await.unwrap(),
                counts(0, 0)
            );
            db.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_full_window_refuses_without_counting_and_a_new_one_starts_at_one() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let take =
                async |tenant: &str, windows: Windows| take(&db, tenant, &windows).await.unwrap();
            let w = windows(60, 2, 3);
            assert_eq!(take("acme", w).await, Taken::Counted(counts(1, 1)));
            assert_eq!(take("acme", w).await, Taken::Counted(counts(2, 2)));
            // The minute is full: nothing is counted.
            assert_eq!(
                take("acme", w).await,
                Taken::Refused(counts(2, 2)),
                "{label}"
            );
            // Another tenant counts apart.
            assert_eq!(take("globex", w).await, Taken::Counted(counts(1, 1)));
            // The next minute starts at 1; the day has one left, then it is spent.
            let w = windows(120, 2, 3);
            assert_eq!(take("acme", w).await, Taken::Counted(counts(1, 3)));
            assert_eq!(
                take("acme", w).await,
                Taken::Refused(counts(1, 3)),
                "{label}"
            );
            // A replica whose clock is still in the minute before counts in the row's minute.
            assert_eq!(
                take("globex", windows(120, 2, 3)).await,
                Taken::Counted(counts(1, 2))
            );
            assert_eq!(
                take("globex", windows(60, 2, 3)).await,
                Taken::Counted(counts(2, 3))
            );
            assert_eq!(
                take("globex", windows(60, 5, 5)).await,
                Taken::Counted(counts(3, 4))
            );
            // A limit of 0 refuses at once; a tenant never seen has counted nothing.
            assert_eq!(
                take("initech", windows(180, 0, 10)).await,
                Taken::Refused(Counts::default())
            );
            // One row per tenant, whatever the windows seen.
            let rows = db
                .conn()
                .query_one_raw(Statement::from_string(
                    db.backend(),
                    "SELECT COUNT(*) FROM rate_counters",
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rows.try_get_by_index::<i64>(0).unwrap(), 2, "{label}");
            db.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
