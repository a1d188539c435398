//! The three flows end to end, through the real server and database (SQLite, and PostgreSQL
//! when `ARBITER_TEST_POSTGRES_URL` is set) and a loopback webhook receiver: facts in, the
//! image's and the case's decisions, the webhook received and its signature verified, the
//! review-queue item claimed and resolved, and the audit entries. Bad domain input gets a 400
//! or 404 naming the field, and changes nothing.
//!
//! The detector is the local one, except that a test may fix the verdict for chosen images
//! (the local detector calls an ordinary camera photo INCONCLUSIVE; approving a KYC session
//! needs a confident AUTHENTIC verdict).

use crate::harness::{
    Receiver, TestServer, b64, config, each_database, fixture, new_key, sample, verify_delivery,
};
use arbiter_config::Config;
use arbiter_core::{
    Analysis, AnalyzeOptions, DetectError, Detector, MediaInput, ModelKind, Verdict, VerdictLabel,
};
use arbiter_detect::LocalDetector;
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::{NewKey, Scope};
use arbiter_webhooks::WebhookSecret;
use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The local detector, with verdicts fixed for chosen images (by SHA-256).
struct Scripted(HashMap<String, Verdict>);

#[async_trait]
impl Detector for Scripted {
    fn name(&self) -> &str {
        "local"
    }
    fn models(&self) -> &[ModelKind] {
        &ModelKind::ALL
    }
    async fn analyze(
        &self,
        input: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, DetectError> {
        let mut analysis = LocalDetector::default().analyze(input, options).await?;
        if let Some(verdict) = self.0.get(&analysis.image_info.sha256) {
            analysis.verdict = *verdict;
        }
        Ok(analysis)
    }
    async fn health(&self) -> Result<(), DetectError> {
        Ok(())
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Running {
    server: TestServer,
    api: String,
    key: String,
    /// The id of `key`.
    key_id: String,
    /// Another key of the same tenant, with the same scopes.
    other_key: String,
    client: reqwest::Client,
}

impl Running {
    async fn start(
        dir: &std::path::Path,
        url: &str,
        verdicts: HashMap<String, Verdict>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let detector: Arc<dyn Detector> = Arc::new(Scripted(verdicts));
        Self::start_with_detector(dir, url, Some(detector), configure).await
    }

    /// A server with `detector` for every image, or without one the detectors its
    /// configuration builds (the real local detector by default).
    async fn start_with_detector(
        dir: &std::path::Path,
        url: &str,
        detector: Option<Arc<dyn Detector>>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = config(dir, url);
        config.outbound.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        config.webhooks.retry_schedule_secs = vec![1];
        configure(&mut config);
        let server = TestServer::start_with(config, Arc::new(SystemClock), detector).await;
        let new = NewKey {
            name: "flows".into(),
            ..new_key("acme", "enterprise", &Scope::ALL)
        };
        let (key_id, key) = server.mint_key(new.clone()).await;
        let (_, other_key) = server.mint_key(new).await;
        Self {
            api: server.base.clone(),
            key,
            key_id,
            other_key,
            client: reqwest::Client::new(),
            server,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        self.send_as(&self.key, request).await
    }

    async fn send_as(&self, key: &str, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.bearer_auth(key).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(format!("{}{path}", self.api)).json(&body))
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(format!("{}{path}", self.api)))
            .await
    }

    /// Registers the receiver for these events; returns the endpoint's secret.
    async fn subscribe(&self, url: &str, events: &[&str]) -> WebhookSecret {
        let (status, endpoint) = self
            .post(
                "/v1/webhooks/endpoints",
                json!({"url": url, "events": events}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}");
        endpoint["secret"].as_str().unwrap().parse().unwrap()
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// Waits until the receiver holds `count` deliveries of `event`; verifies each one's signatures
/// and returns their bodies.
async fn delivered(
    receiver: &Receiver,
    secret: &WebhookSecret,
    event: &str,
    count: usize,
) -> Vec<Value> {
    for _ in 0..200 {
        let bodies: Vec<(HeaderMap, String)> = receiver
            .received()
            .into_iter()
            .filter(|(_, body)| serde_json::from_str::<Value>(body).unwrap()["event"] == event)
            .collect();
        if bodies.len() >= count {
            return bodies
                .into_iter()
                .map(|(headers, body)| {
                    verify_delivery(secret, &headers, &body);
                    serde_json::from_str(&body).unwrap()
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} {event} deliveries arrived");
}

/// The events of a request's audit entries, in order.
async fn trail(running: &Running, request_id: &str) -> Vec<String> {
    let (status, trail) = running
        .get(&format!("/v1/requests/{request_id}/trail"))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["event"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_insurance_claim_escalates_to_siu_and_a_reviewer_resolves_it() {
    each_database(async |label, dir, url| {
        let running = Running::start(dir, &url, HashMap::new(), |_| {}).await;
        let receiver = Receiver::start(200).await;
        let hooks = receiver.url("hooks");
        let secret = running
            .subscribe(
                &hooks,
                &["claim.siu_escalation", "claim.review_warning", "review.resolved"],
            )
            .await;
        let photos = "/v1/flows/insurance/claims/CLM-1001/photos";
        let claim = json!({"amount": 12000, "currency": "EUR", "line_of_business": "auto", "incident_date": "2026-03-10"});

        // Photo 1: the detectors cannot tell; the adjuster is warned.
        let (status, first) = running
            .post(photos, json!({"image_base64": b64(&sample("plain-render.png")), "claim": claim, "photo": {"role": "damage"}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {first}");
        assert_eq!(first["reference_id"], "CLM-1001-photo-1", "{label}");
        assert_eq!(first["decision"]["action"], "adjuster_review", "{label}");
        assert_eq!(first["case"]["decision"]["action"], "adjuster_review", "{label}");

        // Bad domain input: 400 naming the field; nothing changes.
        for (body, field) in [
            (json!({"image_base64": b64(&sample("plain-render.png")), "claim": {"amount": "lots"}}), "claim.amount"),
            (json!({"image_base64": b64(&sample("plain-render.png")), "photo": {"role": "selfie"}}), "photo.role"),
            (json!({"image_base64": b64(&sample("plain-render.png")), "claim": {"id": "CLM-9"}}), "claim.id"),
            (json!({"image_base64": b64(&sample("plain-render.png")), "policyholder": "x"}), "policyholder"),
        ] {
            let (status, error) = running.post(photos, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {error}");
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{label}: {message}");
        }

        // Photo 2, as multipart, without the claim facts (the claim keeps them): an
        // AI-generated image goes to SIU, and the claim with it.
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(sample("sd-generated-duck.png")).file_name("duck.png"))
            .text("photo", r#"{"role": "vehicle"}"#)
            .text("reference_id", "20260310");
        let (status, second) = running
            .send(running.client.post(format!("{}{photos}", running.api)).multipart(form))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {second}");
        assert_eq!(second["n"], 2, "{label}");
        assert_eq!(second["reference_id"], "20260310", "{label}: digits stay text");
        assert_eq!(second["decision"]["action"], "siu_escalation", "{label}");
        assert_eq!(
            second["decision"]["description"],
            "AI_GENERATED at confidence 0.95 on claim CLM-1001 (12000 EUR)",
            "{label}"
        );
        let case = &second["case"];
        assert_eq!(case["decision"]["action"], "siu_escalation", "{label}");
        assert_eq!(case["decision"]["request_id"], second["request_id"], "{label}");

        // The claim: its facts, both photos and both levels of decision.
        let (status, stored) = running.get("/v1/flows/insurance/claims/CLM-1001").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert_eq!(stored["facts"]["claim"]["amount"], 12000, "{label}");
        let images = stored["images"].as_array().unwrap();
        assert_eq!(images.len(), 2, "{label}: the refused photos left no trace");
        assert_eq!(images[0]["decision"]["action"], "adjuster_review", "{label}");
        assert_eq!(images[1]["decision"]["action"], "siu_escalation", "{label}");
        assert_eq!(images[1]["image_sha256"], sha256(&sample("sd-generated-duck.png")), "{label}");
        assert_eq!(stored["decision"]["action"], "siu_escalation", "{label}");
        let (status, _) = running.get("/v1/flows/insurance/claims/CLM-404").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");

        // The claims system hears of both, signed, with the claim's decision.
        let warnings = delivered(&receiver, &secret, "claim.review_warning", 1).await;
        assert_eq!(warnings[0]["reference_id"], "CLM-1001-photo-1", "{label}");
        let siu = delivered(&receiver, &secret, "claim.siu_escalation", 1).await;
        assert_eq!(siu[0]["request_id"], second["request_id"], "{label}");
        assert_eq!(siu[0]["claim"]["decision"]["action"], "siu_escalation", "{label}");
        assert_eq!(siu[0]["image_sha256"], sha256(&sample("sd-generated-duck.png")), "{label}");

        // One item in each queue.
        let (_, queue) = running.get("/v1/review/items?queue=siu&status=open").await;
        let items = queue["data"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{label}: {queue}");
        let item = items[0]["item_id"].as_str().unwrap().to_owned();
        assert_eq!(items[0]["case_id"], "CLM-1001", "{label}");
        assert_eq!(items[0]["request_id"], second["request_id"], "{label}");
        let (_, adjusters) = running.get("/v1/review/items?queue=adjusters").await;
        assert_eq!(adjusters["data"].as_array().unwrap().len(), 1, "{label}");
        let (status, _) = running.get("/v1/review/items?status=finished").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");

        // Claimed by one reviewer; another cannot take or resolve it.
        let claim_path = format!("/v1/review/items/{item}/claim");
        let resolve_path = format!("/v1/review/items/{item}/resolve");
        let (status, claimed) = running.post(&claim_path, json!({"reviewer": "rv-17"})).await;
        assert_eq!(status, StatusCode::OK, "{label}: {claimed}");
        assert_eq!(claimed["status"], "claimed", "{label}");
        let (status, refused) = running.post(&claim_path, json!({"reviewer": "rv-23"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}");
        let (status, _) = running
            .post(&resolve_path, json!({"reviewer": "rv-23", "label": "false_positive"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}");
        // The claim belongs to the key that made it: another key naming the same reviewer can
        // neither resolve nor re-claim it, and a 409 does not say who holds it.
        let as_other = |path: &str, body: Value| {
            running.send_as(
                &running.other_key,
                running.client.post(format!("{}{path}", running.api)).json(&body),
            )
        };
        let (status, taken) = as_other(
            &resolve_path,
            json!({"reviewer": "rv-17", "label": "false_positive"}),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {taken}");
        let (status, reclaimed) = as_other(&claim_path, json!({"reviewer": "rv-17"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {reclaimed}");
        for answer in [&refused, &taken, &reclaimed] {
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(!message.contains("rv-17"), "{label}: {message}");
        }
        let (status, error) = running
            .post(&resolve_path, json!({"reviewer": "rv-17", "label": "looks_fine"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(error["error"]["message"].as_str().unwrap().contains("confirmed_fake"), "{label}");
        let (status, resolved) = running
            .post(&resolve_path, json!({"reviewer": "rv-17", "label": "confirmed_fake", "note": "Same photo in a 2024 claim"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {resolved}");
        assert_eq!(resolved["status"], "resolved", "{label}");
        assert_eq!(resolved["resolved_action"], "siu_escalation", "{label}");
        let (status, _) = running
            .post(&resolve_path, json!({"reviewer": "rv-17", "label": "unclear"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}");

        let announced = delivered(&receiver, &secret, "review.resolved", 1).await;
        assert_eq!(announced[0]["item"]["label"], "confirmed_fake", "{label}");
        let (_, entries) = running.get("/v1/audit/entries?event=review.resolved").await;
        let entry = &entries["entries"][0];
        assert_eq!(entry["actor"], "rv-17", "{label}: {entries}");
        assert_eq!(entry["key_id"], running.key_id.as_str(), "{label}: {entries}");

        // The photo's story: its decision, then the review.
        let request_id = second["request_id"].as_str().unwrap();
        assert_eq!(
            trail(&running, request_id).await,
            ["decision.recorded", "case.decided", "review.claimed", "review.resolved"],
            "{label}"
        );
        running.stop().await;
    })
    .await;
}

/// A confident verdict.
fn verdict(label: VerdictLabel, confidence: f64) -> Verdict {
    Verdict::new(label, confidence)
}

#[tokio::test]
async fn a_kyc_session_is_decided_only_with_its_liveness_result() {
    each_database(async |label, dir, url| {
        let document = fixture("camera/DSCN0010.jpg");
        let selfie = fixture("camera/nikon-e950.jpg");
        let verdicts = HashMap::from([
            (sha256(&document), verdict(VerdictLabel::Authentic, 0.93)),
            (sha256(&selfie), verdict(VerdictLabel::Authentic, 0.95)),
        ]);
        let running = Running::start(dir, &url, verdicts, |_| {}).await;
        let receiver = Receiver::start(200).await;
        let hooks = receiver.url("hooks");
        let secret = running.subscribe(&hooks, &["kyc.decision"]).await;
        let images = "/v1/flows/kyc/sessions/kyc-1/images";

        // Liveness for a session that does not exist: 404, and no session appears.
        let (status, _) = running
            .post(
                "/v1/flows/kyc/sessions/kyc-1/liveness",
                json!({"passed": true}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");
        let (status, _) = running.get("/v1/flows/kyc/sessions/kyc-1").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");

        // The ID document: a camera JPEG with its EXIF. Pending: no selfie, no liveness.
        let (status, doc) = running
            .post(
                images,
                json!({"image_base64": b64(&document), "role": "id_document"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {doc}");
        assert_eq!(doc["case"]["status"], "pending", "{label}");
        assert_eq!(
            doc["case"]["missing"],
            json!(["selfie", "liveness"]),
            "{label}"
        );
        assert_eq!(doc["decision"]["reason"], "LIVENESS_NOT_PASSED", "{label}");

        // An unknown role: 400 naming the field.
        let (status, error) = running
            .post(
                images,
                json!({"image_base64": b64(&selfie), "role": "passport_scan"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("role"),
            "{label}"
        );

        // The selfie, analysed with the guide's KYC models (and metadata).
        let (status, face) = running
            .post(
                images,
                json!({"image_base64": b64(&selfie), "role": "selfie"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {face}");
        let models: Vec<&String> = face["model_results"].as_object().unwrap().keys().collect();
        assert_eq!(
            models,
            [
                "gan_detection",
                "diffusion_detection",
                "metadata_analysis",
                "splicing_detection"
            ],
            "{label}"
        );
        assert_eq!(face["case"]["missing"], json!(["liveness"]), "{label}");
        assert_ne!(
            face["case"]["decision"]["action"], "approve",
            "{label}: never without liveness"
        );
        assert!(
            receiver.received().is_empty(),
            "{label}: nothing announced while pending"
        );

        // A malformed liveness result: 400 naming the field, nothing stored.
        let (status, error) = running
            .post(
                "/v1/flows/kyc/sessions/kyc-1/liveness",
                json!({"passed": "yes"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("liveness.passed"),
            "{label}"
        );

        // A failed liveness check completes the session: step-up, announced.
        let (status, session) = running
            .post(
                "/v1/flows/kyc/sessions/kyc-1/liveness",
                json!({"passed": false, "score": 0.2, "provider": "acme"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {session}");
        assert_eq!(session["status"], "decided", "{label}");
        assert_eq!(
            session["decision"]["action"], "step_up_verification",
            "{label}"
        );
        assert_eq!(
            session["decision"]["reason"], "LIVENESS_NOT_PASSED",
            "{label}"
        );
        let first = delivered(&receiver, &secret, "kyc.decision", 1).await;
        assert_eq!(
            first[0]["decision"]["action"], "step_up_verification",
            "{label}"
        );

        // A passed retry: approved, announced again.
        let (_, session) = running
            .post(
                "/v1/flows/kyc/sessions/kyc-1/liveness",
                json!({"passed": true, "score": 0.97, "provider": "acme"}),
            )
            .await;
        assert_eq!(
            session["decision"]["action"], "approve",
            "{label}: {session}"
        );
        let decisions = delivered(&receiver, &secret, "kyc.decision", 2).await;
        assert_eq!(decisions[1]["session_id"], "kyc-1", "{label}");
        assert_eq!(decisions[1]["decision"]["action"], "approve", "{label}");
        assert_eq!(
            decisions[1]["session"]["facts"]["liveness"]["score"], 0.97,
            "{label}"
        );

        // A synthetic selfie in another session: rejected once complete, and queued for review.
        let synthetic = "/v1/flows/kyc/sessions/kyc-2/images";
        running
            .post(
                synthetic,
                json!({"image_base64": b64(&document), "role": "id_document"}),
            )
            .await;
        let (_, fake) = running
            .post(
                synthetic,
                json!({"image_base64": b64(&sample("sd-generated-duck.png")), "role": "selfie"}),
            )
            .await;
        assert_eq!(fake["decision"]["action"], "reject", "{label}: {fake}");
        let (_, session) = running
            .post(
                "/v1/flows/kyc/sessions/kyc-2/liveness",
                json!({"passed": true}),
            )
            .await;
        assert_eq!(session["decision"]["action"], "reject", "{label}");
        assert_eq!(
            session["decision"]["request_id"], fake["request_id"],
            "{label}"
        );
        let (_, queue) = running.get("/v1/review/items?queue=kyc_review").await;
        assert_eq!(queue["data"][0]["case_id"], "kyc-2", "{label}: {queue}");
        let request_id = fake["request_id"].as_str().unwrap();
        // Its decision, then the session's: rejected while pending, then final.
        assert_eq!(
            trail(&running, request_id).await,
            ["decision.recorded", "case.decided", "case.decided"],
            "{label}"
        );
        let (_, page) = running
            .get("/v1/audit/entries?event=case.decided&order=desc&limit=1")
            .await;
        let last = &page["entries"][0];
        assert_eq!(last["case_id"], "kyc-2", "{label}: {page}");
        assert_eq!(last["action"], "reject", "{label}");
        assert_eq!(last["complete"], true, "{label}");
        running.stop().await;
    })
    .await;
}

#[tokio::test]
async fn ugc_uploads_are_collected_into_batches_and_each_decision_is_announced() {
    each_database(async |label, dir, url| {
        let held = fixture("camera/DSCN0010.jpg");
        let verdicts = HashMap::from([(sha256(&held), verdict(VerdictLabel::AiGenerated, 0.7))]);
        let running = Running::start(dir, &url, verdicts, |config| {
            config.flows.set("ugc", "batch_size", json!(3)).unwrap();
            config.flows.set("ugc", "max_wait_secs", json!(1)).unwrap();
        })
        .await;
        let receiver = Receiver::start(200).await;
        let hooks = receiver.url("hooks");
        let secret = running
            .subscribe(&hooks, &["content.decision", "analysis.failed"])
            .await;
        let upload = |id: &str, image: &[u8]| {
            json!({"image_base64": b64(image), "upload": {"id": id, "visibility": "public"}, "uploader": {"id": "p-9", "account_age_days": 400, "prior_strikes": 0}})
        };

        // Bad domain input: 400 naming the field; nothing is collected.
        let (status, error) = running
            .post("/v1/flows/ugc/uploads", json!({"image_base64": b64(&held), "uploader": {"account_age_days": -1}}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(error["error"]["message"].as_str().unwrap().contains("uploader.account_age_days"), "{label}");

        // Three uploads make a batch: the first two wait, the third queues all three.
        let mut accepted = Vec::new();
        for (id, image) in [
            ("up-1", sample("sd-generated-duck.png")),
            ("up-2", sample("plain-render.png")),
            ("up-3", held.clone()),
        ] {
            let (status, body) = running.post("/v1/flows/ugc/uploads", upload(id, &image)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
            accepted.push(body);
        }
        assert_eq!(accepted[0]["status"], "COLLECTED", "{label}");
        assert_eq!(accepted[2]["status"], "QUEUED", "{label}");
        let batch_id = accepted[2]["batch_id"].as_str().unwrap();

        let decisions = delivered(&receiver, &secret, "content.decision", 3).await;
        let action_of = |upload: &str| {
            decisions
                .iter()
                .find(|d| d["reference_id"] == upload)
                .map(|d| d["decision"]["action"].clone())
        };
        assert_eq!(action_of("up-1"), Some(json!("auto_reject")), "{label}");
        assert_eq!(action_of("up-2"), Some(json!("publish")), "{label}");
        assert_eq!(action_of("up-3"), Some(json!("hold_for_review")), "{label}");
        let (_, batch) = running.get(&format!("/v1/batches/{batch_id}")).await;
        assert_eq!(batch["total"], 3, "{label}: {batch}");

        // One upload alone is queued once it has waited max_wait_secs.
        let (_, alone) = running
            .post("/v1/flows/ugc/uploads", upload("up-4", &sample("comfyui-render.png")))
            .await;
        assert_eq!(alone["status"], "COLLECTED", "{label}");
        let status_url = format!("/v1/requests/{}", alone["request_id"].as_str().unwrap());
        let (status, waiting) = running.get(&status_url).await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "{label}: {status} {waiting}"
        );
        let decisions = delivered(&receiver, &secret, "content.decision", 4).await;
        assert!(decisions.iter().any(|d| d["reference_id"] == "up-4"), "{label}");
        let (status, done) = running.get(&status_url).await;
        assert_eq!(status, StatusCode::OK, "{label}: {done}");
        assert_eq!(done["decision"]["action"], "auto_reject", "{label}");

        // An upload that is not an image is accepted, then announced as failed.
        let (_, broken) = running
            .post("/v1/flows/ugc/uploads", upload("up-5", b"not an image at all"))
            .await;
        let failures = delivered(&receiver, &secret, "analysis.failed", 1).await;
        assert_eq!(failures[0]["reference_id"], "up-5", "{label}");
        assert_eq!(failures[0]["error"]["code"], "UNSUPPORTED_FORMAT", "{label}");
        let (status, _) = running
            .get(&format!("/v1/requests/{}", broken["request_id"].as_str().unwrap()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{label}");

        // The held upload waits in the moderation queue.
        let (_, queue) = running.get("/v1/review/items?queue=moderation").await;
        assert_eq!(queue["data"].as_array().unwrap().len(), 1, "{label}: {queue}");
        assert_eq!(queue["data"][0]["reference_id"], "up-3", "{label}");
        running.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_flow_switched_off_serves_no_routes() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), "", HashMap::new(), |config| {
        config.flows.set("kyc", "enabled", json!(false)).unwrap();
    })
    .await;
    let (status, _) = running
        .post(
            "/v1/flows/kyc/sessions/s-1/images",
            json!({"image_base64": b64(&sample("plain-render.png")), "role": "selfie"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = running.get("/v1/flows/insurance/claims/CLM-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "served, but no such claim");
    // Nor does it decide through POST /v1/analyze?flow=.
    let image = json!({"image_base64": b64(&sample("plain-render.png"))});
    let (status, answer) = running.post("/v1/analyze?flow=kyc", image.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "flow \"kyc\" is switched off (flows.kyc.enabled)"
    );
    let (_, entries) = running
        .get("/v1/audit/entries?event=analysis.recorded")
        .await;
    assert_eq!(
        entries["entries"],
        json!([]),
        "nothing analysed or recorded"
    );
    let (_, entries) = running
        .get("/v1/audit/entries?event=decision.recorded")
        .await;
    assert_eq!(
        entries["entries"],
        json!([]),
        "nothing analysed or recorded"
    );
    let (status, answer) = running.post("/v1/analyze?flow=ugc", image).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    running.stop().await;
}

/// Signs each file with a C2PA manifest of a camera capture, all by one ephemeral signer;
/// returns the signed files and the PEM of the CA that issued the signing certificate.
fn sign_captures(files: &[Vec<u8>]) -> (Vec<Vec<u8>>, String) {
    use base64::Engine as _;
    use c2pa::Signer as _;
    let signer = c2pa::EphemeralSigner::new("arbiter-test.local").unwrap();
    let definition = json!({
        "claim_generator_info": [{"name": "arbiter flow tests", "version": "1"}],
        "title": "capture.jpg",
        "assertions": [{
            "label": "c2pa.actions",
            "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
            }]}
        }]
    });
    let signed = files
        .iter()
        .map(|file| {
            let context = c2pa::Context::new()
                .with_settings(r#"{"verify": {"remote_manifest_fetch": false}}"#)
                .unwrap();
            let mut builder = c2pa::Builder::from_context(context)
                .with_definition(definition.to_string().as_str())
                .unwrap();
            let mut source = std::io::Cursor::new(file.clone());
            let mut dest = std::io::Cursor::new(Vec::new());
            builder
                .sign(&signer, "image/jpeg", &mut source, &mut dest)
                .unwrap();
            dest.into_inner()
        })
        .collect();
    let certs = signer.certs().unwrap();
    let ca = base64::engine::general_purpose::STANDARD.encode(certs.last().unwrap());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in ca.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    (signed, pem)
}

/// The end-to-end approval through the real local detector, not a scripted verdict: the ID
/// document and the selfie are camera photos with a C2PA capture manifest from a signer the
/// configuration trusts (`detector.local.trust_anchors`), which the local detector reads as
/// AUTHENTIC at LOW risk; with a passed liveness check the policy approves the session.
#[tokio::test]
async fn a_kyc_session_is_approved_through_the_local_detector_on_trusted_captures() {
    each_database(async |label, dir, url| {
        let (signed, ca_pem) = sign_captures(&[
            fixture("camera/DSCN0010.jpg"),
            fixture("camera/nikon-e950.jpg"),
        ]);
        let anchors = dir.with_extension("anchors.pem");
        std::fs::write(&anchors, ca_pem).unwrap();
        let running = Running::start_with_detector(dir, &url, None, |config| {
            config.detector.local.trust_anchors = Some(anchors.clone());
        })
        .await;
        let images = "/v1/flows/kyc/sessions/kyc-real/images";
        for (bytes, role) in signed.iter().zip(["id_document", "selfie"]) {
            let (status, answer) = running
                .post(images, json!({"image_base64": b64(bytes), "role": role}))
                .await;
            assert_eq!(status, StatusCode::OK, "{label} {role}: {answer}");
            assert_eq!(
                answer["verdict"]["label"], "AUTHENTIC",
                "{label} {role}: {answer}"
            );
            assert_eq!(answer["verdict"]["risk_level"], "LOW", "{label} {role}");
        }
        let (status, session) = running
            .post(
                "/v1/flows/kyc/sessions/kyc-real/liveness",
                json!({"passed": true, "score": 0.97, "provider": "acme"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {session}");
        assert_eq!(session["status"], "decided", "{label}");
        assert_eq!(
            session["decision"]["action"], "approve",
            "{label}: {session}"
        );
        // The same photos without the manifest are not approved by the same detector.
        let images = "/v1/flows/kyc/sessions/kyc-unsigned/images";
        for (bytes, role) in [
            (fixture("camera/DSCN0010.jpg"), "id_document"),
            (fixture("camera/nikon-e950.jpg"), "selfie"),
        ] {
            let (status, answer) = running
                .post(images, json!({"image_base64": b64(&bytes), "role": role}))
                .await;
            assert_eq!(status, StatusCode::OK, "{label} {role}: {answer}");
        }
        let (_, session) = running
            .post(
                "/v1/flows/kyc/sessions/kyc-unsigned/liveness",
                json!({"passed": true, "score": 0.97, "provider": "acme"}),
            )
            .await;
        assert_ne!(
            session["decision"]["action"], "approve",
            "{label}: {session}"
        );
        running.stop().await;
    })
    .await;
}
