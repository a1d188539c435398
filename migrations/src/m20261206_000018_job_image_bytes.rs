//! A job's image is kept as bytes (`job_images.image`, BLOB on SQLite, BYTEA on PostgreSQL)
//! rather than as base64 text in `job_images.source`: a third less to write, TOAST and vacuum on
//! PostgreSQL for every image of a batch. `source` then holds `"stored"`.
//!
//! Rows written before stay readable as they are (`{"base64": ...}`); on PostgreSQL those whose
//! text is plain base64 are converted here in one statement (`decode`). SQLite has no base64
//! function, so its few queued rows are left as text (batch images on SQLite are read from the
//! kept request body, not from this table).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000018_job_image_bytes"
    }
}

#[derive(DeriveIden)]
enum JobImages {
    Table,
    Image,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(JobImages::Table)
                    .add_column(blob_null(JobImages::Image))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            // Only text that `decode` takes whole: anything else stays as it was, readable.
            manager
                .get_connection()
                .execute_unprepared(
                    "UPDATE job_images SET image = decode(source::jsonb ->> 'base64', 'base64'), \
                     source = '\"stored\"' \
                     WHERE source LIKE '{\"base64\":%' \
                     AND (source::jsonb ->> 'base64') ~ '^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$'",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "UPDATE job_images SET source = json_build_object('base64', \
                     replace(encode(image, 'base64'), E'\\n', ''))::text \
                     WHERE image IS NOT NULL",
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(JobImages::Table)
                    .drop_column(JobImages::Image)
                    .to_owned(),
            )
            .await
    }
}
