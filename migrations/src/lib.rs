//! Arbiter's schema migrations. The same migrations run on SQLite and PostgreSQL.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial;
mod m20261124_000002_requests_and_keys;
mod m20261124_000003_audit_checkpoints;
mod m20261124_000004_batches_jobs_webhooks;
mod m20261124_000005_jobs_claim_index;
mod m20261124_000006_cases_and_reviews;
mod m20261124_000007_job_images;
mod m20261204_000008_review_claim_key;
mod m20261204_000009_provider_usage;
mod m20261204_000010_rd_uploads;
mod m20261204_000011_key_flow;
mod m20261204_000012_rate_counters;
mod m20261204_000013_policy_versions;
mod m20261205_000014_policy_proposals;
mod m20261205_000015_console_users;
mod m20261205_000016_thumbnails;
mod m20261205_000017_leases;
mod m20261206_000018_job_image_bytes;
mod m20261206_000019_decision_descriptions;
mod m20261206_000020_console_list_indexes;

/// Applies Arbiter's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial::Migration),
            Box::new(m20261124_000002_requests_and_keys::Migration),
            Box::new(m20261124_000003_audit_checkpoints::Migration),
            Box::new(m20261124_000004_batches_jobs_webhooks::Migration),
            Box::new(m20261124_000005_jobs_claim_index::Migration),
            Box::new(m20261124_000006_cases_and_reviews::Migration),
            Box::new(m20261124_000007_job_images::Migration),
            Box::new(m20261204_000008_review_claim_key::Migration),
            Box::new(m20261204_000009_provider_usage::Migration),
            Box::new(m20261204_000010_rd_uploads::Migration),
            Box::new(m20261204_000011_key_flow::Migration),
            Box::new(m20261204_000012_rate_counters::Migration),
            Box::new(m20261204_000013_policy_versions::Migration),
            Box::new(m20261205_000014_policy_proposals::Migration),
            Box::new(m20261205_000015_console_users::Migration),
            Box::new(m20261205_000016_thumbnails::Migration),
            Box::new(m20261205_000017_leases::Migration),
            Box::new(m20261206_000018_job_image_bytes::Migration),
            Box::new(m20261206_000019_decision_descriptions::Migration),
            Box::new(m20261206_000020_console_list_indexes::Migration),
        ]
    }
}
