//! The `webhooks:` section of `arbiter.yaml`: retries, timeouts, delivery loops, endpoint limits,
//! secret rotation and the key file of secrets at rest.

use crate::retry::RetryPolicy;
use crate::send::SenderConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Outbound webhooks: signing, retries and delivery.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Seconds before each retry of a failed delivery; after the last, it is abandoned.
    pub retry_schedule_secs: Vec<u64>,
    /// Each retry delay moves by up to this percentage either way.
    pub jitter_percent: u8,
    /// The longest `Retry-After` (429/503) honoured, in seconds.
    pub max_retry_after_secs: u64,
    /// An endpoint must answer within this many seconds.
    pub timeout_secs: u64,
    /// Bytes of each response body stored with its attempt.
    pub max_response_body_bytes: usize,
    /// Delivery loops per process; 0 runs none.
    pub workers: u32,
    /// Deliveries one loop sends at once, shared between the tenants with deliveries due.
    pub concurrency: u32,
    /// Webhook endpoints one tenant may register.
    pub max_endpoints_per_tenant: u32,
    /// Seconds the previous tenant secret keeps signing after a rotation.
    pub rotation_overlap_secs: u64,
    /// The key file that encrypts webhook secrets at rest; empty: `<data_dir>/webhook-secrets.key`.
    /// Replicas sharing a database must share this key.
    pub secret_key_file: String,
}

impl Default for WebhooksConfig {
    /// The `webhooks:` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("webhooks")
    }
}

impl std::fmt::Debug for WebhooksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key file's path is shown; the words of a redacted value are not.
        f.debug_struct("WebhooksConfig")
            .field("retry_schedule_secs", &self.retry_schedule_secs)
            .field("jitter_percent", &self.jitter_percent)
            .field("max_retry_after_secs", &self.max_retry_after_secs)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_response_body_bytes", &self.max_response_body_bytes)
            .field("workers", &self.workers)
            .field("concurrency", &self.concurrency)
            .field("rotation_overlap_secs", &self.rotation_overlap_secs)
            .field("key_file", &self.secret_key_file)
            .finish()
    }
}

impl WebhooksConfig {
    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), arbiter_core::settings::InvalidKey> {
        if self.timeout_secs == 0 {
            return Err(arbiter_core::settings::InvalidKey {
                key: "webhooks.timeout_secs",
                message: "must be more than 0".to_owned(),
            });
        }
        Ok(())
    }

    /// The key file in force.
    pub fn key_file(&self, data_dir: &Path) -> PathBuf {
        if self.secret_key_file.is_empty() {
            data_dir.join("webhook-secrets.key")
        } else {
            PathBuf::from(&self.secret_key_file)
        }
    }

    /// The retry rules of this configuration.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            schedule: self
                .retry_schedule_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            jitter_percent: self.jitter_percent,
            max_retry_after: Duration::from_secs(self.max_retry_after_secs),
        }
    }

    /// How attempts are made: the time limit and the response bytes kept.
    pub fn sender_config(&self) -> SenderConfig {
        SenderConfig {
            timeout: Duration::from_secs(self.timeout_secs),
            max_response_body: self.max_response_body_bytes,
        }
    }

    /// Attempts one delivery loop makes at once (`concurrency`, at least 1).
    pub fn concurrency(&self) -> usize {
        usize::try_from(self.concurrency.max(1)).unwrap_or(usize::MAX)
    }

    /// How long a claimed delivery is held: three times the attempt's time limit, at least 30 s.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.saturating_mul(3).max(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::settings::section_with;

    /// The `webhooks:` section of the committed `arbiter.yaml`, the documented defaults.
    #[derive(Deserialize)]
    struct File {
        webhooks: WebhooksConfig,
    }

    #[test]
    fn the_documented_section_is_the_defaults_and_makes_the_guides_rules() {
        let text = include_str!("../../../arbiter.yaml");
        let file: File = serde_saphyr::from_str(text).unwrap();
        assert_eq!(file.webhooks, WebhooksConfig::default());
        assert_eq!(file.webhooks.retry_policy(), RetryPolicy::default());
        assert_eq!(file.webhooks.sender_config(), SenderConfig::default());
        assert_eq!(file.webhooks.concurrency(), 64);
        assert_eq!(file.webhooks.lease(), Duration::from_secs(30));
        assert_eq!(
            file.webhooks.key_file(Path::new("/data")),
            PathBuf::from("/data/webhook-secrets.key")
        );
    }

    #[test]
    fn unknown_keys_are_refused_and_missing_ones_take_their_default() {
        let err = section_with::<WebhooksConfig>("webhooks", "retry_schedule: [1]\n").unwrap_err();
        assert!(err.to_string().contains("retry_schedule"), "{err}");
        let config: WebhooksConfig =
            section_with("webhooks", "retry_schedule_secs: [1, 2]\nconcurrency: 0\n").unwrap();
        assert_eq!(
            config.retry_policy().schedule,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(config.concurrency(), 1);
        assert_eq!(config.timeout_secs, 10);
    }
}
