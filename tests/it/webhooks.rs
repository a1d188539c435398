//! The webhook outbox against a real database (SQLite, and PostgreSQL when
//! `ARBITER_TEST_POSTGRES_URL` is set) and a loopback receiver, driven by an injected clock: the
//! retry schedule, `Retry-After`, 410 Gone, abandonment with its audit entry, the failed list and
//! replay of the same bytes. Delivery loops are off; the test makes each round itself.

use crate::harness::{
    self, Receiver, TestServer, b64, config, mint_key, new_key, sample, verify_delivery,
};

use arbiter_detect::LocalDetector;
use arbiter_server::AppState;
use arbiter_server::clock::{Clock, ManualClock};
use arbiter_server::keys::Scope;
use arbiter_webhooks::outbox::{self, Message};
use arbiter_webhooks::{WebhookSecret, verify_checkreal, verify_standard};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

struct Running {
    server: TestServer,
    state: AppState,
    clock: ManualClock,
    base: String,
}

async fn start(dir: &std::path::Path, url: String) -> Running {
    let start: DateTime<Utc> = "2026-03-16T14:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let mut config = config(dir, &url);
    config.outbound.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
    config.jobs.workers = 0;
    config.webhooks.workers = 0;
    config.webhooks.max_response_body_bytes = 100;
    let server = TestServer::start_with(
        config,
        Arc::new(clock.clone()),
        Some(Arc::new(LocalDetector::default())),
    )
    .await;
    Running {
        state: server.state.clone(),
        clock,
        base: server.base.clone(),
        server,
    }
}

async fn key(state: &AppState, tenant: &str) -> String {
    let scopes = [Scope::Webhooks, Scope::Batch, Scope::Analyze];
    mint_key(state, new_key(tenant, "growth", &scopes)).await.1
}

async fn enqueue(state: &AppState, url: &str, now: DateTime<Utc>) {
    let txn = state.pipeline.db().begin_write().await.unwrap();
    let message = Message {
        event: "analysis.complete",
        payload: json!({"event": "analysis.complete", "request_id": "req_1", "verdict": {"label": "AUTHENTIC"}}),
        request_id: Some("req_1"),
        reference_id: Some("claim-1"),
        batch_id: None,
    };
    assert_eq!(
        outbox::enqueue(&txn, "acme", &message, Some(url), now)
            .await
            .unwrap(),
        1
    );
    txn.commit().await.unwrap();
}

async fn deliveries(running: &Running, key: &str, status: &str) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/webhooks/deliveries?status={status}",
            running.base
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().clone()
}

async fn each_database(check: impl AsyncFn(&'static str, Running)) {
    harness::each_database(async |label, dir, url| {
        let running = start(dir, url).await;
        check(label, running).await;
    })
    .await;
}

#[tokio::test]
async fn failures_follow_the_schedule_then_are_abandoned_audited_listed_and_replayed() {
    each_database(async |label, running| {
        let state = &running.state;
        let receiver = Receiver::start(500).await;
        let base = &receiver.base;
        let key = key(state, "acme").await;
        let t0 = running.clock.now();
        enqueue(state, &format!("{base}/hook"), t0).await;

        // The guide's schedule, each delay within 10% jitter, tested by moving the clock.
        let schedule = [5u64, 30, 120, 600, 3600];
        assert_eq!(
            state.delivery_worker().deliver_due().await.unwrap(),
            1,
            "{label}"
        );
        for (n, delay) in schedule.iter().enumerate() {
            let pending = deliveries(&running, &key, "pending").await;
            assert_eq!(pending.len(), 1, "{label}");
            assert_eq!(pending[0]["attempts"], n + 1, "{label}");
            let due: DateTime<Utc> = pending[0]["next_attempt_at"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let wait = (due - running.clock.now()).num_milliseconds();
            let (low, high) = (*delay as i64 * 900, *delay as i64 * 1100);
            assert!(
                (low..=high).contains(&wait),
                "{label}: retry {n}: {wait} ms not within {low}..{high}"
            );
            // Not due a moment before.
            running
                .clock
                .advance(chrono::Duration::milliseconds(wait - 200));
            assert_eq!(
                state.delivery_worker().deliver_due().await.unwrap(),
                0,
                "{label}: retry {n} early"
            );
            running.clock.advance(chrono::Duration::milliseconds(200));
            assert_eq!(
                state.delivery_worker().deliver_due().await.unwrap(),
                1,
                "{label}: retry {n} due"
            );
        }
        // Six attempts (the first and five retries), then abandoned.
        assert!(
            deliveries(&running, &key, "pending").await.is_empty(),
            "{label}"
        );
        let failed = deliveries(&running, &key, "failed").await;
        assert_eq!(failed.len(), 1, "{label}");
        assert_eq!(failed[0]["attempts"], 6, "{label}");
        assert_eq!(failed[0]["last_status"], 500, "{label}");
        let id = failed[0]["delivery_id"].as_str().unwrap().to_owned();
        let one: Value = reqwest::Client::new()
            .get(format!("{}/v1/webhooks/deliveries/{id}", running.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let log = one["attempt_log"].as_array().unwrap();
        assert_eq!(log.len(), 6, "{label}");
        assert!(
            log.iter()
                .all(|a| a["status_code"] == 500
                    && a["response_body"].as_str().unwrap().len() == 100),
            "{label}: {one}"
        );
        let entries = arbiter_audit::entries(state.pipeline.db().conn(), &Default::default())
            .await
            .unwrap();
        let abandoned: Vec<_> = entries
            .iter()
            .filter(|e| e.entry.event.name() == "webhook.abandoned")
            .collect();
        assert_eq!(abandoned.len(), 1, "{label}");

        // Every attempt carried the same id and body; each verifies with the tenant's secret.
        let conn = state.pipeline.db().conn();
        let cipher = state.webhooks.cipher().await.unwrap();
        let (secret, _) =
            arbiter_webhooks::tenant_secrets(conn, cipher, "acme", running.clock.now())
                .await
                .unwrap();
        let got = receiver.received();
        assert_eq!(got.len(), 6, "{label}");
        for (headers, body) in &got {
            assert_eq!(headers["webhook-id"].to_str().unwrap(), id, "{label}");
            assert_eq!(body, &got[0].1, "{label}");
            verify_delivery(&secret, headers, body);
        }

        // Replay: the same id and bytes, now accepted.
        receiver.answer(200);
        let replay = reqwest::Client::new()
            .post(format!(
                "{}/v1/webhooks/deliveries/{id}/replay",
                running.base
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), 202, "{label}");
        assert_eq!(
            state.delivery_worker().deliver_due().await.unwrap(),
            1,
            "{label}"
        );
        let got = receiver.received();
        assert_eq!(got.len(), 7, "{label}");
        assert_eq!(got[6].1, got[0].1, "{label}: replay sends the same bytes");
        assert_eq!(got[6].0["webhook-id"], got[0].0["webhook-id"], "{label}");
        assert_eq!(
            deliveries(&running, &key, "succeeded").await.len(),
            1,
            "{label}"
        );

        // 429 with Retry-After: 42 s is honoured instead of the schedule's 5 s.
        receiver.answer(429);
        enqueue(state, &format!("{base}/hook"), running.clock.now()).await;
        assert_eq!(
            state.delivery_worker().deliver_due().await.unwrap(),
            1,
            "{label}"
        );
        let pending = deliveries(&running, &key, "pending").await;
        let due: DateTime<Utc> = pending[0]["next_attempt_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!((due - running.clock.now()).num_seconds(), 42, "{label}");

        running.server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn endpoints_have_their_own_secret_filter_events_and_are_disabled_by_410() {
    each_database(async |label, running| {
        let state = &running.state;
        let receiver = Receiver::start(410).await;
        let base = &receiver.base;
        let key = key(state, "acme").await;
        let client = reqwest::Client::new();
        let created: Value = client
            .post(format!("{}/v1/webhooks/endpoints", running.base))
            .bearer_auth(&key)
            .json(&json!({"url": format!("{base}/hook"), "events": ["analysis.complete"], "description": "claims"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret: WebhookSecret = created["secret"].as_str().unwrap().parse().unwrap();
        let endpoint_id = created["endpoint_id"].as_str().unwrap().to_owned();
        // Listing never shows the secret.
        let listed = client
            .get(format!("{}/v1/webhooks/endpoints", running.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(listed.contains(&endpoint_id) && !listed.contains("whsec_"), "{label}: {listed}");
        // A refused address is not registered.
        let refused = client
            .post(format!("{}/v1/webhooks/endpoints", running.base))
            .bearer_auth(&key)
            .json(&json!({"url": "http://10.1.2.3/hook"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{label}");

        // analysis.complete reaches the endpoint; batch.complete does not (filter).
        let txn = state.pipeline.db().begin_write().await.unwrap();
        let now = running.clock.now();
        for event in ["analysis.complete", "batch.complete"] {
            let message = Message { event, payload: json!({"event": event}), request_id: None, reference_id: None, batch_id: None };
            outbox::enqueue(&txn, "acme", &message, None, now).await.unwrap();
        }
        txn.commit().await.unwrap();
        assert_eq!(state.delivery_worker().deliver_due().await.unwrap(), 1, "{label}");
        let got = receiver.received();
        let (headers, body) = &got[0];
        let ts = headers["webhook-timestamp"].to_str().unwrap();
        verify_standard(&secret, headers["webhook-id"].to_str().ok(), Some(ts), headers["webhook-signature"].to_str().ok(), body.as_bytes(), ts.parse().unwrap()).unwrap();
        // 410: the endpoint is disabled and the delivery fails at once, audited.
        let endpoints: Value = client
            .get(format!("{}/v1/webhooks/endpoints", running.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(endpoints["data"][0]["disabled_at"].is_string(), "{label}: {endpoints}");
        assert_eq!(deliveries(&running, &key, "failed").await.len(), 1, "{label}");
        let delete = client
            .delete(format!("{}/v1/webhooks/endpoints/{endpoint_id}", running.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(delete.status(), 204, "{label}");
        running.server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_rotation_signs_with_both_secrets_during_the_overlap() {
    each_database(async |label, running| {
        let state = &running.state;
        let conn = state.pipeline.db().conn();
        let cipher = state.webhooks.cipher().await.unwrap();
        let now = running.clock.now();
        let (old, none) = arbiter_webhooks::tenant_secrets(conn, cipher, "acme", now)
            .await
            .unwrap();
        assert!(none.is_none(), "{label}");
        let (new, until) = arbiter_webhooks::rotate_tenant_secret(
            conn,
            cipher,
            "acme",
            now,
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap();
        assert_eq!((until - now).num_seconds(), 3600, "{label}");
        let (current, previous) = arbiter_webhooks::tenant_secrets(conn, cipher, "acme", now)
            .await
            .unwrap();
        assert_eq!(current, new, "{label}");
        assert_eq!(previous, Some(old), "{label}");
        running.clock.advance(chrono::Duration::seconds(3601));
        let (_, previous) =
            arbiter_webhooks::tenant_secrets(conn, cipher, "acme", running.clock.now())
                .await
                .unwrap();
        assert!(previous.is_none(), "{label}: the overlap is over");
        // Stored sealed: the secret's text is not in the database.
        let row = arbiter_db::webhooks::get_secret(conn, "acme")
            .await
            .unwrap()
            .unwrap();
        assert!(!row.secret.contains(new.expose()), "{label}");
        running.server.stop().await;
    })
    .await;
}

/// A record's deliveries go to the endpoints live when it is written, and its audit entry
/// follows the chain as it stands then, whoever wrote to either since the last record.
#[tokio::test]
async fn records_follow_endpoint_changes_and_other_writers_of_the_chain() {
    each_database(async |label, running| {
        let state = &running.state;
        let receiver = Receiver::start(200).await;
        let base = &receiver.base;
        let key = key(state, "acme").await;
        let client = reqwest::Client::new();
        let analyze = async |image: &str| {
            let response = client
                .post(format!("{}/v1/analyze", running.base))
                .bearer_auth(&key)
                .json(&json!({"image_base64": b64(&sample(image))}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{label}: {image}");
        };
        let pending = async || deliveries(&running, &key, "pending").await.len();

        analyze("plain-render.png").await;
        analyze("comfyui-render.png").await;
        assert_eq!(pending().await, 0, "{label}");
        let created: Value = client
            .post(format!("{}/v1/webhooks/endpoints", running.base))
            .bearer_auth(&key)
            .json(&json!({"url": format!("{base}/hook"), "events": ["analysis.complete"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let endpoint_id = created["endpoint_id"].as_str().unwrap().to_owned();
        analyze("sd-generated-duck.png").await;
        assert_eq!(pending().await, 1, "{label}");
        analyze("c2pa-edited-photo.jpg").await;
        assert_eq!(pending().await, 2, "{label}");

        // Another writer appends to the tenant's chain between two records.
        let _second_key = self::key(state, "acme").await;
        analyze("c2pa-ai-edited.jpg").await;
        assert_eq!(pending().await, 3, "{label}");

        let delete = client
            .delete(format!(
                "{}/v1/webhooks/endpoints/{endpoint_id}",
                running.base
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(delete.status(), 204, "{label}");
        analyze("c2pa-algorithmic.jpg").await;
        assert_eq!(pending().await, 3, "{label}");

        let report = arbiter_audit::verify_database(state.pipeline.db().conn(), None)
            .await
            .unwrap();
        assert!(report.ok(), "{label}: {report:?}");
        let recorded = arbiter_audit::entries(
            state.pipeline.db().conn(),
            &arbiter_audit::EntryFilter {
                tenant: Some("acme".into()),
                event: Some("analysis.recorded".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(recorded.len(), 6, "{label}");
        running.server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_delivery_whose_secret_does_not_decrypt_is_abandoned_and_audited() {
    each_database(async |label, running| {
        let state = &running.state;
        let receiver = Receiver::start(200).await;
        let base = &receiver.base;
        let key = key(state, "acme").await;
        let now = running.clock.now();
        let conn = state.pipeline.db().conn();
        let cipher = state.webhooks.cipher().await.unwrap();
        arbiter_webhooks::tenant_secrets(conn, cipher, "acme", now)
            .await
            .unwrap();
        // The stored secret no longer opens (sealed under another key file, or damaged).
        let foreign = arbiter_webhooks::SecretCipher::new([7; 32])
            .seal("acme", WebhookSecret::generate().unwrap().expose())
            .unwrap();
        use arbiter_db::sea_orm::ConnectionTrait;
        conn.execute_unprepared(&format!(
            "UPDATE webhook_secrets SET secret = '{foreign}' WHERE tenant = 'acme'"
        ))
        .await
        .unwrap();
        enqueue(state, &format!("{base}/hook"), now).await;
        assert_eq!(
            state.delivery_worker().deliver_due().await.unwrap(),
            1,
            "{label}"
        );
        // Abandoned at once, not left to be tried for ever; nothing was sent.
        let failed = deliveries(&running, &key, "failed").await;
        assert_eq!(failed.len(), 1, "{label}");
        assert!(
            deliveries(&running, &key, "pending").await.is_empty(),
            "{label}"
        );
        assert!(receiver.received().is_empty(), "{label}");
        let entries = arbiter_audit::entries(conn, &Default::default())
            .await
            .unwrap();
        let abandoned: Vec<_> = entries
            .iter()
            .filter(|e| e.entry.event.name() == "webhook.abandoned")
            .collect();
        assert_eq!(abandoned.len(), 1, "{label}");
        let json = serde_json::to_string(&abandoned[0].entry).unwrap();
        assert!(json.contains("does not decrypt"), "{label}: {json}");
        running.clock.advance(chrono::Duration::hours(2));
        assert_eq!(
            state.delivery_worker().deliver_due().await.unwrap(),
            0,
            "{label}"
        );

        running.server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_tenant_registers_at_most_its_cap_of_endpoints() {
    each_database(async |label, running| {
        let state = &running.state;
        let cap = state.config.webhooks.max_endpoints_per_tenant;
        assert_eq!(cap, 20, "the documented default");
        let receiver = Receiver::start(200).await;
        let base = &receiver.base;
        let client = reqwest::Client::new();
        let register = async |key: &str| {
            client
                .post(format!("{}/v1/webhooks/endpoints", running.base))
                .bearer_auth(key)
                .json(&json!({"url": format!("{base}/hook")}))
                .send()
                .await
                .unwrap()
        };
        let acme = key(state, "acme").await;
        for n in 0..cap {
            assert_eq!(register(&acme).await.status(), 201, "{label}: endpoint {n}");
        }
        let refused = register(&acme).await;
        assert_eq!(refused.status(), 409, "{label}");
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("webhooks.max_endpoints_per_tenant: 20"),
            "{label}: {body}"
        );
        // Another tenant's endpoints are its own.
        let globex = key(state, "globex").await;
        assert_eq!(register(&globex).await.status(), 201, "{label}");
        running.server.stop().await;
    })
    .await;
}

/// A malformed query of the delivery list gets the API's error body, naming the parameter.
#[tokio::test]
async fn a_malformed_delivery_query_gets_the_error_body() {
    each_database(async |label, running| {
        let key = key(&running.state, "acme").await;
        let response = reqwest::Client::new()
            .get(format!(
                "{}/v1/webhooks/deliveries?limit=many",
                running.base
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{label}");
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "INVALID_REQUEST", "{label}: {body}");
        assert_eq!(body["error"]["request_id"], request_id, "{label}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("limit"),
            "{label}: {body}"
        );
        running.server.stop().await;
    })
    .await;
}

/// During a rotation's overlap a delivery carries a signature by each secret, and each
/// verifies with its own secret only; after the overlap, only the new secret signs.
#[tokio::test]
async fn a_delivery_during_a_rotation_carries_both_signatures_and_each_verifies() {
    each_database(async |label, running| {
        let state = &running.state;
        let receiver = Receiver::start(200).await;
        let conn = state.pipeline.db().conn();
        let cipher = state.webhooks.cipher().await.unwrap();
        let now = running.clock.now();
        let (old, _) = arbiter_webhooks::tenant_secrets(conn, cipher, "acme", now)
            .await
            .unwrap();
        let (new, _) = arbiter_webhooks::rotate_tenant_secret(
            conn,
            cipher,
            "acme",
            now,
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap();
        assert_ne!(new, old, "{label}");
        enqueue(state, &receiver.url("hook"), running.clock.now()).await;
        assert_eq!(
            state.delivery_worker().deliver_due().await.unwrap(),
            1,
            "{label}"
        );
        let got = receiver.received();
        assert_eq!(got.len(), 1, "{label}");
        let (headers, body) = &got[0];
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let id = header("webhook-id");
        let ts = header("webhook-timestamp").unwrap();
        let at: i64 = ts.parse().unwrap();
        let signatures: Vec<String> = header("webhook-signature")
            .unwrap()
            .split(' ')
            .map(str::to_owned)
            .collect();
        assert_eq!(signatures.len(), 2, "{label}: {signatures:?}");
        let verifies = |secret: &WebhookSecret, signature: &str| {
            verify_standard(
                secret,
                id.as_deref(),
                Some(&ts),
                Some(signature),
                body.as_bytes(),
                at,
            )
            .is_ok()
        };
        // The first signature is the new secret's, the second the old one's; neither verifies
        // with the other secret.
        assert!(verifies(&new, &signatures[0]), "{label}");
        assert!(verifies(&old, &signatures[1]), "{label}");
        assert!(!verifies(&old, &signatures[0]), "{label}");
        assert!(!verifies(&new, &signatures[1]), "{label}");
        // The whole header verifies for a receiver that still knows only the old secret.
        let whole = header("webhook-signature").unwrap();
        assert!(verifies(&old, &whole) && verifies(&new, &whole), "{label}");
        // X-CheckReal-Signature is the new secret's; -Previous the old one's.
        let checkreal = header("x-checkreal-signature");
        let previous = header("x-checkreal-signature-previous");
        verify_checkreal(&new, body.as_bytes(), checkreal.as_deref()).unwrap();
        verify_checkreal(&old, body.as_bytes(), previous.as_deref()).unwrap();
        assert!(verify_checkreal(&old, body.as_bytes(), checkreal.as_deref()).is_err());
        assert!(verify_checkreal(&new, body.as_bytes(), previous.as_deref()).is_err());

        // After the overlap: one signature, by the new secret.
        running.clock.advance(chrono::Duration::seconds(3601));
        enqueue(state, &receiver.url("hook"), running.clock.now()).await;
        assert_eq!(
            state.delivery_worker().deliver_due().await.unwrap(),
            1,
            "{label}"
        );
        let got = receiver.received();
        let (headers, body) = &got[1];
        let signature = headers["webhook-signature"].to_str().unwrap();
        assert_eq!(signature.split(' ').count(), 1, "{label}: {signature}");
        assert!(
            headers.get("x-checkreal-signature-previous").is_none(),
            "{label}"
        );
        verify_delivery(&new, headers, body);
        running.server.stop().await;
    })
    .await;
}
