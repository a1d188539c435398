//! The integration tests: one binary, a module per area, one harness. Each test runs against
//! the real server (in this process, or the `arbiter` binary as a process) on a real database:
//! an SQLite file always, and PostgreSQL when `ARBITER_TEST_POSTGRES_URL` is set
//! (`ARBITER_REQUIRE_POSTGRES=1` makes its absence a failure).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

/// The detector's generated hostile files, shared with its own tests.
#[path = "../../crates/arbiter-detect/tests/common/mod.rs"]
#[allow(dead_code)]
mod detect_common;

mod api;
mod audit_http;
mod audit_replicas;
mod audit_verify;
mod batches;
mod bodies;
mod console;
mod detector_queue;
mod examples;
mod flows;
mod hostile_http;
mod logs;
mod openapi;
mod policies_http;
mod policy_cli;
mod policy_proposals;
mod providers;
mod quota_images;
mod rd_sdks;
mod replay;
mod replica_limits;
mod replica_singletons;
mod replicas;
mod reports;
mod rolling_restart;
mod scan_e2e;
mod single_flight;
mod webhooks;
