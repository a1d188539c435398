//! Leases between replicas: a key held by one owner until a time (`leases`), taken only when
//! free or expired. Used for single flight: one replica runs the detector for identical
//! requests arriving at several at once.

use crate::jobs::claim_statement;
use sea_orm::{ConnectionTrait, DbErr};

/// A claim's owner token, for a lease or a claim of jobs: the replica's id, a dot, and a ULID,
/// so the tables and the logs say which replica holds what.
pub fn owner_token(replica: &str) -> String {
    format!("{replica}.{}", ulid::Ulid::new())
}

/// Takes the lease `key` for `owner` until `until_ms` if nobody holds it at `now_ms` (no row, or
/// an expired one); `true` when taken.
pub async fn take(
    conn: &impl ConnectionTrait,
    key: &str,
    owner: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, DbErr> {
    let statement = claim_statement(
        conn.get_database_backend(),
        "INSERT INTO leases (key, owner, expires_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, \
         expires_at_ms = excluded.expires_at_ms WHERE leases.expires_at_ms < $4 RETURNING owner",
        vec![key.into(), owner.into(), until_ms.into(), now_ms.into()],
    );
    Ok(!conn.query_all_raw(statement).await?.is_empty())
}

/// Extends the lease `key` to `until_ms` if `owner` still holds it; `false` when it does not.
pub async fn renew(
    conn: &impl ConnectionTrait,
    key: &str,
    owner: &str,
    until_ms: i64,
) -> Result<bool, DbErr> {
    let statement = claim_statement(
        conn.get_database_backend(),
        "UPDATE leases SET expires_at_ms = $3 WHERE key = $1 AND owner = $2",
        vec![key.into(), owner.into(), until_ms.into()],
    );
    Ok(conn.execute_raw(statement).await?.rows_affected() == 1)
}

/// Whether someone holds the lease `key` at `now_ms`.
pub async fn held(conn: &impl ConnectionTrait, key: &str, now_ms: i64) -> Result<bool, DbErr> {
    let statement = claim_statement(
        conn.get_database_backend(),
        "SELECT owner FROM leases WHERE key = $1 AND expires_at_ms >= $2",
        vec![key.into(), now_ms.into()],
    );
    Ok(conn.query_one_raw(statement).await?.is_some())
}

/// Gives the lease `key` up, if `owner` still holds it.
pub async fn release(conn: &impl ConnectionTrait, key: &str, owner: &str) -> Result<(), DbErr> {
    let statement = claim_statement(
        conn.get_database_backend(),
        "DELETE FROM leases WHERE key = $1 AND owner = $2",
        vec![key.into(), owner.into()],
    );
    conn.execute_raw(statement).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, testing};

    #[test]
    fn an_owner_token_names_its_replica_and_is_new_each_time() {
        let token = owner_token("replica-1");
        assert_eq!(token.strip_prefix("replica-1.").map(str::len), Some(26));
        assert_ne!(token, owner_token("replica-1"));
    }

    #[tokio::test]
    async fn a_lease_is_taken_once_until_it_expires_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let conn = db.writer();
            assert!(take(conn, "k", "a", 1_000, 2_000).await.unwrap(), "{label}");
            assert!(
                !take(conn, "k", "b", 1_500, 2_500).await.unwrap(),
                "{label}"
            );
            assert!(held(conn, "k", 1_500).await.unwrap(), "{label}");
            assert!(renew(conn, "k", "a", 2_000).await.unwrap(), "{label}");
            assert!(!renew(conn, "k", "b", 9_000).await.unwrap(), "{label}");
            // Expired: another takes it; the first may no longer give it up.
            assert!(take(conn, "k", "b", 2_001, 3_000).await.unwrap(), "{label}");
            release(conn, "k", "a").await.unwrap();
            assert!(held(conn, "k", 2_500).await.unwrap(), "{label}");
            release(conn, "k", "b").await.unwrap();
            assert!(!held(conn, "k", 2_500).await.unwrap(), "{label}");
            assert!(take(conn, "k", "c", 2_500, 3_500).await.unwrap(), "{label}");
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
