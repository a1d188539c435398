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

#[cfg(test)]
#[cfg(feature = "flow-kyc")]
mod tests {
    use super::*;
    use crate::record::{CaseContext, Decided};
    use crate::test_support::{image, pipeline};
    use arbiter_core::{Analysis, AnalyzeOptions, RequestId, Verdict, VerdictLabel};
    use arbiter_db::entity::{webhook_delivery, webhook_endpoint};
    use arbiter_db::{Db, DbTarget};
    use serde_json::Value;

    fn endpoint(id: &str, events: &str, disabled: bool) -> webhook_endpoint::Model {
        webhook_endpoint::Model {
            endpoint_id: id.to_owned(),
            tenant: "acme".to_owned(),
            url: format!("https://hooks.example/{id}"),
            events: events.to_owned(),
            description: None,
            secret: String::new(),
            disabled_at: disabled.then(Utc::now),
            disabled_reason: None,
            created_at: Utc::now(),
        }
    }

    /// A database, an analysis and a KYC decision about it.
    async fn setup(dir: &std::path::Path) -> (Db, Analysis, Decided) {
        let db = Db::connect(&DbTarget::DataDir(dir.into())).await.unwrap();
        let verdict = Verdict::new(VerdictLabel::AiGenerated, 0.97);
        let (pipeline, _) = pipeline(db.clone(), verdict);
        let analysis = pipeline
            .analyze(
                pipeline.detector_for(None, None),
                &image(20),
                &AnalyzeOptions::default(),
            )
            .await
            .unwrap();
        let input = json!({"image_role": "selfie", "liveness": {"passed": true}});
        let decided = pipeline.apply_policy("kyc", &input, &analysis).unwrap();
        (db, analysis, decided)
    }

    /// The deliveries added for `record`, written and read back oldest first.
    async fn written(
        db: &Db,
        endpoints: Vec<webhook_endpoint::Model>,
        record: &Record<'_>,
        batch_id: Option<&str>,
        url: Option<&str>,
    ) -> Vec<webhook_delivery::Model> {
        let mut deliveries = Deliveries::default();
        deliveries.set_endpoints("acme", endpoints);
        deliveries
            .add_analysis(db.conn(), record, batch_id, url, Utc::now())
            .await
            .unwrap();
        let count = deliveries.write(db.conn()).await.unwrap();
        let mut rows = arbiter_db::webhooks::list_deliveries(db.conn(), "acme", None, 50)
            .await
            .unwrap();
        assert_eq!(rows.len(), count);
        rows.sort_by(|a, b| (&a.event, &a.url).cmp(&(&b.event, &b.url)));
        rows
    }

    fn body(row: &webhook_delivery::Model) -> Value {
        serde_json::from_str(&row.body).unwrap()
    }

    #[tokio::test]
    async fn with_no_one_to_tell_nothing_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (db, analysis, decided) = setup(dir.path()).await;
        let request_id = RequestId::new();
        let record = Record {
            tenant: "acme",
            request_id: &request_id,
            reference_id: None,
            analysis: &analysis,
            decided: Some(&decided),
            request_row: None,
            case: None,
        };
        let endpoints = vec![
            endpoint("ep_off", "[]", true),
            endpoint("ep_reviews", r#"["review.resolved"]"#, false),
        ];
        assert!(
            written(&db, endpoints, &record, None, None)
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_analysis_goes_to_the_callers_url_and_the_endpoints_that_take_it() {
        let dir = tempfile::tempdir().unwrap();
        let (db, analysis, _) = setup(dir.path()).await;
        let request_id = RequestId::new();
        let record = Record {
            tenant: "acme",
            request_id: &request_id,
            reference_id: Some("ref-1"),
            analysis: &analysis,
            decided: None,
            request_row: None,
            case: None,
        };
        let endpoints = vec![
            endpoint("ep_all", "[]", false),
            endpoint("ep_off", "[]", true),
            endpoint("ep_reviews", r#"["review.resolved"]"#, false),
        ];
        let url = "https://caller.example/hook";
        let rows = written(&db, endpoints, &record, Some("bat_1"), Some(url)).await;
        let targets: Vec<_> = rows
            .iter()
            .map(|r| (r.event.as_str(), r.url.as_str(), r.endpoint_id.as_deref()))
            .collect();
        assert_eq!(
            targets,
            [
                ("analysis.complete", url, None),
                (
                    "analysis.complete",
                    "https://hooks.example/ep_all",
                    Some("ep_all")
                ),
            ]
        );
        let sent = body(&rows[0]);
        assert_eq!(sent["type"], "analysis.complete");
        assert_eq!(sent["request_id"], json!(request_id));
        assert_eq!(sent["reference_id"], "ref-1");
        assert_eq!(sent["batch_id"], "bat_1");
        assert_eq!(sent["image_sha256"], json!(analysis.image_info.sha256));
        assert!(sent.get("decision").is_none(), "no policy decided");
        assert_eq!(rows[0].batch_id.as_deref(), Some("bat_1"));
        assert_eq!(rows[0].status, arbiter_db::webhooks::PENDING);
    }

    #[tokio::test]
    async fn a_decision_with_a_flow_event_is_announced_twice_with_its_case() {
        let dir = tempfile::tempdir().unwrap();
        let (db, analysis, mut decided) = setup(dir.path()).await;
        decided.event = Some("content.decision");
        let request_id = RequestId::new();
        let case = CaseContext {
            kind: "session",
            case_id: "S-1".to_owned(),
            summary: json!({"case_id": "S-1", "status": "pending"}),
        };
        let record = Record {
            tenant: "acme",
            request_id: &request_id,
            reference_id: None,
            analysis: &analysis,
            decided: Some(&decided),
            request_row: None,
            case: Some(&case),
        };
        let endpoints = vec![endpoint("ep_flow", r#"["content.decision"]"#, false)];
        let rows = written(&db, endpoints, &record, None, None).await;
        // Only the flow's event has a taker: `analysis.complete` goes to no one.
        let events: Vec<_> = rows.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(events, ["content.decision"]);
        let sent = body(&rows[0]);
        assert_eq!(sent["decision"]["action"], "reject");
        assert_eq!(sent["session"], case.summary);
        assert!(sent.get("batch_id").is_none());

        let endpoints = vec![endpoint("ep_all", "[]", false)];
        let request_id = RequestId::new();
        let record = Record {
            request_id: &request_id,
            ..record
        };
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let rows = written(&db, endpoints, &record, None, None).await;
        let events: Vec<_> = rows.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(events, ["analysis.complete", "content.decision"]);
        assert_eq!(body(&rows[0])["decision"]["reason"], "SYNTHETIC_SELFIE");
    }
}
