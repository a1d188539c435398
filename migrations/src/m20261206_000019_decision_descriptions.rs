//! A request's decision keeps the deciding rule's description rendered with the facts, as a
//! case's decision does, so the request page, its report card and `arbiter replay` show it.
//! Rows recorded before have none (NULL).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000019_decision_descriptions"
    }
}

#[derive(DeriveIden)]
enum Decisions {
    Table,
    Description,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Decisions::Table)
                    .add_column(text_null(Decisions::Description))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE decisions DROP COLUMN description")
            .await
            .map(drop)
    }
}
