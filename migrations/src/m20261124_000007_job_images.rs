//! A job's image moves to a table of its own. SQLite rewrites a whole row (with the overflow
//! pages of a base64 image) on every update, so claiming and finishing jobs whose rows carried
//! their images wrote each image twice more; now the small job row is updated and the image row
//! is written once and deleted when the job ends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000007_job_images"
    }
}

#[derive(DeriveIden)]
enum JobImages {
    Table,
    RequestId,
    Source,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobImages::Table)
                    .col(string_len(JobImages::RequestId, 64).primary_key())
                    .col(text(JobImages::Source))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO job_images (request_id, source) \
             SELECT request_id, source FROM jobs WHERE status IN ('queued', 'collecting')",
        )
        .await?;
        db.execute_unprepared("ALTER TABLE jobs DROP COLUMN source")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT ''")
            .await?;
        db.execute_unprepared(
            "UPDATE jobs SET source = (SELECT source FROM job_images \
             WHERE job_images.request_id = jobs.request_id) \
             WHERE request_id IN (SELECT request_id FROM job_images)",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(JobImages::Table).to_owned())
            .await
    }
}
