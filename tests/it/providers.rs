//! Vendors behind the real server (SQLite, and PostgreSQL when `ARBITER_TEST_POSTGRES_URL` is
//! set): a cascade that pays a vendor only for what the local detector cannot decide, a claim
//! escalated on Reality Defender's FAKE, a KYC session approved on its AUTHENTIC, a vendor that
//! cannot answer, the Reality AI provider against a real `arbiter serve` as its upstream,
//! `arbiter scan --detector`, and `/readyz` showing each detector's health.

use crate::harness::{
    DbArg, TestServer, b64, config, each_database, fixture, new_key, repo, sample,
};
use arbiter_config::Config;
use arbiter_providers::RouteSpec;
use arbiter_providers::fake::reality_defender::{self as rd, FakeRealityDefender};
use arbiter_server::keys::{NewKey, Scope};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A server with a key of tenant `acme` holding every scope.
struct Running {
    server: TestServer,
    api: String,
    key: String,
}

impl Running {
    async fn start(dir: &std::path::Path, url: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = config(dir, url);
        config.outbound.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        configure(&mut config);
        let server = TestServer::start(config).await;
        let new = NewKey {
            name: "providers".into(),
            ..new_key("acme", "enterprise", &Scope::ALL)
        };
        let (_, key) = server.mint_key(new).await;
        Self {
            api: server.base.clone(),
            key,
            server,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .server
            .client
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .server
            .client
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// A fake Reality Defender answering `status` at `score` (0..100) with a diffusion model.
async fn fake_rd(status: &str, score: f64) -> FakeRealityDefender {
    let body = rd::final_body(
        status,
        Some(score),
        &[
            ("rd-elm-img", status, score / 100.0),
            ("rd-oak-img", "AUTHENTIC", 0.02),
        ],
    );
    let mut script = rd::Script::answering(&body);
    script.null_pending = false;
    FakeRealityDefender::start(script).await.unwrap()
}

/// Routes `routes` (key, route) through the fake, polling it every few milliseconds.
fn route_to(fake: &FakeRealityDefender, routes: &[(&str, &str)]) -> impl FnOnce(&mut Config) {
    let base_url = fake.base_url.clone();
    let routes: Vec<(String, RouteSpec)> = routes
        .iter()
        .map(|(key, route)| ((*key).to_owned(), RouteSpec::parse(route).unwrap()))
        .collect();
    move |config: &mut Config| {
        let rd = &mut config.detector.providers.reality_defender;
        rd.base_url = base_url;
        rd.api_key = arbiter_providers::Secret::new(rd::API_KEY);
        rd.poll_initial_ms = 5;
        rd.poll_max_ms = 20;
        rd.deadline_secs = 10;
        config.detector.routes.extend(routes);
    }
}

#[tokio::test]
async fn a_cascade_pays_the_vendor_only_for_what_local_cannot_decide_and_its_fake_escalates_a_claim()
 {
    each_database(async |label, dir, url| {
        let fake = fake_rd("FAKE", 95.0).await;
        let running = Running::start(dir, &url, route_to(&fake, &[("insurance", "local,reality_defender")])).await;
        let claim = json!({"amount": 12000, "currency": "EUR", "line_of_business": "auto", "incident_date": "2026-11-01"});

        // Declared generator metadata: the local detector decides, Reality Defender is not asked.
        let (status, declared) = running
            .post(
                "/v1/flows/insurance/claims/CLM-1/photos",
                json!({"image_base64": b64(&sample("sd-generated-duck.png")), "claim": claim, "photo": {"role": "damage"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {declared}");
        assert_eq!(declared["verdict"]["label"], "AI_GENERATED", "{label}");
        assert_eq!(fake.counts().presigns, 0, "{label}: no vendor call");

        // A render without metadata: INCONCLUSIVE locally, so Reality Defender decides: FAKE at 95
        // from its diffusion model → AI_GENERATED, HIGH → SIU.
        let (status, stripped) = running
            .post(
                "/v1/flows/insurance/claims/CLM-1/photos",
                json!({"image_base64": b64(&sample("plain-render.png")), "photo": {"role": "damage"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {stripped}");
        assert_eq!(fake.counts().presigns, 1, "{label}");
        assert_eq!(fake.counts().uploads_with_api_key, 0, "{label}: the key stays with the API");
        assert_eq!(stripped["verdict"]["label"], "AI_GENERATED", "{label}");
        assert_eq!(stripped["verdict"]["risk_level"], "HIGH", "{label}");
        assert_eq!(stripped["decision"]["action"], "siu_escalation", "{label}: {stripped}");
        let providers = stripped["providers"].as_array().unwrap();
        assert_eq!(providers.len(), 2, "{label}: both runs recorded");
        assert_eq!(providers[0]["name"], "local");
        assert_eq!(providers[0]["vendor_status"], "INCONCLUSIVE");
        assert_eq!(providers[1]["name"], "reality_defender");
        assert_eq!(providers[1]["vendor_status"], "FAKE");
        assert!(providers[1]["vendor_request_id"].as_str().unwrap().starts_with("5e9ac2b7"));
        assert_eq!(providers[1]["models"][0]["name"], "rd-elm-img");
        assert_eq!(stripped["model_results"]["diffusion_detection"]["score"], 0.95);

        // The audit entry keeps the vendor's id and the SHA-256 of its answer.
        let request_id = stripped["request_id"].as_str().unwrap();
        let (status, trail) = running.get(&format!("/v1/requests/{request_id}/trail")).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let trail: Value = serde_json::from_str(&trail).unwrap();
        let entry = &trail["entries"][0];
        assert_eq!(entry["detector"], "local,reality_defender", "{label}: {entry}");
        let rd_fields = &entry["providers"]["reality_defender"];
        assert_eq!(rd_fields["vendor_status"], "FAKE", "{label}: {entry}");
        assert_eq!(rd_fields["score_bp"], 9500);
        assert_eq!(rd_fields["answer_sha256"].as_str().unwrap().len(), 64);

        // The same image again: the cached result, no second paid call.
        let (status, again) = running
            .post(
                "/v1/analyze?flow=insurance",
                json!({"image_base64": b64(&sample("plain-render.png")), "facts": {"claim": {"id": "CLM-2", "amount": 500}}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {again}");
        assert_eq!(fake.counts().presigns, 1, "{label}: served from the cache");

        // /readyz and /metrics show the provider.
        let (_, ready) = running.get("/readyz").await;
        let ready: Value = serde_json::from_str(&ready).unwrap();
        assert_eq!(ready["providers"]["reality_defender"]["healthy"], true, "{label}");
        let (_, metrics) = running.get("/metrics").await;
        assert!(metrics.contains("arbiter_provider_calls_total{provider=\"reality_defender\"} 1"), "{label}");
        running.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_genuine_selfie_with_liveness_is_approved_when_a_vendor_is_routed_for_kyc() {
    each_database(async |label, dir, url| {
        let fake = fake_rd("AUTHENTIC", 4.0).await;
        let running = Running::start(dir, &url, route_to(&fake, &[("kyc", "local,reality_defender")])).await;
        let images = "/v1/flows/kyc/sessions/kyc-7/images";
        let (status, doc) = running
            .post(images, json!({"image_base64": b64(&fixture("camera/DSCN0010.jpg")), "role": "id_document"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {doc}");
        let (status, selfie) = running
            .post(images, json!({"image_base64": b64(&fixture("camera/nikon-e950.jpg")), "role": "selfie"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {selfie}");
        assert_eq!(selfie["verdict"]["label"], "AUTHENTIC", "{label}: {selfie}");
        assert_eq!(selfie["verdict"]["risk_level"], "LOW", "{label}");
        let (status, session) = running
            .post("/v1/flows/kyc/sessions/kyc-7/liveness", json!({"passed": true, "score": 0.97, "provider": "acme"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {session}");
        let (_, session) = running.get("/v1/flows/kyc/sessions/kyc-7").await;
        let session: Value = serde_json::from_str(&session).unwrap();
        assert_eq!(session["status"], "decided", "{label}: {session}");
        assert_eq!(session["decision"]["action"], "approve", "{label}: {session}");
        assert_eq!(fake.counts().presigns, 2, "{label}: one call per image");
        running.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_vendor_that_cannot_answer_gives_an_error_naming_it_never_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_rd("FAKE", 95.0).await;
    fake.script(|script| script.never_finish = true);
    let running = Running::start(dir.path(), "", |config| {
        route_to(&fake, &[])(config);
        let rd = &mut config.detector.providers.reality_defender;
        rd.deadline_secs = 1;
        config.detector.route = RouteSpec::parse("local,reality_defender").unwrap();
    })
    .await;
    let (status, error) = running
        .post(
            "/v1/analyze",
            json!({"image_base64": b64(&sample("plain-render.png"))}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"]["code"], "SERVICE_UNAVAILABLE");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("reality_defender") && message.contains("no answer within 1 s"),
        "{message}"
    );
    // Nothing was recorded as a verdict.
    let (_, metrics) = running.get("/metrics").await;
    assert!(
        metrics.contains("arbiter_provider_errors_total{provider=\"reality_defender\"} 1"),
        "{metrics}"
    );
    running.stop().await;
}

#[tokio::test]
async fn the_reality_ai_provider_reads_a_real_arbiter_serve_as_its_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Running::start(&dir.path().join("upstream"), "", |_| {}).await;
    let (base, key) = (upstream.api.clone(), upstream.key.clone());
    let downstream = Running::start(&dir.path().join("downstream"), "", move |config| {
        let ra = &mut config.detector.providers.reality_ai;
        ra.base_url = base;
        ra.api_key = arbiter_providers::Secret::new(key);
        config.detector.route = RouteSpec::parse("reality_ai").unwrap();
    })
    .await;
    let (status, answer) = downstream
        .post("/v1/analyze", json!({"image_base64": b64(&sample("sd-generated-duck.png")), "reference_id": "duck-1"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["verdict"]["label"], "AI_GENERATED", "{answer}");
    let run = &answer["providers"][0];
    assert_eq!(run["name"], "reality_ai");
    assert_eq!(run["vendor_status"], "AI_GENERATED");
    // The upstream's own request, readable there.
    let upstream_id = run["vendor_request_id"].as_str().unwrap();
    assert!(upstream_id.starts_with("req_"), "{upstream_id}");
    let (status, stored) = upstream.get(&format!("/v1/requests/{upstream_id}")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    downstream.stop().await;
    upstream.stop().await;
}

#[tokio::test]
async fn scan_takes_a_detector_route_and_its_json_line_names_the_provider_and_its_models() {
    let fake = fake_rd("FAKE", 91.0).await;
    let dir = tempfile::tempdir().unwrap();
    let base_url = fake.base_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        crate::harness::arbiter_command(&DbArg::DataDir(dir.path().to_path_buf()))
            .env(
                "ARBITER_DETECTOR_PROVIDERS_REALITY_DEFENDER_BASE_URL",
                &base_url,
            )
            .env(
                "ARBITER_DETECTOR_PROVIDERS_REALITY_DEFENDER_API_KEY",
                rd::API_KEY,
            )
            .env(
                "ARBITER_DETECTOR_PROVIDERS_REALITY_DEFENDER_POLL_INITIAL_MS",
                "5",
            )
            .env("ARBITER_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")
            .args(["scan", "--json", "--detector", "local,reality_defender"])
            .arg(repo().join("samples/plain-render.png"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["detector"], "local,reality_defender", "{line}");
    assert_eq!(line["providers"][1]["name"], "reality_defender");
    assert_eq!(line["providers"][1]["models"][0]["name"], "rd-elm-img");
    assert_eq!(line["verdict"]["label"], "AI_GENERATED");

    // A route naming a vendor without a key is refused, naming the key.
    let output = crate::harness::arbiter(
        &DbArg::DataDir(tempfile::tempdir().unwrap().path().to_path_buf()),
        &[
            "scan",
            "--detector",
            "local,reality_ai",
            "samples/plain-render.png",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("detector.providers.reality_ai.api_key"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_monthly_budget_is_counted_in_the_database_and_holds_across_a_restart() {
    each_database(async |label, dir, url| {
        let fake = fake_rd("AUTHENTIC", 3.0).await;
        let configure = |config: &mut Config| {
            route_to(&fake, &[])(config);
            config
                .detector
                .providers
                .reality_defender
                .calls
                .monthly_budget = 1;
            config.detector.route = RouteSpec::parse("reality_defender").unwrap();
        };
        let running = Running::start(dir, &url, configure).await;
        let (status, first) = running
            .post(
                "/v1/analyze",
                json!({"image_base64": b64(&sample("plain-render.png"))}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {first}");
        let (_, metrics) = running.get("/metrics").await;
        assert!(
            metrics.contains("arbiter_provider_budget_left{provider=\"reality_defender\"} 0"),
            "{label}: {metrics}"
        );
        running.stop().await;

        // A new process on the same database: the month's budget is still spent.
        let running = Running::start(dir, &url, configure).await;
        let (status, error) = running
            .post(
                "/v1/analyze",
                json!({"image_base64": b64(&sample("comfyui-render.png"))}),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{label}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("reality_defender") && message.contains("budget of 1"),
            "{message}"
        );
        assert_eq!(
            fake.counts().presigns,
            1,
            "{label}: no call past the budget"
        );
        running.stop().await;
    })
    .await;
}

#[test]
fn a_policy_rule_can_read_what_a_vendor_said() {
    let dir = tempfile::tempdir().unwrap();
    let policy = std::fs::read_to_string(repo().join("policies/insurance-fnol.yaml"))
        .unwrap()
        .replace(
            "rules:\n",
            "rules:\n  - id: siu-vendor-fake-large-claim\n    when:\n      all:\n        - { fact: providers.reality_defender.status, eq: FAKE }\n        - { fact: claim.amount, gt: 10000 }\n    then: { action: siu_escalation, reason: VENDOR_FAKE_LARGE_CLAIM }\n",
        );
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(&policy_path, policy).unwrap();
    let facts = dir.path().join("facts.yaml");
    std::fs::write(
        &facts,
        "verdict: { label: MANIPULATED, confidence: 0.7, risk_level: MEDIUM }\nproviders: { local: { label: INCONCLUSIVE, status: INCONCLUSIVE }, reality_defender: { label: MANIPULATED, score: 0.7, status: FAKE } }\nclaim: { id: C-1, amount: 15000 }\n",
    )
    .unwrap();
    let db = DbArg::DataDir(dir.path().join("data"));
    let output = crate::harness::arbiter(
        &db,
        &[
            "policy",
            "explain",
            policy_path.to_str().unwrap(),
            "--input",
            facts.to_str().unwrap(),
        ],
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        out.starts_with(
            "decision: siu_escalation (VENDOR_FAKE_LARGE_CLAIM) by rule siu-vendor-fake-large-claim"
        ),
        "{out}"
    );
    // A field a vendor's group does not have is refused at check time, naming it.
    let bad = std::fs::read_to_string(&policy_path).unwrap().replace(
        "providers.reality_defender.status",
        "providers.reality_defender.verdict",
    );
    std::fs::write(&policy_path, bad).unwrap();
    let output = crate::harness::arbiter(&db, &["policy", "check", policy_path.to_str().unwrap()]);
    assert!(!output.status.success());
    let out = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(out.contains("providers.reality_defender.verdict"), "{out}");
}

#[tokio::test]
async fn a_batch_image_whose_vendor_cannot_answer_is_tried_again_and_then_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_rd("FAKE", 97.0).await;
    // Reality Defender answers 503 for about three seconds: the first attempts time out.
    fake.script(|script| {
        script.presign_failures = (0..150)
            .map(|_| arbiter_providers::fake::Failure::new(503, r#"{"response":"unavailable"}"#))
            .collect();
    });
    let running = Running::start(dir.path(), "", |config| {
        route_to(&fake, &[])(config);
        let rd = &mut config.detector.providers.reality_defender;
        rd.deadline_secs = 1;
        config.detector.route = RouteSpec::parse("reality_defender").unwrap();
        config.jobs.max_attempts = 20;
        config.jobs.poll_interval_ms = 50;
        config.jobs.lease_secs = 2;
    })
    .await;
    let (status, accepted) = running
        .post(
            "/v1/analyze/batch",
            json!({"images": [{"image_base64": b64(&sample("plain-render.png")), "reference_id": "img-1"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let batch_id = accepted["batch_id"].as_str().unwrap();
    // Up to 30 s: about 10 s unloaded (the 503s, then attempts spaced by the job lease), more on a
    // loaded machine.
    let mut batch = Value::Null;
    for _ in 0..600 {
        let (_, body) = running.get(&format!("/v1/batches/{batch_id}")).await;
        batch = serde_json::from_str(&body).unwrap();
        if batch["status"] == "COMPLETE" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(batch["status"], "COMPLETE", "{batch}");
    assert_eq!(batch["completed"], 1, "{batch}");
    assert_eq!(batch["failed"], 0, "{batch}");
    assert_eq!(
        batch["results"][0]["verdict"]["label"], "AI_GENERATED",
        "{batch}"
    );
    assert!(fake.counts().presigns >= 1);
    running.stop().await;
}

/// A detector of this process whose health check fails, as the local detector's does when no
/// analysis thread is running.
struct Unhealthy;

#[async_trait::async_trait]
impl arbiter_core::Detector for Unhealthy {
    fn name(&self) -> &str {
        "local"
    }

    fn models(&self) -> &[arbiter_core::ModelKind] {
        &[]
    }

    async fn analyze(
        &self,
        _input: &arbiter_core::MediaInput,
        _options: &arbiter_core::AnalyzeOptions,
    ) -> Result<arbiter_core::Analysis, arbiter_core::DetectError> {
        Err(self.health().await.unwrap_err())
    }

    async fn health(&self) -> Result<(), arbiter_core::DetectError> {
        Err(arbiter_core::DetectError::Failed {
            detector: "local".to_owned(),
            message: "no analysis thread is running".to_owned(),
        })
    }
}

#[tokio::test]
async fn readyz_shows_each_detectors_health_and_only_a_failing_detector_of_this_process_makes_it_unready()
 {
    each_database(async |label, dir, url| {
        // A vendor whose budget is spent is unhealthy; the process stays ready.
        let fake = fake_rd("FAKE", 95.0).await;
        let running = Running::start(&dir.join("vendor"), &url, |config| {
            route_to(&fake, &[])(config);
            let rd = &mut config.detector.providers.reality_defender;
            rd.calls.monthly_budget = 1;
            config.detector.route = RouteSpec::parse("local,reality_defender").unwrap();
        })
        .await;
        let (status, ready) = running.get("/readyz").await;
        assert_eq!(status, StatusCode::OK, "{label}: {ready}");
        let ready: Value = serde_json::from_str(&ready).unwrap();
        assert_eq!(ready["detectors"]["reality_defender"], json!({"healthy": true, "problem": null}), "{label}");
        let (status, analysed) = running
            .post("/v1/analyze", json!({"image_base64": b64(&sample("plain-render.png"))}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {analysed}");
        let (status, ready) = running.get("/readyz").await;
        assert_eq!(status, StatusCode::OK, "{label}: a vendor that is down leaves the process ready");
        let ready: Value = serde_json::from_str(&ready).unwrap();
        assert_eq!(
            ready,
            json!({
                "status": "ready",
                "providers": {"reality_defender": {
                    "healthy": false, "circuit": "closed", "problem": "monthly budget spent", "budget_left": 0,
                }},
                "detectors": {
                    "local": {"healthy": true, "problem": null},
                    "reality_defender": {"healthy": false, "problem": "monthly budget spent"},
                },
            }),
            "{label}"
        );
        running.stop().await;

        // The detector of this process fails its check: the process leaves rotation.
        let mut config = config(&dir.join("local"), &url);
        config.outbound.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        let server = TestServer::start_with(
            config,
            std::sync::Arc::new(arbiter_server::clock::SystemClock),
            Some(std::sync::Arc::new(Unhealthy)),
        )
        .await;
        let response = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{label}");
        let ready: Value = response.json().await.unwrap();
        assert_eq!(
            ready,
            json!({
                "status": "detector unavailable",
                "providers": {},
                "detectors": {"local": {"healthy": false, "problem": "no analysis thread is running"}},
            }),
            "{label}"
        );
        server.stop().await;
    })
    .await;
}
