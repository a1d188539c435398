//! Signed checkpoints of the audit log as a process keeps them: the signing key (refused
//! start-up in production mode without one), the timer that signs each chain every N entries or
//! T seconds, and the last checkpoints at shutdown. Each checkpoint can be announced
//! ([`Announce`]) in its own transaction: the server writes an `audit.checkpoint` webhook there.

use crate::config::{AuditConfig, AuditMode};
use crate::{CheckpointPolicy, KeyError, Signer, SigningKey, StoredCheckpoint, VerifierKey};
use arbiter_db::Db;
use arbiter_db::sea_orm::{DatabaseTransaction, DbErr};
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest wait between two looks for due checkpoints.
const TICK: Duration = Duration::from_secs(1);

/// The checkpoint signer and when it signs, and the places for audit exports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditSigning {
    /// Signs checkpoints under the configured log name.
    pub signer: Arc<Signer>,
    /// Every N entries or T seconds.
    pub policy: CheckpointPolicy,
    /// One permit per export that may be under way at once (`audit.max_concurrent_exports`).
    pub exports: Arc<tokio::sync::Semaphore>,
}

/// Why the checkpoint signer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SigningSetupError {
    /// Production mode and no key configured.
    #[error(
        "audit.mode is production but no checkpoint signing key is configured: make one with \
         `arbiter audit keygen --out FILE` and set audit.signing_key (ARBITER_AUDIT_SIGNING_KEY) \
         to it, or set audit.mode: development to let Arbiter make a key for trying it out"
    )]
    NoKey,
    /// The key file could not be read or made.
    #[error("audit.signing_key: {0}")]
    Key(#[from] KeyError),
}

impl AuditSigning {
    /// The signer of a configuration. In development mode without a configured key, the key in
    /// `<data_dir>/audit-signing.key` is used, made on first start; both are announced loudly.
    pub fn from_config(config: &AuditConfig, data_dir: &Path) -> Result<Self, SigningSetupError> {
        let path = config
            .signing_key_path(data_dir)
            .ok_or(SigningSetupError::NoKey)?;
        let key = if config.signing_key.is_empty() && config.mode == AuditMode::Development {
            std::fs::create_dir_all(data_dir).map_err(|source| KeyError::Io {
                path: data_dir.to_path_buf(),
                source,
            })?;
            let (key, made) = SigningKey::load_or_create(&path)?;
            tracing::warn!(
                key_file = %path.display(),
                made,
                "DEVELOPMENT MODE: audit checkpoints are signed with a key Arbiter made itself in \
                 its data directory. For real use run `arbiter audit keygen`, keep the key apart \
                 from the data, and set audit.mode: production and audit.signing_key"
            );
            key
        } else {
            SigningKey::load(&path)?
        };
        let signer = Signer::new(key, &config.log_name)?;
        tracing::info!(vkey = %signer.verifier_key(), "audit checkpoints are signed");
        Ok(Self {
            signer: Arc::new(signer),
            policy: CheckpointPolicy {
                every_entries: config.checkpoint_every_entries,
                every: Duration::from_secs(config.checkpoint_every_secs),
            },
            exports: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(config.max_concurrent_exports).unwrap_or(usize::MAX),
            )),
        })
    }
}

/// What is written with each checkpoint, in the transaction that writes it (persist before
/// acting: the announcement commits, or rolls back, with its checkpoint).
#[async_trait::async_trait]
pub trait Announce: Send + Sync {
    /// Writes what announces `checkpoint`, signed under `vkey`, at `now`; returns how many rows
    /// it wrote.
    async fn announce(
        &self,
        txn: &DatabaseTransaction,
        checkpoint: &StoredCheckpoint,
        vkey: &VerifierKey,
        now: DateTime<Utc>,
    ) -> Result<usize, DbErr>;

    /// Called once the checkpoints committed, with the rows all their announcements wrote.
    fn announced(&self, rows: usize) {
        let _ = rows;
    }
}

/// Checkpoints announced to no one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAnnouncement;

#[async_trait::async_trait]
impl Announce for NoAnnouncement {
    async fn announce(
        &self,
        _txn: &DatabaseTransaction,
        _checkpoint: &StoredCheckpoint,
        _vkey: &VerifierKey,
        _now: DateTime<Utc>,
    ) -> Result<usize, DbErr> {
        Ok(0)
    }
}

/// The time, as the caller keeps it (a test's clock moves only when told to).
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Signs checkpoints of the audit chains in a database: when due (the timer, [`run`]), or of
/// every chain that grew (at shutdown). Cheap to clone.
///
/// [`run`]: CheckpointWorker::run
#[derive(Clone)]
pub struct CheckpointWorker {
    db: Db,
    signing: AuditSigning,
    announce: Arc<dyn Announce>,
    now: Now,
}

impl std::fmt::Debug for CheckpointWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointWorker")
            .field("signing", &self.signing)
            .finish_non_exhaustive()
    }
}

impl CheckpointWorker {
    /// Signs the chains in `db` with `signing`, announcing each checkpoint with `announce`;
    /// `now` tells the time.
    pub fn new(db: Db, signing: AuditSigning, announce: Arc<dyn Announce>, now: Now) -> Self {
        Self {
            db,
            signing,
            announce,
            now,
        }
    }

    /// Signs the due checkpoints (or, with `all`, one for every chain that grew) in one write
    /// transaction with their announcements; returns the checkpoints written.
    pub async fn sign(
        &self,
        all: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredCheckpoint>, DbErr> {
        let audit = &self.signing;
        // A look on the read pool first: most ticks find nothing due and take no write lock.
        if !all
            && crate::checkpoint_due(self.db.conn(), &audit.policy, now)
                .await?
                .is_empty()
        {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_write().await?;
        // One replica signs at a time; the next one reads what it signed and signs only what
        // is due after it.
        arbiter_db::singleton::hold(&txn, arbiter_db::singleton::names::AUDIT_CHECKPOINTS).await?;
        let written = if all {
            crate::write_checkpoints(&txn, &audit.signer, now).await?
        } else {
            crate::write_due_checkpoints(&txn, &audit.signer, &audit.policy, now).await?
        };
        let vkey = audit.signer.verifier_key();
        let mut announced = 0;
        for checkpoint in &written {
            announced += self.announce.announce(&txn, checkpoint, &vkey, now).await?;
        }
        txn.commit().await?;
        if announced > 0 {
            self.announce.announced(announced);
        }
        for checkpoint in &written {
            tracing::info!(
                tenant = checkpoint.tenant,
                size = checkpoint.size,
                root_hash = checkpoint.root_hash,
                "audit checkpoint signed"
            );
        }
        Ok(written)
    }

    /// The checkpoint timer: looks for due checkpoints every second (or every
    /// `audit.checkpoint_every_secs`, when shorter) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let tick = TICK
            .min(self.signing.policy.every)
            .max(Duration::from_millis(50));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(tick) => {}
            }
            if let Err(err) = self.sign(false, (self.now)()).await {
                tracing::error!(error = %err, "cannot sign the due audit checkpoints");
            }
        }
    }

    /// The checkpoints at shutdown, after the last request was answered: one for every chain
    /// that grew.
    pub async fn sign_at_shutdown(&self) {
        match self.sign(true, (self.now)()).await {
            Ok(written) => tracing::info!(
                checkpoints = written.len(),
                "signed the audit checkpoints at shutdown"
            ),
            Err(err) => {
                tracing::error!(error = %err, "cannot sign the audit checkpoints at shutdown")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::reference_signer;
    use crate::{Event, append};
    use arbiter_db::testing::test_targets;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Announces each checkpoint as an entry of the `announced` chain, or fails.
    #[derive(Default)]
    struct Recorder {
        fail: bool,
        rows: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Announce for Recorder {
        async fn announce(
            &self,
            txn: &DatabaseTransaction,
            checkpoint: &StoredCheckpoint,
            vkey: &VerifierKey,
            now: DateTime<Utc>,
        ) -> Result<usize, DbErr> {
            if self.fail {
                return Err(DbErr::Custom("the announcement failed".to_owned()));
            }
            let event = Event::WebhookAbandoned {
                request_id: format!("{}:{}", checkpoint.tenant, checkpoint.size),
                reference_id: None,
                endpoint: vkey.to_string(),
                attempts: 0,
                detail: String::new(),
            };
            append(txn, "announced", now, event)
                .await
                .map_err(|err| DbErr::Custom(err.to_string()))?;
            Ok(1)
        }

        fn announced(&self, rows: usize) {
            self.rows.fetch_add(rows, Ordering::SeqCst);
        }
    }

    fn signing(every_entries: u64) -> AuditSigning {
        AuditSigning {
            signer: Arc::new(reference_signer()),
            policy: CheckpointPolicy {
                every_entries,
                every: Duration::from_secs(60),
            },
            exports: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    async fn grow(db: &Db, tenant: &str, entries: u32, at: DateTime<Utc>) {
        for n in 0..entries {
            let txn = db.begin_write().await.unwrap();
            let event = Event::WebhookAbandoned {
                request_id: format!("req_{n}"),
                reference_id: None,
                endpoint: "claims-system".to_owned(),
                attempts: n,
                detail: "unreachable".to_owned(),
            };
            append(&txn, tenant, at, event).await.unwrap();
            txn.commit().await.unwrap();
        }
    }

    #[tokio::test]
    async fn each_checkpoint_is_announced_in_its_own_transaction_or_not_written_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-01-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let now: Now = Arc::new(move || t0);
            grow(&db, "acme", 3, t0).await;
            grow(&db, "globex", 1, t0).await;

            // An announcement that fails takes its checkpoint with it.
            let failing = Arc::new(Recorder {
                fail: true,
                ..Recorder::default()
            });
            let worker = CheckpointWorker::new(db.clone(), signing(3), failing, now.clone());
            assert!(worker.sign(false, t0).await.is_err(), "{label}");
            assert!(
                crate::checkpoints(db.conn(), None)
                    .await
                    .unwrap()
                    .is_empty(),
                "{label}"
            );

            // Due by count: acme only; each checkpoint announced, and told after the commit.
            let recorder = Arc::new(Recorder::default());
            let worker = CheckpointWorker::new(db.clone(), signing(3), recorder.clone(), now);
            let written = worker.sign(false, t0).await.unwrap();
            assert_eq!(written.len(), 1, "{label}");
            assert_eq!((written[0].tenant.as_str(), written[0].size), ("acme", 3));
            assert_eq!(recorder.rows.load(Ordering::SeqCst), 1, "{label}");
            let filter = crate::EntryFilter {
                tenant: Some("announced".to_owned()),
                ..Default::default()
            };
            let announced = crate::entries(db.conn(), &filter).await.unwrap();
            assert_eq!(announced.len(), 1, "{label}");

            // At shutdown, every chain that grew (globex, and the announcements' own chain).
            worker.sign_at_shutdown().await;
            let tenants: Vec<_> = crate::checkpoints(db.conn(), None)
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.tenant, c.size))
                .collect();
            assert_eq!(
                tenants,
                [
                    ("acme".to_owned(), 3),
                    ("announced".to_owned(), 1),
                    ("globex".to_owned(), 1)
                ],
                "{label}"
            );
            assert_eq!(recorder.rows.load(Ordering::SeqCst), 3, "{label}");
            db.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
