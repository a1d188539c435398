//! Indexes for the console's lists, which page newest first through the database: a tenant's
//! requests by request id (time-sortable), and a tenant's cases of a flow by opening time and
//! case id. With them a page is read from the index in order, however long the list. And the
//! lists' search (a reference id or an image's SHA-256) finds its rows by index.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000020_console_list_indexes"
    }
}

#[derive(DeriveIden)]
enum Requests {
    Table,
    Tenant,
    RequestId,
    ReferenceId,
    ImageSha256,
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    Tenant,
    Flow,
    CreatedAt,
    CaseId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("requests_tenant_request_id")
                    .table(Requests::Table)
                    .col(Requests::Tenant)
                    .col(Requests::RequestId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("requests_tenant_reference_id", Requests::ReferenceId),
            ("requests_tenant_image_sha256", Requests::ImageSha256),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Requests::Table)
                        .col(Requests::Tenant)
                        .col(column)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("cases_tenant_flow_created_at")
                    .table(Cases::Table)
                    .col(Cases::Tenant)
                    .col(Cases::Flow)
                    .col(Cases::CreatedAt)
                    .col(Cases::CaseId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "requests_tenant_image_sha256",
            "requests_tenant_reference_id",
        ] {
            manager
                .drop_index(Index::drop().name(name).table(Requests::Table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("cases_tenant_flow_created_at")
                    .table(Cases::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("requests_tenant_request_id")
                    .table(Requests::Table)
                    .to_owned(),
            )
            .await
    }
}
