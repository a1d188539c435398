//! Leases between replicas: the `leases` table (a key, its owner, until when), by which one
//! replica runs a detector for identical requests arriving at several at once (single flight);
//! and room for a replica's id in a lease owner: jobs and webhook deliveries are claimed as
//! `<replica id>.<ulid>` (a replica id is up to 64 characters), so the jobs table says which
//! replica holds each claim (PostgreSQL only: SQLite does not enforce a text column's length).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000017_leases"
    }
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    Key,
    Owner,
    ExpiresAtMs,
}

/// The tables whose `lease_owner` names a replica's claim.
const TABLES: [&str; 2] = ["jobs", "webhook_deliveries"];

async fn set_width(manager: &SchemaManager<'_>, width: u32) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    for table in TABLES {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "ALTER TABLE {table} ALTER COLUMN lease_owner TYPE varchar({width})"
            ))
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Leases::Table)
                    .if_not_exists()
                    .col(string_len(Leases::Key, 200).primary_key())
                    .col(string_len(Leases::Owner, 128))
                    .col(big_integer(Leases::ExpiresAtMs))
                    .to_owned(),
            )
            .await?;
        set_width(manager, 128).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_width(manager, 64).await?;
        manager
            .drop_table(Table::drop().table(Leases::Table).to_owned())
            .await
    }
}
