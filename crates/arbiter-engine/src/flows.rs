//! The domain adapters compiled into this build, by name, and their configuration
//! (`flows.<name>` in `arbiter.yaml`, each read by its flow's own config type).

use arbiter_core::{CollectedIntake, Flow, FlowPlugin, FlowSettings, IntakeMode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The flows compiled into this build: one line per flow, each behind its Cargo feature. This is
/// the one place that names them.
fn compiled() -> Vec<FlowPlugin> {
    vec![
        #[cfg(feature = "flow-insurance")]
        FlowPlugin::of::<arbiter_flow_insurance::InsuranceConfig>(),
        #[cfg(feature = "flow-ugc")]
        FlowPlugin::of::<arbiter_flow_ugc::UgcConfig>(),
        #[cfg(feature = "flow-kyc")]
        FlowPlugin::of::<arbiter_flow_kyc::KycConfig>(),
    ]
}

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
    pub fn configured(config: &FlowsConfig) -> Result<Self, String> {
        let mut registry = Self::default();
        for plugin in compiled() {
            let settings = config
                .flows
                .get(plugin.name)
                .ok_or_else(|| format!("flows.{}: not configured", plugin.name))?;
            registry.register(plugin.build(&settings.config)?);
        }
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

    /// The flows, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Flow>> + '_ {
        self.flows.values()
    }

    /// The settings of a flow whose images are collected into batches.
    pub fn collected(&self, name: &str) -> Option<CollectedIntake> {
        match self.get(name)?.intake()?.mode {
            IntakeMode::Collected(collected) => Some(collected),
            IntakeMode::Cases(_) => None,
        }
    }
}

/// The settings of the flows compiled into this build (`flows.<name>`), each read and checked
/// by its flow's own config type; a name this build has no flow of is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowsConfig {
    flows: BTreeMap<&'static str, FlowSettings>,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        // Each flow's tests check that its defaults pass its own checks.
        #[allow(clippy::expect_used)]
        Self::read(BTreeMap::new()).expect("every flow's defaults are valid")
    }
}

impl FlowsConfig {
    /// Reads `flows`: each flow's section by its config type (an absent section takes the
    /// flow's defaults). The error names the key that is wrong.
    pub fn read(mut sections: BTreeMap<String, Value>) -> Result<Self, String> {
        let plugins = compiled();
        if let Some(unknown) = sections
            .keys()
            .find(|name| !plugins.iter().any(|p| p.name == name.as_str()))
        {
            let known: Vec<&str> = plugins.iter().map(|p| p.name).collect();
            return Err(format!(
                "flows.{unknown}: no such flow in this build (its flows: {})",
                known.join(", ")
            ));
        }
        let mut flows = BTreeMap::new();
        for plugin in plugins {
            flows.insert(
                plugin.name,
                plugin.read_config(sections.remove(plugin.name))?,
            );
        }
        Ok(Self { flows })
    }

    /// Whether a flow is switched on (a flow this build does not know is off).
    pub fn enabled(&self, flow: &str) -> bool {
        self.flows.get(flow).is_some_and(|s| s.enabled)
    }

    /// The names of the flows switched on, sorted.
    pub fn switched_on(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.flows
            .iter()
            .filter(|(_, s)| s.enabled)
            .map(|(name, _)| *name)
    }

    /// Sets one key of a flow's settings (`("ugc", "batch_size", 3)`), checked as in a file.
    pub fn set(&mut self, flow: &str, key: &str, value: Value) -> Result<(), String> {
        let mut sections: BTreeMap<String, Value> = self
            .flows
            .iter()
            .map(|(name, s)| ((*name).to_owned(), s.config.clone()))
            .collect();
        match sections.get_mut(flow) {
            Some(Value::Object(section)) => {
                section.insert(key.to_owned(), value);
            }
            _ => return Err(format!("flows.{flow}: no such flow in this build")),
        }
        *self = Self::read(sections)?;
        Ok(())
    }
}

impl Serialize for FlowsConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.flows.iter().map(|(name, s)| (name, &s.config)))
    }
}

impl<'de> Deserialize<'de> for FlowsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sections = BTreeMap::<String, Value>::deserialize(deserializer)?;
        Self::read(sections).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[cfg(all(feature = "flow-insurance", feature = "flow-ugc", feature = "flow-kyc"))]
mod tests {
    use super::*;
    use serde_json::json;

    fn sections(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn each_flow_reads_its_own_section_and_absent_ones_take_the_defaults() {
        let config = FlowsConfig::read(sections(
            json!({"kyc": {"enabled": false}, "ugc": {"batch_size": 7}}),
        ))
        .unwrap();
        assert!(!config.enabled("kyc"));
        assert!(config.enabled("insurance"));
        assert!(!config.enabled("nonesuch"));
        assert_eq!(
            config.switched_on().collect::<Vec<_>>(),
            ["insurance", "ugc"]
        );
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            json!({
                "insurance": {"enabled": true, "announce_cleared": false},
                "kyc": {"enabled": false},
                "ugc": {"enabled": true, "batch_size": 7, "max_wait_secs": 5},
            })
        );
        let registry = FlowRegistry::configured(&config).unwrap();
        assert_eq!(
            registry.names().collect::<Vec<_>>(),
            ["insurance", "kyc", "ugc"]
        );
    }

    #[test]
    fn wrong_sections_name_the_flow_and_the_key() {
        let err = FlowsConfig::read(sections(json!({"payroll": {"enabled": true}}))).unwrap_err();
        assert_eq!(
            err,
            "flows.payroll: no such flow in this build (its flows: insurance, ugc, kyc)"
        );
        let err =
            FlowsConfig::read(sections(json!({"insurance": {"enabled": "yes"}}))).unwrap_err();
        assert!(err.starts_with("flows.insurance: invalid type"), "{err}");
        let err = FlowsConfig::read(sections(json!({"kyc": {"batch_size": 3}}))).unwrap_err();
        assert!(
            err.starts_with("flows.kyc: unknown field `batch_size`"),
            "{err}"
        );
        let err = FlowsConfig::read(sections(json!({"ugc": {"batch_size": 0}}))).unwrap_err();
        assert_eq!(err, "flows.ugc.batch_size: must be more than 0");
    }

    #[test]
    fn a_set_key_is_checked_like_the_file() {
        let mut config = FlowsConfig::default();
        config.set("ugc", "max_wait_secs", json!(1)).unwrap();
        assert_eq!(
            serde_json::to_value(&config).unwrap()["ugc"]["max_wait_secs"],
            1
        );
        assert!(config.set("ugc", "max_wait_secs", json!(0)).is_err());
        assert!(config.set("payroll", "enabled", json!(true)).is_err());
    }
}
