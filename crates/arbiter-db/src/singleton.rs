//! Work that one replica at a time may do, among the processes sharing a database.
//!
//! On PostgreSQL a singleton is a transaction-scoped advisory lock (`pg_advisory_xact_lock`)
//! keyed by a stable hash of its name: the transaction that takes it holds it until it commits
//! or rolls back, and another replica's transaction asking for the same name waits until then,
//! and then reads what the first committed. On SQLite there is nothing to take: every write
//! transaction ([`crate::Db::begin_write`]) already holds the database's single write lock, and
//! SQLite cannot be shared between hosts.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// The names of Arbiter's singletons, so no two places spell one differently.
pub mod names {
    /// Signing audit checkpoints (every chain's).
    pub const AUDIT_CHECKPOINTS: &str = "audit.checkpoints";
    /// Recording `policy.activated` for a policy id.
    pub fn policy_activated(policy_id: &str) -> String {
        format!("policy.activated:{policy_id}")
    }
    /// Sealing a tenant's collected uploads of a flow into a batch.
    pub fn collector_seal(flow: &str, tenant: &str) -> String {
        format!("collector.seal:{flow}:{tenant}")
    }
    /// Running the schema migrations.
    pub const MIGRATIONS: &str = "migrations";
}

/// The advisory-lock key of a singleton's name: 64-bit FNV-1a of its UTF-8 bytes, as a signed
/// integer (PostgreSQL's `bigint`). Stable across builds and platforms.
pub fn key(name: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = name.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Takes the singleton `name` for the rest of the transaction `txn`, waiting while another
/// transaction (of any replica) holds it. Call it first in the transaction, before reading what
/// the singleton decides on. A no-op on SQLite (see the module's documentation).
pub async fn hold(txn: &impl ConnectionTrait, name: &str) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    txn.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [key(name).into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, testing};
    use sea_orm::TransactionTrait;
    use std::time::Duration;

    #[test]
    fn keys_are_stable_and_differ_by_name() {
        // FNV-1a 64 of "" and "a" (the published test vectors), as signed integers.
        assert_eq!(key(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(key("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
        assert_ne!(
            key(&names::policy_activated("a")),
            key(&names::policy_activated("b"))
        );
    }

    #[tokio::test]
    async fn a_second_holder_waits_until_the_first_transaction_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            if !matches!(target, crate::DbTarget::Url(_)) {
                continue;
            }
            let db = Db::connect(&target).await.unwrap();
            let first = db.conn().begin().await.unwrap();
            hold(&first, "test.singleton").await.unwrap();
            let second = {
                let conn = db.conn().clone();
                tokio::spawn(async move {
                    let txn = conn.begin().await.unwrap();
                    hold(&txn, "test.singleton").await.unwrap();
                    txn.commit().await.unwrap();
                })
            };
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!second.is_finished(), "{label}: taken twice at once");
            // Another name is free meanwhile.
            let other = db.conn().begin().await.unwrap();
            hold(&other, "test.other").await.unwrap();
            other.commit().await.unwrap();
            first.commit().await.unwrap();
            tokio::time::timeout(Duration::from_secs(5), second)
                .await
                .unwrap()
                .unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
