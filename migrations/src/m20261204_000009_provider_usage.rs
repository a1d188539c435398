//! Each vendor's analyses per calendar month, so a monthly budget holds across restarts and
//! across replicas sharing the database.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000009_provider_usage"
    }
}

#[derive(DeriveIden)]
enum ProviderUsage {
    Table,
    Provider,
    Month,
    Calls,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProviderUsage::Table)
                    .if_not_exists()
                    .col(string_len(ProviderUsage::Provider, 64))
                    .col(string_len(ProviderUsage::Month, 7))
                    .col(big_integer(ProviderUsage::Calls))
                    .primary_key(
                        Index::create()
                            .col(ProviderUsage::Provider)
                            .col(ProviderUsage::Month),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProviderUsage::Table).to_owned())
            .await
    }
}
