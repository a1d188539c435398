//! Bodies, queries and answers of `/v1/webhooks/endpoints` and `/v1/webhooks/deliveries`.

use arbiter_db::entity::{webhook_attempt, webhook_delivery, webhook_endpoint};
use arbiter_db::webhooks as repo;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A new endpoint.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where deliveries go: an http or https URL whose host resolves, at registration, to
    /// addresses the server may reach (public ones unless `outbound.allow_cidrs`). That last
    /// rule depends on DNS and the server's configuration: the document cannot state it.
    #[schema(pattern = "^https?://[^/?#]+")]
    pub url: String,
    /// Events it receives (`analysis.complete`, `analysis.failed`, `batch.complete`, or a flow's
    /// action event), each 1 to 64 of `a-z 0-9 . _`; none or empty: every event.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9._]{1,64}$")]
    pub events: Vec<String>,
    /// A label for people.
    #[serde(default)]
    pub description: Option<String>,
}

/// An endpoint as listed (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// `ep_...`.
    pub endpoint_id: String,
    /// Where deliveries go.
    pub url: String,
    /// Events it receives; empty: every event.
    pub events: Vec<String>,
    /// A label for people.
    pub description: Option<String>,
    /// When it was disabled (it answered 410 Gone).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why.
    pub disabled_reason: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for EndpointView {
    fn from(row: webhook_endpoint::Model) -> Self {
        Self {
            events: serde_json::from_str(&row.events).unwrap_or_default(),
            endpoint_id: row.endpoint_id,
            url: row.url,
            description: row.description,
            disabled_at: row.disabled_at,
            disabled_reason: row.disabled_reason,
            created_at: row.created_at,
        }
    }
}

/// A registered endpoint with its secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointCreated {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// Its `whsec_` signing secret. Keep it now: it is not shown again.
    pub secret: String,
}

/// A list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListOf<T> {
    /// The items.
    pub data: Vec<T>,
}

impl<T> ListOf<T> {
    /// The list of `rows`, each shown as a `T`.
    pub fn of<R: Into<T>>(rows: Vec<R>) -> Self {
        Self {
            data: rows.into_iter().map(Into::into).collect(),
        }
    }
}

/// One stored attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// The status code; none when there was no answer in time.
    pub status_code: Option<i32>,
    /// How long it took.
    pub duration_ms: i64,
    /// The start of the answer's body.
    pub response_body: String,
    /// Why there was no answer.
    pub error: Option<String>,
}

impl From<webhook_attempt::Model> for AttemptView {
    fn from(row: webhook_attempt::Model) -> Self {
        Self {
            attempt: row.attempt,
            attempted_at: row.attempted_at,
            status_code: row.status_code,
            duration_ms: row.duration_ms,
            response_body: row.response_body,
            error: row.error,
        }
    }
}

/// A delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// `msg_...`, the `webhook-id` header.
    pub delivery_id: String,
    /// The event.
    pub event: String,
    /// Where it goes.
    pub url: String,
    /// The registered endpoint, if any.
    pub endpoint_id: Option<String>,
    /// The request it is about.
    pub request_id: Option<String>,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// The batch it is about.
    pub batch_id: Option<String>,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's status code.
    pub last_status: Option<i32>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
    /// When it succeeded or was abandoned.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt (on `GET /v1/webhooks/deliveries/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptView>>,
}

impl From<webhook_delivery::Model> for DeliveryView {
    fn from(row: webhook_delivery::Model) -> Self {
        Self {
            next_attempt_at: (row.status == repo::PENDING)
                .then(|| DateTime::from_timestamp_millis(row.next_attempt_ms))
                .flatten(),
            delivery_id: row.delivery_id,
            event: row.event,
            url: row.url,
            endpoint_id: row.endpoint_id,
            request_id: row.request_id,
            reference_id: row.reference_id,
            batch_id: row.batch_id,
            status: row.status,
            attempts: row.attempts,
            last_status: row.last_status,
            last_error: row.last_error,
            created_at: row.created_at,
            finished_at: row.finished_at,
            attempt_log: None,
        }
    }
}

/// Query of the delivery list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Only deliveries with this status: `pending`, `succeeded` or `failed`.
    #[param(pattern = "^(pending|succeeded|failed)$")]
    pub status: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn endpoint(events: &str) -> webhook_endpoint::Model {
        webhook_endpoint::Model {
            endpoint_id: "ep_1".into(),
            tenant: "acme".into(),
            url: "https://hooks.example/in".into(),
            events: events.into(),
            description: Some("claims".into()),
            secret: "whsec_secret".into(),
            disabled_at: None,
            disabled_reason: None,
            created_at: at("2026-03-02T10:00:00Z"),
        }
    }

    fn delivery(status: &str) -> webhook_delivery::Model {
        webhook_delivery::Model {
            delivery_id: "msg_1".into(),
            tenant: "acme".into(),
            endpoint_id: Some("ep_1".into()),
            url: "https://hooks.example/in".into(),
            event: "analysis.complete".into(),
            request_id: Some("req_1".into()),
            reference_id: None,
            batch_id: None,
            body: "{}".into(),
            status: status.into(),
            attempts: 2,
            next_attempt_ms: 1_772_446_530_000,
            lease_owner: Some("replica-a".into()),
            lease_until_ms: 0,
            last_status: Some(500),
            last_error: None,
            created_at: at("2026-03-02T10:00:00Z"),
            finished_at: None,
        }
    }

    #[test]
    fn an_endpoint_is_shown_with_its_events_and_never_its_secret() {
        let view = EndpointView::from(endpoint(r#"["analysis.complete","batch.complete"]"#));
        let shown = serde_json::to_value(&view).unwrap();
        assert_eq!(
            shown,
            json!({
                "endpoint_id": "ep_1",
                "url": "https://hooks.example/in",
                "events": ["analysis.complete", "batch.complete"],
                "description": "claims",
                "disabled_at": null,
                "disabled_reason": null,
                "created_at": "2026-03-02T10:00:00Z",
            })
        );
        // The secret shows only beside a new endpoint, flattened into it.
        let created = EndpointCreated {
            endpoint: view,
            secret: "whsec_secret".into(),
        };
        let shown = serde_json::to_value(&created).unwrap();
        assert_eq!(shown["secret"], "whsec_secret");
        assert_eq!(shown["endpoint_id"], "ep_1");
    }

    #[test]
    fn an_endpoint_whose_stored_events_cannot_be_read_receives_every_event() {
        for stored in ["", "not json", r#"{"a": 1}"#, "[]"] {
            assert!(
                EndpointView::from(endpoint(stored)).events.is_empty(),
                "{stored}"
            );
        }
    }

    #[test]
    fn only_a_pending_delivery_shows_when_it_is_next_tried() {
        let pending = DeliveryView::from(delivery(repo::PENDING));
        assert_eq!(pending.next_attempt_at, Some(at("2026-03-02T10:15:30Z")));
        for finished in [repo::SUCCEEDED, repo::FAILED] {
            let view = DeliveryView::from(delivery(finished));
            assert_eq!(view.next_attempt_at, None, "{finished}");
            assert_eq!(view.status, finished);
        }
        // The attempt log is shown only when one is attached; the lease never.
        let shown = serde_json::to_value(&pending).unwrap();
        assert!(shown.get("attempt_log").is_none(), "{shown}");
        assert!(shown.get("lease_owner").is_none(), "{shown}");
        assert_eq!(shown["attempts"], 2);
        assert_eq!(shown["last_status"], 500);
        assert_eq!(shown["request_id"], "req_1");
    }

    #[test]
    fn a_list_shows_each_row_in_order() {
        let attempt = |n: i32| webhook_attempt::Model {
            id: n,
            delivery_id: "msg_1".into(),
            attempt: n,
            attempted_at: at("2026-03-02T10:00:00Z"),
            status_code: None,
            duration_ms: 5000,
            response_body: String::new(),
            error: Some("timed out".into()),
        };
        let list: ListOf<AttemptView> = ListOf::of(vec![attempt(1), attempt(2)]);
        let shown = serde_json::to_value(&list).unwrap();
        assert_eq!(shown["data"][0]["attempt"], 1);
        assert_eq!(shown["data"][1]["attempt"], 2);
        assert_eq!(shown["data"][1]["status_code"], serde_json::Value::Null);
        assert_eq!(shown["data"][1]["error"], "timed out");
        assert_eq!(shown["data"].as_array().unwrap().len(), 2);
    }
}
