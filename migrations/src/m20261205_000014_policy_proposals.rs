//! Four-eyes policy change control: proposals awaiting a second person's approval
//! (`policy_proposals`), every activation of a policy version with who proposed and approved it
//! (`policy_activations`), and the live version of each flow (`policy_heads`), which an approval
//! moves with a compare-and-swap so that a stale proposal cannot overwrite a newer version.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000014_policy_proposals"
    }
}

#[derive(DeriveIden)]
enum PolicyProposals {
    Table,
    Id,
    Flow,
    PolicyId,
    Version,
    Sha256,
    Source,
    BaseSha256,
    RollbackTo,
    ProposedBy,
    ProposedAt,
    Status,
    DecidedBy,
    DecidedAt,
    Reason,
    Checks,
}

#[derive(DeriveIden)]
enum PolicyActivations {
    Table,
    Id,
    Flow,
    PolicyId,
    Version,
    Sha256,
    ProposalId,
    ProposedBy,
    ApprovedBy,
    Actor,
    ActivatedAt,
}

#[derive(DeriveIden)]
enum PolicyHeads {
    Table,
    Flow,
    Sha256,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PolicyProposals::Table)
                    .if_not_exists()
                    .col(string_len(PolicyProposals::Id, 64).primary_key())
                    .col(string_len(PolicyProposals::Flow, 64))
                    .col(string_len(PolicyProposals::PolicyId, 128))
                    .col(integer(PolicyProposals::Version))
                    .col(string_len(PolicyProposals::Sha256, 64))
                    .col(text(PolicyProposals::Source))
                    .col(string_len_null(PolicyProposals::BaseSha256, 64))
                    .col(integer_null(PolicyProposals::RollbackTo))
                    .col(string_len(PolicyProposals::ProposedBy, 128))
                    .col(timestamp_with_time_zone(PolicyProposals::ProposedAt))
                    .col(string_len(PolicyProposals::Status, 16))
                    .col(string_len_null(PolicyProposals::DecidedBy, 128))
                    .col(timestamp_with_time_zone_null(PolicyProposals::DecidedAt))
                    .col(text_null(PolicyProposals::Reason))
                    .col(text(PolicyProposals::Checks))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_policy_proposals_flow")
                    .table(PolicyProposals::Table)
                    .col(PolicyProposals::Flow)
                    .col(PolicyProposals::ProposedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PolicyActivations::Table)
                    .if_not_exists()
                    .col(pk_auto(PolicyActivations::Id))
                    .col(string_len(PolicyActivations::Flow, 64))
                    .col(string_len(PolicyActivations::PolicyId, 128))
                    .col(integer(PolicyActivations::Version))
                    .col(string_len(PolicyActivations::Sha256, 64))
                    .col(string_len_null(PolicyActivations::ProposalId, 64))
                    .col(string_len_null(PolicyActivations::ProposedBy, 128))
                    .col(string_len_null(PolicyActivations::ApprovedBy, 128))
                    .col(string_len(PolicyActivations::Actor, 128))
                    .col(timestamp_with_time_zone(PolicyActivations::ActivatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_policy_activations_flow")
                    .table(PolicyActivations::Table)
                    .col(PolicyActivations::Flow)
                    .col(PolicyActivations::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PolicyHeads::Table)
                    .if_not_exists()
                    .col(string_len(PolicyHeads::Flow, 64).primary_key())
                    .col(string_len(PolicyHeads::Sha256, 64))
                    .col(timestamp_with_time_zone(PolicyHeads::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PolicyHeads::Table.into_iden(),
            PolicyActivations::Table.into_iden(),
            PolicyProposals::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
