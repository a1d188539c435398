//! Routes over the local detector and the vendors' real clients against their fakes: a cascade
//! pays a vendor only for what local cannot decide, an ensemble records everyone and takes the
//! higher risk, a failover moves on while a provider's circuit is open, a spent budget skips or
//! fails as configured, and a route picks its detectors by flow and image role.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arbiter_core::{RiskLevel, RunStatus, VerdictLabel};
use arbiter_providers::breaker::CircuitState;
use arbiter_providers::config::BudgetSpent;
use arbiter_providers::fake::Failure;
use arbiter_providers::fake::reality_ai::{self as fake_ai, FakeRealityAi};
use arbiter_providers::fake::reality_defender::{FakeRealityDefender, Script, final_body};
use arbiter_providers::{DetectorConfig, Detectors, RouteSpec};
use common::{a1111_png, ask, build, failure, media, plain_png, ra_settings, rd_settings, routed};

fn rd_fake_answer() -> String {
    final_body("FAKE", Some(92.0), &[("rd-elm-img", "FAKE", 0.95)])
}

/// A fake RD answering FAKE at once, and the detectors whose default route is `route`.
async fn with_rd(
    route: &str,
    tune: impl FnOnce(&mut DetectorConfig),
) -> (FakeRealityDefender, Detectors) {
    let script = Script {
        pending_polls: 0,
        ..Script::answering(&rd_fake_answer())
    };
    let fake = FakeRealityDefender::start(script).await.unwrap();
    let mut config = routed(route);
    config.providers.reality_defender = rd_settings(&fake);
    tune(&mut config);
    (fake.clone(), build(&config))
}

#[tokio::test]
async fn local_decides_declared_generation_and_the_vendor_is_asked_only_otherwise() {
    let (fake, detectors) = with_rd("local,reality_defender", |_| {}).await;

    let declared = ask(&detectors, &media(a1111_png(1))).await.unwrap();
    assert_eq!(declared.verdict.label, VerdictLabel::AiGenerated);
    assert_eq!(declared.detector, "local,reality_defender");
    assert_eq!(fake.counts().presign_attempts, 0, "no vendor call");
    let ran: Vec<&str> = declared.providers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(ran, ["local"]);
    assert_eq!(
        declared.metadata.generator.as_deref(),
        Some("AUTOMATIC1111"),
        "{:?}",
        declared.metadata
    );

    let plain = ask(&detectors, &media(plain_png(1))).await.unwrap();
    assert_eq!(fake.counts().presign_attempts, 1, "exactly one vendor call");
    assert_eq!(plain.verdict.label, VerdictLabel::AiGenerated);
    assert_eq!(plain.verdict.risk_level, RiskLevel::High);
    let ran: Vec<(&str, RunStatus)> = plain
        .providers
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    assert_eq!(
        ran,
        [
            ("local", RunStatus::Ok),
            ("reality_defender", RunStatus::Ok)
        ]
    );
    assert_eq!(
        plain.providers[0].verdict.map(|v| v.label),
        Some(VerdictLabel::Inconclusive)
    );
    assert!(plain.providers[1].vendor_request_id.is_some());
    // What local read stays beside what the vendor said.
    assert!(plain.model_results.metadata_analysis.is_some());
    assert!(plain.model_results.diffusion_detection.is_some());
    assert_eq!(plain.detectors_ran(), ["local", "reality_defender"]);
}

#[tokio::test]
async fn an_ensemble_records_both_and_takes_the_higher_risk() {
    let (fake, detectors) = with_rd("ensemble:local,reality_defender", |_| {}).await;
    // Local is INCONCLUSIVE, RD says FAKE: RD's verdict.
    let plain = ask(&detectors, &media(plain_png(2))).await.unwrap();
    assert_eq!(plain.verdict.label, VerdictLabel::AiGenerated);
    assert_eq!(plain.detectors_ran(), ["local", "reality_defender"]);
    assert_eq!(plain.detector, "ensemble:local,reality_defender");

    // Local sees declared generation, RD says AUTHENTIC: local's verdict, RD's still recorded.
    fake.script(|s| s.final_body = final_body("AUTHENTIC", Some(3.0), &[]));
    let declared = ask(&detectors, &media(a1111_png(2))).await.unwrap();
    assert_eq!(declared.verdict.label, VerdictLabel::AiGenerated);
    let rd = &declared.providers[1];
    assert_eq!(rd.name, "reality_defender");
    assert_eq!(rd.verdict.map(|v| v.label), Some(VerdictLabel::Authentic));
    assert_eq!(fake.counts().presigns, 2, "an ensemble asks everyone");
}

#[tokio::test]
async fn failover_moves_on_while_a_providers_circuit_is_open() {
    let ra = FakeRealityAi::start(fake_ai::Script::answering("MANIPULATED", 0.88, "HIGH"))
        .await
        .unwrap();
    let (rd, detectors) = with_rd("failover:reality_defender,reality_ai", |config| {
        config.providers.reality_ai = ra_settings(&ra);
        config.providers.reality_defender.calls.breaker_failures = 1;
        config.providers.reality_defender.calls.breaker_open_secs = 600;
    })
    .await;
    rd.script(|s| {
        s.presign_failures = [Failure::new(
            400,
            r#"{"code":"error","errno":400,"response":"bad request"}"#,
        )]
        .into();
    });

    // RD fails: its circuit opens, and Reality AI answers this image.
    let first = ask(&detectors, &media(plain_png(3))).await.unwrap();
    assert_eq!(first.verdict.label, VerdictLabel::Manipulated);
    assert_eq!(first.providers[0].status, RunStatus::Failed);
    let rd_status = detectors.providers()[0].status();
    assert_eq!(rd_status.name, "reality_defender");
    assert_eq!(rd_status.circuit, CircuitState::Open);

    // RD is not asked while its circuit is open; Reality AI takes over.
    let second = ask(&detectors, &media(plain_png(4))).await.unwrap();
    assert_eq!(second.verdict.label, VerdictLabel::Manipulated);
    assert_eq!(rd.counts().presign_attempts, 1);
    assert_eq!(ra.calls(), 2);
    let skipped = &second.providers[0];
    assert_eq!(skipped.name, "reality_defender");
    assert!(
        skipped
            .error
            .as_deref()
            .is_some_and(|e| e.contains("circuit")),
        "{skipped:?}"
    );
    assert_eq!(second.detectors_ran(), ["reality_ai"]);
}

#[tokio::test]
async fn a_spent_budget_skips_or_fails_as_configured() {
    let (fake, detectors) = with_rd("local,reality_defender", |config| {
        config.providers.reality_defender.calls.monthly_budget = 1;
        config.providers.reality_defender.calls.on_budget_spent = BudgetSpent::Skip;
    })
    .await;
    let first = ask(&detectors, &media(plain_png(5))).await.unwrap();
    assert_eq!(first.verdict.label, VerdictLabel::AiGenerated);
    let second = ask(&detectors, &media(plain_png(6))).await.unwrap();
    assert_eq!(fake.counts().presign_attempts, 1);
    assert_eq!(
        second.verdict.label,
        VerdictLabel::Inconclusive,
        "local's verdict"
    );
    let run = &second.providers[1];
    assert_eq!(
        (run.name.as_str(), run.status),
        ("reality_defender", RunStatus::Skipped)
    );
    assert!(
        run.error.as_deref().is_some_and(|e| e.contains("budget")),
        "{run:?}"
    );
    assert_eq!(run.status_word(), "SKIPPED");
    assert_eq!(detectors.providers()[0].status().budget_left, Some(0));

    let (fake, detectors) = with_rd("local,reality_defender", |config| {
        config.providers.reality_defender.calls.monthly_budget = 1;
        config.providers.reality_defender.calls.on_budget_spent = BudgetSpent::Fail;
    })
    .await;
    ask(&detectors, &media(plain_png(7))).await.unwrap();
    let (detector, message) = failure(ask(&detectors, &media(plain_png(8))).await);
    assert_eq!(detector, "reality_defender");
    assert!(message.contains("monthly budget of 1"), "{message}");
    assert_eq!(fake.counts().presign_attempts, 1);
}

#[test]
fn a_route_naming_an_unconfigured_provider_is_a_build_error_naming_the_key() {
    let config = routed("local,reality_defender");
    let err = match Detectors::build(&config, common::loopback_guard()) {
        Ok(_) => panic!("a route to a provider without a key builds"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("detector.providers.reality_defender.api_key"),
        "{err}"
    );
    assert!(err.starts_with("detector.route"), "{err}");

    let mut config = DetectorConfig::default();
    config.routes.insert(
        "kyc.selfie".to_owned(),
        RouteSpec::parse("reality_ai").unwrap(),
    );
    let err = match Detectors::build(&config, common::loopback_guard()) {
        Ok(_) => panic!("a route to a provider without a key builds"),
        Err(err) => err.to_string(),
    };
    assert!(err.starts_with("detector.routes.kyc.selfie"), "{err}");
    assert!(
        err.contains("detector.providers.reality_ai.api_key"),
        "{err}"
    );

    let config = routed("local,hive");
    let err = match Detectors::build(&config, common::loopback_guard()) {
        Ok(_) => panic!("a route to an unknown detector builds"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("unknown detector \"hive\""), "{err}");
}

#[tokio::test]
async fn the_most_specific_route_wins() {
    let (_fake, detectors) = with_rd("local", |config| {
        for (key, route) in [
            ("kyc.selfie", "reality_defender"),
            ("kyc", "local,reality_defender"),
        ] {
            config
                .routes
                .insert(key.to_owned(), RouteSpec::parse(route).unwrap());
        }
    })
    .await;
    let name = |flow, role| detectors.for_image(flow, role).name().to_owned();
    assert_eq!(name(Some("kyc"), Some("selfie")), "reality_defender");
    assert_eq!(
        name(Some("kyc"), Some("document")),
        "local,reality_defender"
    );
    assert_eq!(name(Some("kyc"), None), "local,reality_defender");
    assert_eq!(name(Some("insurance"), Some("selfie")), "local");
    assert_eq!(name(None, Some("selfie")), "local");
    assert_eq!(detectors.default_detector().name(), "local");
}
