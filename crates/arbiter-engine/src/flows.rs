//! The domain adapters compiled into this build, by name.

use arbiter_core::Flow;
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
        Self::configured(&crate::config::FlowsConfig::default())
    }

    /// Every flow compiled in, with the configured settings. Flows switched off stay here, so
    /// their policies still load and validate; they serve no routes.
    pub fn configured(
        #[cfg_attr(not(feature = "flow-insurance"), allow(unused_variables))]
        config: &crate::config::FlowsConfig,
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
