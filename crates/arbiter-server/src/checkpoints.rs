//! Signed checkpoints of the audit log: the signing key (refused start-up in production mode
//! without one), the timer that signs each chain every N entries or T seconds, and the last
//! checkpoints at shutdown. Each checkpoint is also announced as an `audit.checkpoint` webhook,
//! written to the outbox in the checkpoint's own transaction.

use crate::config::{AuditConfig, AuditMode};
use crate::state::AppState;
use arbiter_audit::{CheckpointPolicy, Signer, SigningKey, StoredCheckpoint};
use arbiter_db::sea_orm::{DatabaseTransaction, DbErr};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The webhook event announcing a checkpoint.
pub const CHECKPOINT_EVENT: &str = "audit.checkpoint";

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
    Key(#[from] arbiter_audit::KeyError),
}

impl AuditSigning {
    /// The signer of a configuration. In development mode without a configured key, the key in
    /// `<data_dir>/audit-signing.key` is used, made on first start; both are announced loudly.
    pub fn from_config(config: &AuditConfig, data_dir: &Path) -> Result<Self, SigningSetupError> {
        let path = config
            .signing_key_path(data_dir)
            .ok_or(SigningSetupError::NoKey)?;
        let key = if config.signing_key.is_empty() && config.mode == AuditMode::Development {
            std::fs::create_dir_all(data_dir).map_err(|source| arbiter_audit::KeyError::Io {
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

/// Signs the due checkpoints (or, with `all`, one for every chain that grew) in one write
/// transaction with their `audit.checkpoint` webhooks; returns the checkpoints written.
pub async fn sign(
    state: &AppState,
    all: bool,
    now: DateTime<Utc>,
) -> Result<Vec<StoredCheckpoint>, DbErr> {
    let audit = &state.audit;
    // A look on the read pool first: most ticks find nothing due and take no write lock.
    if !all
        && arbiter_audit::checkpoint_due(state.pipeline.db().conn(), &audit.policy, now)
            .await?
            .is_empty()
    {
        return Ok(Vec::new());
    }
    let txn = state.pipeline.db().begin_write().await?;
    let written = if all {
        arbiter_audit::write_checkpoints(&txn, &audit.signer, now).await?
    } else {
        arbiter_audit::write_due_checkpoints(&txn, &audit.signer, &audit.policy, now).await?
    };
    let mut deliveries = 0;
    for checkpoint in &written {
        deliveries += announce(&txn, state, checkpoint, now).await?;
    }
    txn.commit().await?;
    if deliveries > 0 {
        state.webhooks.wake.notify_waiters();
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

/// The `audit.checkpoint` webhook of one checkpoint, to the tenant's endpoints that take it.
async fn announce(
    txn: &DatabaseTransaction,
    state: &AppState,
    checkpoint: &StoredCheckpoint,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let payload = json!({
        "event": CHECKPOINT_EVENT,
        "type": CHECKPOINT_EVENT,
        "timestamp": now,
        "tenant": checkpoint.tenant,
        "size": checkpoint.size,
        "root_hash": checkpoint.root_hash,
        "issued_at": checkpoint.issued_at,
        "note": checkpoint.note,
        "vkey": state.audit.signer.verifier_key().to_string(),
    });
    let message = arbiter_webhooks::Message {
        event: CHECKPOINT_EVENT,
        payload,
        request_id: None,
        reference_id: None,
        batch_id: None,
    };
    arbiter_webhooks::enqueue(txn, &checkpoint.tenant, &message, None, now).await
}

/// The checkpoint timer: looks for due checkpoints every second (or every
/// `audit.checkpoint_every_secs`, when shorter) until `shutdown`, then signs every chain that
/// grew.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let tick = TICK
        .min(state.audit.policy.every)
        .max(Duration::from_millis(50));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
        if let Err(err) = sign(&state, false, state.clock.now()).await {
            tracing::error!(error = %err, "cannot sign the due audit checkpoints");
        }
    }
}

/// The checkpoints at shutdown, after the last request was answered.
pub async fn sign_at_shutdown(state: &AppState) {
    match sign(state, true, state.clock.now()).await {
        Ok(written) => tracing::info!(
            checkpoints = written.len(),
            "signed the audit checkpoints at shutdown"
        ),
        Err(err) => tracing::error!(error = %err, "cannot sign the audit checkpoints at shutdown"),
    }
}
