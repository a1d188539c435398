//! Batches, durable analysis jobs, webhook endpoints and secrets, and the webhook outbox
//! (deliveries and their attempts). Leases and due times are unix milliseconds, so that both
//! databases compare them as plain integers.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000004_batches_jobs_webhooks"
    }
}

#[derive(DeriveIden)]
enum Batches {
    Table,
    BatchId,
    Tenant,
    BatchReferenceId,
    Total,
    Completed,
    Failed,
    Status,
    WebhookUrl,
    CreatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    RequestId,
    Tenant,
    BatchId,
    Position,
    ReferenceId,
    Source,
    Options,
    Flow,
    Facts,
    WebhookUrl,
    Status,
    Attempts,
    LeaseOwner,
    LeaseUntilMs,
    VerdictLabel,
    Result,
    ErrorCode,
    ErrorMessage,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    EndpointId,
    Tenant,
    Url,
    Events,
    Description,
    Secret,
    DisabledAt,
    DisabledReason,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookSecrets {
    Table,
    Tenant,
    Secret,
    Previous,
    PreviousUntilMs,
    RotatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    DeliveryId,
    Tenant,
    EndpointId,
    Url,
    Event,
    RequestId,
    ReferenceId,
    BatchId,
    Body,
    Status,
    Attempts,
    NextAttemptMs,
    LeaseOwner,
    LeaseUntilMs,
    LastStatus,
    LastError,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    Attempt,
    AttemptedAt,
    StatusCode,
    DurationMs,
    ResponseBody,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Batches::Table)
                    .col(string_len(Batches::BatchId, 64).primary_key())
                    .col(string_len(Batches::Tenant, 64))
                    .col(string_len_null(Batches::BatchReferenceId, 128))
                    .col(integer(Batches::Total))
                    .col(integer(Batches::Completed))
                    .col(integer(Batches::Failed))
                    .col(string_len(Batches::Status, 16))
                    .col(text_null(Batches::WebhookUrl))
                    .col(timestamp_with_time_zone(Batches::CreatedAt))
                    .col(timestamp_with_time_zone_null(Batches::CompletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(string_len(Jobs::RequestId, 64).primary_key())
                    .col(string_len(Jobs::Tenant, 64))
                    .col(string_len_null(Jobs::BatchId, 64))
                    .col(integer(Jobs::Position))
                    .col(string_len_null(Jobs::ReferenceId, 128))
                    .col(text(Jobs::Source))
                    .col(text(Jobs::Options))
                    .col(string_len_null(Jobs::Flow, 32))
                    .col(text_null(Jobs::Facts))
                    .col(text_null(Jobs::WebhookUrl))
                    .col(string_len(Jobs::Status, 16))
                    .col(integer(Jobs::Attempts))
                    .col(string_len_null(Jobs::LeaseOwner, 64))
                    .col(big_integer(Jobs::LeaseUntilMs))
                    .col(string_len_null(Jobs::VerdictLabel, 32))
                    .col(text_null(Jobs::Result))
                    .col(string_len_null(Jobs::ErrorCode, 64))
                    .col(text_null(Jobs::ErrorMessage))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_status_lease")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::LeaseUntilMs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_batch_position")
                    .table(Jobs::Table)
                    .col(Jobs::BatchId)
                    .col(Jobs::Position)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(string_len(WebhookEndpoints::EndpointId, 64).primary_key())
                    .col(string_len(WebhookEndpoints::Tenant, 64))
                    .col(text(WebhookEndpoints::Url))
                    .col(text(WebhookEndpoints::Events))
                    .col(text_null(WebhookEndpoints::Description))
                    .col(text(WebhookEndpoints::Secret))
                    .col(timestamp_with_time_zone_null(WebhookEndpoints::DisabledAt))
                    .col(text_null(WebhookEndpoints::DisabledReason))
                    .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_endpoints_tenant")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::Tenant)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookSecrets::Table)
                    .col(string_len(WebhookSecrets::Tenant, 64).primary_key())
                    .col(text(WebhookSecrets::Secret))
                    .col(text_null(WebhookSecrets::Previous))
                    .col(big_integer_null(WebhookSecrets::PreviousUntilMs))
                    .col(timestamp_with_time_zone(WebhookSecrets::RotatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(string_len(WebhookDeliveries::DeliveryId, 64).primary_key())
                    .col(string_len(WebhookDeliveries::Tenant, 64))
                    .col(string_len_null(WebhookDeliveries::EndpointId, 64))
                    .col(text(WebhookDeliveries::Url))
                    .col(string_len(WebhookDeliveries::Event, 64))
                    .col(string_len_null(WebhookDeliveries::RequestId, 64))
                    .col(string_len_null(WebhookDeliveries::ReferenceId, 128))
                    .col(string_len_null(WebhookDeliveries::BatchId, 64))
                    .col(text(WebhookDeliveries::Body))
                    .col(string_len(WebhookDeliveries::Status, 16))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(big_integer(WebhookDeliveries::NextAttemptMs))
                    .col(string_len_null(WebhookDeliveries::LeaseOwner, 64))
                    .col(big_integer(WebhookDeliveries::LeaseUntilMs))
                    .col(integer_null(WebhookDeliveries::LastStatus))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(WebhookDeliveries::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptMs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_tenant_status")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Tenant)
                    .col(WebhookDeliveries::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(pk_auto(WebhookAttempts::Id))
                    .col(string_len(WebhookAttempts::DeliveryId, 64))
                    .col(integer(WebhookAttempts::Attempt))
                    .col(timestamp_with_time_zone(WebhookAttempts::AttemptedAt))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(big_integer(WebhookAttempts::DurationMs))
                    .col(text(WebhookAttempts::ResponseBody))
                    .col(text_null(WebhookAttempts::Error))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookSecrets::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            Jobs::Table.into_iden(),
            Batches::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
