//! An API key may name a default flow (`arbiter keys create --flow kyc`): uploads made with it
//! through the Reality Defender–compatible endpoints are decided by that flow's policy.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000011_key_flow"
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Flow,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(string_len_null(ApiKeys::Flow, 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE api_keys DROP COLUMN flow")
            .await
            .map(drop)
    }
}
