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
