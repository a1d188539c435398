//! The API's response bodies, field for field: a JSON snapshot of each resource's body (a request,
//! its trail, a claim and a KYC session with their decisions, a UGC upload, a batch accepted and
//! finished, review items, policies, audit entries, a webhook endpoint, and the error bodies), on
//! every database against the same snapshot, so SQLite and PostgreSQL answer alike and no move
//! of code changes a body unnoticed. Values that change on every run are redacted by shape
//! ([`redacted`]).

use crate::harness::{TestServer, b64, config, each_database, new_key, repo, sample, wait_for};
use arbiter_server::keys::Scope;
use serde_json::{Value, json};
use std::time::Duration;

/// `value` with what changes from run to run replaced by a placeholder: prefixed ULID ids
/// (`req_01J…` → `[req_]`, also in the server's own URLs, whose port is `[base]`), the checkout's
/// path (`[repo]`), RFC 3339 times, durations in milliseconds, the audit chain's hashes
/// and signatures, and webhook secrets.
fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                let shown = match (key.as_str(), value) {
                    (k, Value::Number(_)) if k.ends_with("_ms") => json!("[ms]"),
                    (
                        "hash" | "prev_hash" | "entry_hash" | "signature" | "payload_sha256",
                        Value::String(_),
                    ) => {
                        json!("[hash]")
                    }
                    ("secret", Value::String(_)) => json!("[secret]"),
                    _ => redacted(value),
                };
                (key.clone(), shown)
            })
            .collect(),
        Value::Array(items) => items.iter().map(redacted).collect(),
        Value::String(text) => {
            if let Some(path) = text.strip_prefix("http://127.0.0.1:") {
                let path = path.split_once('/').map_or("", |(_port, path)| path);
                let segments: Vec<String> = path.split('/').map(segment).collect();
                json!(format!("[base]/{}", segments.join("/")))
            } else if let Some(path) = text.strip_prefix(&*repo().display().to_string()) {
                json!(format!("[repo]{path}"))
            } else if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
                json!("[time]")
            } else {
                json!(segment(text))
            }
        }
        _ => value.clone(),
    }
}

/// A typed id as its placeholder; anything else as it is.
fn segment(text: &str) -> String {
    match ulid_prefix(text) {
        Some(prefix) => format!("[{prefix}_]"),
        None => text.to_owned(),
    }
}

/// The prefix of a typed id such as `req_01JABCDEFGHJKMNPQRSTVWXYZ0`.
fn ulid_prefix(text: &str) -> Option<&str> {
    let (prefix, ulid) = text.split_once('_')?;
    let is_ulid = ulid.len() == 26 && ulid.bytes().all(|b| b.is_ascii_alphanumeric());
    (is_ulid && !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_lowercase()))
        .then_some(prefix)
}

#[test]
fn redaction_replaces_what_changes_and_keeps_the_rest() {
    let body = json!({
        "request_id": "req_01JQ7ZB2W9G3K4M5N6P7Q8R9ST",
        "created_at": "2026-12-06T05:00:00.123Z",
        "processing_time_ms": 41,
        "secret": "whsec_abc",
        "status_url": "http://127.0.0.1:40011/v1/requests/req_01JQ7ZB2W9G3K4M5N6P7Q8R9ST",
        "items": [{"hash": "ab12", "reference_id": "CLM-1", "score": 0.5}],
    });
    assert_eq!(
        redacted(&body),
        json!({
            "request_id": "[req_]",
            "created_at": "[time]",
            "processing_time_ms": "[ms]",
            "secret": "[secret]",
            "status_url": "[base]/v1/requests/[req_]",
            "items": [{"hash": "[hash]", "reference_id": "CLM-1", "score": 0.5}],
        })
    );
}

#[tokio::test]
async fn every_resource_answers_the_same_body_on_every_database() {
    each_database(async |label, dir, url| {
        let mut config = config(dir, &url);
        // The webhook endpoint below is on loopback, which the outbound guard refuses by default.
        config.outbound.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        let server = TestServer::start(config).await;
        let (_, key) = server.mint_key(new_key("acme", "enterprise", &Scope::ALL)).await;
        let snapshot = |name: &str, status: reqwest::StatusCode, body: &Value| {
            insta::assert_json_snapshot!(
                name,
                json!({"status": status.as_u16(), "body": redacted(body)})
            );
        };

        // One image analysed, its status and its trail.
        let (status, _, analysed) = server
            .post(&key, "/v1/analyze", json!({"image_base64": b64(&sample("plain-render.png")), "reference_id": "photo-1"}))
            .await;
        assert_eq!(status, 200, "{label}: {analysed}");
        let request = format!("/v1/requests/{}", analysed["request_id"].as_str().unwrap());
        let (status, body) = server.get(&key, &request).await;
        snapshot("request", status, &body);
        let (status, body) = server.get(&key, &format!("{request}/trail")).await;
        snapshot("trail", status, &body);

        // An insurance claim: a photo's decision, then the claim.
        let claim = json!({"amount": 12000, "currency": "EUR", "line_of_business": "auto", "incident_date": "2026-03-10"});
        let (status, _, body) = server
            .post(&key, "/v1/flows/insurance/claims/CLM-1/photos", json!({"image_base64": b64(&sample("sd-generated-duck.png")), "claim": claim, "photo": {"role": "damage"}}))
            .await;
        snapshot("claim_photo", status, &body);
        let (status, body) = server.get(&key, "/v1/flows/insurance/claims/CLM-1").await;
        snapshot("claim", status, &body);

        // A KYC session with its ID document, still waiting for a selfie and liveness.
        let (status, _, body) = server
            .post(&key, "/v1/flows/kyc/sessions/kyc-1/images", json!({"image_base64": b64(&sample("plain-render.png")), "role": "id_document"}))
            .await;
        snapshot("kyc_image", status, &body);
        let (status, body) = server.get(&key, "/v1/flows/kyc/sessions/kyc-1").await;
        snapshot("kyc_session", status, &body);

        // A UGC upload collected for its batch.
        let (status, _, body) = server
            .post(&key, "/v1/flows/ugc/uploads", json!({"image_base64": b64(&sample("plain-render.png")), "upload": {"id": "up-1", "visibility": "public"}, "uploader": {"id": "p-9", "account_age_days": 400, "prior_strikes": 0}}))
            .await;
        snapshot("ugc_upload", status, &body);

        // A batch of two: accepted, then finished.
        let images = json!([
            {"image_base64": b64(&sample("plain-render.png")), "reference_id": "batch-1"},
            {"image_base64": b64(&sample("sd-generated-duck.png")), "reference_id": "batch-2"},
        ]);
        let (status, _, accepted) = server
            .post(&key, "/v1/analyze/batch", json!({"images": images, "batch_reference_id": "b-1"}))
            .await;
        snapshot("batch_accepted", status, &accepted);
        let batch = format!("/v1/batches/{}", accepted["batch_id"].as_str().unwrap());
        let finished = wait_for("the batch", Duration::from_secs(60), async || {
            let (status, body) = server.get(&key, &batch).await;
            (body["status"] == "COMPLETE").then_some((status, body))
        })
        .await;
        snapshot("batch", finished.0, &finished.1);

        // What people and auditors read.
        let (status, body) = server.get(&key, "/v1/review/items?queue=siu").await;
        snapshot("review_items", status, &body);
        let (status, body) = server.get(&key, "/v1/policies").await;
        snapshot("policies", status, &body);
        let (status, body) = server.get(&key, "/v1/audit/entries?limit=2").await;
        snapshot("audit_entries", status, &body);
        let (status, _, body) = server
            .post(&key, "/v1/webhooks/endpoints", json!({"url": "http://127.0.0.1:9/arbiter", "events": ["analysis.complete"], "description": "claims"}))
            .await;
        snapshot("webhook_endpoint", status, &body);

        // Errors: the stable body, with the request id.
        let (status, _, body) = server.post(&key, "/v1/analyze", json!({"reference_id": "no-image"})).await;
        snapshot("error_invalid", status, &body);
        let (status, body) = server.get(&key, "/v1/requests/req_01JQ7ZB2W9G3K4M5N6P7Q8R9ST").await;
        snapshot("error_not_found", status, &body);
        let (status, body) = server.get("not-a-key", "/v1/policies").await;
        snapshot("error_unauthorized", status, &body);
        server.stop().await;
    })
    .await;
}
