//! Configuration: the committed `arbiter.yaml` (embedded: it is the defaults and documents every
//! key), then the operator's `arbiter.yaml` merged over it, then `ARBITER_*` environment
//! variables, read into [`Config`] once. Each section is its owner crate's type and checks itself.
//!
//! Every leaf key has an environment variable: its dotted path upper-cased with `_` for `.`
//! (`outbound.allow_cidrs` → `ARBITER_OUTBOUND_ALLOW_CIDRS`; lists are comma-separated).
#![forbid(unsafe_code)]

pub use arbiter_audit::{AuditConfig, AuditMode};
pub use arbiter_console::config::{ConsoleConfig, InvalidKey, OidcConfig};
use arbiter_core::settings::{Tree, VarError};
pub use arbiter_engine::flows::FlowsConfig;
pub use arbiter_engine::policies::{PoliciesConfig, PolicySource};
pub use arbiter_jobs::JobsConfig;
pub use arbiter_providers::{DetectorConfig, ProvidersConfig};
pub use arbiter_report::ReportsConfig;
pub use arbiter_webhooks::WebhooksConfig;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the configuration was refused. Each error names the key or the file position.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// An environment variable has a value of the wrong type.
    #[error("{var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl From<InvalidKey> for ConfigError {
    fn from(InvalidKey { key, message }: InvalidKey) -> Self {
        ConfigError::Invalid { key, message }
    }
}

/// Arbiter's configuration.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: String,
    /// Directory of the embedded SQLite database.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL; empty means the embedded SQLite database.
    pub database_url: String,
    /// Directory of policy files; empty means `./policies` when present, else the built-in copies.
    pub policies_dir: String,
    /// Seconds between checks of the policy directory for changed files; 0 disables reloading.
    pub policy_reload_secs: u64,
    /// Where the live policies come from, and the four-eyes change workflow.
    pub policies: PoliciesConfig,
    /// The server's log on stderr.
    pub log: LogConfig,
    /// This process among the replicas sharing a database.
    pub replica: ReplicaConfig,
    /// The detectors and the routes over them (`arbiter_providers`).
    pub detector: DetectorConfig,
    /// Limits on accepted images and requests.
    pub limits: LimitsConfig,
    /// Outbound requests (`image_url` fetching).
    pub outbound: OutboundConfig,
    /// The idempotent result cache.
    pub cache: CacheConfig,
    /// Rate-limit plans.
    pub rate_limits: RateLimitConfig,
    /// Durable jobs: batches and asynchronous requests.
    pub jobs: JobsConfig,
    /// Outbound webhooks.
    pub webhooks: WebhooksConfig,
    /// The audit log's signed checkpoints.
    pub audit: AuditConfig,
    /// The domain flows.
    pub flows: FlowsConfig,
    /// PDF report cards.
    pub reports: ReportsConfig,
    /// The console for people at `/console`.
    pub console: ConsoleConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &if self.database_url.is_empty() {
                    ""
                } else {
                    "[REDACTED]"
                },
            )
            .field("policies_dir", &self.policies_dir)
            .field("policy_reload_secs", &self.policy_reload_secs)
            .field("policies", &self.policies)
            .field("log", &self.log)
            .field("replica", &self.replica)
            .field("detector", &self.detector)
            .field("limits", &self.limits)
            .field("outbound", &self.outbound)
            .field("cache", &self.cache)
            .field("rate_limits", &self.rate_limits)
            .field("jobs", &self.jobs)
            .field("webhooks", &self.webhooks)
            .field("audit", &self.audit)
            .field("flows", &self.flows)
            .field("reports", &self.reports)
            .field("console", &self.console)
            .finish()
    }
}

impl Default for Config {
    /// The committed `arbiter.yaml` with this build's flows: no file, no variables.
    #[allow(clippy::expect_used)]
    fn default() -> Self {
        Self::layered(None, []).expect("the committed arbiter.yaml is the defaults")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The server's log on stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// The least severe level written (`trace`, `debug`, `info`, `warn`, `error`, `off`), or
    /// directives by target (`info,arbiter_jobs=debug`). `RUST_LOG` overrides it.
    pub level: String,
}

/// The levels a log directive may name.
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

impl LogConfig {
    /// Whether `level` is a list of directives: a level, or `target=level`.
    fn level_is_valid(&self) -> bool {
        !self.level.trim().is_empty()
            && self.level.split(',').all(|directive| {
                let level = match directive.rsplit_once('=') {
                    Some((target, _)) if target.trim().is_empty() => return false,
                    Some((_, level)) => level,
                    None => directive,
                };
                LOG_LEVELS.contains(&level.trim().to_ascii_lowercase().as_str())
            })
    }
}

/// This process among the replicas sharing a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// The replica's id in its log lines and `/metrics`; empty: `<hostname>-<pid>` (a random
    /// short id when the host has no name), made at start.
    pub id: String,
    /// Seconds between SIGTERM and no longer accepting connections, while `/readyz` answers 503
    /// (`draining`) so the load balancer stops sending new requests.
    pub drain_secs: u64,
}

/// The longest replica id.
const MAX_REPLICA_ID_LEN: usize = 64;

impl ReplicaConfig {
    /// Gives the replica its default id when none is configured.
    pub fn resolve(&mut self) {
        if self.id.is_empty() {
            self.id = default_replica_id();
        }
    }

    fn id_is_valid(&self) -> bool {
        self.id.len() <= MAX_REPLICA_ID_LEN
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }
}

/// `<hostname>-<pid>`, with any character a replica id may not hold made `-`; a random short id
/// when the host's name cannot be read.
fn default_replica_id() -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    let Some(hostname) = hostname else {
        let random = ulid::Ulid::new().to_string().to_ascii_lowercase();
        return random[random.len() - 8..].to_owned();
    };
    let pid = std::process::id();
    let room = MAX_REPLICA_ID_LEN - pid.to_string().len() - 1;
    let hostname: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(room)
        .collect();
    format!("{hostname}-{pid}")
}

/// Limits on accepted images and requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest accepted image, in bytes.
    pub max_image_bytes: u64,
    /// The smallest accepted width and height, in pixels.
    pub min_dimension: u32,
    /// The longest accepted `reference_id`.
    pub max_reference_id_len: usize,
    /// Requests served at once by a process (health and metrics aside); more: 503 with
    /// `Retry-After`.
    pub max_concurrent_requests: u32,
    /// Seconds a request may take, from its first byte to its answer (its body included); longer:
    /// 503, and the work on it stops.
    pub request_timeout_secs: u64,
}

/// Outbound requests made on a caller's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Networks that may be reached even though they are loopback, private or link-local, at any
    /// port.
    pub allow_cidrs: Vec<IpNet>,
    /// The ports that may be contacted outside `allow_cidrs`.
    pub allow_ports: Vec<u16>,
    /// Timeout of one fetch, in seconds.
    pub timeout_secs: u64,
    /// Redirects followed, each re-checked.
    pub max_redirects: u8,
}

impl OutboundConfig {
    /// The address guard these rules make.
    pub fn guard(&self) -> arbiter_core::net::AddressGuard {
        arbiter_core::net::AddressGuard::new(self.allow_cidrs.clone())
            .with_ports(self.allow_ports.clone())
    }
}

/// The idempotent result cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a result is reused for the same tenant, image and options, in seconds; 0 disables.
    pub ttl_secs: u64,
    /// Identical requests arriving at several replicas at once run the detector once: the first
    /// takes a lease in the database, the others wait for its result.
    pub single_flight: bool,
}

/// One plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Requests per minute.
    pub per_minute: u32,
    /// Images per UTC day: a batch takes one per image (all or none), any other request one.
    pub per_day: u32,
    /// Images per batch.
    pub batch_size: u32,
}

/// Rate-limit plans, assigned per API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The plan of a key created without one.
    pub default_plan: String,
    /// The plans by name.
    pub plans: BTreeMap<String, Plan>,
}

/// The embedded `arbiter.yaml` names every flow and every vendor; the flows of this build, and
/// their defaults, come from the flow registry (a build with one flow starts with that flow
/// alone), and its vendors from the detector plugins (`detector.providers`: a build without
/// vendor features starts with the local detector alone).
#[allow(clippy::expect_used)]
fn defaults_tree() -> Tree {
    let mut tree = Tree::defaults().clone();
    let flows = serde_json::to_value(FlowsConfig::default()).expect("flow settings are JSON");
    tree.set("flows", Tree::from_json(flows));
    let providers =
        serde_json::to_value(ProvidersConfig::default()).expect("vendor settings are JSON");
    tree.set("detector.providers", Tree::from_json(providers));
    tree
}

/// The prefix of Arbiter's environment variables.
pub const ENV_PREFIX: &str = "ARBITER_";

/// The maps a file replaces whole instead of merging key by key: their keys are names the
/// operator chooses (a file that lists plans lists all of them).
const REPLACED_WHOLE: &[&str] = &["rate_limits.plans", "detector.routes"];

impl Config {
    /// The defaults, then `file` (or `./arbiter.yaml` when it exists), then the environment;
    /// checked.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let default_file = Path::new("arbiter.yaml");
        let file = file.or_else(|| default_file.is_file().then_some(default_file));
        let text = file
            .map(|path| {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            })
            .transpose()?;
        let config = Self::layered(file.zip(text.as_deref()), std::env::vars())?;
        config.validate()?;
        Ok(config)
    }

    /// The defaults (the committed `arbiter.yaml`, with this build's flows), a file's text
    /// merged over them (maps key by key, lists and [`REPLACED_WHOLE`] whole), then the
    /// `ARBITER_*` variables among `vars`, read once. An error names the variable, or the file
    /// with the line, column and key.
    pub fn layered(
        file: Option<(&Path, &str)>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let defaults = defaults_tree();
        let mut tree = defaults.clone();
        if let Some((path, text)) = file {
            let layer = Tree::parse(text).map_err(|message| ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            })?;
            tree.merge(layer, REPLACED_WHOLE);
        }
        let applied = tree
            .apply_env(vars, ENV_PREFIX, &defaults)
            .map_err(|VarError { var, message }| ConfigError::Env { var, message })?;
        tree.read().map_err(|err| {
            let vars: Vec<&str> = applied
                .iter()
                .filter(|a| a.path.starts_with(&err.path) || err.path.starts_with(&a.path))
                .map(|a| a.var.as_str())
                .collect();
            match file {
                _ if !vars.is_empty() => ConfigError::Env {
                    var: vars.join(", "),
                    message: format!("{}: {}", err.key, err.message),
                },
                Some((path, _)) => ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: err.to_string(),
                },
                None => ConfigError::Parse {
                    path: PathBuf::from("arbiter.yaml (built in)"),
                    message: err.to_string(),
                },
            }
        })
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid {
                key: "listen",
                message: format!("{:?} is not an address such as 127.0.0.1:8080", self.listen),
            });
        }
        if !self.log.level_is_valid() {
            return Err(ConfigError::Invalid {
                key: "log.level",
                message: format!(
                    "{:?} is not a level ({}) or a list of target=level directives",
                    self.log.level,
                    LOG_LEVELS.join(", ")
                ),
            });
        }
        if !self.replica.id_is_valid() {
            return Err(ConfigError::Invalid {
                key: "replica.id",
                message: format!(
                    "{:?} is not an id of at most {MAX_REPLICA_ID_LEN} letters, digits, '.', '_' \
                     and '-'",
                    self.replica.id
                ),
            });
        }
        self.policies.validate()?;
        if self.limits.max_image_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.max_image_bytes",
                message: "must be more than 0".to_owned(),
            });
        }
        if self.outbound.allow_ports.contains(&0) {
            return Err(ConfigError::Invalid {
                key: "outbound.allow_ports",
                message: "0 is not a port".to_owned(),
            });
        }
        if self.outbound.timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "outbound.timeout_secs",
                message: "must be more than 0".to_owned(),
            });
        }
        self.jobs.validate()?;
        self.webhooks.validate()?;
        self.audit.validate()?;
        self.console.validate()?;
        if !self
            .rate_limits
            .plans
            .contains_key(&self.rate_limits.default_plan)
        {
            return Err(ConfigError::Invalid {
                key: "rate_limits.default_plan",
                message: format!(
                    "{:?} is not one of the plans ({})",
                    self.rate_limits.default_plan,
                    self.plan_names()
                ),
            });
        }
        Ok(())
    }

    /// The plan names, comma-separated.
    pub fn plan_names(&self) -> String {
        self.rate_limits
            .plans
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The defaults with `text` as the file.
    fn from_yaml(text: &str) -> Result<Config, String> {
        Config::layered(Some((Path::new("arbiter.yaml"), text)), []).map_err(|err| err.to_string())
    }

    /// The defaults with these variables.
    fn with_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::layered(None, env(pairs))
    }

    /// The committed file and its flow and vendor keys are those of the build with every plugin.
    #[cfg(all(
        feature = "flow-insurance",
        feature = "flow-ugc",
        feature = "flow-kyc",
        feature = "detector-reality-defender",
        feature = "detector-reality-ai"
    ))]
    mod committed_file {
        use super::*;

        #[test]
        fn the_committed_default_file_is_exactly_the_defaults() {
            let text = include_str!("../../../arbiter.yaml");
            assert_eq!(from_yaml(text).unwrap(), Config::default());
        }

        /// Every key the configuration has is in the committed file, so each has its variable.
        #[test]
        fn the_committed_file_documents_every_key() {
            fn leaves(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
                match value {
                    serde_json::Value::Object(map) if !map.is_empty() => {
                        for (key, child) in map {
                            leaves(child, &format!("{path}.{key}"), out);
                        }
                    }
                    _ => out.push(path.to_owned()),
                }
            }
            let (mut typed, mut documented) = (Vec::new(), Vec::new());
            leaves(
                &serde_json::to_value(Config::default()).unwrap(),
                "",
                &mut typed,
            );
            leaves(&Tree::defaults().to_json(), "", &mut documented);
            typed.retain(|key| key != ".console.oidc");
            typed.sort();
            documented.sort();
            assert_eq!(typed, documented);
        }
    }

    // The embedded file names every flow, but a build starts with its own flows alone.
    #[cfg(all(feature = "flow-kyc", not(feature = "flow-insurance")))]
    #[test]
    fn a_build_with_one_flow_starts_with_that_flow_alone() {
        assert_eq!(
            Config::default().flows.switched_on().collect::<Vec<_>>(),
            ["kyc"]
        );
        let err = from_yaml("flows:\n  insurance:\n    enabled: true\n").unwrap_err();
        assert!(err.contains("flows.insurance: no such flow"), "{err}");
    }

    // The embedded file names every vendor, but a build without vendor features starts with the
    // local detector alone.
    #[cfg(not(any(feature = "detector-reality-defender", feature = "detector-reality-ai")))]
    #[test]
    fn a_build_without_vendors_starts_with_the_local_detector_alone() {
        let config = Config::default();
        let names: Vec<&str> = config.detector.plugins().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["local"]);
        assert_eq!(
            serde_json::to_value(&config.detector.providers).unwrap(),
            serde_json::json!({})
        );
        let err = from_yaml("detector:\n  providers:\n    reality_defender:\n      api_key: k\n")
            .unwrap_err();
        assert!(
            err.contains("detector.providers.reality_defender: no such vendor in this build"),
            "{err}"
        );
        // Its variables name no key of this build and are ignored, as an unknown flow's are.
        let config =
            with_env(&[("ARBITER_DETECTOR_PROVIDERS_REALITY_DEFENDER_API_KEY", "k")]).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn a_file_merges_over_the_defaults_and_names_the_line_of_a_wrong_key() {
        let config = from_yaml(
            "rate_limits:\n  plans:\n    gold: {per_minute: 1, per_day: 2, batch_size: 3}\n  default_plan: gold\ncache:\n  ttl_secs: 5\n",
        )
        .unwrap();
        // The plans are replaced whole; nested maps merge key by key.
        assert_eq!(config.plan_names(), "gold");
        assert_eq!(config.cache.ttl_secs, 5);
        assert!(config.cache.single_flight);
        assert_eq!(config.limits, Config::default().limits);
        config.validate().unwrap();
        // Without plans of its own, a file keeps the documented ones.
        let config = from_yaml("rate_limits:\n  default_plan: growth\n").unwrap();
        assert_eq!(config.plan_names(), "enterprise, growth, starter");
        // A variable overrides the file.
        let config = Config::layered(
            Some((Path::new("a.yaml"), "cache:\n  ttl_secs: 5\n")),
            env(&[("ARBITER_CACHE_TTL_SECS", "7")]),
        )
        .unwrap();
        assert_eq!(config.cache.ttl_secs, 7);
        let err = Config::layered(
            Some((
                Path::new("/etc/a.yaml"),
                "listen: 127.0.0.1:1\n\ncache:\n  ttl_secs: soon\n",
            )),
            [],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("/etc/a.yaml: line 4 column 3: cache.ttl_secs: "),
            "{err}"
        );
    }

    // The committed file and its flow keys are those of the build with every flow.
    #[cfg(all(feature = "flow-insurance", feature = "flow-ugc", feature = "flow-kyc"))]
    #[test]
    fn environment_variables_override_the_leaves_they_name() {
        let config = with_env(&[
            ("ARBITER_LISTEN", "127.0.0.1:9999"),
            ("ARBITER_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8, ::1/128"),
            ("ARBITER_CACHE_TTL_SECS", "60"),
            ("ARBITER_RATE_LIMITS_PLANS_STARTER_PER_MINUTE", "5"),
            ("ARBITER_TEST_POSTGRES_URL", "ignored"),
            ("HOME", "/root"),
        ])
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert_eq!(config.outbound.allow_cidrs.len(), 2);
        assert_eq!(config.cache.ttl_secs, 60);
        assert_eq!(config.rate_limits.plans["starter"].per_minute, 5);
        let config = with_env(&[
            ("ARBITER_WEBHOOKS_RETRY_SCHEDULE_SECS", "1, 2,3"),
            ("ARBITER_JOBS_LEASE_SECS", "3"),
        ])
        .unwrap();
        assert_eq!(config.webhooks.retry_schedule_secs, [1, 2, 3]);
        assert_eq!(config.jobs.lease_secs, 3);
        let config = with_env(&[
            ("ARBITER_AUDIT_MODE", "production"),
            ("ARBITER_AUDIT_SIGNING_KEY", "/etc/arbiter/audit.key"),
            ("ARBITER_AUDIT_LOG_NAME", "audit.example.com/arbiter"),
            ("ARBITER_AUDIT_CHECKPOINT_EVERY_SECS", "5"),
            ("ARBITER_FLOWS_UGC_MAX_WAIT_SECS", "1"),
            ("ARBITER_FLOWS_KYC_ENABLED", "false"),
        ])
        .unwrap();
        assert_eq!(
            serde_json::to_value(&config.flows).unwrap()["ugc"]["max_wait_secs"],
            1
        );
        assert!(!config.flows.enabled("kyc"));
        assert_eq!(config.audit.mode, AuditMode::Production);
        assert_eq!(config.audit.log_name, "audit.example.com/arbiter");
        assert_eq!(config.audit.checkpoint_every_secs, 5);
        assert_eq!(
            config.audit.signing_key_path(Path::new("/data")),
            Some(PathBuf::from("/etc/arbiter/audit.key"))
        );
        config.validate().unwrap();
    }

    #[test]
    fn production_mode_without_a_signing_key_is_refused_and_says_why() {
        let mut config = Config::default();
        config.audit.mode = AuditMode::Production;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("audit.signing_key: production mode needs") && err.contains("keygen"),
            "{err}"
        );
        assert_eq!(config.audit.signing_key_path(Path::new("/data")), None);
        config.audit.mode = AuditMode::Development;
        config.validate().unwrap();
        assert_eq!(
            config.audit.signing_key_path(Path::new("/data")),
            Some(PathBuf::from("/data/audit-signing.key"))
        );
    }

    #[test]
    fn wrong_values_name_the_variable_or_key() {
        let err = with_env(&[("ARBITER_CACHE_TTL_SECS", "soon")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ARBITER_CACHE_TTL_SECS: \"soon\" is not a whole number"
        );
        let err = with_env(&[("ARBITER_OUTBOUND_ALLOW_CIDRS", "10.0.0.0/33")]).unwrap_err();
        assert!(
            err.to_string().starts_with("ARBITER_OUTBOUND_ALLOW_CIDRS"),
            "{err}"
        );
        let err = from_yaml("lisen: 127.0.0.1:1\n").unwrap_err();
        assert!(err.contains("lisen") && err.contains("line 1"), "{err}");
        let mut config = Config {
            listen: "localhost".into(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("listen:")
        );
        config.listen = "127.0.0.1:1".into();
        config.rate_limits.default_plan = "gold".into();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("rate_limits.default_plan:")
        );
    }

    #[cfg(all(feature = "detector-reality-defender", feature = "detector-reality-ai"))]
    #[test]
    fn the_detector_section_holds_routes_local_settings_and_vendors() {
        let config = from_yaml(
            "detector:\n  route: local,reality_defender\n  routes:\n    kyc.selfie: { ensemble: [local, reality_ai] }\n  local:\n    trust_anchors: /etc/arbiter/anchors.pem\n",
        )
        .unwrap();
        assert_eq!(config.detector.route.name(), "local,reality_defender");
        assert_eq!(
            config.detector.routes["kyc.selfie"].name(),
            "ensemble:local,reality_ai"
        );
        assert_eq!(
            config.detector.local.trust_anchors.as_deref(),
            Some(std::path::Path::new("/etc/arbiter/anchors.pem"))
        );
        let err = from_yaml("detector:\n  local:\n    trust_anchor: x\n").unwrap_err();
        assert!(err.contains("trust_anchor"), "{err}");
        let err = from_yaml("detector:\n  type: local\n").unwrap_err();
        assert!(err.contains("type"), "{err}");

        // The operator's fixed names, from the environment.
        let config = with_env(&[
            (
                "ARBITER_DETECTOR_PROVIDERS_REALITY_DEFENDER_BASE_URL",
                "http://rd.internal:8443",
            ),
            (
                "ARBITER_DETECTOR_PROVIDERS_REALITY_DEFENDER_API_KEY",
                "rd-secret",
            ),
            (
                "ARBITER_DETECTOR_PROVIDERS_REALITY_AI_API_KEY_FILE",
                "/run/ra.key",
            ),
            ("ARBITER_DETECTOR_ROUTE", "local,reality_defender"),
        ])
        .unwrap();
        let rd = &config.detector.providers.reality_defender;
        assert_eq!(rd.base_url, "http://rd.internal:8443");
        assert_eq!(rd.api_key.expose(), "rd-secret");
        assert_eq!(
            config.detector.providers.reality_ai.api_key_file,
            "/run/ra.key"
        );
        assert_eq!(config.detector.route.name(), "local,reality_defender");
        assert!(!format!("{config:?}").contains("rd-secret"));
    }

    #[test]
    fn the_log_and_the_replica_id_are_configured_and_refused_when_wrong() {
        let config = from_yaml(
            "log:\n  format: json\n  level: warn,arbiter_server=debug\nreplica:\n  id: eu-1.a_b\n",
        )
        .unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.replica.id, "eu-1.a_b");
        config.validate().unwrap();
        let config = with_env(&[
            ("ARBITER_LOG_FORMAT", "json"),
            ("ARBITER_LOG_LEVEL", "debug"),
            ("ARBITER_REPLICA_ID", "r2"),
        ])
        .unwrap();
        assert_eq!(
            (
                config.log.format,
                config.log.level.as_str(),
                config.replica.id.as_str()
            ),
            (LogFormat::Json, "debug", "r2")
        );
        let err = with_env(&[("ARBITER_LOG_FORMAT", "xml")]).unwrap_err();
        assert!(err.to_string().starts_with("ARBITER_LOG_FORMAT"), "{err}");
        let err = from_yaml("log:\n  formats: json\n").unwrap_err();
        assert!(err.contains("formats"), "{err}");
        for level in ["loud", "", "info,=debug", "arbiter=shout"] {
            let mut config = Config::default();
            config.log.level = level.to_owned();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with("log.level:"), "{level:?}: {err}");
        }
        for id in ["has space", "a/b", &"x".repeat(65)] {
            let mut config = Config::default();
            config.replica.id = id.to_owned();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with("replica.id:"), "{id:?}: {err}");
        }
        // The default id is made at start, once, and is itself valid.
        let mut replica = Config::default().replica;
        replica.resolve();
        let made = replica.id.clone();
        assert!(!made.is_empty() && replica.id_is_valid(), "{made}");
        replica.resolve();
        assert_eq!(replica.id, made);
    }

    #[test]
    fn the_policy_source_is_configured_and_bad_values_name_the_key() {
        let config = Config::layered(
            Some((
                Path::new("arbiter.yaml"),
                "policies:\n  source: database\n  backtest_days: 7\n",
            )),
            env(&[("ARBITER_POLICIES_POLL_INTERVAL_MS", "100")]),
        )
        .unwrap();
        assert_eq!(config.policies.source, PolicySource::Database);
        assert_eq!(config.policies.poll_interval_ms, 100);
        assert_eq!(config.policies.backtest_days, 7);
        config.validate().unwrap();

        let err = from_yaml("policies:\n  source: git\n").unwrap_err();
        assert!(err.contains("source"), "{err}");
        let zero = with_env(&[("ARBITER_POLICIES_POLL_INTERVAL_MS", "0")]).unwrap();
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "policies.poll_interval_ms: must be more than 0"
        );
    }

    #[test]
    fn the_database_url_is_redacted_in_debug() {
        let config = Config {
            database_url: "postgres://u:secret@db/x".into(),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("secret"));
    }
}
