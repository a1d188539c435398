//! Arbiter's detectors behind one door: the offline local detector, vendors (Reality Defender,
//! Reality AI), and routes over them (cascade, ensemble, failover), chosen per flow and image
//! role by the `detector:` section of `arbiter.yaml`.
//!
//! Every detector is a plugin ([`plugin::DetectorPlugin`]): its configuration type (every field
//! documented, unknown fields refused, explicit defaults, an API key redacted) builds it, and
//! the detector answers for its own health. Each vendor owns all of that in its module, with its
//! client and its mapping onto Arbiter's verdicts; the local detector's are `arbiter-detect`'s.
//! [`ProvidersConfig`] is the one place that names the vendors, each behind its Cargo feature
//! (`reality-defender`, `reality-ai`, both on by default); the local detector and the
//! RD-compatible facade ([`reality_defender::facade`]) are in every build. [`Detectors::build`]
//! builds every plugin once and the routes over them, knowing none by name. See `README.md` for
//! the mapping tables, routing and budgets.
#![forbid(unsafe_code)]

pub mod breaker;
pub mod call;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod metrics;
pub mod plugin;
#[cfg(feature = "reality-ai")]
pub mod reality_ai;
pub mod reality_defender;
pub mod route;

pub use call::{MemoryUsage, Provider, ProviderStatus, Usage};
pub use config::{DetectorConfig, RouteMode, RouteSpec, Secret};
pub use plugin::{BuildContext, DetectorHealth, DetectorPlugin};

use arbiter_core::Detector;
use arbiter_core::net::AddressGuard;
use route::{Member, Route};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The vendors compiled into this build, each under its own name (`detector.providers.<name>`)
/// and behind its Cargo feature: the registry of vendor plugins. A vendor is usable once it has
/// an API key. Its `Default` is each vendor's own; a section naming a vendor this build lacks is
/// refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProvidersConfig {
    /// Reality Defender (presigned upload, then polling).
    #[cfg(feature = "reality-defender")]
    pub reality_defender: reality_defender::RealityDefenderConfig,
    /// The Reality AI image-authentication API (`POST /v1/analyze`).
    #[cfg(feature = "reality-ai")]
    pub reality_ai: reality_ai::RealityAiConfig,
}

impl ProvidersConfig {
    /// Every vendor plugin with its settings, in the order they are built.
    pub fn plugins(&self) -> Vec<&dyn DetectorPlugin> {
        vec![
            #[cfg(feature = "reality-defender")]
            &self.reality_defender,
            #[cfg(feature = "reality-ai")]
            &self.reality_ai,
        ]
    }
}

impl<'de> Deserialize<'de> for ProvidersConfig {
    /// Reads each vendor's section by its config type (an absent one takes the vendor's
    /// defaults); a name this build has no vendor of is refused, naming the key.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Sections;

        impl<'de> Visitor<'de> for Sections {
            type Value = ProvidersConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the vendors' sections by name")
            }

            // Without vendor features every name is refused: the loop ends at the first.
            #[cfg_attr(
                not(any(feature = "reality-defender", feature = "reality-ai")),
                allow(unused_mut, clippy::never_loop)
            )]
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut config = ProvidersConfig::default();
                while let Some(name) = map.next_key::<String>()? {
                    match name.as_str() {
                        #[cfg(feature = "reality-defender")]
                        reality_defender::NAME => config.reality_defender = map.next_value()?,
                        #[cfg(feature = "reality-ai")]
                        reality_ai::NAME => config.reality_ai = map.next_value()?,
                        _ => {
                            let known: Vec<&str> =
                                config.plugins().iter().map(|p| p.name()).collect();
                            let known = if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            };
                            return Err(de::Error::custom(format!(
                                "detector.providers.{name}: no such vendor in this build (its \
                                 vendors: {known})"
                            )));
                        }
                    }
                }
                Ok(config)
            }
        }

        deserializer.deserialize_map(Sections)
    }
}

/// Why the detectors could not be built. Each error names the configuration key.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A key's value is unusable.
    #[error("{key}: {message}")]
    Config {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The local detector's configuration was refused.
    #[error("detector.local: {0}")]
    Local(#[from] arbiter_detect::local::BuildError),
}

/// The built detectors: every configured one once, and the routes over them.
#[derive(Clone)]
pub struct Detectors {
    catalogue: Catalogue,
    default: Arc<dyn Detector>,
    routes: Arc<BTreeMap<String, Arc<dyn Detector>>>,
    providers: Vec<Arc<Provider>>,
}

/// The detectors a route can name: every one built once, by name, and the plugins left
/// unconfigured.
#[derive(Clone)]
struct Catalogue {
    detectors: BTreeMap<String, Member>,
    /// The vendors this build knows that have no API key.
    unconfigured: Vec<&'static str>,
}

impl Catalogue {
    /// The detector a route names; see [`Detectors::route`].
    fn route(&self, spec: &RouteSpec, key: &str) -> Result<Arc<dyn Detector>, BuildError> {
        let mut members = Vec::new();
        for name in &spec.detectors {
            let member = self.detectors.get(name).cloned().ok_or_else(|| {
                let message = if self.unconfigured.contains(&name.as_str()) {
                    format!(
                        "{name} has no API key: set detector.providers.{name}.api_key (or \
                         api_key_file)"
                    )
                } else {
                    format!(
                        "unknown detector {name:?} (configured: {})",
                        self.detectors
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                BuildError::Config {
                    key: key.to_owned(),
                    message,
                }
            })?;
            members.push(member);
        }
        Ok(match (members.as_slice(), spec.detectors.len()) {
            ([Member::Plain(detector)], 1) => detector.clone(),
            ([Member::Provider(provider)], 1) => provider.clone(),
            _ => Arc::new(Route::new(spec, members)),
        })
    }
}

impl Detectors {
    /// Builds every detector plugin (the local detector, every vendor that has an API key) and
    /// the routes, counting budgets in memory. See [`Detectors::build_with_usage`].
    pub fn build(config: &DetectorConfig, guard: AddressGuard) -> Result<Self, BuildError> {
        Self::build_with_usage(config, guard, Arc::new(call::MemoryUsage::default()))
    }

    /// Builds every detector plugin of `config` (the local detector, every vendor that has an
    /// API key) and the routes. A route that names an unknown or unconfigured detector is
    /// refused, naming its key. `guard` checks the URLs vendors hand back (upload URLs);
    /// `usage` keeps the monthly budgets' counts.
    pub fn build_with_usage(
        config: &DetectorConfig,
        guard: AddressGuard,
        usage: Arc<dyn call::Usage>,
    ) -> Result<Self, BuildError> {
        let context = BuildContext { guard, usage };
        let mut members = BTreeMap::new();
        let mut providers = Vec::new();
        let mut unconfigured = Vec::new();
        for plugin in config.plugins() {
            match plugin.build(&context)? {
                Some(member) => {
                    if let Member::Provider(provider) = &member {
                        providers.push(provider.clone());
                    }
                    members.insert(plugin.name().to_owned(), member);
                }
                None => unconfigured.push(plugin.name()),
            }
        }
        let catalogue = Catalogue {
            detectors: members,
            unconfigured,
        };
        let default = catalogue.route(&config.route, "detector.route")?;
        let mut routes = BTreeMap::new();
        for (key, spec) in &config.routes {
            if key.is_empty() || key.split('.').count() > 2 {
                return Err(BuildError::Config {
                    key: format!("detector.routes.{key}"),
                    message: "routes are keyed by flow (`kyc`) or flow and image role \
                              (`kyc.selfie`)"
                        .to_owned(),
                });
            }
            routes.insert(
                key.clone(),
                catalogue.route(spec, &format!("detector.routes.{key}"))?,
            );
        }
        Ok(Self {
            catalogue,
            default,
            routes: Arc::new(routes),
            providers,
        })
    }

    /// One given detector for every image (tests, tools).
    pub fn single(detector: Arc<dyn Detector>) -> Self {
        let mut members = BTreeMap::new();
        members.insert(detector.name().to_owned(), Member::Plain(detector.clone()));
        Self {
            catalogue: Catalogue {
                detectors: members,
                unconfigured: Vec::new(),
            },
            default: detector,
            routes: Arc::default(),
            providers: Vec::new(),
        }
    }

    /// The detector a route names: one detector, or a [`Route`] over several. `key` names the
    /// setting in errors.
    pub fn route(&self, spec: &RouteSpec, key: &str) -> Result<Arc<dyn Detector>, BuildError> {
        self.catalogue.route(spec, key)
    }

    /// The detector for an image of `flow` (if any) in `role` (if any): the route of
    /// `<flow>.<role>`, else of `<flow>`, else the default route.
    pub fn for_image(&self, flow: Option<&str>, role: Option<&str>) -> &Arc<dyn Detector> {
        let specific = match (flow, role) {
            (Some(flow), Some(role)) => self.routes.get(&format!("{flow}.{role}")),
            _ => None,
        };
        specific
            .or_else(|| flow.and_then(|flow| self.routes.get(flow)))
            .unwrap_or(&self.default)
    }

    /// The default route's detector.
    pub fn default_detector(&self) -> &Arc<dyn Detector> {
        &self.default
    }

    /// How many analyses the configured vendors take at once in all (their `max_concurrency`).
    pub fn vendor_slots(&self) -> usize {
        self.providers.iter().map(|p| p.max_concurrency()).sum()
    }

    /// Every configured vendor, for health and metrics.
    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// Each built detector's health, by name, from its own [`Detector::health`].
    pub async fn health(&self) -> Vec<DetectorHealth> {
        let mut health = Vec::with_capacity(self.catalogue.detectors.len());
        for (name, member) in &self.catalogue.detectors {
            let (vendor, checked) = match member {
                Member::Plain(detector) => (false, detector.health().await),
                Member::Provider(provider) => (true, provider.health().await),
            };
            health.push(DetectorHealth {
                name: name.clone(),
                vendor,
                problem: checked.err().map(|err| route::message_of(&err)),
            });
        }
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "reality-defender", feature = "reality-ai"))]
    #[test]
    fn every_vendor_key_is_a_registered_plugin_of_that_name() {
        let config = ProvidersConfig::default();
        let keys: Vec<String> = match serde_json::to_value(&config) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!("the vendors' settings are not a map: {other:?}"),
        };
        let names: Vec<&str> = config.plugins().iter().map(|p| p.name()).collect();
        assert_eq!(keys, names);
        let all: Vec<&str> = DetectorConfig::default()
            .plugins()
            .iter()
            .map(|p| p.name())
            .collect();
        assert_eq!(all, ["local", "reality_defender", "reality_ai"]);
    }

    #[test]
    fn each_compiled_vendor_reads_its_own_section_and_another_name_is_refused() {
        let config = ProvidersConfig::default();
        let sections = serde_json::to_value(&config).unwrap();
        assert_eq!(
            serde_json::from_value::<ProvidersConfig>(sections).unwrap(),
            config
        );
        let err = serde_json::from_value::<ProvidersConfig>(serde_json::json!({"hive": {}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("detector.providers.hive: no such vendor in this build (its vendors: "),
            "{err}"
        );
    }

    // A build without vendor features (`cargo test -p arbiter-providers --no-default-features
    // --lib`, run by CI): the local detector alone, and a vendor's section refused.
    #[cfg(not(any(feature = "reality-defender", feature = "reality-ai")))]
    #[tokio::test]
    async fn a_build_without_vendors_has_the_local_detector_alone() {
        use arbiter_core::settings::Tree;

        let config = DetectorConfig::default();
        let names: Vec<&str> = config.plugins().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["local"]);
        let detectors = Detectors::build(&config, AddressGuard::default()).unwrap();
        let health: Vec<String> = detectors
            .health()
            .await
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(health, ["local"]);
        assert!(detectors.providers().is_empty());

        // A file's `detector:` section laid over this build's defaults.
        let read = |yaml: &str| {
            let mut section = Tree::from_json(serde_json::to_value(&config).unwrap());
            section.merge(Tree::parse(yaml).unwrap(), &[]);
            section.read::<DetectorConfig>()
        };
        let err = read("providers:\n  reality_defender:\n    api_key: rd-live-123\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "detector.providers.reality_defender: no such vendor in this build (its \
                 vendors: none)"
            ),
            "{err}"
        );
        // A route naming an absent vendor is refused as an unknown detector.
        let config = read("route: local,reality_defender\n").unwrap();
        let err = match Detectors::build(&config, AddressGuard::default()) {
            Ok(_) => panic!("a route to a vendor this build lacks builds"),
            Err(err) => err.to_string(),
        };
        assert_eq!(
            err,
            "detector.route: unknown detector \"reality_defender\" (configured: local)"
        );
    }

    #[cfg(feature = "reality-ai")]
    #[tokio::test]
    async fn health_names_each_built_detector_and_whether_it_is_a_vendor() {
        let mut config = DetectorConfig::default();
        config.providers.reality_ai.api_key = Secret::new("example-key");
        let detectors = Detectors::build(&config, AddressGuard::default()).unwrap();
        let health = detectors.health().await;
        let shown: Vec<(&str, bool, bool)> = health
            .iter()
            .map(|h| (h.name.as_str(), h.vendor, h.healthy()))
            .collect();
        assert_eq!(shown, [("local", false, true), ("reality_ai", true, true)]);
    }
}
