//! The webhooks announcing what the engine records, written to the outbox
//! ([`arbiter_webhooks::outbox`]) in the caller's transaction: a recorded analysis's
//! `analysis.complete`, with the decision and the flow's own event when a policy decided, and
//! each signed audit checkpoint's `audit.checkpoint` (the checkpoint signer's
//! [`Announce`] hook).

use crate::record::Record;
use arbiter_audit::{Announce, StoredCheckpoint, VerifierKey};
use arbiter_db::sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use arbiter_webhooks::{Deliveries, Message};
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Notify;

/// The deliveries announcing a recorded analysis.
pub trait AnalysisDeliveries {
    /// Adds the guide's `analysis.complete` body (plus the decision and the flow's own event
    /// when a policy decided), for `url` and the tenant's endpoints.
    fn add_analysis(
        &mut self,
        conn: &impl ConnectionTrait,
        record: &Record<'_>,
        batch_id: Option<&str>,
        url: Option<&str>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;
}

impl AnalysisDeliveries for Deliveries {
    async fn add_analysis(
        &mut self,
        conn: &impl ConnectionTrait,
        record: &Record<'_>,
        batch_id: Option<&str>,
        url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let flow_event = record.decided.and_then(|d| d.event);
        let events: Vec<&str> = ["analysis.complete"]
            .into_iter()
            .chain(flow_event)
            .collect();
        // Most requests have no one to tell: build no bodies for them.
        self.load_endpoints(conn, record.tenant).await?;
        let wanted = events
            .iter()
            .any(|event| self.has_takers(record.tenant, event));
        if url.is_none() && !wanted {
            return Ok(());
        }
        let now = now.trunc_subsecs(3);
        let request_id = record.request_id.as_str();
        let mut payload = json!({
            "event": "analysis.complete",
            "type": "analysis.complete",
            "timestamp": now,
            "request_id": request_id,
            "reference_id": record.reference_id,
            "image_sha256": record.analysis.image_info.sha256,
            "verdict": record.analysis.verdict,
            "webhook_delivered_at": now,
        });
        if let Some(batch_id) = batch_id {
            payload["batch_id"] = json!(batch_id);
        }
        if let Some(decided) = record.decided {
            payload["decision"] = decided.decision_summary();
        }
        let message = Message {
            event: "analysis.complete",
            payload,
            request_id: Some(request_id),
            reference_id: record.reference_id,
            batch_id,
        };
        self.add(conn, record.tenant, &message, url, now).await?;
        if let Some((decided, event)) = record.decided.and_then(|d| d.event.map(|e| (d, e))) {
            let mut payload = json!({
                "event": event,
                "type": event,
                "timestamp": now,
                "request_id": request_id,
                "reference_id": record.reference_id,
                "image_sha256": record.analysis.image_info.sha256,
                "verdict": record.analysis.verdict,
                "decision": decided.decision_summary(),
            });
            if let Some(case) = record.case {
                payload[case.kind] = case.summary.clone();
            }
            let message = Message {
                event,
                payload,
                ..message
            };
            self.add(conn, record.tenant, &message, None, now).await?;
        }
        Ok(())
    }
}

/// The webhook event announcing a checkpoint.
pub const CHECKPOINT_EVENT: &str = "audit.checkpoint";

/// Announces each signed audit checkpoint as an `audit.checkpoint` webhook to the tenant's
/// endpoints that take it, in the checkpoint's own transaction, and wakes the delivery loops
/// once they are committed.
#[derive(Debug, Clone, Default)]
pub struct CheckpointWebhooks {
    /// Rung when deliveries were committed ([`arbiter_webhooks::Webhooks::wake`]).
    pub wake: Arc<Notify>,
}

#[async_trait]
impl Announce for CheckpointWebhooks {
    async fn announce(
        &self,
        txn: &DatabaseTransaction,
        checkpoint: &StoredCheckpoint,
        vkey: &VerifierKey,
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
            "vkey": vkey.to_string(),
        });
        let message = Message {
            event: CHECKPOINT_EVENT,
            payload,
            request_id: None,
            reference_id: None,
            batch_id: None,
        };
        arbiter_webhooks::enqueue(txn, &checkpoint.tenant, &message, None, now).await
    }

    fn announced(&self, _rows: usize) {
        self.wake.notify_waiters();
    }
}
