//! A review claim belongs to the API key that made it: `review_items.claimed_key` holds its id,
//! so another key naming the same reviewer cannot take the item over.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000008_review_claim_key"
    }
}

#[derive(DeriveIden)]
enum ReviewItems {
    Table,
    ClaimedKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReviewItems::Table)
                    .add_column(string_len_null(ReviewItems::ClaimedKey, 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE review_items DROP COLUMN claimed_key")
            .await
            .map(drop)
    }
}
