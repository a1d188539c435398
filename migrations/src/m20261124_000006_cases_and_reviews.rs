//! Cases (an insurance claim, a KYC session: the images a flow groups and their case-level
//! decision) and review-queue items (decisions waiting for a person, and the label the person
//! gave).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000006_cases_and_reviews"
    }
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    Tenant,
    Flow,
    CaseId,
    Facts,
    Images,
    Action,
    Decision,
    Complete,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CaseImages {
    Table,
    RequestId,
    Tenant,
    Flow,
    CaseId,
    N,
    Role,
    Facts,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ReviewItems {
    Table,
    ItemId,
    Tenant,
    Queue,
    Flow,
    CaseId,
    RequestId,
    ReferenceId,
    ImageSha256,
    Action,
    Reason,
    Status,
    ClaimedBy,
    ClaimedAt,
    Label,
    Note,
    ResolvedAction,
    ResolvedBy,
    ResolvedAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Cases::Table)
                    .col(string_len(Cases::Tenant, 64))
                    .col(string_len(Cases::Flow, 32))
                    .col(string_len(Cases::CaseId, 128))
                    .col(text(Cases::Facts))
                    .col(integer(Cases::Images))
                    .col(string_len_null(Cases::Action, 64))
                    .col(text_null(Cases::Decision))
                    .col(boolean(Cases::Complete))
                    .col(timestamp_with_time_zone(Cases::CreatedAt))
                    .col(timestamp_with_time_zone(Cases::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(Cases::Tenant)
                            .col(Cases::Flow)
                            .col(Cases::CaseId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CaseImages::Table)
                    .col(string_len(CaseImages::RequestId, 64).primary_key())
                    .col(string_len(CaseImages::Tenant, 64))
                    .col(string_len(CaseImages::Flow, 32))
                    .col(string_len(CaseImages::CaseId, 128))
                    .col(integer(CaseImages::N))
                    .col(string_len_null(CaseImages::Role, 32))
                    .col(text(CaseImages::Facts))
                    .col(timestamp_with_time_zone(CaseImages::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("case_images_case_n")
                    .table(CaseImages::Table)
                    .col(CaseImages::Tenant)
                    .col(CaseImages::Flow)
                    .col(CaseImages::CaseId)
                    .col(CaseImages::N)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReviewItems::Table)
                    .col(string_len(ReviewItems::ItemId, 64).primary_key())
                    .col(string_len(ReviewItems::Tenant, 64))
                    .col(string_len(ReviewItems::Queue, 64))
                    .col(string_len(ReviewItems::Flow, 32))
                    .col(string_len_null(ReviewItems::CaseId, 128))
                    .col(string_len(ReviewItems::RequestId, 64))
                    .col(string_len_null(ReviewItems::ReferenceId, 128))
                    .col(string_len(ReviewItems::ImageSha256, 64))
                    .col(string_len(ReviewItems::Action, 64))
                    .col(string_len(ReviewItems::Reason, 128))
                    .col(string_len(ReviewItems::Status, 16))
                    .col(string_len_null(ReviewItems::ClaimedBy, 64))
                    .col(timestamp_with_time_zone_null(ReviewItems::ClaimedAt))
                    .col(string_len_null(ReviewItems::Label, 32))
                    .col(text_null(ReviewItems::Note))
                    .col(string_len_null(ReviewItems::ResolvedAction, 64))
                    .col(string_len_null(ReviewItems::ResolvedBy, 64))
                    .col(timestamp_with_time_zone_null(ReviewItems::ResolvedAt))
                    .col(timestamp_with_time_zone(ReviewItems::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("review_items_queue")
                    .table(ReviewItems::Table)
                    .col(ReviewItems::Tenant)
                    .col(ReviewItems::Queue)
                    .col(ReviewItems::Status)
                    .col(ReviewItems::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("review_items_request")
                    .table(ReviewItems::Table)
                    .col(ReviewItems::Tenant)
                    .col(ReviewItems::RequestId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ReviewItems::Table.into_iden(),
            CaseImages::Table.into_iden(),
            Cases::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
