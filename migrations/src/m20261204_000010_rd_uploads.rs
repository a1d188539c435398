//! Uploads made through the Reality Defender–compatible endpoints: the presigned slot (its
//! token's hash and expiry), the file name the SDK gave, and when the bytes arrived.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000010_rd_uploads"
    }
}

#[derive(DeriveIden)]
enum RdUploads {
    Table,
    RequestId,
    Tenant,
    KeyId,
    FileName,
    TokenSha256,
    ExpiresAt,
    UploadedAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RdUploads::Table)
                    .if_not_exists()
                    .col(string_len(RdUploads::RequestId, 64).primary_key())
                    .col(string_len(RdUploads::Tenant, 64))
                    .col(string_len(RdUploads::KeyId, 64))
                    .col(string_len(RdUploads::FileName, 256))
                    .col(string_len(RdUploads::TokenSha256, 64))
                    .col(timestamp_with_time_zone(RdUploads::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RdUploads::UploadedAt))
                    .col(timestamp_with_time_zone(RdUploads::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("rd_uploads_tenant_created")
                    .table(RdUploads::Table)
                    .col(RdUploads::Tenant)
                    .col(RdUploads::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RdUploads::Table).to_owned())
            .await
    }
}
