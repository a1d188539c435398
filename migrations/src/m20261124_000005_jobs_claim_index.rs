//! An index in the order workers claim jobs (with the lease in it), replacing the one on status
//! and lease: with that one SQLite chose it and then sorted every queued row — rows that carry
//! their images — on each claim.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000005_jobs_claim_index"
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Status,
    CreatedAt,
    Position,
    LeaseUntilMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("jobs_status_lease")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_claim_order")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::CreatedAt)
                    .col(Jobs::Position)
                    .col(Jobs::LeaseUntilMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("jobs_claim_order")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_status_lease")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::LeaseUntilMs)
                    .to_owned(),
            )
            .await
    }
}
