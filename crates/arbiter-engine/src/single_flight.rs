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

#[cfg(test)]
#[cfg(feature = "flow-kyc")]
mod tests {
    use super::*;
    use crate::analyze::{AnalysisHandles, DetectorResult, request_row};
    use crate::test_support::{Handles, handles, image};
    use arbiter_core::AnalyzeOptions;
    use arbiter_db::{Db, DbTarget, testing};
    use std::sync::atomic::Ordering;

    /// The leaders and followers a replica counted.
    fn roles(handles: &Handles) -> (usize, usize) {
        (
            handles.counts.leaders.load(Ordering::SeqCst),
            handles.counts.followers.load(Ordering::SeqCst),
        )
    }

    /// Waits (at most ten seconds) until `handles` has followed `times` times.
    async fn until_following(handles: &Handles, times: usize) {
        for _ in 0..2000 {
            if roles(handles).1 >= times {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never followed {times} times");
    }

    /// A committed result of `tenant` under `cache_key`, as another replica would write it.
    async fn commit_result(handles: &Handles, tenant: &str, cache_key: &str) -> RequestId {
        let pipeline = &handles.pipeline;
        let analysis = pipeline
            .analyze(
                pipeline.detector_for(None, None),
                &image(50),
                &AnalyzeOptions::default(),
            )
            .await
            .unwrap();
        let request_id = RequestId::new();
        let obtained = DetectorResult {
            analysis,
            cached_from: None,
            cache_key: cache_key.to_owned(),
            at: Utc::now(),
            thumbnail: None,
        };
        let row = request_row(tenant, &request_id, None, &obtained).unwrap();
        arbiter_db::requests::insert(pipeline.db().conn(), [row])
            .await
            .unwrap();
        request_id
    }

    #[tokio::test]
    async fn a_stored_result_gives_its_analysis_and_request() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let one = handles(&db, 60);
        let origin = commit_result(&one, "acme", "key").await;
        let row = arbiter_db::requests::get(db.conn(), "acme", origin.as_str())
            .await
            .unwrap()
            .unwrap();
        let (analysis, found) = stored_result(&row).unwrap();
        assert_eq!(found, origin);
        assert_eq!(analysis.image_info.sha256, row.image_sha256);
        // A row that does not read is a failure, not a refusal.
        for bad in [
            arbiter_db::entity::request::Model {
                analysis: "{}".to_owned(),
                ..row.clone()
            },
            arbiter_db::entity::request::Model {
                request_id: "nonsense".to_owned(),
                ..row
            },
        ] {
            let err = stored_result(&bad).unwrap_err();
            assert_eq!(err.code(), arbiter_core::ErrorCode::InternalError);
        }
    }

    #[tokio::test]
    async fn on_sqlite_a_cache_miss_takes_no_lease() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let one = handles(&db, 60);
        let since = Utc::now() - chrono::Duration::minutes(1);
        for _ in 0..2 {
            let flight = begin(one.analyzer(), "acme", "key", since).await.unwrap();
            assert!(matches!(flight, Flight::Run(None)), "{flight:?}");
        }
        assert_eq!(roles(&one), (0, 0));
    }

    #[tokio::test]
    async fn across_replicas_one_leads_and_the_other_takes_its_result_or_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        let Some((_, target)) = targets.into_iter().find(|(label, _)| *label == "postgres") else {
            return; // Leases are taken only where several processes share the database.
        };
        let db = Db::connect(&target).await.unwrap();
        let first = handles(&db, 60);
        let second = Handles {
            replica_id: "r2",
            ..handles(&db, 60)
        };
        let since = Utc::now() - chrono::Duration::minutes(1);

        // The first replica leads; the second follows until the result is committed.
        let led = begin(first.analyzer(), "acme", "key-1", since)
            .await
            .unwrap();
        assert!(matches!(led, Flight::Run(Some(_))), "{led:?}");
        let (followed, origin) =
            tokio::join!(begin(second.analyzer(), "acme", "key-1", since), async {
                until_following(&second, 1).await;
                commit_result(&first, "acme", "key-1").await
            });
        match followed.unwrap() {
            Flight::Found(found) => assert_eq!(found.1, origin),
            other => panic!("{other:?}"),
        }
        assert_eq!((roles(&first), roles(&second)), ((1, 0), (0, 1)));

        // A leader that gives up without a result hands the lead to its follower.
        let led = begin(first.analyzer(), "acme", "key-2", since)
            .await
            .unwrap();
        let (followed, ()) =
            tokio::join!(begin(second.analyzer(), "acme", "key-2", since), async {
                until_following(&second, 2).await;
                drop(led);
            });
        assert!(
            matches!(followed.unwrap(), Flight::Run(Some(_))),
            "the follower leads"
        );
        assert_eq!((roles(&first), roles(&second)), ((2, 0), (1, 2)));
        drop((first, second));
        db.close().await.unwrap();
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
