//! Arbiter's detectors behind one door: the offline local detector, vendors (Reality Defender,
//! Reality AI), and routes over them (cascade, ensemble, failover), chosen per flow and image
//! role by the `detector:` section of `arbiter.yaml`.
//!
//! Each vendor owns its wiring in its module: its configuration type (every field documented,
//! unknown fields refused, the API key redacted), its client and its mapping onto Arbiter's
//! verdicts. [`Detectors::build`] is the one place that names them. See `README.md` for the
//! mapping tables, routing and budgets.
#![forbid(unsafe_code)]

pub mod breaker;
pub mod call;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod reality_ai;
pub mod reality_defender;
pub mod route;

pub use call::{MemoryUsage, Provider, ProviderStatus, Usage};
pub use config::{DetectorConfig, RouteMode, RouteSpec, Secret};

use arbiter_core::Detector;
use arbiter_core::net::AddressGuard;
use arbiter_detect::LocalDetector;
use route::{Member, Route};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    members: BTreeMap<String, Member>,
    default: Arc<dyn Detector>,
    routes: Arc<BTreeMap<String, Arc<dyn Detector>>>,
    providers: Vec<Arc<Provider>>,
    /// The vendors this build knows that have no API key.
    unconfigured: Vec<&'static str>,
}

impl Detectors {
    /// Builds the local detector, every vendor that has an API key, and the routes, counting
    /// budgets in memory. See [`Detectors::build_with_usage`].
    pub fn build(config: &DetectorConfig, guard: AddressGuard) -> Result<Self, BuildError> {
        Self::build_with_usage(config, guard, Arc::new(call::MemoryUsage::default()))
    }

    /// Builds the local detector, every vendor that has an API key, and the routes. A route that
    /// names an unknown or unconfigured detector is refused, naming its key. `guard` checks the
    /// URLs vendors hand back (upload URLs); `usage` keeps the monthly budgets' counts.
    pub fn build_with_usage(
        config: &DetectorConfig,
        guard: AddressGuard,
        usage: Arc<dyn call::Usage>,
    ) -> Result<Self, BuildError> {
        let mut members = BTreeMap::new();
        let local = LocalDetector::build(config.local.clone())?;
        members.insert(
            LocalDetector::NAME.to_owned(),
            Member::Plain(Arc::new(local)),
        );
        // The vendors, a line each: a vendor without an API key is left out.
        let (rd, ra) = (
            &config.providers.reality_defender,
            &config.providers.reality_ai,
        );
        let vendors = [
            (reality_defender::NAME, rd.build(guard)?, &rd.calls),
            (reality_ai::NAME, ra.build()?, &ra.calls),
        ];
        let mut providers = Vec::new();
        let mut unconfigured = Vec::new();
        for (name, built, limits) in vendors {
            let Some((vendor, deadline)) = built else {
                unconfigured.push(name);
                continue;
            };
            let provider = Arc::new(Provider::new(
                name,
                vendor,
                deadline,
                limits.clone(),
                usage.clone(),
            ));
            providers.push(provider.clone());
            members.insert(name.to_owned(), Member::Provider(provider));
        }
        let mut detectors = Self {
            default: Arc::new(LocalDetector::default()),
            members,
            routes: Arc::default(),
            providers,
            unconfigured,
        };
        detectors.default = detectors.route(&config.route, "detector.route")?;
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
                detectors.route(spec, &format!("detector.routes.{key}"))?,
            );
        }
        detectors.routes = Arc::new(routes);
        Ok(detectors)
    }

    /// One given detector for every image (tests, tools).
    pub fn single(detector: Arc<dyn Detector>) -> Self {
        let mut members = BTreeMap::new();
        members.insert(detector.name().to_owned(), Member::Plain(detector.clone()));
        Self {
            members,
            default: detector,
            routes: Arc::default(),
            providers: Vec::new(),
            unconfigured: Vec::new(),
        }
    }

    /// The detector a route names: one detector, or a [`Route`] over several. `key` names the
    /// setting in errors.
    pub fn route(&self, spec: &RouteSpec, key: &str) -> Result<Arc<dyn Detector>, BuildError> {
        let mut members = Vec::new();
        for name in &spec.detectors {
            let member = self.members.get(name).cloned().ok_or_else(|| {
                let message = if self.unconfigured.contains(&name.as_str()) {
                    format!(
                        "{name} has no API key: set detector.providers.{name}.api_key (or \
                         api_key_file)"
                    )
                } else {
                    format!(
                        "unknown detector {name:?} (configured: {})",
                        self.members.keys().cloned().collect::<Vec<_>>().join(", ")
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
}
