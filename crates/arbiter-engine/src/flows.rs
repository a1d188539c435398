//! The domain adapters compiled into this build, by name.

use arbiter_core::Flow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The flows this build offers (each behind its Cargo feature).
#[derive(Clone, Default)]
pub struct FlowRegistry {
    flows: BTreeMap<&'static str, Arc<dyn Flow>>,
}

impl std::fmt::Debug for FlowRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.flows.keys()).finish()
    }
}

impl FlowRegistry {
    /// Every flow compiled in, with its default settings.
    pub fn builtin() -> Result<Self, String> {
        Self::configured(&FlowsConfig::default())
    }

    /// Every flow compiled in, with the configured settings. Flows switched off stay here, so
    /// their policies still load and validate; they serve no routes.
    pub fn configured(
        #[cfg_attr(not(feature = "flow-insurance"), allow(unused_variables))] config: &FlowsConfig,
    ) -> Result<Self, String> {
        let mut registry = Self::default();
        #[cfg(feature = "flow-insurance")]
        registry.register(Arc::new(
            arbiter_flow_insurance::InsuranceFlow::new()?
                .announcing_cleared(config.insurance.announce_cleared),
        ));
        #[cfg(feature = "flow-ugc")]
        registry.register(Arc::new(arbiter_flow_ugc::UgcFlow::new()?));
        #[cfg(feature = "flow-kyc")]
        registry.register(Arc::new(arbiter_flow_kyc::KycFlow::new()?));
        Ok(registry)
    }

    /// Adds a flow under its name.
    pub fn register(&mut self, flow: Arc<dyn Flow>) {
        self.flows.insert(flow.name(), flow);
    }

    /// The flow with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Flow>> {
        self.flows.get(name)
    }

    /// The names of the flows, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.flows.keys().copied()
    }
}

/// The domain flows compiled into this build, each switched on or off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Insurance claims intake (FNOL).
    pub insurance: InsuranceConfig,
    /// User-generated content moderation.
    pub ugc: UgcConfig,
    /// KYC verification.
    pub kyc: KycConfig,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self {
            insurance: InsuranceConfig {
                enabled: true,
                announce_cleared: false,
            },
            ugc: UgcConfig {
                enabled: true,
                batch_size: 50,
                max_wait_secs: 5,
            },
            kyc: KycConfig { enabled: true },
        }
    }
}

/// The insurance flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsuranceConfig {
    /// Whether its routes are served.
    pub enabled: bool,
    /// Announce `proceed` decisions as `claim.cleared` webhooks.
    pub announce_cleared: bool,
}

/// The UGC flow and its upload collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UgcConfig {
    /// Whether its routes are served.
    pub enabled: bool,
    /// Uploads submitted together as one batch once this many have arrived...
    pub batch_size: u64,
    /// ...or once the oldest has waited this many seconds.
    pub max_wait_secs: u64,
}

/// The KYC flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KycConfig {
    /// Whether its routes are served.
    pub enabled: bool,
}

impl FlowsConfig {
    /// Whether a flow is switched on (a flow this build does not know is off).
    pub fn enabled(&self, flow: &str) -> bool {
        match flow {
            "insurance" => self.insurance.enabled,
            "ugc" => self.ugc.enabled,
            "kyc" => self.kyc.enabled,
            _ => false,
        }
    }
}
