//! Small thumbnails of analysed images, per tenant and image SHA-256, for report cards: the
//! original images are not stored.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000016_thumbnails"
    }
}

#[derive(DeriveIden)]
enum Thumbnails {
    Table,
    Tenant,
    ImageSha256,
    Width,
    Height,
    Png,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Thumbnails::Table)
                    .if_not_exists()
                    .col(string_len(Thumbnails::Tenant, 64))
                    .col(string_len(Thumbnails::ImageSha256, 64))
                    .col(integer(Thumbnails::Width))
                    .col(integer(Thumbnails::Height))
                    .col(blob(Thumbnails::Png))
                    .col(timestamp_with_time_zone(Thumbnails::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Thumbnails::Tenant)
                            .col(Thumbnails::ImageSha256),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Thumbnails::Table).to_owned())
            .await
    }
}
