//! Keeping the live policies current while a server runs: the watched files re-read, or the
//! versions approved in the database polled.

use crate::clock::Clock;
use crate::flows::FlowRegistry;
use crate::policies::{LivePolicies, PolicySource, record_activations};
use crate::policy_changes::sync_from_database;
use arbiter_db::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a server's policy watch needs.
pub struct PolicyWatch {
    /// The live policies.
    pub live: LivePolicies,
    /// Where activations are recorded and approved versions read.
    pub db: Db,
    /// The flows in force.
    pub flows: FlowRegistry,
    /// The time of each activation.
    pub clock: Arc<dyn Clock>,
    /// Where the live versions come from.
    pub source: PolicySource,
    /// With `source: files`, how often the directory is re-read (never when zero).
    pub reload_every: Duration,
    /// With `source: database`, how often approved versions are looked for.
    pub poll_every: Duration,
}

impl PolicyWatch {
    /// Runs until `shutdown`. With `source: files` it records the activation of the policies
    /// live at start, then re-reads the directory every `reload_every` and records each
    /// activation; with `source: database` it swaps in, every `poll_every`, the version of each
    /// flow approved since (its `policy.activated` entry was written by the approval).
    pub async fn run(self, shutdown: CancellationToken) {
        match self.source {
            PolicySource::Database => self.poll_database(shutdown).await,
            PolicySource::Files => self.watch_files(shutdown).await,
        }
    }

    async fn poll_database(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.poll_every) => {}
            }
            if let Err(err) = sync_from_database(&self.db, &self.live, &self.flows).await {
                tracing::warn!(error = %err, "cannot read the approved policy versions");
            }
        }
    }

    async fn watch_files(self, shutdown: CancellationToken) {
        let started: Vec<_> = self.live.snapshot().all().cloned().collect();
        self.record(&started, "startup").await;
        if self.reload_every.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.reload_every) => {}
            }
            let reloaded = tokio::task::spawn_blocking({
                let (live, flows) = (self.live.clone(), self.flows.clone());
                move || live.reload(&flows)
            })
            .await;
            match reloaded {
                Ok(activated) => {
                    let policies: Vec<_> =
                        activated.into_iter().map(|(policy, _)| policy).collect();
                    if !policies.is_empty() {
                        self.record(&policies, "reload").await;
                    }
                }
                Err(err) => tracing::error!(error = %err, "policy reload failed"),
            }
        }
    }

    async fn record(&self, policies: &[Arc<arbiter_policy::Policy>], actor: &str) {
        if let Err(err) = record_activations(&self.db, policies, actor, self.clock.now()).await {
            tracing::error!(error = %err, "cannot record the policy activations");
        }
    }
}

#[cfg(test)]
#[cfg(all(feature = "flow-insurance", feature = "flow-ugc", feature = "flow-kyc"))]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::policies::{PolicyStore, SYSTEM_TENANT};
    use arbiter_db::DbTarget;

    const KYC: &str = include_str!("../../../policies/kyc.yaml");

    fn watch(db: &Db, live: &LivePolicies, source: PolicySource) -> PolicyWatch {
        PolicyWatch {
            live: live.clone(),
            db: db.clone(),
            flows: FlowRegistry::builtin().unwrap(),
            clock: Arc::new(SystemClock),
            source,
            reload_every: Duration::from_millis(5),
            poll_every: Duration::from_millis(5),
        }
    }

    async fn activations(db: &Db) -> Vec<(String, u32, String)> {
        let filter = arbiter_audit::EntryFilter {
            tenant: Some(SYSTEM_TENANT.to_owned()),
            event: Some("policy.activated".to_owned()),
            ..Default::default()
        };
        arbiter_audit::entries(db.conn(), &filter)
            .await
            .unwrap()
            .into_iter()
            .map(|stored| match stored.entry.event {
                arbiter_audit::Event::PolicyActivated { policy, actor, .. } => {
                    (policy.id, policy.version, actor)
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Waits (at most ten seconds) until the live KYC policy is at `version`.
    async fn until_kyc_is(live: &LivePolicies, version: u32) {
        for _ in 0..2000 {
            if live.snapshot().for_flow("kyc").unwrap().version() == version {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("kyc never reached version {version}");
    }

    #[tokio::test]
    async fn without_reloads_the_files_watch_records_the_start_and_ends() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let flows = FlowRegistry::builtin().unwrap();
        let live = LivePolicies::fixed(PolicyStore::embedded(&flows).unwrap());
        let once = PolicyWatch {
            reload_every: Duration::ZERO,
            ..watch(&db, &live, PolicySource::Files)
        };
        // Returns by itself: nothing to watch.
        once.run(CancellationToken::new()).await;
        let recorded = activations(&db).await;
        let ids: Vec<_> = recorded
            .iter()
            .map(|(id, version, actor)| (id.as_str(), *version, actor.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("insurance.fnol", 2, "startup"),
                ("kyc.verification", 2, "startup"),
                ("ugc.moderation", 1, "startup"),
            ]
        );
    }

    #[tokio::test]
    async fn a_changed_file_is_activated_and_recorded_as_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let policies = tempfile::tempdir().unwrap();
        let path = policies.path().join("kyc.yaml");
        std::fs::write(&path, KYC).unwrap();
        let flows = FlowRegistry::builtin().unwrap();
        let live = LivePolicies::from_dir(policies.path(), &flows).unwrap();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(watch(&db, &live, PolicySource::Files).run(shutdown.clone()));
        std::fs::write(&path, KYC.replacen("version: 2", "version: 3", 1)).unwrap();
        until_kyc_is(&live, 3).await;
        shutdown.cancel();
        running.await.unwrap();
        let recorded = activations(&db).await;
        assert_eq!(
            recorded,
            [
                ("kyc.verification".to_owned(), 2, "startup".to_owned()),
                ("kyc.verification".to_owned(), 3, "reload".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn the_database_watch_swaps_in_an_approved_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let flows = FlowRegistry::builtin().unwrap();
        let seed = PolicyStore::embedded(&flows).unwrap();
        let live = LivePolicies::fixed(seed.clone());
        crate::policy_changes::seed_database(&db, &live, chrono::Utc::now())
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(watch(&db, &live, PolicySource::Database).run(shutdown.clone()));
        let with = crate::policy_changes::ProposeWith {
            flows: &flows,
            seed: &seed,
            backtest_days: 1,
            now: chrono::Utc::now(),
        };
        let text = KYC.replacen("version: 2", "version: 3", 1);
        let policy = arbiter_policy::Policy::from_yaml(&text, "kyc.yaml").unwrap();
        let proposal = crate::policy_changes::propose(&db, with, policy, "alice")
            .await
            .unwrap();
        crate::policy_changes::approve(
            &db,
            &flows,
            &proposal.proposal_id,
            "bob",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        until_kyc_is(&live, 3).await;
        shutdown.cancel();
        running.await.unwrap();
    }
}
