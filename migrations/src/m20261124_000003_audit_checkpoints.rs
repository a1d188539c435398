//! Signed checkpoints of the audit chains (append-only, like the entries they sign).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000003_audit_checkpoints"
    }
}

#[derive(DeriveIden)]
enum AuditCheckpoints {
    Table,
    Tenant,
    Size,
    RootHash,
    IssuedAt,
    Note,
}

/// Triggers that make the checkpoint table append-only.
const SQLITE_APPEND_ONLY: [&str; 2] = [
    "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints \
     BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END",
    "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints \
     BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END",
];

const POSTGRES_APPEND_ONLY: [&str; 3] = [
    "CREATE FUNCTION audit_checkpoints_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN RAISE EXCEPTION 'audit_checkpoints is append-only'; END $$",
    "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints \
     FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_refuse_change()",
    "CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints \
     FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_refuse_change()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditCheckpoints::Table)
                    .col(string_len(AuditCheckpoints::Tenant, 64))
                    .col(big_integer(AuditCheckpoints::Size))
                    .col(string_len(AuditCheckpoints::RootHash, 64))
                    .col(string_len(AuditCheckpoints::IssuedAt, 32))
                    .col(text(AuditCheckpoints::Note))
                    .primary_key(
                        Index::create()
                            .col(AuditCheckpoints::Tenant)
                            .col(AuditCheckpoints::Size),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let triggers: &[&str] = match manager.get_database_backend() {
            DbBackend::Sqlite => &SQLITE_APPEND_ONLY,
            _ => &POSTGRES_APPEND_ONLY,
        };
        for sql in triggers {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP FUNCTION IF EXISTS audit_checkpoints_refuse_change() CASCADE",
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(AuditCheckpoints::Table).to_owned())
            .await
    }
}
