//! Configuration: built-in defaults, then `arbiter.yaml`, then `ARBITER_*` environment variables.
//!
//! Every leaf key has an environment variable: its dotted path upper-cased with `_` for `.`
//! (`outbound.allow_cidrs` → `ARBITER_OUTBOUND_ALLOW_CIDRS`; lists are comma-separated). The
//! committed `arbiter.yaml` documents every key.

pub use arbiter_audit::{AuditConfig, AuditMode};
pub use arbiter_console::config::{ConsoleConfig, InvalidKey, OidcConfig};
use arbiter_core::settings::{env_value, find_leaf};
pub use arbiter_engine::flows::FlowsConfig;
pub use arbiter_engine::policies::{PoliciesConfig, PolicySource};
pub use arbiter_jobs::JobsConfig;
pub use arbiter_providers::DetectorConfig;
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
#[serde(deny_unknown_fields, default)]
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
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from(".arbiter"),
            database_url: String::new(),
            policies_dir: String::new(),
            policy_reload_secs: 2,
            policies: PoliciesConfig::default(),
            log: LogConfig::default(),
            replica: ReplicaConfig::default(),
            detector: DetectorConfig::default(),
            limits: LimitsConfig::default(),
            outbound: OutboundConfig::default(),
            cache: CacheConfig::default(),
            rate_limits: RateLimitConfig::default(),
            jobs: JobsConfig::default(),
            webhooks: WebhooksConfig::default(),
            audit: AuditConfig::default(),
            flows: FlowsConfig::default(),
            reports: ReportsConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The server's log on stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// The least severe level written (`trace`, `debug`, `info`, `warn`, `error`, `off`), or
    /// directives by target (`info,arbiter_jobs=debug`). `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
#[serde(deny_unknown_fields, default)]
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

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_image_bytes: 20 * 1024 * 1024,
            min_dimension: 100,
            max_reference_id_len: 128,
            max_concurrent_requests: 1024,
            request_timeout_secs: 120,
        }
    }
}

/// Outbound requests made on a caller's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow_cidrs: Vec::new(),
            allow_ports: arbiter_core::net::DEFAULT_PORTS.to_vec(),
            timeout_secs: 10,
            max_redirects: 3,
        }
    }
}

/// The idempotent result cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long a result is reused for the same tenant, image and options, in seconds; 0 disables.
    pub ttl_secs: u64,
    /// Identical requests arriving at several replicas at once run the detector once: the first
    /// takes a lease in the database, the others wait for its result.
    pub single_flight: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 24 * 3600,
            single_flight: true,
        }
    }
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
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// The plan of a key created without one.
    pub default_plan: String,
    /// The plans by name.
    pub plans: BTreeMap<String, Plan>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let plans = [
            (
                "starter",
                Plan {
                    per_minute: 60,
                    per_day: 10_000,
                    batch_size: 20,
                },
            ),
            (
                "growth",
                Plan {
                    per_minute: 300,
                    per_day: 100_000,
                    batch_size: 100,
                },
            ),
            (
                "enterprise",
                Plan {
                    per_minute: 3_000,
                    per_day: 5_000_000,
                    batch_size: 1_000,
                },
            ),
        ];
        Self {
            default_plan: "starter".to_owned(),
            plans: plans
                .into_iter()
                .map(|(name, plan)| (name.to_owned(), plan))
                .collect(),
        }
    }
}

/// The prefix of Arbiter's environment variables.
pub const ENV_PREFIX: &str = "ARBITER_";

impl Config {
    /// Defaults, then `file` (or `./arbiter.yaml` when it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let default_file = Path::new("arbiter.yaml");
        let file = file.or_else(|| default_file.is_file().then_some(default_file));
        let config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::from_yaml(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?
            }
            None => Self::default(),
        };
        let config = config.with_env(std::env::vars())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses YAML; a missing key takes its default.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|err| err.to_string())
    }

    /// Applies `ARBITER_*` variables to the leaves they name; other variables are ignored.
    pub fn with_env(
        self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut tree = serde_json::to_value(&self).map_err(|err| ConfigError::Invalid {
            key: "config",
            message: err.to_string(),
        })?;
        let mut applied = Vec::new();
        for (var, raw) in vars {
            let Some(name) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if let Some(leaf) = find_leaf(&mut tree, &name.to_ascii_lowercase()) {
                *leaf = env_value(leaf, &raw).map_err(|message| ConfigError::Env {
                    var: var.clone(),
                    message,
                })?;
                applied.push(var);
            }
        }
        if applied.is_empty() {
            return Ok(self);
        }
        serde_json::from_value(tree).map_err(|err| ConfigError::Env {
            var: applied.join(", "),
            message: err.to_string(),
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
        if self.policies.poll_interval_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "policies.poll_interval_ms",
                message: "must be more than 0".to_owned(),
            });
        }
        if self.policies.backtest_days == 0 {
            return Err(ConfigError::Invalid {
                key: "policies.backtest_days",
                message: "must be more than 0".to_owned(),
            });
        }
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
        if self.jobs.lease_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "jobs.lease_secs",
                message: "must be more than 0".to_owned(),
            });
        }
        if self.webhooks.timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "webhooks.timeout_secs",
                message: "must be more than 0".to_owned(),
            });
        }
        if self.audit.checkpoint_every_entries == 0 {
            return Err(ConfigError::Invalid {
                key: "audit.checkpoint_every_entries",
                message: "must be more than 0".to_owned(),
            });
        }
        if self.audit.max_concurrent_exports == 0 {
            return Err(ConfigError::Invalid {
                key: "audit.max_concurrent_exports",
                message: "must be more than 0".to_owned(),
            });
        }
        if self.audit.checkpoint_every_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "audit.checkpoint_every_secs",
                message: "must be more than 0".to_owned(),
            });
        }
        if self.audit.mode == AuditMode::Production && self.audit.signing_key.is_empty() {
            return Err(ConfigError::Invalid {
                key: "audit.signing_key",
                message: "production mode needs a checkpoint signing key: make one with \
                          `arbiter audit keygen --out FILE` and set audit.signing_key (or \
                          ARBITER_AUDIT_SIGNING_KEY) to it"
                    .to_owned(),
            });
        }
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

    // The committed file and its flow keys are those of the build with every flow.
    #[cfg(all(feature = "flow-insurance", feature = "flow-ugc", feature = "flow-kyc"))]
    #[test]
    fn the_committed_default_file_is_exactly_the_defaults() {
        let text = include_str!("../../../arbiter.yaml");
        assert_eq!(Config::from_yaml(text).unwrap(), Config::default());
    }

    // The committed file and its flow keys are those of the build with every flow.
    #[cfg(all(feature = "flow-insurance", feature = "flow-ugc", feature = "flow-kyc"))]
    #[test]
    fn environment_variables_override_the_leaves_they_name() {
        let config = Config::default()
            .with_env(env(&[
                ("ARBITER_LISTEN", "127.0.0.1:9999"),
                ("ARBITER_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8, ::1/128"),
                ("ARBITER_CACHE_TTL_SECS", "60"),
                ("ARBITER_RATE_LIMITS_PLANS_STARTER_PER_MINUTE", "5"),
                ("ARBITER_TEST_POSTGRES_URL", "ignored"),
                ("HOME", "/root"),
            ]))
            .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert_eq!(config.outbound.allow_cidrs.len(), 2);
        assert_eq!(config.cache.ttl_secs, 60);
        assert_eq!(config.rate_limits.plans["starter"].per_minute, 5);
        let config = Config::default()
            .with_env(env(&[
                ("ARBITER_WEBHOOKS_RETRY_SCHEDULE_SECS", "1, 2,3"),
                ("ARBITER_JOBS_LEASE_SECS", "3"),
            ]))
            .unwrap();
        assert_eq!(config.webhooks.retry_schedule_secs, [1, 2, 3]);
        assert_eq!(config.jobs.lease_secs, 3);
        let config = Config::default()
            .with_env(env(&[
                ("ARBITER_AUDIT_MODE", "production"),
                ("ARBITER_AUDIT_SIGNING_KEY", "/etc/arbiter/audit.key"),
                ("ARBITER_AUDIT_LOG_NAME", "audit.example.com/arbiter"),
                ("ARBITER_AUDIT_CHECKPOINT_EVERY_SECS", "5"),
                ("ARBITER_FLOWS_UGC_MAX_WAIT_SECS", "1"),
                ("ARBITER_FLOWS_KYC_ENABLED", "false"),
            ]))
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
        let err = Config::default()
            .with_env(env(&[("ARBITER_CACHE_TTL_SECS", "soon")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ARBITER_CACHE_TTL_SECS: \"soon\" is not a whole number"
        );
        let err = Config::default()
            .with_env(env(&[("ARBITER_OUTBOUND_ALLOW_CIDRS", "10.0.0.0/33")]))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("ARBITER_OUTBOUND_ALLOW_CIDRS"),
            "{err}"
        );
        let err = Config::from_yaml("lisen: 127.0.0.1:1\n").unwrap_err();
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

    #[test]
    fn the_detector_section_holds_routes_local_settings_and_vendors() {
        let config = Config::from_yaml(
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
        let err = Config::from_yaml("detector:\n  local:\n    trust_anchor: x\n").unwrap_err();
        assert!(err.contains("trust_anchor"), "{err}");
        let err = Config::from_yaml("detector:\n  type: local\n").unwrap_err();
        assert!(err.contains("type"), "{err}");

        // The operator's fixed names, from the environment.
        let config = Config::default()
            .with_env(env(&[
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
            ]))
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
        let config = Config::from_yaml(
            "log:\n  format: json\n  level: warn,arbiter_server=debug\nreplica:\n  id: eu-1.a_b\n",
        )
        .unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.replica.id, "eu-1.a_b");
        config.validate().unwrap();
        let config = Config::default()
            .with_env(env(&[
                ("ARBITER_LOG_FORMAT", "json"),
                ("ARBITER_LOG_LEVEL", "debug"),
                ("ARBITER_REPLICA_ID", "r2"),
            ]))
            .unwrap();
        assert_eq!(
            (
                config.log.format,
                config.log.level.as_str(),
                config.replica.id.as_str()
            ),
            (LogFormat::Json, "debug", "r2")
        );
        let err = Config::default()
            .with_env(env(&[("ARBITER_LOG_FORMAT", "xml")]))
            .unwrap_err();
        assert!(err.to_string().starts_with("ARBITER_LOG_FORMAT"), "{err}");
        let err = Config::from_yaml("log:\n  formats: json\n").unwrap_err();
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
        let mut replica = ReplicaConfig::default();
        replica.resolve();
        let made = replica.id.clone();
        assert!(!made.is_empty() && replica.id_is_valid(), "{made}");
        replica.resolve();
        assert_eq!(replica.id, made);
    }

    #[test]
    fn the_policy_source_is_configured_and_bad_values_name_the_key() {
        let config = Config::from_yaml("policies:\n  source: database\n  backtest_days: 7\n")
            .unwrap()
            .with_env(env(&[("ARBITER_POLICIES_POLL_INTERVAL_MS", "100")]))
            .unwrap();
        assert_eq!(config.policies.source, PolicySource::Database);
        assert_eq!(config.policies.poll_interval_ms, 100);
        assert_eq!(config.policies.backtest_days, 7);
        config.validate().unwrap();

        let err = Config::from_yaml("policies:\n  source: git\n").unwrap_err();
        assert!(err.contains("source"), "{err}");
        let zero = Config::default()
            .with_env(env(&[("ARBITER_POLICIES_POLL_INTERVAL_MS", "0")]))
            .unwrap();
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
