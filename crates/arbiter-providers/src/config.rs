//! The `detector:` section of `arbiter.yaml`: which detector decides each image (a route), and
//! the settings of each detector a route can name.
//!
//! ```yaml
//! detector:
//!   route: local
//!   routes:
//!     kyc.selfie: local,reality_defender
//!     insurance: { ensemble: [local, reality_defender] }
//!   local: { trust_anchors: null, max_decode_pixels: 100000000, max_decode_bytes: 1073741824 }
//!   providers:
//!     reality_defender: { base_url: https://api.prd.realitydefender.xyz, api_key_file: /etc/arbiter/rd.key }
//!     reality_ai: { base_url: https://api.checkreality.ai, api_key: "" }
//! ```

use crate::ProvidersConfig;
use crate::plugin::DetectorPlugin;
use arbiter_detect::LocalDetectorConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A secret value (an API key). Its `Debug` form is `[REDACTED]`, so no dump or log shows it.
/// It serializes as itself only so that layered configuration (file, then environment) can be
/// merged; nothing prints the serialized form.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("[REDACTED]")
        }
    }
}

/// The detectors and the routes over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// The route of every image that `routes` does not route: one detector (`local`), a
    /// cascade (`local,reality_defender`), `{ensemble: [...]}` or `{failover: [...]}`.
    pub route: RouteSpec,
    /// Routes by flow (`insurance`) or by flow and image role (`kyc.selfie`,
    /// `insurance.damage`); the most specific wins.
    pub routes: BTreeMap<String, RouteSpec>,
    /// The offline local detector.
    pub local: LocalDetectorConfig,
    /// The vendors a route can name.
    pub providers: ProvidersConfig,
}

impl Default for DetectorConfig {
    /// The `detector:` section of the committed `arbiter.yaml`, with this build's vendors alone
    /// (each vendor's defaults are its own section of the file).
    fn default() -> Self {
        Self {
            route: arbiter_core::settings::defaults("detector.route"),
            routes: arbiter_core::settings::defaults("detector.routes"),
            local: LocalDetectorConfig::default(),
            providers: ProvidersConfig::default(),
        }
    }
}

impl DetectorConfig {
    /// Every detector plugin with its settings, in the order they are built: the local
    /// detector, then each vendor.
    pub fn plugins(&self) -> Vec<&dyn DetectorPlugin> {
        let mut plugins: Vec<&dyn DetectorPlugin> = vec![&self.local];
        plugins.extend(self.providers.plugins());
        plugins
    }
}

/// How the detectors of a route decide together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    /// Each runs only while the verdict so far is INCONCLUSIVE: declared provenance decides for
    /// free, and a vendor is paid only for what the detectors before it could not decide.
    Cascade,
    /// All run at once; the verdict of the highest risk wins (see the crate README), and a
    /// disagreement is recorded.
    Ensemble,
    /// The first that can answer decides; a detector that is down (its circuit open, its budget
    /// spent, a failed call) hands the image to the next.
    Failover,
}

impl RouteMode {
    fn as_str(self) -> &'static str {
        match self {
            RouteMode::Cascade => "cascade",
            RouteMode::Ensemble => "ensemble",
            RouteMode::Failover => "failover",
        }
    }
}

/// A route: its mode and the detectors it names, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// How the detectors decide together.
    pub mode: RouteMode,
    /// The detectors' names (`local`, `reality_defender`, `reality_ai`).
    pub detectors: Vec<String>,
}

impl RouteSpec {
    /// A route of one detector.
    pub fn single(name: &str) -> Self {
        Self {
            mode: RouteMode::Cascade,
            detectors: vec![name.to_owned()],
        }
    }

    /// Parses the text form: `local`, `local,reality_defender` (a cascade),
    /// `ensemble:local,reality_defender` or `failover:reality_defender,reality_ai`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mode, names) = match text.split_once(':') {
            Some(("cascade", names)) => (RouteMode::Cascade, names),
            Some(("ensemble", names)) => (RouteMode::Ensemble, names),
            Some(("failover", names)) => (RouteMode::Failover, names),
            Some((other, _)) => {
                return Err(format!(
                    "{other:?} is not a route mode (cascade, ensemble, failover)"
                ));
            }
            None => (RouteMode::Cascade, text),
        };
        let detectors: Vec<String> = names.split(',').map(str::trim).map(str::to_owned).collect();
        Self::new(mode, detectors)
    }

    fn new(mode: RouteMode, detectors: Vec<String>) -> Result<Self, String> {
        if detectors.is_empty() || detectors.iter().any(String::is_empty) {
            return Err("a route names one or more detectors, such as local or \
                        local,reality_defender"
                .to_owned());
        }
        if let Some(twice) = detectors
            .iter()
            .enumerate()
            .find(|(i, name)| detectors[..*i].contains(name))
        {
            return Err(format!("{} is named twice in one route", twice.1));
        }
        Ok(Self { mode, detectors })
    }

    /// The route's name as analyses record it: `local`, `local,reality_defender`,
    /// `ensemble:local,reality_defender`. Part of the result cache's key.
    pub fn name(&self) -> String {
        let names = self.detectors.join(",");
        match self.mode {
            RouteMode::Cascade => names,
            mode => format!("{}:{names}", mode.as_str()),
        }
    }
}

/// The serialized forms of a route: text, a list (a cascade), or a one-key map naming the mode.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RouteRepr {
    Text(String),
    List(Vec<String>),
    Mode(ModeRepr),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ModeRepr {
    Cascade(Vec<String>),
    Ensemble(Vec<String>),
    Failover(Vec<String>),
}

impl Serialize for RouteSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The text form, so that an environment variable can replace a route as one string.
        RouteRepr::Text(self.name()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RouteSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parsed = match RouteRepr::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "a route is a detector name, a comma-separated cascade, a list, or \
                 {cascade|ensemble|failover: [names]}",
            )
        })? {
            RouteRepr::Text(text) => RouteSpec::parse(&text),
            RouteRepr::List(names) => RouteSpec::new(RouteMode::Cascade, names),
            RouteRepr::Mode(ModeRepr::Cascade(names)) => RouteSpec::new(RouteMode::Cascade, names),
            RouteRepr::Mode(ModeRepr::Ensemble(names)) => {
                RouteSpec::new(RouteMode::Ensemble, names)
            }
            RouteRepr::Mode(ModeRepr::Failover(names)) => {
                RouteSpec::new(RouteMode::Failover, names)
            }
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// What happens to an image routed to a provider whose monthly budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetSpent {
    /// The image gets an error naming the provider (503; a batch job is retried later).
    Fail,
    /// The route goes on without the provider; the analysis records it as SKIPPED.
    Skip,
}

/// How a provider's calls are shared and limited: concurrency, a monthly budget and a circuit
/// breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallLimits {
    /// Analyses in flight at once; more wait their turn (no thread waits).
    pub max_concurrency: u32,
    /// Analyses allowed per calendar month (UTC); 0: no budget.
    pub monthly_budget: u64,
    /// When the budget is spent: `fail` or `skip`.
    pub on_budget_spent: BudgetSpent,
    /// Consecutive failed analyses that open the provider's circuit.
    pub breaker_failures: u32,
    /// Seconds the circuit stays open before one probe analysis is let through.
    pub breaker_open_secs: u64,
}

/// Reads an API key from its value or its file (the first line); empty when neither is set.
#[cfg(any(feature = "reality-defender", feature = "reality-ai"))]
pub(crate) fn read_key(
    key: &Secret,
    file: &str,
    key_name: &str,
) -> Result<Secret, crate::BuildError> {
    if !key.is_empty() || file.is_empty() {
        return Ok(key.clone());
    }
    let text = std::fs::read_to_string(file).map_err(|err| crate::BuildError::Config {
        key: format!("{key_name}_file"),
        message: format!("cannot read {file}: {err}"),
    })?;
    Ok(Secret::new(text.lines().next().unwrap_or_default().trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "reality-defender")]
    use crate::Detectors;
    #[cfg(all(feature = "reality-defender", feature = "reality-ai"))]
    use crate::plugin::{documented_example, key_file};
    #[cfg(all(feature = "reality-defender", feature = "reality-ai"))]
    use crate::reality_ai::RealityAiConfig;
    #[cfg(feature = "reality-defender")]
    use crate::reality_defender::RealityDefenderConfig;
    #[cfg(all(feature = "reality-defender", feature = "reality-ai"))]
    use arbiter_core::settings::Tree;

    #[test]
    fn routes_parse_from_text_lists_and_modes() {
        let parse = |yaml: &str| serde_json::from_str::<RouteSpec>(yaml);
        let cascade = parse(r#""local,reality_defender""#).unwrap();
        assert_eq!(cascade.mode, RouteMode::Cascade);
        assert_eq!(cascade.detectors, ["local", "reality_defender"]);
        assert_eq!(parse(r#"["local","reality_defender"]"#).unwrap(), cascade);
        let ensemble = parse(r#"{"ensemble":["local","reality_ai"]}"#).unwrap();
        assert_eq!(ensemble.mode, RouteMode::Ensemble);
        assert_eq!(ensemble.name(), "ensemble:local,reality_ai");
        assert_eq!(RouteSpec::parse(&ensemble.name()).unwrap(), ensemble);
        assert_eq!(
            parse(r#""failover:reality_defender,reality_ai""#)
                .unwrap()
                .mode,
            RouteMode::Failover
        );
        for bad in [
            r#""""#,
            r#""local,,x""#,
            r#""local,local""#,
            r#""vote:a""#,
            "{}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[cfg(all(feature = "reality-defender", feature = "reality-ai"))]
    #[test]
    fn secrets_never_show_in_debug() {
        let mut config = DetectorConfig::default();
        config.providers.reality_defender.api_key = Secret::new("rd-live-123");
        config.providers.reality_ai.api_key = Secret::new("ra-live-456");
        let shown = format!("{config:?}");
        assert!(!shown.contains("rd-live-123") && !shown.contains("ra-live-456"));
        assert!(shown.contains("[REDACTED]"));
    }

    #[cfg(all(feature = "reality-defender", feature = "reality-ai"))]
    #[test]
    fn the_documented_detector_section_parses_and_builds_with_its_keys() {
        let yaml = documented_example(include_str!("config.rs"), "use arbiter_detect");
        // The example laid over the defaults, as a file's `detector:` section is.
        let mut file = Tree::defaults().clone();
        file.merge(Tree::parse(&yaml).unwrap(), &[]);
        let mut config: DetectorConfig = file.get("detector").unwrap().read().unwrap();
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

    #[cfg(feature = "reality-defender")]
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

    #[cfg(all(feature = "reality-defender", feature = "reality-ai"))]
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

    #[cfg(all(feature = "reality-defender", feature = "reality-ai"))]
    #[test]
    fn no_dump_shows_a_key() {
        let mut config = DetectorConfig::default();
        config.providers.reality_defender.api_key = crate::Secret::new("rd-live-123");
        config.providers.reality_ai.api_key = crate::Secret::new("ra-live-456");
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("rd-live-123") && !shown.contains("ra-live-456"));
    }
}
