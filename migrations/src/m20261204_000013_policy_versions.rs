//! Every policy text ever active (or used by `arbiter scan`), by its SHA-256: any recorded
//! decision can be traced to, and replayed under, the exact text that made it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000013_policy_versions"
    }
}

#[derive(DeriveIden)]
enum PolicyVersions {
    Table,
    Sha256,
    PolicyId,
    Version,
    Flow,
    Source,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PolicyVersions::Table)
                    .if_not_exists()
                    .col(string_len(PolicyVersions::Sha256, 64).primary_key())
                    .col(string_len(PolicyVersions::PolicyId, 128))
                    .col(integer(PolicyVersions::Version))
                    .col(string_len(PolicyVersions::Flow, 64))
                    .col(text(PolicyVersions::Source))
                    .col(timestamp_with_time_zone(PolicyVersions::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PolicyVersions::Table).to_owned())
            .await
    }
}
