//! API requests (the stored results and the idempotency cache) and API keys.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000002_requests_and_keys"
    }
}

#[derive(DeriveIden)]
enum Requests {
    Table,
    RequestId,
    Tenant,
    ReferenceId,
    ImageSha256,
    CacheKey,
    CachedFrom,
    Status,
    Analysis,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Tenant,
    Name,
    Plan,
    Scopes,
    AllowIps,
    SecretHash,
    CreatedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Requests::Table)
                    .col(string_len(Requests::RequestId, 64).primary_key())
                    .col(string_len(Requests::Tenant, 64))
                    .col(string_len_null(Requests::ReferenceId, 128))
                    .col(string_len(Requests::ImageSha256, 64))
                    .col(string_len(Requests::CacheKey, 64))
                    .col(string_len_null(Requests::CachedFrom, 64))
                    .col(string_len(Requests::Status, 16))
                    .col(text(Requests::Analysis))
                    .col(timestamp_with_time_zone(Requests::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("requests_tenant_cache_key")
                    .table(Requests::Table)
                    .col(Requests::Tenant)
                    .col(Requests::CacheKey)
                    .col(Requests::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(string_len(ApiKeys::Id, 64).primary_key())
                    .col(string_len(ApiKeys::Tenant, 64))
                    .col(string_len(ApiKeys::Name, 128))
                    .col(string_len(ApiKeys::Plan, 32))
                    .col(text(ApiKeys::Scopes))
                    .col(text(ApiKeys::AllowIps))
                    .col(string_len(ApiKeys::SecretHash, 64))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Requests::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}
