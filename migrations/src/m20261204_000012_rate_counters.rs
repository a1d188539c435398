//! Requests counted per tenant and rate window (`minute`, `day`), so that a plan's limits hold
//! across replicas sharing the database. A window starts at a unix time in seconds.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000012_rate_counters"
    }
}

#[derive(DeriveIden)]
enum RateCounters {
    Table,
    Tenant,
    WindowKind,
    WindowStart,
    Count,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RateCounters::Table)
                    .if_not_exists()
                    .col(string_len(RateCounters::Tenant, 64))
                    .col(string_len(RateCounters::WindowKind, 8))
                    .col(big_integer(RateCounters::WindowStart))
                    .col(big_integer(RateCounters::Count))
                    .primary_key(
                        Index::create()
                            .col(RateCounters::Tenant)
                            .col(RateCounters::WindowKind)
                            .col(RateCounters::WindowStart),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RateCounters::Table).to_owned())
            .await
    }
}
