//! Single flight across replicas (`cache.single_flight`): identical requests (same tenant, image
//! and options, same detector route) that miss the result cache on several replicas at once run
//! the detector once. The first takes a lease row in the database (`leases`) and runs it; the
//! others poll the shared result cache until its result is committed, and take over when its
//! lease is given up (its request failed) or runs out (its process died: the leader renews its
//! lease every second while it runs, and a lease not renewed ends after [`LEASE`]). Within one process
//! identical requests already share one lookup (`analyze::Inflight`), which is all there is on
//! SQLite (one process's database): there a cache miss writes no lease.

use crate::analyze::Analyzer;
use crate::clock::Clock;
use crate::error::EngineError;
use arbiter_core::{Analysis, RequestId};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// How often a follower looks for the leader's result.
const FOLLOW_EVERY: Duration = Duration::from_millis(25);

/// How long a leader's lease lasts without renewal: how long followers wait for a leader that
/// died.
pub const LEASE: Duration = Duration::from_secs(3);

/// How often a running leader renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// What a cache miss does.
#[derive(Debug)]
pub enum Flight {
    /// Run the detector: this request leads (holding the lease until dropped), or single flight
    /// is off, or waiting took too long.
    Run(Option<Held>),
    /// Another replica's result, committed meanwhile.
    Found(Box<(Analysis, RequestId)>),
}

/// A held lease, given up when dropped (once this request has ended, its result committed or
/// not).
#[derive(Debug)]
pub struct Held {
    db: arbiter_db::Db,
    key: String,
    owner: String,
    renewing: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Holds the lease `key` taken by `owner`, renewing it until dropped.
    fn new(db: arbiter_db::Db, clock: Arc<dyn Clock>, key: String, owner: String) -> Self {
        let renewing = tokio::spawn({
            let (db, key, owner) = (db.clone(), key.clone(), owner.clone());
            async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let until = clock.now().timestamp_millis() + lease_ms();
                    match arbiter_db::leases::renew(db.writer(), &key, &owner, until).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot renew a single-flight lease")
                        }
                    }
                }
            }
        });
        Self {
            db,
            key,
            owner,
            renewing,
        }
    }
}

fn lease_ms() -> i64 {
    i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX / 2)
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewing.abort();
        let (db, key, owner) = (self.db.clone(), self.key.clone(), self.owner.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = arbiter_db::leases::release(db.writer(), &key, &owner).await {
                    tracing::warn!(error = %err, "cannot give up a single-flight lease; it will run out");
                }
            });
        }
    }
}

/// Whether other processes can share `db`, so a lease can spare them a detector run: PostgreSQL.
/// SQLite is one process's database (README: PostgreSQL as soon as there is more than one
/// process), and within a process identical requests share one analysis already
/// (`analyze::Inflight`), so a cache miss writes no lease there.
fn across_processes(db: &arbiter_db::Db) -> bool {
    db.backend() != arbiter_db::sea_orm::DbBackend::Sqlite
}

/// The analysis and request of a stored result (a `requests` row).
pub fn stored_result(
    row: &arbiter_db::entity::request::Model,
) -> Result<(Analysis, RequestId), EngineError> {
    let analysis: Analysis = serde_json::from_str(&row.analysis).map_err(EngineError::internal)?;
    let origin: RequestId = row.request_id.parse().map_err(EngineError::internal)?;
    Ok((analysis, origin))
}

/// Leads or follows the analysis of `cache_key` for `tenant` after a cache miss; results
/// committed at or after `since` count.
pub async fn begin(
    state: Analyzer<'_>,
    tenant: &str,
    cache_key: &str,
    since: DateTime<Utc>,
) -> Result<Flight, EngineError> {
    let db = state.pipeline.db();
    if !state.settings.single_flight || !across_processes(db) {
        return Ok(Flight::Run(None));
    }
    let key = format!("single-flight:{tenant}:{cache_key}");
    let owner = arbiter_db::leases::owner_token(state.replica_id);
    // A follower waits no longer than a request may take.
    let gives_up = tokio::time::Instant::now()
        + Duration::from_secs(state.settings.request_timeout_secs.max(1));
    let mut followed = false;
    loop {
        let now_ms = state.clock.now().timestamp_millis();
        if arbiter_db::leases::take(db.writer(), &key, &owner, now_ms, now_ms + lease_ms()).await? {
            state.metrics.single_flight(true);
            let (db, clock) = (db.clone(), state.clock.clone());
            return Ok(Flight::Run(Some(Held::new(db, clock, key, owner))));
        }
        if !followed {
            followed = true;
            state.metrics.single_flight(false);
        }
        loop {
            if tokio::time::Instant::now() >= gives_up {
                return Ok(Flight::Run(None));
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
            let query = (tenant.to_owned(), cache_key.to_owned(), since);
            if let Some(row) = state.cached_lookups.get(query).await? {
                return Ok(Flight::Found(Box::new(stored_result(&row)?)));
            }
            let now_ms = state.clock.now().timestamp_millis();
            if !arbiter_db::leases::held(db.conn(), &key, now_ms).await? {
                // The leader gave up without a result: lead in its place.
                break;
            }
        }
    }
}
