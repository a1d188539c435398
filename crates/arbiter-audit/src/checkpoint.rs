//! Signed checkpoints: C2SP signed notes (Ed25519) stating a tenant chain's size and the hash of
//! its last entry, stored in `audit_checkpoints` and included in exports.
//!
//! ```text
//! arbiter-audit-checkpoint/v1
//! <log name>/<tenant>
//! <size = last seq + 1>
//! <entry_hash of seq size-1>
//! <issued_at, RFC 3339, seconds, Z>
//!
//! — <log name> <base64(4-byte key id || 64-byte signature)>
//! ```

use crate::chain::Order;
use crate::keys::{Signer, VerifierKey};
use arbiter_db::entity::{audit_checkpoint, audit_entry, audit_head};
use arbiter_db::sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TryInsertResult,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// The first line of every checkpoint.
pub const CHECKPOINT_HEADER: &str = "arbiter-audit-checkpoint/v1";

/// A stored checkpoint (one row of `audit_checkpoints`).
pub type StoredCheckpoint = audit_checkpoint::Model;

/// What a checkpoint states about one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log name (the signer's name).
    pub log_name: String,
    /// The tenant whose chain is signed.
    pub tenant: String,
    /// Number of entries covered (last seq + 1).
    pub size: u64,
    /// The `entry_hash` of entry `size - 1`.
    pub root_hash: String,
    /// When it was signed: RFC 3339, seconds, `Z`.
    pub issued_at: String,
}

/// Why a checkpoint note was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The note is not shaped as a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// A signature by the verifier key does not verify: the text was altered.
    #[error("the signature by {0} does not verify: the checkpoint was altered or forged")]
    BadSignature(String),
    /// No signature by the verifier key.
    #[error("no signature by the verifier key {0}")]
    NotSigned(String),
    /// The checkpoint is for another log.
    #[error("the checkpoint is for {origin:?}, not for a tenant of the log {log_name:?}")]
    OtherLog {
        /// The origin line.
        origin: String,
        /// The verifier key's log name.
        log_name: String,
    },
}

/// `issued_at` as checkpoints write it: UTC, seconds, `Z`.
pub fn format_issued_at(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Checkpoint {
    /// The signed text: up to and including the newline after `issued_at`.
    pub fn body(&self) -> String {
        format!(
            "{CHECKPOINT_HEADER}\n{}/{}\n{}\n{}\n{}\n",
            self.log_name, self.tenant, self.size, self.root_hash, self.issued_at
        )
    }

    /// The complete signed note.
    pub fn sign(&self, signer: &Signer) -> String {
        let body = self.body();
        let signature = signer.signature_line(&body);
        format!("{body}\n{signature}")
    }

    /// Checks a note's signature by `vkey` and reads the checkpoint it states. Signatures by
    /// other keys are ignored, as in any C2SP note.
    pub fn open(note: &str, vkey: &VerifierKey) -> Result<Self, CheckpointError> {
        let split = note.find("\n\n").ok_or(CheckpointError::Malformed(
            "no blank line before the signatures",
        ))?;
        let (body, signatures) = (&note[..=split], &note[split + 2..]);
        if signatures.is_empty() || !signatures.ends_with('\n') {
            return Err(CheckpointError::Malformed(
                "the signature block must end with a newline",
            ));
        }
        let mut verified = false;
        for line in signatures[..signatures.len() - 1].split('\n') {
            let (name, blob) = line
                .strip_prefix("\u{2014} ")
                .and_then(|rest| rest.split_once(' '))
                .ok_or(CheckpointError::Malformed(
                    "a signature line is not `— <name> <signature>`",
                ))?;
            if name != vkey.name() {
                continue;
            }
            let blob = BASE64
                .decode(blob)
                .map_err(|_| CheckpointError::Malformed("a signature is not base64"))?;
            match vkey.check(body.as_bytes(), &blob) {
                Some(true) => verified = true,
                Some(false) => return Err(CheckpointError::BadSignature(vkey.to_string())),
                None => {}
            }
        }
        if !verified {
            return Err(CheckpointError::NotSigned(vkey.to_string()));
        }
        Self::parse_body(body, vkey.name())
    }

    fn parse_body(body: &str, log_name: &str) -> Result<Self, CheckpointError> {
        let lines: Vec<&str> = body[..body.len() - 1].split('\n').collect();
        let [header, origin, size, root_hash, issued_at] = lines[..] else {
            return Err(CheckpointError::Malformed("the body must have five lines"));
        };
        if header != CHECKPOINT_HEADER {
            return Err(CheckpointError::Malformed("unknown header line"));
        }
        let tenant = origin
            .strip_prefix(log_name)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|tenant| !tenant.is_empty())
            .ok_or_else(|| CheckpointError::OtherLog {
                origin: origin.to_owned(),
                log_name: log_name.to_owned(),
            })?;
        let canonical_size =
            size.bytes().all(|b| b.is_ascii_digit()) && !(size.len() > 1 && size.starts_with('0'));
        let size: u64 = size
            .parse()
            .ok()
            .filter(|&n| canonical_size && n > 0)
            .ok_or(CheckpointError::Malformed(
                "the size is not a positive decimal",
            ))?;
        if root_hash.len() != 64
            || !root_hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(CheckpointError::Malformed(
                "the hash is not 64 lowercase hex digits",
            ));
        }
        let issued = DateTime::parse_from_rfc3339(issued_at)
            .map_err(|_| CheckpointError::Malformed("issued_at is not RFC 3339"))?;
        if format_issued_at(issued.with_timezone(&Utc)) != issued_at {
            return Err(CheckpointError::Malformed(
                "issued_at is not UTC in whole seconds with Z",
            ));
        }
        Ok(Self {
            log_name: log_name.to_owned(),
            tenant: tenant.to_owned(),
            size,
            root_hash: root_hash.to_owned(),
            issued_at: issued_at.to_owned(),
        })
    }
}

/// When the server signs checkpoints: a chain that grew is signed once `every_entries` entries
/// are unsigned, or once its oldest unsigned entry is `every` old, whichever comes first; and
/// every chain that grew is signed at shutdown ([`write_checkpoints`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Sign when this many entries are not yet covered by a checkpoint.
    pub every_entries: u64,
    /// Sign when the oldest entry not yet covered is this old.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_entries: 1000,
            every: Duration::from_secs(60),
        }
    }
}

/// A chain's head, to be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The tenant.
    pub tenant: String,
    /// Number of entries.
    pub size: u64,
    /// The last entry's hash.
    pub head_hash: String,
    /// Size at the newest stored checkpoint (0 when none).
    pub signed_size: u64,
}

/// The chains that grew since their newest checkpoint, oldest tenant name first.
pub async fn grown_chains(conn: &impl ConnectionTrait) -> Result<Vec<ChainHead>, DbErr> {
    let signed: HashMap<String, i64> = audit_checkpoint::Entity::find()
        .select_only()
        .column(audit_checkpoint::Column::Tenant)
        .column_as(audit_checkpoint::Column::Size.max(), "size")
        .group_by(audit_checkpoint::Column::Tenant)
        .into_tuple::<(String, i64)>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    let heads = audit_head::Entity::find()
        .order_by_asc(audit_head::Column::Tenant)
        .all(conn)
        .await?;
    Ok(heads
        .into_iter()
        .filter_map(|head| {
            let signed_size = signed.get(&head.tenant).copied().unwrap_or(0);
            (head.size > signed_size).then(|| ChainHead {
                size: u64::try_from(head.size).unwrap_or_default(),
                signed_size: u64::try_from(signed_size).unwrap_or_default(),
                tenant: head.tenant,
                head_hash: head.head_hash,
            })
        })
        .collect())
}

/// The chains whose checkpoint is due under `policy` at `now`.
pub async fn checkpoint_due(
    conn: &impl ConnectionTrait,
    policy: &CheckpointPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<ChainHead>, DbErr> {
    let mut due = Vec::new();
    for head in grown_chains(conn).await? {
        if head.size - head.signed_size >= policy.every_entries.max(1) {
            due.push(head);
            continue;
        }
        // The oldest unsigned entry's age.
        let oldest = audit_entry::Entity::find_by_id((
            head.tenant.clone(),
            i64::try_from(head.signed_size).unwrap_or(i64::MAX),
        ))
        .one(conn)
        .await?;
        let ts = oldest.and_then(|row| DateTime::parse_from_rfc3339(&row.ts).ok());
        let old_enough = match ts {
            Some(ts) => (now - ts.with_timezone(&Utc))
                .to_std()
                .is_ok_and(|age| age >= policy.every),
            None => true,
        };
        if old_enough {
            due.push(head);
        }
    }
    Ok(due)
}

async fn sign_heads(
    conn: &impl ConnectionTrait,
    signer: &Signer,
    heads: Vec<ChainHead>,
    now: DateTime<Utc>,
) -> Result<Vec<StoredCheckpoint>, DbErr> {
    let issued_at = format_issued_at(now);
    let mut written = Vec::with_capacity(heads.len());
    for head in heads {
        let checkpoint = Checkpoint {
            log_name: signer.log_name().to_owned(),
            tenant: head.tenant,
            size: head.size,
            root_hash: head.head_hash,
            issued_at: issued_at.clone(),
        };
        let row = StoredCheckpoint {
            note: checkpoint.sign(signer),
            tenant: checkpoint.tenant,
            size: i64::try_from(checkpoint.size).unwrap_or(i64::MAX),
            root_hash: checkpoint.root_hash,
            issued_at: checkpoint.issued_at,
        };
        // Another process may have signed the same size first; its checkpoint stands.
        let active = audit_checkpoint::ActiveModel {
            tenant: Set(row.tenant.clone()),
            size: Set(row.size),
            root_hash: Set(row.root_hash.clone()),
            issued_at: Set(row.issued_at.clone()),
            note: Set(row.note.clone()),
        };
        let inserted = audit_checkpoint::Entity::insert(active)
            .on_conflict_do_nothing_on([
                audit_checkpoint::Column::Tenant,
                audit_checkpoint::Column::Size,
            ])
            .exec_without_returning(conn)
            .await?;
        if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            written.push(row);
        }
    }
    Ok(written)
}

/// Signs a checkpoint for every chain that grew since its newest checkpoint (at shutdown, and
/// for `arbiter audit checkpoint`). Returns the checkpoints written.
pub async fn write_checkpoints(
    conn: &impl ConnectionTrait,
    signer: &Signer,
    now: DateTime<Utc>,
) -> Result<Vec<StoredCheckpoint>, DbErr> {
    let heads = grown_chains(conn).await?;
    sign_heads(conn, signer, heads, now).await
}

/// Signs a checkpoint for every chain whose checkpoint is due under `policy` at `now` (the
/// server calls this on a timer). Returns the checkpoints written.
pub async fn write_due_checkpoints(
    conn: &impl ConnectionTrait,
    signer: &Signer,
    policy: &CheckpointPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<StoredCheckpoint>, DbErr> {
    let heads = checkpoint_due(conn, policy, now).await?;
    sign_heads(conn, signer, heads, now).await
}

/// Stored checkpoints, by tenant then size.
pub async fn checkpoints(
    conn: &impl ConnectionTrait,
    tenant: Option<&str>,
) -> Result<Vec<StoredCheckpoint>, DbErr> {
    let mut query = audit_checkpoint::Entity::find();
    if let Some(tenant) = tenant {
        query = query.filter(audit_checkpoint::Column::Tenant.eq(tenant));
    }
    query
        .order_by_asc(audit_checkpoint::Column::Tenant)
        .order_by_asc(audit_checkpoint::Column::Size)
        .all(conn)
        .await
}

/// One page of a tenant's checkpoints and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPage {
    /// The checkpoints, in the requested order of size.
    pub checkpoints: Vec<StoredCheckpoint>,
    /// The size after which the next page starts, when there is more.
    pub next: Option<u64>,
}

/// At most `limit` of `tenant`'s checkpoints after size `after` (in `order`), by size.
pub async fn checkpoints_page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    order: Order,
    after: Option<u64>,
    limit: u64,
) -> Result<CheckpointPage, DbErr> {
    let limit = limit.max(1);
    let mut query =
        audit_checkpoint::Entity::find().filter(audit_checkpoint::Column::Tenant.eq(tenant));
    if let Some(after) = after {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        query = query.filter(match order {
            Order::Asc => audit_checkpoint::Column::Size.gt(after),
            Order::Desc => audit_checkpoint::Column::Size.lt(after),
        });
    }
    query = match order {
        Order::Asc => query.order_by_asc(audit_checkpoint::Column::Size),
        Order::Desc => query.order_by_desc(audit_checkpoint::Column::Size),
    };
    let mut checkpoints = query.limit(limit + 1).all(conn).await?;
    let more = checkpoints.len() as u64 > limit;
    checkpoints.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = checkpoints
        .last()
        .filter(|_| more)
        .and_then(|cp| u64::try_from(cp.size).ok());
    Ok(CheckpointPage { checkpoints, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{REFERENCE_VKEY, reference_signer};
    use crate::{Event, append};
    use arbiter_db::{Db, testing::test_targets};

    const CP3: &str = "arbiter-audit-checkpoint/v1\n\
        audit.example.com/arbiter/acme\n\
        3\n\
        0f2c05a183824bd99a22446d78a5e5be79a4e5f96f160183501d0132b5d6c7f4\n\
        2026-01-15T11:00:00Z\n\
        \n\
        \u{2014} audit.example.com/arbiter 1JanugRBm09EV7OfAPeDq0Jq2saoNXkn6sjNOHZvd2Tg418aBaahW+gtohya3GQNHGQdVqavUSnpKNbl42SkegGKsgg=\n";

    fn reference_checkpoint() -> Checkpoint {
        Checkpoint {
            log_name: "audit.example.com/arbiter".into(),
            tenant: "acme".into(),
            size: 3,
            root_hash: "0f2c05a183824bd99a22446d78a5e5be79a4e5f96f160183501d0132b5d6c7f4".into(),
            issued_at: "2026-01-15T11:00:00Z".into(),
        }
    }

    #[test]
    fn reproduces_the_reference_checkpoint_byte_for_byte() {
        assert_eq!(reference_checkpoint().sign(&reference_signer()), CP3);
    }

    #[test]
    fn opening_the_reference_checkpoint_with_the_reference_key() {
        let vkey = VerifierKey::parse(REFERENCE_VKEY).unwrap();
        assert_eq!(
            Checkpoint::open(CP3, &vkey).unwrap(),
            reference_checkpoint()
        );
    }

    #[test]
    fn altered_or_foreign_checkpoints_are_refused() {
        let vkey = VerifierKey::parse(REFERENCE_VKEY).unwrap();
        let edited = CP3.replace("\n3\n", "\n4\n");
        assert!(matches!(
            Checkpoint::open(&edited, &vkey),
            Err(CheckpointError::BadSignature(_))
        ));
        let other = Signer::new(
            crate::SigningKey::from_seed([1; 32]),
            "audit.example.com/arbiter",
        )
        .unwrap();
        let forged = reference_checkpoint().sign(&other);
        assert!(matches!(
            Checkpoint::open(&forged, &vkey),
            Err(CheckpointError::NotSigned(_))
        ));
        // A signature by an unknown key next to the real one is ignored.
        let cosigned = format!(
            "{CP3}{}",
            other.signature_line(&reference_checkpoint().body())
        );
        assert!(Checkpoint::open(&cosigned, &vkey).is_ok());
        for broken in [
            CP3.replace("\n\n", "\n"),
            CP3.trim_end().to_owned(),
            CP3.replace("arbiter-audit-checkpoint/v1", "x"),
        ] {
            assert!(Checkpoint::open(&broken, &vkey).is_err(), "{broken}");
        }
    }

    fn event(n: u32) -> Event {
        Event::WebhookAbandoned {
            request_id: format!("req_{n}"),
            reference_id: None,
            endpoint: "claims-system".to_owned(),
            attempts: n,
            detail: "unreachable".to_owned(),
        }
    }

    async fn append_at(db: &Db, tenant: &str, at: DateTime<Utc>, n: u32) {
        let txn = db.begin_write().await.unwrap();
        append(&txn, tenant, at, event(n)).await.unwrap();
        txn.commit().await.unwrap();
    }

    /// The clock is injected: `now` is passed in, nothing sleeps.
    #[tokio::test]
    async fn checkpoints_fall_due_by_count_or_age_and_only_for_chains_that_grew() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        let signer = reference_signer();
        let vkey = signer.verifier_key();
        let policy = CheckpointPolicy {
            every_entries: 3,
            every: Duration::from_secs(60),
        };
        let t0 = DateTime::parse_from_rfc3339("2026-01-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let secs = |n: i64| t0 + chrono::Duration::seconds(n);
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let conn = db.conn();
            append_at(&db, "acme", secs(0), 0).await;
            append_at(&db, "acme", secs(1), 1).await;
            append_at(&db, "globex", secs(1), 0).await;
            let due = write_due_checkpoints(conn, &signer, &policy, secs(30))
                .await
                .unwrap();
            assert!(due.is_empty(), "{label}: nothing is due yet");

            append_at(&db, "acme", secs(31), 2).await;
            let written = write_due_checkpoints(conn, &signer, &policy, secs(32))
                .await
                .unwrap();
            assert_eq!(written.len(), 1, "{label}: acme has 3 unsigned entries");
            assert_eq!((written[0].tenant.as_str(), written[0].size), ("acme", 3));
            let opened = Checkpoint::open(&written[0].note, &vkey).unwrap();
            assert_eq!(opened.issued_at, "2026-01-15T10:00:32Z");
            assert_eq!(opened.size, 3);

            // globex's only entry turns 60 s old at secs(61).
            assert!(
                checkpoint_due(conn, &policy, secs(60))
                    .await
                    .unwrap()
                    .is_empty(),
                "{label}"
            );
            let written = write_due_checkpoints(conn, &signer, &policy, secs(61))
                .await
                .unwrap();
            assert_eq!(written.len(), 1, "{label}");
            assert_eq!((written[0].tenant.as_str(), written[0].size), ("globex", 1));

            // Nothing grew: nothing to sign, even when forced.
            assert!(
                write_checkpoints(conn, &signer, secs(500))
                    .await
                    .unwrap()
                    .is_empty()
            );
            // At shutdown every grown chain is signed, due or not.
            append_at(&db, "acme", secs(501), 3).await;
            let written = write_checkpoints(conn, &signer, secs(502)).await.unwrap();
            assert_eq!(written.len(), 1, "{label}");
            assert_eq!(written[0].size, 4);

            let stored = checkpoints(conn, None).await.unwrap();
            let sizes: Vec<_> = stored.iter().map(|c| (c.tenant.as_str(), c.size)).collect();
            assert_eq!(sizes, [("acme", 3), ("acme", 4), ("globex", 1)], "{label}");
            // Paged per tenant, both ways.
            let page = checkpoints_page(conn, "acme", Order::Asc, None, 1)
                .await
                .unwrap();
            assert_eq!(page.checkpoints[0].size, 3, "{label}");
            assert_eq!(page.next, Some(3));
            let page = checkpoints_page(conn, "acme", Order::Asc, Some(3), 1)
                .await
                .unwrap();
            assert_eq!(page.checkpoints[0].size, 4, "{label}");
            assert_eq!(page.next, None);
            let page = checkpoints_page(conn, "acme", Order::Desc, None, 10)
                .await
                .unwrap();
            let sizes: Vec<_> = page.checkpoints.iter().map(|c| c.size).collect();
            assert_eq!((sizes, page.next), (vec![4, 3], None), "{label}");
            // Checkpoints are append-only too.
            use arbiter_db::sea_orm::ConnectionTrait as _;
            let err = conn
                .execute_unprepared("DELETE FROM audit_checkpoints")
                .await
                .unwrap_err();
            assert!(err.to_string().contains("append-only"), "{label}: {err}");
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
