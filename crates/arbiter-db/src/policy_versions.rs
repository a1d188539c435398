//! Every policy text ever used to decide, by its SHA-256 (`policy_versions`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// A kept policy text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// `metadata.id`.
    pub policy_id: String,
    /// `metadata.version`.
    pub version: i32,
    /// The flow.
    pub flow: String,
    /// The exact text.
    pub source: String,
}

fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    }
}

/// Keeps a policy text under its SHA-256, once.
pub async fn keep(
    conn: &impl ConnectionTrait,
    sha256: &str,
    kept: &Kept,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let sql = placeholders(
        backend,
        "INSERT INTO policy_versions (sha256, policy_id, version, flow, source, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
    );
    let values = [
        sha256.into(),
        kept.policy_id.clone().into(),
        kept.version.into(),
        kept.flow.clone().into(),
        kept.source.clone().into(),
        now.into(),
    ];
    conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map(drop)
}

/// The text kept under a SHA-256.
pub async fn get(conn: &impl ConnectionTrait, sha256: &str) -> Result<Option<Kept>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = placeholders(
        backend,
        "SELECT policy_id, version, flow, source FROM policy_versions WHERE sha256 = $1",
    );
    let Some(row) = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [sha256.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Kept {
        policy_id: row.try_get_by_index(0)?,
        version: row.try_get_by_index(1)?,
        flow: row.try_get_by_index(2)?,
        source: row.try_get_by_index(3)?,
    }))
}
