//! The outbox: each event is written as delivery rows in the same transaction as what it
//! announces (persist before acting), one row per destination, for the delivery loops
//! ([`crate::delivery`]) to send.

use arbiter_core::MessageId;
use arbiter_db::entity::{webhook_delivery, webhook_endpoint};
use arbiter_db::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use arbiter_db::webhooks as repo;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;

/// The events a registered endpoint can ask for (a flow's action events come on top).
pub const EVENTS: [&str; 4] = [
    "analysis.complete",
    "analysis.failed",
    "batch.complete",
    "review.resolved",
];

/// One event to announce.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// `analysis.complete`, `batch.complete`, ...
    pub event: &'a str,
    /// The body.
    pub payload: Value,
    /// The request it is about.
    pub request_id: Option<&'a str>,
    /// The caller's reference.
    pub reference_id: Option<&'a str>,
    /// The batch it is about.
    pub batch_id: Option<&'a str>,
}

/// Whether an endpoint's filter takes an event (an empty filter takes every event).
pub fn wants(events: &[String], event: &str) -> bool {
    events.is_empty() || events.iter().any(|e| e == event)
}

/// Writes the deliveries of one event (inside the caller's transaction): to `url` when given
/// (signed with the tenant's secret), and to each live endpoint of the tenant that takes the
/// event. Returns how many rows were written.
pub async fn enqueue(
    conn: &impl ConnectionTrait,
    tenant: &str,
    message: &Message<'_>,
    url: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let mut deliveries = Deliveries::default();
    deliveries.add(conn, tenant, message, url, now).await?;
    deliveries.write(conn).await
}

/// Deliveries gathered inside a transaction and written together: each tenant's endpoints are
/// read once, and the rows inserted a hundred to a statement.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Each tenant's live endpoints, with their event filters parsed.
    endpoints: HashMap<String, Vec<(webhook_endpoint::Model, Vec<String>)>>,
    rows: Vec<webhook_delivery::Model>,
}

impl Deliveries {
    /// Adds the deliveries of one event: to `url` when given (signed with the tenant's secret),
    /// and to each live endpoint of the tenant that takes the event.
    pub async fn add(
        &mut self,
        conn: &impl ConnectionTrait,
        tenant: &str,
        message: &Message<'_>,
        url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        self.load_endpoints(conn, tenant).await?;
        let takers = self
            .takers(tenant, message.event)
            .map(|endpoint| (Some(endpoint.endpoint_id.as_str()), endpoint.url.as_str()));
        let targets: Vec<_> = url.map(|u| (None, u)).into_iter().chain(takers).collect();
        if targets.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(&message.payload)
            .map_err(|err| DbErr::Custom(format!("cannot serialise a webhook body: {err}")))?;
        let rows: Vec<_> = targets
            .into_iter()
            .map(|(endpoint_id, url)| webhook_delivery::Model {
                delivery_id: MessageId::new().to_string(),
                tenant: tenant.to_owned(),
                endpoint_id: endpoint_id.map(str::to_owned),
                url: url.to_owned(),
                event: message.event.to_owned(),
                request_id: message.request_id.map(str::to_owned),
                reference_id: message.reference_id.map(str::to_owned),
                batch_id: message.batch_id.map(str::to_owned),
                body: body.clone(),
                status: repo::PENDING.to_owned(),
                attempts: 0,
                next_attempt_ms: now.timestamp_millis(),
                lease_owner: None,
                lease_until_ms: 0,
                last_status: None,
                last_error: None,
                created_at: now,
                finished_at: None,
            })
            .collect();
        self.rows.extend(rows);
        Ok(())
    }

    /// Reads the tenant's live endpoints and their filters, once: the deliveries added for the
    /// tenant afterwards go to these.
    pub async fn load_endpoints(
        &mut self,
        conn: &impl ConnectionTrait,
        tenant: &str,
    ) -> Result<(), DbErr> {
        if !self.endpoints.contains_key(tenant) {
            let endpoints = repo::list_endpoints(conn, tenant).await?;
            self.set_endpoints(tenant, endpoints);
        }
        Ok(())
    }

    /// Takes `endpoints` (all of them, as read) as the tenant's.
    pub fn set_endpoints(&mut self, tenant: &str, endpoints: Vec<webhook_endpoint::Model>) {
        let live = endpoints
            .into_iter()
            .filter(|endpoint| endpoint.disabled_at.is_none())
            .map(|endpoint| {
                let events = serde_json::from_str(&endpoint.events).unwrap_or_default();
                (endpoint, events)
            })
            .collect();
        self.endpoints.insert(tenant.to_owned(), live);
    }

    /// Whether a live endpoint of the tenant (read by [`Deliveries::load_endpoints`]) takes
    /// `event`: when none does and there is no `url`, the event's body need not be built.
    pub fn has_takers(&self, tenant: &str, event: &str) -> bool {
        self.takers(tenant, event).next().is_some()
    }

    /// The live endpoints of the tenant (read by [`Deliveries::load_endpoints`]) that take
    /// `event`.
    fn takers<'a>(
        &'a self,
        tenant: &str,
        event: &'a str,
    ) -> impl Iterator<Item = &'a webhook_endpoint::Model> {
        let endpoints = self.endpoints.get(tenant).map_or(&[][..], Vec::as_slice);
        endpoints
            .iter()
            .filter(move |(_, events)| wants(events, event))
            .map(|(endpoint, _)| endpoint)
    }

    /// Writes the gathered rows; returns how many.
    pub async fn write(self, conn: &impl ConnectionTrait) -> Result<usize, DbErr> {
        let count = self.rows.len();
        repo::insert_deliveries(conn, self.rows).await?;
        Ok(count)
    }

    /// The inserts of the gathered rows, for the caller to run.
    pub fn statements(self, backend: DbBackend) -> Vec<Statement> {
        repo::delivery_statements(backend, self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_empty_filter_takes_every_event_and_a_list_only_its_own() {
        assert!(wants(&[], "batch.complete"));
        let only = vec!["review.resolved".to_owned()];
        assert!(wants(&only, "review.resolved"));
        assert!(!wants(&only, "analysis.complete"));
    }

    #[test]
    fn only_live_endpoints_whose_filter_takes_the_event_are_takers() {
        let mut deliveries = Deliveries::default();
        deliveries.set_endpoints(
            "acme",
            vec![
                endpoint("ep_all", "[]", false),
                endpoint("ep_review", r#"["review.resolved"]"#, false),
                endpoint("ep_off", "[]", true),
            ],
        );
        let takers = |event| {
            deliveries
                .takers("acme", event)
                .map(|e| e.endpoint_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(takers("review.resolved"), ["ep_all", "ep_review"]);
        assert_eq!(takers("batch.complete"), ["ep_all"]);
        assert!(deliveries.has_takers("acme", "batch.complete"));
        assert!(!deliveries.has_takers("globex", "batch.complete"));
    }
}
