//! The documented `detector:` section (read from the doc comment itself, so it cannot drift)
//! parses and builds; unknown keys are refused, naming themselves. Each plugin's own example is
//! tested in its module.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arbiter_providers::reality_ai::RealityAiConfig;
use arbiter_providers::reality_defender::RealityDefenderConfig;
use arbiter_providers::{DetectorConfig, Detectors};
use std::collections::BTreeMap;

/// The last ```` ```yaml ```` block of doc comment before `item` in `source`, its comment
/// markers stripped.
fn doc_yaml(source: &str, item: &str) -> String {
    let before = &source[..source.find(item).expect("the item is in the source")];
    let start = before
        .rfind("```yaml")
        .expect("a yaml example precedes the item");
    before[start..]
        .lines()
        .skip(1)
        .take_while(|line| !line.trim_start_matches(['/', '!', ' ']).starts_with("```"))
        .map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix("///")
                .or_else(|| line.strip_prefix("//!"))
                .unwrap_or(line);
            line.strip_prefix(' ').unwrap_or(line)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A key file for the examples that name one.
fn key_file(name: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "arbiter-providers-{name}-{}.key",
        std::process::id()
    ));
    std::fs::write(&path, "example-key\n").unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn the_documented_detector_section_parses_and_builds_with_its_keys() {
    let yaml = doc_yaml(include_str!("../src/config.rs"), "use arbiter_detect");
    let mut section: BTreeMap<String, DetectorConfig> = serde_saphyr::from_str(&yaml).unwrap();
    let mut config = section.remove("detector").unwrap();
    assert_eq!(config.route.name(), "local");
    assert_eq!(config.routes["kyc.selfie"].name(), "local,reality_defender");
    assert_eq!(
        config.routes["insurance"].name(),
        "ensemble:local,reality_defender"
    );
    // As documented, Reality AI has no key; Reality Defender's comes from a file.
    assert!(config.providers.reality_ai.api_key.is_empty());
    config.providers.reality_defender.api_key_file = key_file("section");
    let detectors = Detectors::build(&config, Default::default()).unwrap();
    assert_eq!(
        detectors.for_image(Some("kyc"), Some("selfie")).name(),
        "local,reality_defender"
    );
}

#[test]
fn a_missing_key_file_is_refused_naming_its_key() {
    let rd = RealityDefenderConfig {
        api_key_file: "/nonexistent/arbiter/rd.key".to_owned(),
        ..RealityDefenderConfig::default()
    };
    let mut config = DetectorConfig::default();
    config.providers.reality_defender = rd;
    let err = match Detectors::build(&config, Default::default()) {
        Ok(_) => panic!("an unreadable key file builds"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.starts_with("detector.providers.reality_defender.api_key_file"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    for (yaml, key) in [
        ("base_url: http://x\napikey: k\n", "apikey"),
        ("calls: { max_concurency: 3 }\n", "max_concurency"),
        ("calls: { on_budget_spent: ignore }\n", "ignore"),
    ] {
        let err = serde_saphyr::from_str::<RealityDefenderConfig>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{yaml}: {err}");
    }
    let err = serde_saphyr::from_str::<RealityAiConfig>("retry_max_ms: 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("retry_max_ms"), "{err}");
    let err = serde_saphyr::from_str::<DetectorConfig>("providers: { hive: {} }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("hive"), "{err}");
}

#[test]
fn no_dump_shows_a_key() {
    let mut config = DetectorConfig::default();
    config.providers.reality_defender.api_key = arbiter_providers::Secret::new("rd-live-123");
    config.providers.reality_ai.api_key = arbiter_providers::Secret::new("ra-live-456");
    let shown = format!("{config:?} {config:#?}");
    assert!(!shown.contains("rd-live-123") && !shown.contains("ra-live-456"));
}
