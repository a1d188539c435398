//! The HTTP API against a real server on 127.0.0.1:0 and a real database (SQLite, and PostgreSQL
//! when `ARBITER_TEST_POSTGRES_URL` is set), with a loopback image host standing in for the
//! customer's storage.

use crate::harness::redactions::{MILLISECONDS, PROCESSED_AT, REQUEST_ID};
use crate::harness::{
    CountingDetector, TestServer, b64, config, each_database, new_key, repo, sample,
};

use arbiter_config::Config;
use arbiter_core::{Analysis, AnalyzeOptions, DetectError, Detector, MediaInput, ModelKind};
use arbiter_db::sea_orm::TransactionTrait;
use arbiter_detect::LocalDetector;
use arbiter_server::clock::{Clock, ManualClock, SystemClock};
use arbiter_server::keys::{self, NewKey, Scope};
use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

/// The calls these tests make, over the harness's server.
trait ApiCalls {
    async fn key(
        &self,
        tenant: &str,
        scopes: &[Scope],
        allow_ips: &[&str],
        plan: &str,
    ) -> (String, String);
    async fn analyze(
        &self,
        key: &str,
        body: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value);
}

impl ApiCalls for TestServer {
    async fn key(
        &self,
        tenant: &str,
        scopes: &[Scope],
        allow_ips: &[&str],
        plan: &str,
    ) -> (String, String) {
        let new = NewKey {
            allow_ips: allow_ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            ..new_key(tenant, plan, scopes)
        };
        self.mint_key(new).await
    }

    async fn analyze(
        &self,
        key: &str,
        body: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.post(key, "/v1/analyze", body).await
    }
}

/// Starts a server per database with `configure` applied; runs `check` against each.
async fn each_server<F>(
    configure: impl Fn(&mut Config),
    clock: Arc<dyn Clock>,
    detector: Arc<dyn Detector>,
    check: F,
) where
    F: AsyncFn(&'static str, &TestServer),
{
    each_database(async |label, dir, url| {
        let mut config = config(dir, &url);
        config.outbound.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        configure(&mut config);
        let test = TestServer::start_with(config, clock.clone(), Some(detector.clone())).await;
        check(label, &test).await;
        test.stop().await;
    })
    .await;
}

fn local() -> Arc<dyn Detector> {
    Arc::new(LocalDetector::default())
}

fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A loopback image host: `/img` serves a sample, `/big` a body over the limit without a length,
/// `/hop/N` redirects N + 1 times, `/missing` is 404.
async fn image_host() -> (String, CancellationToken) {
    use axum::routing::get;
    use axum::{Router, body::Body, extract::Path, response::Redirect};
    let image = sample("plain-render.png");
    let app = Router::new()
        .route("/img", get(move || async move { image.clone() }))
        .route(
            "/big",
            get(|| async {
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![0u8; 64 * 1024]));
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/hop/{n}",
            get(|Path(n): Path<u32>| async move {
                if n == 0 {
                    Redirect::temporary("/img")
                } else {
                    Redirect::temporary(&format!("/hop/{}", n - 1))
                }
            }),
        )
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await
            .unwrap();
    });
    (base, stop)
}

#[tokio::test]
async fn analyze_answers_the_guides_response_field_for_field() {
    each_server(|_| {}, system_clock(), local(), async |label, server| {
        let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "starter").await;
        let (status, headers, body) = server
            .analyze(&key, json!({"image_base64": b64(&sample("sd-generated-duck.png")), "reference_id": "claim-78234-photo-1", "options": {"models": ["all"], "metadata_analysis": true}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert_eq!(headers["x-request-id"].to_str().unwrap(), body["request_id"].as_str().unwrap());
        assert_eq!(headers["x-ratelimit-limit"], "60");
        assert_eq!(headers["x-ratelimit-remaining"], "59");
        assert!(headers.contains_key("x-ratelimit-reset"));
        insta::assert_json_snapshot!("analyze_base64", body, {
            ".request_id" => REQUEST_ID,
            ".processed_at" => PROCESSED_AT,
            ".processing_time_ms" => MILLISECONDS,
        });
    })
    .await;
}

#[tokio::test]
async fn multipart_uploads_urls_and_flows() {
    let (host, stop_host) = image_host().await;
    each_server(|config| config.limits.max_image_bytes = 1_000_000, system_clock(), local(), async |label, server| {
        let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "growth").await;
        // Multipart upload with a flow and its facts.
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(sample("sd-generated-duck.png")).file_name("duck.png"))
            .text("facts", r#"{"claim": {"id": "CLM-7", "amount": 12000}}"#)
            .text("reference_id", "CLM-7-photo-1");
        let response = server.client.post(format!("{}/v1/analyze?flow=insurance", server.base)).bearer_auth(&key).multipart(form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["verdict"]["label"], "AI_GENERATED");
        assert_eq!(body["decision"]["action"], "siu_escalation", "{label}: {body}");
        assert_eq!(body["reference_id"], "CLM-7-photo-1");

        // A stored result reads back the same, decision included.
        let (status, stored) = server.get(&key, &format!("/v1/requests/{}", body["request_id"].as_str().unwrap())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stored["verdict"], body["verdict"]);
        assert_eq!(stored["decision"]["action"], "siu_escalation");
        assert_eq!(stored["image_info"], body["image_info"]);

        // image_url through redirects, within the limit.
        let (status, _, body) = server.analyze(&key, json!({"image_url": format!("{host}/hop/2")})).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert_eq!(body["image_info"]["format"], "PNG");
        let (status, _, body) = server.analyze(&key, json!({"image_url": format!("{host}/hop/3")})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("URL_UNREACHABLE")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("more than 3 redirects"));
        // A redirect to the cloud metadata address is refused before connecting.
        let (status, _, body) = server.analyze(&key, json!({"image_url": format!("{host}/to-metadata")})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["error"]["message"].as_str().unwrap().contains("cloud metadata"), "{body}");
        let (status, _, body) = server.analyze(&key, json!({"image_url": format!("{host}/missing")})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("URL_UNREACHABLE")));
        // A body over the limit is cut off while streaming.
        let (status, _, body) = server.analyze(&key, json!({"image_url": format!("{host}/big")})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("FILE_SIZE_EXCEEDED")), "{body}");

        // Bad domain input names the field and records nothing.
        let (status, _, body) = server.post(&key, "/v1/analyze?flow=insurance", json!({"image_base64": b64(&sample("plain-render.png")), "facts": {"claim": {"amount": "lots"}}})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"]["message"].as_str().unwrap().contains("claim.amount"), "{body}");
        let (status, _, body) = server.post(&key, "/v1/analyze?flow=mortgage", json!({"image_base64": b64(&sample("plain-render.png"))})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    })
    .await;
    stop_host.cancel();
}

#[tokio::test]
async fn the_address_guard_refuses_loopback_unless_allowed() {
    let (host, stop_host) = image_host().await;
    each_server(
        |config| config.outbound.allow_cidrs.clear(),
        system_clock(),
        local(),
        async |_, server| {
            let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "starter").await;
            let (status, _, body) = server
                .analyze(&key, json!({"image_url": format!("{host}/img")}))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(body["error"]["code"], "URL_UNREACHABLE");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("loopback"),
                "{body}"
            );
            let (status, _, _) = server
                .analyze(&key, json!({"image_url": "file:///etc/passwd"}))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        },
    )
    .await;
    stop_host.cancel();
}

#[tokio::test]
async fn bad_requests_get_the_guides_error_codes() {
    each_server(
        |config| config.limits.max_image_bytes = 200_000,
        system_clock(),
        local(),
        async |label, server| {
            let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "growth").await;
            let png = sample("plain-render.png");
            let tiny =
                std::fs::read(repo().join("tests/fixtures/genmeta/automatic1111_cropped.png"))
                    .unwrap();
            let cases = [
                (json!({}), 400, "INVALID_REQUEST"),
                (
                    json!({"image_base64": b64(&png), "image_url": "http://127.0.0.1/x.png"}),
                    400,
                    "INVALID_REQUEST",
                ),
                (json!({"image_base64": "***"}), 400, "INVALID_REQUEST"),
                (
                    json!({"image_base64": b64(&png), "options": {"models": ["gann"]}}),
                    400,
                    "INVALID_REQUEST",
                ),
                (
                    json!({"image_base64": b64(&png), "reference_id": "has spaces"}),
                    400,
                    "INVALID_REQUEST",
                ),
                (
                    json!({"image_base64": b64(&png), "reference_id": "x".repeat(129)}),
                    400,
                    "INVALID_REQUEST",
                ),
                (
                    json!({"image_base64": b64(&png), "colour": "red"}),
                    400,
                    "INVALID_REQUEST",
                ),
                (json!({"image_base64": b64(&tiny)}), 422, "IMAGE_TOO_SMALL"),
                (
                    json!({"image_base64": b64(b"plain text, not an image")}),
                    422,
                    "UNSUPPORTED_FORMAT",
                ),
                (
                    json!({"image_base64": b64(&png[..30])}),
                    422,
                    "INVALID_IMAGE",
                ),
                (
                    json!({"image_base64": b64(&vec![0u8; 250_000])}),
                    413,
                    "FILE_SIZE_EXCEEDED",
                ),
            ];
            for (body, status, code) in cases {
                let (got, headers, answer) = server.analyze(&key, body.clone()).await;
                assert_eq!(
                    (got.as_u16(), answer["error"]["code"].as_str()),
                    (status, Some(code)),
                    "{label}: {body:.80}: {answer}"
                );
                assert_eq!(
                    answer["error"]["request_id"].as_str(),
                    headers["x-request-id"].to_str().ok()
                );
            }
            // A body far over the limit is refused at the edge.
            let huge = "A".repeat(2_000_000);
            let (status, headers, answer) =
                server.analyze(&key, json!({"image_base64": huge})).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
            assert!(headers.contains_key("x-ratelimit-remaining"), "{headers:?}");
            // The key is looked up while the body is read: an unknown key is refused as such,
            // whatever the body.
            let over = json!({"image_base64": "A".repeat(400_000)});
            let (status, _, answer) = server.analyze("arb_nonsense", over).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("INVALID_API_KEY")),
                "{label}: {answer}"
            );
            // Not JSON at all.
            let response = server
                .client
                .post(format!("{}/v1/analyze", server.base))
                .bearer_auth(&key)
                .body("image=1")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        },
    )
    .await;
}

#[tokio::test]
async fn a_batch_image_over_the_size_limit_is_refused_at_intake() {
    each_server(
        |config| config.limits.max_image_bytes = 200_000,
        system_clock(),
        local(),
        async |label, server| {
            let scopes = [Scope::Batch, Scope::RequestsRead];
            let (_, key) = server.key("acme", &scopes, &[], "growth").await;
            let png = sample("plain-render.png");
            let images = json!([
                {"image_base64": b64(&png), "reference_id": "fits"},
                {"image_base64": b64(&vec![0u8; 250_000]), "reference_id": "too-big"},
            ]);
            let (status, _, answer) = server
                .post(&key, "/v1/analyze/batch", json!({"images": images}))
                .await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::PAYLOAD_TOO_LARGE, Some("FILE_SIZE_EXCEEDED")),
                "{label}: {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("images[1]: ") && message.contains("200000-byte limit"),
                "{label}: {message}"
            );
            let conn = server.state.pipeline.db().conn();
            let queued = arbiter_db::jobs::queued_count(conn).await.unwrap();
            assert_eq!(queued, 0, "{label}: nothing of a refused batch is queued");
        },
    )
    .await;
}

#[tokio::test]
async fn keys_are_checked_scoped_and_tenants_see_only_their_own_requests() {
    each_server(
        |_| {},
        system_clock(),
        local(),
        async |label, server| {
            let (acme_id, acme) = server.key("acme", &Scope::DEFAULT, &[], "starter").await;
            let (_, globex) = server.key("globex", &Scope::DEFAULT, &[], "starter").await;
            let (_, auditor) = server
                .key("acme", &[Scope::AuditRead], &[], "starter")
                .await;
            let (_, elsewhere) = server
                .key("acme", &Scope::DEFAULT, &["10.0.0.0/8"], "starter")
                .await;
            let body = json!({"image_base64": b64(&sample("plain-render.png"))});

            let response = server
                .client
                .post(format!("{}/v1/analyze", server.base))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{label}");
            let (status, _, answer) = server.analyze("arb_nonsense", body.clone()).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("INVALID_API_KEY"))
            );
            let (status, _, answer) = server.analyze(&auditor, body.clone()).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("FORBIDDEN"))
            );
            let (status, _, answer) = server.analyze(&elsewhere, body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");

            let (status, _, answer) = server.analyze(&acme, body.clone()).await;
            assert_eq!(status, StatusCode::OK);
            let path = format!("/v1/requests/{}", answer["request_id"].as_str().unwrap());
            assert_eq!(server.get(&acme, &path).await.0, StatusCode::OK);
            let (status, answer) = server.get(&globex, &path).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::NOT_FOUND, Some("NOT_FOUND")),
                "{label}"
            );
            assert_eq!(
                server
                    .get(&acme, "/v1/requests/req_01JH0000000000000000000001")
                    .await
                    .0,
                StatusCode::NOT_FOUND
            );

            // Revocation takes effect at once.
            let txn = server.state.pipeline.db().conn().begin().await.unwrap();
            keys::revoke(&txn, &acme_id.parse().unwrap(), "test", chrono::Utc::now())
                .await
                .unwrap()
                .unwrap();
            txn.commit().await.unwrap();
            let (status, _, _) = server.analyze(&acme, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        },
    )
    .await;
}

#[tokio::test]
async fn rate_limits_and_quotas_follow_an_injected_clock() {
    let clock = ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-03-16T14:23:10Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let tick = clock.clone();
    each_server(
        |config| {
            let plan = config.rate_limits.plans.get_mut("starter").unwrap();
            plan.per_minute = 3;
            plan.per_day = 5;
        },
        Arc::new(clock),
        local(),
        async |label, server| {
            let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "starter").await;
            let body = json!({"image_base64": b64(&sample("plain-render.png"))});
            for remaining in ["2", "1", "0"] {
                let (status, headers, _) = server.analyze(&key, body.clone()).await;
                assert_eq!(status, StatusCode::OK, "{label}");
                assert_eq!(headers["x-ratelimit-remaining"], remaining);
            }
            let (status, headers, answer) = server.analyze(&key, body.clone()).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMIT_EXCEEDED"))
            );
            assert_eq!(headers["retry-after"], "50");
            assert_eq!(headers["x-ratelimit-remaining"], "0");
            tick.advance(chrono::Duration::seconds(50));
            for _ in 0..2 {
                assert_eq!(server.analyze(&key, body.clone()).await.0, StatusCode::OK);
            }
            let (status, headers, answer) = server.analyze(&key, body.clone()).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::TOO_MANY_REQUESTS, Some("QUOTA_EXCEEDED"))
            );
            assert!(headers.contains_key("retry-after"));
            // The next database starts a fresh day at the same time of day.
            tick.advance(chrono::Duration::days(1) - chrono::Duration::seconds(50));
        },
    )
    .await;
}

#[tokio::test]
async fn identical_requests_share_one_detector_run() {
    let detector = Arc::new(CountingDetector::slowed(std::time::Duration::from_millis(
        50,
    )));
    let counter = detector.clone();
    each_server(|_| {}, system_clock(), detector, async |label, server| {
        counter.0.store(0, Ordering::SeqCst);
        let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "enterprise").await;
        let body = json!({"image_base64": b64(&sample("comfyui-render.png"))});
        let requests = (0..50).map(|_| server.analyze(&key, body.clone()));
        let answers = futures_util::future::join_all(requests).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "{label}: 50 concurrent uploads, one detector call");
        let originals: Vec<_> = answers.iter().filter(|(_, _, a)| a["cached"] == false).collect();
        assert_eq!(originals.len(), 1, "{label}");
        let original = originals[0].2["request_id"].clone();
        for (status, _, answer) in &answers {
            assert_eq!(*status, StatusCode::OK);
            if answer["cached"] == true {
                assert_eq!(answer["cached_from"], original);
            }
        }
        // Later, from the store; other options or another tenant run the detector again.
        let (_, _, answer) = server.analyze(&key, body.clone()).await;
        assert_eq!((answer["cached"].as_bool(), &answer["cached_from"]), (Some(true), &original));
        server.analyze(&key, json!({"image_base64": b64(&sample("comfyui-render.png")), "options": {"models": ["metadata"]}})).await;
        let (_, other) = server.key("globex", &Scope::DEFAULT, &[], "starter").await;
        let (_, _, answer) = server.analyze(&other, body.clone()).await;
        assert_eq!(answer["cached"], false);
        assert_eq!(counter.0.load(Ordering::SeqCst), 3, "{label}");
    })
    .await;
}

#[tokio::test]
async fn an_image_is_analysed_only_for_a_known_caller_within_its_scope() {
    let detector = Arc::new(CountingDetector::slowed(std::time::Duration::from_millis(
        50,
    )));
    let counter = detector.clone();
    each_server(
        |_| {},
        system_clock(),
        detector,
        async |label, server| {
            counter.0.store(0, Ordering::SeqCst);
            let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "starter").await;
            let (_, auditor) = server
                .key("acme", &[Scope::AuditRead], &[], "starter")
                .await;
            // The body is read and its image taken in while the key is looked up; a caller refused
            // for its key or scope gets its answer, and nothing is analysed.
            let body = json!({"image_base64": b64(&sample("comfyui-render.png"))});
            for (caller, status) in [
                ("arb_nonsense", StatusCode::UNAUTHORIZED),
                (auditor.as_str(), StatusCode::FORBIDDEN),
            ] {
                let (got, headers, answer) = server.analyze(caller, body.clone()).await;
                assert_eq!(got, status, "{label}: {answer}");
                assert!(headers.contains_key("x-request-id"));
            }
            assert_eq!(
                counter.0.load(Ordering::SeqCst),
                0,
                "{label}: analysed for a refused caller"
            );
            // The query is checked with the body: after the key, and answered in the error body.
            let with_query = |key: &str, query: &str| {
                server
                    .client
                    .post(format!("{}/v1/analyze?{query}", server.base))
                    .bearer_auth(key)
                    .json(&body)
                    .send()
            };
            let response = with_query("arb_nonsense", "flo=insurance").await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{label}");
            let response = with_query(&key, "flo=insurance").await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{label}");
            assert!(response.headers().contains_key("x-ratelimit-remaining"));
            let answer: Value = response.json().await.unwrap();
            assert_eq!(
                answer["error"]["code"], "INVALID_REQUEST",
                "{label}: {answer}"
            );
            assert_eq!(counter.0.load(Ordering::SeqCst), 0, "{label}");
            let (status, _, answer) = server.analyze(&key, body.clone()).await;
            assert_eq!(status, StatusCode::OK, "{label}: {answer}");
            assert_eq!(counter.0.load(Ordering::SeqCst), 1, "{label}");
        },
    )
    .await;
}

/// A detector that holds every analysis until the test opens the gate.
#[derive(Debug, Default)]
struct Gated {
    open: tokio::sync::Notify,
    entered: tokio::sync::Notify,
}

#[async_trait]
impl Detector for Gated {
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
        self.entered.notify_one();
        self.open.notified().await;
        LocalDetector::default().analyze(input, options).await
    }
    async fn health(&self) -> Result<(), DetectError> {
        Ok(())
    }
}

#[tokio::test]
async fn requests_at_once_and_their_time_are_bounded() {
    let gate = Arc::new(Gated::default());
    each_server(
        |config| {
            config.limits.max_concurrent_requests = 1;
            config.limits.request_timeout_secs = 1;
        },
        system_clock(),
        gate.clone(),
        async |label, server| {
            let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "growth").await;
            let image = json!({"image_base64": b64(&sample("plain-render.png"))});
            // One request held in the detector takes the only place.
            let held = tokio::spawn({
                let (client, base, key, image) = (
                    server.client.clone(),
                    server.base.clone(),
                    key.clone(),
                    image.clone(),
                );
                async move {
                    client
                        .post(format!("{base}/v1/analyze"))
                        .bearer_auth(key)
                        .json(&image)
                        .send()
                        .await
                        .unwrap()
                }
            });
            gate.entered.notified().await;
            let (status, headers, body) = server.analyze(&key, image.clone()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{label}: {body}");
            assert_eq!(headers["retry-after"], "1", "{label}");
            assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE", "{label}");
            assert_eq!(
                body["error"]["request_id"].as_str(),
                headers["x-request-id"].to_str().ok(),
                "{label}"
            );
            // Probes answer whatever the load.
            let health = server
                .client
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(health.status(), StatusCode::OK, "{label}");
            // The held request is not answered within request_timeout_secs: 503, and its place
            // is free again.
            let held = held.await.unwrap();
            assert_eq!(held.status(), StatusCode::SERVICE_UNAVAILABLE, "{label}");
            let body: Value = held.json().await.unwrap();
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("limits.request_timeout_secs"),
                "{label}: {body}"
            );
            let answer = tokio::spawn({
                let (client, base, key) = (server.client.clone(), server.base.clone(), key.clone());
                async move {
                    client
                        .post(format!("{base}/v1/analyze"))
                        .bearer_auth(key)
                        .json(&image)
                        .send()
                        .await
                        .unwrap()
                }
            });
            gate.entered.notified().await;
            gate.open.notify_one();
            assert_eq!(answer.await.unwrap().status(), StatusCode::OK, "{label}");
        },
    )
    .await;
}

#[tokio::test]
async fn health_metrics_and_the_openapi_document() {
    each_server(|_| {}, system_clock(), local(), async |_, server| {
        let get = |path: &str| server.client.get(format!("{}{path}", server.base)).send();
        assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
        assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
        let doc: Value = get("/v1/openapi.json").await.unwrap().json().await.unwrap();
        for path in ["/v1/analyze", "/v1/requests/{request_id}", "/healthz", "/readyz", "/metrics"] {
            assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
        }
        assert!(doc["components"]["schemas"]["AnalyzeReply"].is_object());
        let text = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(text.contains("arbiter_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let detector = Arc::new(CountingDetector::slowed(std::time::Duration::from_millis(
        50,
    )));
    let calls = detector.clone();
    each_server(
        |_| {},
        system_clock(),
        detector,
        async |label, server| {
            let (_, key) = server.key("acme", &Scope::DEFAULT, &[], "starter").await;
            let body = json!({"image_base64": b64(&sample("plain-render.png"))});
            let before = calls.0.load(Ordering::SeqCst);
            let in_flight = server.analyze(&key, body);
            let stop = async {
                // The detector takes 50 ms: stop once the request is under way in it.
                while calls.0.load(Ordering::SeqCst) == before {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                server.shutdown.cancel();
            };
            let ((status, _, answer), ()) = tokio::join!(in_flight, stop);
            assert_eq!(status, StatusCode::OK, "{label}: {answer}");
            // New connections are refused once the server has stopped.
            for _ in 0..100 {
                if reqwest::get(format!("{}/healthz", server.base))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("{label}: the server still accepts connections after shutdown");
        },
    )
    .await;
}
