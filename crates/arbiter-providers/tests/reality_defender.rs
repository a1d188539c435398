//! The Reality Defender provider, built as the server builds it, against the fake Reality
//! Defender over loopback: both pending shapes, 404s after the upload, retried and refused
//! failures, quota blocks, deadlines, the verdict mapping and the outbound guard on upload URLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arbiter_core::{RiskLevel, RunStatus, VerdictLabel};
use arbiter_providers::fake::Failure;
use arbiter_providers::fake::reality_defender::{Script, final_body};
use common::{ask, failure, media, plain_jpeg, plain_png, rd_alone};
use sha2::Digest;
use std::time::Duration;

const NOT_APPLICABLE: &str = include_str!("fixtures/rd/results-summary-not-applicable.json");
const UNABLE_TO_EVALUATE: &str =
    include_str!("fixtures/rd/results-summary-unable-to-evaluate.json");
const FREE_TIER: &str = include_str!("fixtures/rd/rust-http-error-400-free-tier.json");

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A FAKE answer whose top model is `top` (0.97), with a weaker AUTHENTIC model beside it.
fn fake_answer(top: &str) -> String {
    final_body(
        "FAKE",
        Some(83.0),
        &[(top, "FAKE", 0.97), ("rd-context-img", "AUTHENTIC", 0.12)],
    )
}

#[tokio::test]
async fn a_fake_answer_after_pending_polls_in_either_shape_maps_and_keeps_rds_record() {
    // RD's 2026 shape (`resultsSummary: null`) with a diffusion model on top: AI_GENERATED.
    // The 2024 shape (an ANALYZING summary) with a face-swap model on top: MANIPULATED.
    for (null_pending, top, label) in [
        (true, "rd-elm-img", VerdictLabel::AiGenerated),
        (false, "rd-oak-img", VerdictLabel::Manipulated),
    ] {
        let body = fake_answer(top);
        let script = Script {
            pending_polls: 3,
            null_pending,
            ..Script::answering(&body)
        };
        let (fake, detectors) = rd_alone(script, |_| {}).await;
        let analysis = ask(&detectors, &media(plain_png(1))).await.unwrap();

        assert_eq!(analysis.verdict.label, label, "null_pending {null_pending}");
        assert_eq!(analysis.verdict.risk_level, RiskLevel::Medium);
        assert!((analysis.verdict.confidence - 0.83).abs() < 1e-9);
        assert_eq!(analysis.detector, "reality_defender");
        let run = &analysis.providers[0];
        assert_eq!(run.name, "reality_defender");
        assert_eq!(run.status, RunStatus::Ok);
        assert_eq!(run.vendor_status.as_deref(), Some("FAKE"));
        let id = run
            .vendor_request_id
            .clone()
            .expect("RD's requestId is kept");
        let names: Vec<&str> = run.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, [top, "rd-context-img"]);
        assert_eq!(run.models[0].score, Some(0.97));
        assert_eq!(run.models[1].score, Some(0.12));
        // The hash is of the body exactly as the fake sent it.
        let raw = body.replace("{requestId}", &id);
        assert_eq!(
            run.answer_sha256.as_deref(),
            Some(sha256_hex(raw.as_bytes()).as_str())
        );

        let counts = fake.counts();
        assert_eq!((counts.presigns, counts.uploads), (1, 1));
        assert_eq!(
            counts.uploads_with_api_key, 0,
            "the key never goes to the upload host"
        );
        assert_eq!(counts.polls, 4, "three pending answers, then the final one");
    }
}

#[tokio::test]
async fn a_jpeg_goes_the_same_way() {
    let (fake, detectors) = rd_alone(
        Script::answering(&final_body("AUTHENTIC", Some(4.0), &[])),
        |_| {},
    )
    .await;
    let analysis = ask(&detectors, &media(plain_jpeg())).await.unwrap();
    assert_eq!(analysis.verdict.label, VerdictLabel::Authentic);
    assert_eq!(analysis.verdict.risk_level, RiskLevel::Low);
    assert_eq!(fake.counts().uploads, 1);
}

#[tokio::test]
async fn a_404_just_after_the_upload_is_pending_and_past_the_grace_window_an_error() {
    let script = Script {
        not_found_polls: 2,
        ..Script::answering(&fake_answer("rd-elm-img"))
    };
    let (fake, detectors) = rd_alone(script.clone(), |_| {}).await;
    let analysis = ask(&detectors, &media(plain_png(2))).await.unwrap();
    assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated);
    assert_eq!(
        fake.counts().polls,
        4,
        "two 404s, one pending, the final answer"
    );

    let (fake, detectors) = rd_alone(script, |rd| rd.not_found_grace_secs = 0).await;
    let (detector, message) = failure(ask(&detectors, &media(plain_png(2))).await);
    assert_eq!(detector, "reality_defender");
    assert!(message.contains("404"), "{message}");
    assert_eq!(
        fake.counts().polls,
        1,
        "a 404 past the grace window is not retried"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_and_a_5xx_are_retried_on_presign_and_on_poll() {
    let script = Script {
        presign_failures: [
            Failure::too_many(0),
            Failure::new(503, r#"{"response":"Service unavailable"}"#),
        ]
        .into(),
        poll_failures: [
            Failure::new(500, r#"{"response":"Internal server error"}"#),
            Failure::too_many(1),
        ]
        .into(),
        ..Script::answering(&fake_answer("rd-elm-img"))
    };
    let (fake, detectors) = rd_alone(script, |_| {}).await;
    let analysis = ask(&detectors, &media(plain_png(3))).await.unwrap();
    assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated);
    let counts = fake.counts();
    assert_eq!(counts.presign_attempts, 3);
    assert_eq!(counts.presigns, 1);
    assert_eq!(
        counts.polls, 4,
        "two failures, one pending, the final answer"
    );
}

#[tokio::test]
async fn a_wrong_key_is_refused_once_and_the_error_names_the_provider() {
    let (fake, detectors) = rd_alone(Script::answering(&fake_answer("rd-elm-img")), |rd| {
        rd.api_key = arbiter_providers::Secret::new("not-the-key");
    })
    .await;
    let (detector, message) = failure(ask(&detectors, &media(plain_png(4))).await);
    assert_eq!(detector, "reality_defender");
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("not-the-key"), "{message}");
    assert_eq!(fake.counts().presign_attempts, 1, "a 401 is not retried");
    assert_eq!(fake.counts().uploads, 0);
}

#[tokio::test]
async fn a_quota_code_blocks_the_provider_until_an_operator_acts() {
    let upload_limit =
        r#"{"code":"upload-limit-reached","errno":400,"response":"Upload limit reached"}"#;
    for quota in [upload_limit, FREE_TIER] {
        let script = Script {
            presign_failures: [Failure::new(400, quota)].into(),
            ..Script::answering(&fake_answer("rd-elm-img"))
        };
        let (fake, detectors) = rd_alone(script, |_| {}).await;
        let provider = common::detector(&detectors, "reality_defender");
        assert!(provider.health().await.is_ok());

        let (detector, first) = failure(ask(&detectors, &media(plain_png(5))).await);
        assert_eq!(detector, "reality_defender");
        let code = if quota == FREE_TIER {
            "free-tier-not-allowed"
        } else {
            "upload-limit-reached"
        };
        assert!(first.contains(code), "{first}");
        // The fake would now answer; the provider does not ask it.
        let (_, second) = failure(ask(&detectors, &media(plain_png(6))).await);
        assert!(
            second.contains(code) && second.contains("operator"),
            "{second}"
        );
        assert_eq!(fake.counts().presign_attempts, 1);

        let health = provider.health().await.unwrap_err().to_string();
        assert!(
            health.contains("reality_defender") && health.contains(code),
            "{health}"
        );
        let status = &detectors.providers()[0].status();
        assert!(!status.healthy);
        assert_eq!((status.calls, status.errors), (1, 1));
    }
}

#[tokio::test]
async fn an_analysis_that_never_finishes_is_a_timeout_error_never_a_verdict() {
    let script = Script {
        never_finish: true,
        ..Script::answering(&fake_answer("rd-elm-img"))
    };
    let (fake, detectors) = rd_alone(script, |rd| rd.deadline_secs = 1).await;
    let (detector, message) = failure(ask(&detectors, &media(plain_png(7))).await);
    assert_eq!(detector, "reality_defender");
    assert!(message.contains("no answer within 1 s"), "{message}");
    assert!(fake.counts().polls > 1);
}

#[tokio::test]
async fn a_stalled_server_is_a_timeout_error() {
    let script = Script {
        stall: Duration::from_secs(3),
        ..Script::answering(&fake_answer("rd-elm-img"))
    };
    let (fake, detectors) = rd_alone(script, |rd| {
        rd.timeout_secs = 1;
        rd.deadline_secs = 2;
    })
    .await;
    let (detector, message) = failure(ask(&detectors, &media(plain_png(8))).await);
    assert_eq!(detector, "reality_defender");
    assert!(message.contains("no answer within 2 s"), "{message}");
    assert_eq!(fake.counts().uploads, 0);
}

#[tokio::test]
async fn a_malformed_final_answer_is_an_error() {
    let (_fake, detectors) = rd_alone(
        Script::answering(r#"{"requestId": "x", "resultsSummary": {"#),
        |_| {},
    )
    .await;
    let (detector, message) = failure(ask(&detectors, &media(plain_png(9))).await);
    assert_eq!(detector, "reality_defender");
    assert!(message.contains("malformed"), "{message}");

    // Well-formed JSON with a word RD does not use is no verdict either.
    let odd = final_body("PROBABLY_FINE", Some(10.0), &[]);
    let (_fake, detectors) = rd_alone(Script::answering(&odd), |_| {}).await;
    let (_, message) = failure(ask(&detectors, &media(plain_png(9))).await);
    assert!(message.contains("PROBABLY_FINE"), "{message}");
}

#[tokio::test]
async fn not_applicable_keeps_its_reasons_and_is_never_a_definite_label() {
    let (_fake, detectors) = rd_alone(Script::answering(NOT_APPLICABLE), |_| {}).await;
    let analysis = ask(&detectors, &media(plain_png(10))).await.unwrap();
    assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive);
    assert_eq!(analysis.verdict.risk_level, RiskLevel::Medium);
    let run = &analysis.providers[0];
    assert_eq!(run.vendor_status.as_deref(), Some("NOT_APPLICABLE"));
    assert_eq!(
        run.reasons,
        ["relevance: no faces detected/faces too small"]
    );
    assert_eq!(run.score, None);
}

#[tokio::test]
async fn unable_to_evaluate_is_uploaded_once_more_then_inconclusive() {
    let (fake, detectors) = rd_alone(Script::answering(UNABLE_TO_EVALUATE), |_| {}).await;
    let analysis = ask(&detectors, &media(plain_png(11))).await.unwrap();
    assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive);
    assert_eq!(analysis.verdict.risk_level, RiskLevel::Medium);
    let run = &analysis.providers[0];
    assert_eq!(run.vendor_status.as_deref(), Some("UNABLE_TO_EVALUATE"));
    assert!(
        run.reasons[0].starts_with("model-error"),
        "{:?}",
        run.reasons
    );
    let counts = fake.counts();
    assert_eq!((counts.presigns, counts.uploads), (2, 2));
}

#[tokio::test]
async fn an_upload_url_at_a_refused_address_is_never_contacted() {
    for base in ["http://169.254.169.254", "http://10.0.0.1:9000"] {
        let script = Script {
            upload_base: Some(base.to_owned()),
            ..Script::answering(&fake_answer("rd-elm-img"))
        };
        let (fake, detectors) = rd_alone(script, |_| {}).await;
        let (detector, message) = failure(ask(&detectors, &media(plain_png(13))).await);
        assert_eq!(detector, "reality_defender");
        assert!(message.contains("upload URL refused"), "{message}");
        let host = base
            .trim_start_matches("http://")
            .split(':')
            .next()
            .unwrap();
        assert!(message.contains(host), "{message}");
        let counts = fake.counts();
        assert_eq!((counts.presigns, counts.uploads, counts.polls), (1, 0, 0));
    }
}
