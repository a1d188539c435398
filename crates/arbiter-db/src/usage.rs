//! Each vendor's analyses per calendar month (`provider_usage`), taken one at a time against a
//! budget in one statement, so the budget holds across restarts and replicas.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// Counts one analysis of `provider` in `month` (`2026-12`) if fewer than `budget` were counted;
/// returns the new count, or `None` when the budget is spent (nothing is counted then).
pub async fn take(
    conn: &impl ConnectionTrait,
    provider: &str,
    month: &str,
    budget: u64,
) -> Result<Option<u64>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = "INSERT INTO provider_usage (provider, month, calls) VALUES ($1, $2, 1) \
               ON CONFLICT (provider, month) DO UPDATE SET calls = provider_usage.calls + 1 \
               WHERE provider_usage.calls < $3 RETURNING calls";
    let sql = match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    };
    let budget = i64::try_from(budget).unwrap_or(i64::MAX);
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [provider.into(), month.into(), budget.into()],
    );
    let Some(row) = conn.query_one_raw(statement).await? else {
        return Ok(None);
    };
    let calls: i64 = row.try_get_by_index(0)?;
    Ok(Some(u64::try_from(calls).unwrap_or_default()))
}

/// The analyses counted for `provider` in `month`.
pub async fn used(conn: &impl ConnectionTrait, provider: &str, month: &str) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT calls FROM provider_usage WHERE provider = $1 AND month = $2"
        }
        _ => "SELECT calls FROM provider_usage WHERE provider = ?1 AND month = ?2",
    };
    let statement = Statement::from_sql_and_values(backend, sql, [provider.into(), month.into()]);
    let calls: i64 = match conn.query_one_raw(statement).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(u64::try_from(calls).unwrap_or_default())
}
