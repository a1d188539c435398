//! The Reality AI provider, built as the server builds it, against the fake Reality AI API over
//! loopback: the verdict and `request_id` kept, 429 and 5xx retried, a refused key, the daily
//! quota, a malformed body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arbiter_core::{RiskLevel, RunStatus, VerdictLabel};
use arbiter_providers::Detectors;
use arbiter_providers::fake::Failure;
use arbiter_providers::fake::reality_ai::{FakeRealityAi, Script};
use common::{ask, build, failure, media, plain_png, ra_settings, routed};

async fn ra_alone(
    script: Script,
    tune: impl FnOnce(&mut arbiter_providers::reality_ai::RealityAiConfig),
) -> (FakeRealityAi, Detectors) {
    let fake = FakeRealityAi::start(script).await.unwrap();
    let mut config = routed("reality_ai");
    config.providers.reality_ai = ra_settings(&fake);
    tune(&mut config.providers.reality_ai);
    let detectors = build(&config);
    (fake, detectors)
}

fn quota_body() -> &'static str {
    r#"{"error":{"code":"QUOTA_EXCEEDED","message":"the daily quota of 10000 requests is spent; it renews at 00:00 UTC","request_id":"req_2"}}"#
}

#[tokio::test]
async fn an_answer_maps_its_verdict_and_keeps_its_request_id() {
    let (fake, detectors) = ra_alone(Script::answering("AI_GENERATED", 0.91, "HIGH"), |_| {}).await;
    let analysis = ask(&detectors, &media(plain_png(1))).await.unwrap();
    assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated);
    assert_eq!(analysis.verdict.risk_level, RiskLevel::High);
    assert!((analysis.verdict.confidence - 0.91).abs() < 1e-9);
    assert_eq!(analysis.detector, "reality_ai");
    let run = &analysis.providers[0];
    assert_eq!(run.status, RunStatus::Ok);
    assert_eq!(run.vendor_request_id.as_deref(), Some("req_9f3a2b1c4d5e6f"));
    assert_eq!(run.score, Some(0.91));
    let names: Vec<&str> = run.models.iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"diffusion_detection"), "{names:?}");
    assert!(analysis.model_results.diffusion_detection.is_some());
    assert!(run.answer_sha256.as_deref().is_some_and(|h| h.len() == 64));
    assert_eq!(fake.calls(), 1);

    let (_fake, detectors) = ra_alone(Script::answering("AUTHENTIC", 0.8, "LOW"), |_| {}).await;
    let analysis = ask(&detectors, &media(plain_png(1))).await.unwrap();
    assert_eq!(analysis.verdict.label, VerdictLabel::Authentic);
    let score = analysis.providers[0].score.unwrap();
    assert!(
        (score - 0.2).abs() < 1e-9,
        "AUTHENTIC at 0.8 is a 0.2 risk score"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_then_an_answer() {
    let script = Script {
        failures: [Failure::too_many(0), Failure::too_many(1)].into(),
        ..Script::answering("MANIPULATED", 0.7, "MEDIUM")
    };
    let (fake, detectors) = ra_alone(script, |_| {}).await;
    let analysis = ask(&detectors, &media(plain_png(2))).await.unwrap();
    assert_eq!(analysis.verdict.label, VerdictLabel::Manipulated);
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn a_503_is_retried() {
    let body = r#"{"error":{"code":"INTERNAL","message":"try again","request_id":"req_3"}}"#;
    let script = Script {
        failures: [
            Failure::new(503, body),
            Failure::new(502, "<html>bad gateway</html>"),
        ]
        .into(),
        ..Script::answering("AI_GENERATED", 0.9, "HIGH")
    };
    let (fake, detectors) = ra_alone(script, |_| {}).await;
    assert!(ask(&detectors, &media(plain_png(3))).await.is_ok());
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn a_refused_key_is_not_retried() {
    let (fake, detectors) = ra_alone(Script::answering("AI_GENERATED", 0.9, "HIGH"), |ra| {
        ra.api_key = arbiter_providers::Secret::new("wrong");
    })
    .await;
    let (detector, message) = failure(ask(&detectors, &media(plain_png(4))).await);
    assert_eq!(detector, "reality_ai");
    assert!(message.contains("401"), "{message}");
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn a_spent_quota_is_a_quota_error_not_a_timeout() {
    // Arbiter itself, as the upstream, answers a spent daily quota with 429 QUOTA_EXCEEDED and a
    // Retry-After until midnight: no retry can help before the deadline.
    let mut until_midnight = Failure::new(429, quota_body());
    until_midnight.retry_after = Some(6 * 3600);
    for quota in [until_midnight, Failure::new(403, quota_body())] {
        let script = Script {
            failures: [quota].into(),
            ..Script::answering("AI_GENERATED", 0.9, "HIGH")
        };
        let (fake, detectors) = ra_alone(script, |_| {}).await;
        let (detector, message) = failure(ask(&detectors, &media(plain_png(5))).await);
        assert_eq!(detector, "reality_ai");
        assert!(message.contains("QUOTA_EXCEEDED"), "{message}");
        assert_eq!(fake.calls(), 1);
        // The quota renews daily: the provider is not blocked for good.
        let status = &detectors.providers()[0].status();
        assert!(status.problem.is_none(), "{:?}", status.problem);
    }
}

#[tokio::test]
async fn a_malformed_body_is_an_error() {
    for body in [
        r#"{"request_id": "req_1", "verdict": "#,
        r#"{"request_id": "req_1"}"#,
    ] {
        let script = Script {
            response: body.to_owned(),
            ..Script::answering("AI_GENERATED", 0.9, "HIGH")
        };
        let (_fake, detectors) = ra_alone(script, |_| {}).await;
        let (detector, message) = failure(ask(&detectors, &media(plain_png(6))).await);
        assert_eq!(detector, "reality_ai");
        assert!(message.contains("malformed"), "{message}");
    }
}
