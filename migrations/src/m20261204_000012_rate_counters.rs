//! Requests counted per tenant in its current rate windows (the minute and the UTC day, each
//! named by its start in unix seconds), so that a plan's limits hold across replicas sharing the
//! database. One row per tenant: a new window replaces the one before it.

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
    MinuteStart,
    MinuteCount,
    DayStart,
    DayCount,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RateCounters::Table)
                    .if_not_exists()
                    .col(string_len(RateCounters::Tenant, 64).primary_key())
                    .col(big_integer(RateCounters::MinuteStart))
                    .col(big_integer(RateCounters::MinuteCount))
                    .col(big_integer(RateCounters::DayStart))
                    .col(big_integer(RateCounters::DayCount))
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
