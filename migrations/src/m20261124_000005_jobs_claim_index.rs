//! An index in the order workers claim jobs, so a claim reads index entries instead of sorting
//! every queued row (rows that carry their images).

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
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("jobs_claim_order")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::CreatedAt)
                    .col(Jobs::Position)
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
            .await
    }
}
