//! The console's people: users per tenant with a role and an argon2id password hash, their
//! sessions (only the SHA-256 of each session token is stored), and failed sign-ins, counted
//! in the database so that the sign-in throttle holds across replicas.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000015_console_users"
    }
}

#[derive(DeriveIden)]
enum ConsoleUsers {
    Table,
    Tenant,
    UserId,
    Role,
    PasswordHash,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConsoleSessions {
    Table,
    TokenSha256,
    Tenant,
    UserId,
    CsrfToken,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ConsoleSignInFailures {
    Table,
    Id,
    Tenant,
    UserId,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConsoleUsers::Table)
                    .if_not_exists()
                    .col(string_len(ConsoleUsers::Tenant, 64))
                    .col(string_len(ConsoleUsers::UserId, 64))
                    .col(string_len(ConsoleUsers::Role, 16))
                    .col(text(ConsoleUsers::PasswordHash))
                    .col(boolean(ConsoleUsers::Disabled))
                    .col(timestamp_with_time_zone(ConsoleUsers::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ConsoleUsers::Tenant)
                            .col(ConsoleUsers::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsoleSessions::Table)
                    .if_not_exists()
                    .col(string_len(ConsoleSessions::TokenSha256, 64).primary_key())
                    .col(string_len(ConsoleSessions::Tenant, 64))
                    .col(string_len(ConsoleSessions::UserId, 64))
                    .col(string_len(ConsoleSessions::CsrfToken, 64))
                    .col(timestamp_with_time_zone(ConsoleSessions::CreatedAt))
                    .col(timestamp_with_time_zone(ConsoleSessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("console_sessions_user")
                    .table(ConsoleSessions::Table)
                    .col(ConsoleSessions::Tenant)
                    .col(ConsoleSessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("console_sessions_expires")
                    .table(ConsoleSessions::Table)
                    .col(ConsoleSessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsoleSignInFailures::Table)
                    .if_not_exists()
                    .col(pk_auto(ConsoleSignInFailures::Id))
                    .col(string_len(ConsoleSignInFailures::Tenant, 64))
                    .col(string_len(ConsoleSignInFailures::UserId, 64))
                    .col(timestamp_with_time_zone(ConsoleSignInFailures::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("console_sign_in_failures_user_at")
                    .table(ConsoleSignInFailures::Table)
                    .col(ConsoleSignInFailures::Tenant)
                    .col(ConsoleSignInFailures::UserId)
                    .col(ConsoleSignInFailures::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ConsoleSignInFailures::Table.into_iden(),
            ConsoleSessions::Table.into_iden(),
            ConsoleUsers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
