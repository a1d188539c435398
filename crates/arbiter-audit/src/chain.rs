//! Appending to a tenant's chain inside the caller's transaction.
//!
//! The tenant's head row is locked (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite transactions
//! are started with `BEGIN IMMEDIATE`, one writer at a time), so appends to one chain are
//! serialized and `seq` is gapless. `seq` never comes from a database sequence.

use crate::entry::{
    EncodeError, Entry, Event, FORMAT_VERSION, GENESIS_HASH, entry_hash, format_ts,
};
use arbiter_db::entity::{audit_entry, audit_head};
use arbiter_db::sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use chrono::{DateTime, Utc};

/// Why an append or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The entry could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A stored entry is not valid JSON.
    #[error("stored audit entry {tenant}/{seq} is unreadable: {source}")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// The entry's seq.
        seq: i64,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// An entry as stored: the entry and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The entry.
    pub entry: Entry,
    /// Its hash.
    pub entry_hash: String,
}

impl StoredEntry {
    /// The canonical JSON with `entry_hash`: one line of an export.
    pub fn to_line(&self) -> Result<String, EncodeError> {
        self.entry.canonical_with_hash(&self.entry_hash)
    }
}

/// Appends an event to the tenant's chain, inside the caller's transaction.
pub async fn append(
    conn: &impl ConnectionTrait,
    tenant: &str,
    ts: DateTime<Utc>,
    event: Event,
) -> Result<StoredEntry, AuditError> {
    let head = audit_head::ActiveModel {
        tenant: Set(tenant.to_owned()),
        size: Set(0),
        head_hash: Set(GENESIS_HASH.to_owned()),
    };
    audit_head::Entity::insert(head)
        .on_conflict_do_nothing_on([audit_head::Column::Tenant])
        .exec_without_returning(conn)
        .await?;
    let head = audit_head::Entity::find_by_id(tenant.to_owned())
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("audit head of tenant {tenant}")))?;

    let entry = Entry {
        v: FORMAT_VERSION,
        seq: u64::try_from(head.size).unwrap_or_default(),
        prev_hash: head.head_hash,
        ts: format_ts(ts),
        tenant: tenant.to_owned(),
        event,
    };
    let canonical = entry.canonical()?;
    let hash = entry_hash(&canonical);
    let row = audit_entry::ActiveModel {
        tenant: Set(tenant.to_owned()),
        seq: Set(head.size),
        event: Set(entry.event.name().to_owned()),
        ts: Set(entry.ts.clone()),
        request_id: Set(entry.event.request_id().map(str::to_owned)),
        reference_id: Set(entry.event.reference_id().map(str::to_owned)),
        image_sha256: Set(entry.event.image_sha256().map(str::to_owned)),
        prev_hash: Set(entry.prev_hash.clone()),
        entry_hash: Set(hash.clone()),
        canonical: Set(canonical),
    };
    audit_entry::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    let head = audit_head::ActiveModel {
        tenant: Set(tenant.to_owned()),
        size: Set(head.size + 1),
        head_hash: Set(hash.clone()),
    };
    audit_head::Entity::update(head).exec(conn).await?;
    Ok(StoredEntry {
        entry,
        entry_hash: hash,
    })
}

/// Which entries to read. Every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Only this tenant's chain.
    pub tenant: Option<String>,
    /// At most this many (the newest ones), returned oldest first.
    pub limit: Option<u64>,
    /// Only entries about this request.
    pub request_id: Option<String>,
    /// Only entries with this caller's reference.
    pub reference_id: Option<String>,
    /// Only entries about this image (SHA-256 of its bytes).
    pub image_sha256: Option<String>,
    /// Only this event (`decision.recorded`, ...).
    pub event: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries at or before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Entries, oldest first within each tenant.
pub async fn entries(
    conn: &impl ConnectionTrait,
    filter: &EntryFilter,
) -> Result<Vec<StoredEntry>, AuditError> {
    let mut query = audit_entry::Entity::find();
    let columns = [
        (audit_entry::Column::Tenant, &filter.tenant),
        (audit_entry::Column::RequestId, &filter.request_id),
        (audit_entry::Column::ReferenceId, &filter.reference_id),
        (audit_entry::Column::ImageSha256, &filter.image_sha256),
        (audit_entry::Column::Event, &filter.event),
    ];
    for (column, value) in columns {
        if let Some(value) = value {
            query = query.filter(column.eq(value.as_str()));
        }
    }
    // `ts` is fixed-width UTC text, so it compares as time does.
    if let Some(since) = filter.since {
        query = query.filter(audit_entry::Column::Ts.gte(format_ts(since)));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_entry::Column::Ts.lte(format_ts(until)));
    }
    let mut rows = match filter.limit {
        Some(limit) => {
            let mut rows = query
                .order_by_desc(audit_entry::Column::Seq)
                .order_by_desc(audit_entry::Column::Tenant)
                .limit(limit)
                .all(conn)
                .await?;
            rows.reverse();
            rows
        }
        None => query.all(conn).await?,
    };
    rows.sort_by(|a, b| (&a.tenant, a.seq).cmp(&(&b.tenant, b.seq)));
    rows.into_iter()
        .map(|row| {
            let entry =
                serde_json::from_str(&row.canonical).map_err(|source| AuditError::Corrupt {
                    tenant: row.tenant.clone(),
                    seq: row.seq,
                    source,
                })?;
            Ok(StoredEntry {
                entry,
                entry_hash: row.entry_hash,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_db::sea_orm::TransactionTrait;
    use arbiter_db::{Db, testing::test_targets};

    fn abandoned(n: u32) -> Event {
        Event::WebhookAbandoned {
            request_id: format!("req_{n}"),
            reference_id: None,
            endpoint: "claims-system".to_owned(),
            attempts: n,
            detail: "unreachable".to_owned(),
        }
    }

    #[tokio::test]
    async fn concurrent_appends_build_gapless_linked_chains() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let tasks: Vec<_> = (0..24u32)
                .map(|n| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        let tenant = if n % 2 == 0 { "acme" } else { "globex" };
                        let txn = db.begin_write().await.unwrap();
                        append(&txn, tenant, Utc::now(), abandoned(n))
                            .await
                            .unwrap();
                        txn.commit().await.unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            // A rolled-back append leaves no trace and no gap.
            let txn = db.conn().begin().await.unwrap();
            append(&txn, "acme", Utc::now(), abandoned(99))
                .await
                .unwrap();
            txn.rollback().await.unwrap();

            for tenant in ["acme", "globex"] {
                let filter = EntryFilter {
                    tenant: Some(tenant.to_owned()),
                    ..EntryFilter::default()
                };
                let chain = entries(db.conn(), &filter).await.unwrap();
                assert_eq!(chain.len(), 12, "{label}");
                let mut prev = GENESIS_HASH.to_owned();
                for (i, stored) in chain.iter().enumerate() {
                    assert_eq!(stored.entry.seq, i as u64, "{label}");
                    assert_eq!(stored.entry.prev_hash, prev, "{label}");
                    assert_eq!(
                        entry_hash(&stored.entry.canonical().unwrap()),
                        stored.entry_hash
                    );
                    prev = stored.entry_hash.clone();
                }
            }
            let last_two = entries(
                db.conn(),
                &EntryFilter {
                    tenant: Some("acme".into()),
                    limit: Some(2),
                    ..EntryFilter::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(
                last_two.iter().map(|e| e.entry.seq).collect::<Vec<_>>(),
                vec![10, 11],
                "{label}"
            );
            db.conn().clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test]
    async fn filters_select_by_request_reference_image_event_and_time() {
        use crate::entry::{AnalysisFields, VerdictBp};
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-01-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let analysis = |n: u32| Event::AnalysisRecorded {
            analysis: AnalysisFields {
                request_id: format!("req_{n}"),
                reference_id: Some(format!("claim-{}", n % 2)),
                image_sha256: format!("{n:064}"),
                detector: "local".into(),
                verdict: VerdictBp {
                    label: "AUTHENTIC".into(),
                    confidence_bp: 100,
                    risk_level: "LOW".into(),
                },
                scores: Default::default(),
            },
        };
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let txn = db.begin_write().await.unwrap();
            for n in 0..6u32 {
                let ts = t0 + chrono::Duration::minutes(i64::from(n));
                let event = if n == 5 { abandoned(1) } else { analysis(n) };
                append(&txn, "acme", ts, event).await.unwrap();
            }
            append(&txn, "globex", t0, analysis(1)).await.unwrap();
            txn.commit().await.unwrap();
            let seqs = async |filter: EntryFilter| {
                entries(db.conn(), &filter)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| (e.entry.tenant.clone(), e.entry.seq))
                    .collect::<Vec<_>>()
            };
            let acme = |seqs: &[u64]| {
                seqs.iter()
                    .map(|&s| ("acme".to_owned(), s))
                    .collect::<Vec<_>>()
            };
            let by_request = EntryFilter {
                request_id: Some("req_1".into()),
                ..EntryFilter::default()
            };
            assert_eq!(
                seqs(by_request.clone()).await,
                [
                    ("acme".to_owned(), 1),
                    ("acme".to_owned(), 5),
                    ("globex".to_owned(), 0)
                ],
                "{label}"
            );
            let filter = EntryFilter {
                tenant: Some("acme".into()),
                ..by_request
            };
            assert_eq!(seqs(filter).await, acme(&[1, 5]), "{label}");
            let filter = EntryFilter {
                tenant: Some("acme".into()),
                reference_id: Some("claim-0".into()),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[0, 2, 4]), "{label}");
            let filter = EntryFilter {
                image_sha256: Some(format!("{:064}", 3)),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[3]), "{label}");
            let filter = EntryFilter {
                event: Some("webhook.abandoned".into()),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[5]), "{label}");
            let filter = EntryFilter {
                tenant: Some("acme".into()),
                since: Some(t0 + chrono::Duration::minutes(2)),
                until: Some(t0 + chrono::Duration::seconds(4 * 60)),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[2, 3, 4]), "{label}");
            db.conn().clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
