//! Decisions and the hash-chained audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000001_initial"
    }
}

#[derive(DeriveIden)]
enum Decisions {
    Table,
    RequestId,
    Tenant,
    ReferenceId,
    ImageSha256,
    Flow,
    Detector,
    VerdictLabel,
    Confidence,
    RiskLevel,
    Action,
    Reason,
    Fired,
    PolicyId,
    PolicyVersion,
    PolicySha256,
    Facts,
    Analysis,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditEntries {
    Table,
    Tenant,
    Seq,
    Event,
    Ts,
    RequestId,
    ReferenceId,
    ImageSha256,
    PrevHash,
    EntryHash,
    Canonical,
}

#[derive(DeriveIden)]
enum AuditHeads {
    Table,
    Tenant,
    Size,
    HeadHash,
}

/// Triggers that make the audit table append-only.
const SQLITE_APPEND_ONLY: [&str; 2] = [
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries \
     BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries \
     BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
];

const POSTGRES_APPEND_ONLY: [&str; 3] = [
    "CREATE FUNCTION audit_entries_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN RAISE EXCEPTION 'audit_entries is append-only'; END $$",
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE OR DELETE ON audit_entries \
     FOR EACH ROW EXECUTE FUNCTION audit_entries_refuse_change()",
    "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries \
     FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_refuse_change()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Decisions::Table)
                    .col(string_len(Decisions::RequestId, 64).primary_key())
                    .col(string_len(Decisions::Tenant, 64))
                    .col(string_len_null(Decisions::ReferenceId, 128))
                    .col(string_len(Decisions::ImageSha256, 64))
                    .col(string_len(Decisions::Flow, 32))
                    .col(string_len(Decisions::Detector, 64))
                    .col(string_len(Decisions::VerdictLabel, 16))
                    .col(double(Decisions::Confidence))
                    .col(string_len(Decisions::RiskLevel, 8))
                    .col(string_len(Decisions::Action, 64))
                    .col(string_len(Decisions::Reason, 128))
                    .col(text(Decisions::Fired))
                    .col(string_len(Decisions::PolicyId, 128))
                    .col(integer(Decisions::PolicyVersion))
                    .col(string_len(Decisions::PolicySha256, 64))
                    .col(text(Decisions::Facts))
                    .col(text(Decisions::Analysis))
                    .col(timestamp_with_time_zone(Decisions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("decisions_tenant_created_at")
                    .table(Decisions::Table)
                    .col(Decisions::Tenant)
                    .col(Decisions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditEntries::Table)
                    .col(string_len(AuditEntries::Tenant, 64))
                    .col(big_integer(AuditEntries::Seq))
                    .col(string_len(AuditEntries::Event, 64))
                    .col(string_len(AuditEntries::Ts, 32))
                    .col(string_len_null(AuditEntries::RequestId, 64))
                    .col(string_len_null(AuditEntries::ReferenceId, 128))
                    .col(string_len_null(AuditEntries::ImageSha256, 64))
                    .col(string_len(AuditEntries::PrevHash, 64))
                    .col(string_len(AuditEntries::EntryHash, 64))
                    .col(text(AuditEntries::Canonical))
                    .primary_key(
                        Index::create()
                            .col(AuditEntries::Tenant)
                            .col(AuditEntries::Seq),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("audit_entries_request_id", AuditEntries::RequestId),
            ("audit_entries_reference_id", AuditEntries::ReferenceId),
            ("audit_entries_image_sha256", AuditEntries::ImageSha256),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditEntries::Table)
                        .col(AuditEntries::Tenant)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AuditHeads::Table)
                    .col(string_len(AuditHeads::Tenant, 64).primary_key())
                    .col(big_integer(AuditHeads::Size))
                    .col(string_len(AuditHeads::HeadHash, 64))
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
                .execute_unprepared("DROP FUNCTION IF EXISTS audit_entries_refuse_change() CASCADE")
                .await?;
        }
        for table in [
            Decisions::Table.into_iden(),
            AuditEntries::Table.into_iden(),
            AuditHeads::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
