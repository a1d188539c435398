//! The webhook services of a process: the cipher of stored secrets, the HTTP sender, the retry
//! rules, the outbound rules every destination must pass, and the bell that wakes the delivery
//! loops when deliveries are committed.

use crate::OutboxError;
use crate::cipher::{CipherError, SecretCipher};
use crate::config::WebhooksConfig;
use crate::retry::RetryPolicy;
use crate::send::{AddressCheck, Sender, check_url};
use arbiter_core::net::AddressGuard;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{Notify, OnceCell};

/// The webhook services of a process: the secret cipher, the HTTP sender, the retry rules, and
/// the bell that wakes delivery loops when rows are committed. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    config: WebhooksConfig,
    key_file: PathBuf,
    guard: AddressGuard,
    policy: RetryPolicy,
    cipher: Arc<OnceCell<SecretCipher>>,
    sender: Arc<OnceCell<Sender>>,
    /// Rung when deliveries are committed.
    pub wake: Arc<Notify>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl Webhooks {
    /// The services for a configuration: the key file is `config`'s, else the one in `data_dir`;
    /// destinations must pass `guard` (the outbound rules). The key file and client are opened
    /// on first use.
    pub fn new(config: &WebhooksConfig, data_dir: &Path, guard: AddressGuard) -> Self {
        Self {
            config: config.clone(),
            key_file: config.key_file(data_dir),
            guard,
            policy: config.retry_policy(),
            cipher: Arc::default(),
            sender: Arc::default(),
            wake: Arc::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &WebhooksConfig {
        &self.config
    }

    /// The retry rules.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The cipher of stored secrets (the key file is created 0600 on first use).
    pub async fn cipher(&self) -> Result<&SecretCipher, CipherError> {
        self.cipher
            .get_or_try_init(|| async { SecretCipher::load_or_create(&self.key_file) })
            .await
    }

    /// Makes sure the key file can be opened (start-up check).
    pub async fn check_key_file(&self) -> Result<(), CipherError> {
        self.cipher().await.map(|_| ())
    }

    /// The HTTP sender.
    pub async fn sender(&self) -> Result<&Sender, OutboxError> {
        self.sender
            .get_or_try_init(|| async {
                let guard = self.guard.clone();
                Sender::new(self.config.sender_config(), Arc::new(OutboundRules(guard)))
                    .map_err(OutboxError::Client)
            })
            .await
    }

    /// Whether `url` may receive webhooks: http(s), and every address it resolves to passes the
    /// outbound rules (`outbound.allow_cidrs`, `outbound.allow_ports`), as for `image_url`.
    pub async fn check_destination(&self, url: &str) -> Result<(), String> {
        let parsed = check_url(url, &OutboundRules(self.guard.clone()))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let lookup = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addrs: Vec<_> = tokio::net::lookup_host((lookup.as_str(), port))
            .await
            .map_err(|err| format!("cannot resolve {host}: {err}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} has no address"));
        }
        // Worded as the refusal of an `image_url` is.
        self.guard
            .check_all(&host, &addrs)
            .map_err(|why| format!("image_url unreachable: {why}"))
    }
}

/// The outbound rules (`outbound.allow_cidrs`, `outbound.allow_ports`) as the webhook sender
/// asks them.
struct OutboundRules(AddressGuard);

impl AddressCheck for OutboundRules {
    fn check(&self, ip: std::net::IpAddr) -> Result<(), String> {
        self.0.check(ip)
    }

    fn check_port(&self, host: &str, port: u16) -> Result<(), String> {
        self.0.check_port(host, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn destinations_pass_the_outbound_rules() {
        let webhooks = Webhooks::new(
            &WebhooksConfig::default(),
            Path::new("/nonexistent"),
            AddressGuard::default(),
        );
        let refused = webhooks
            .check_destination("http://127.0.0.1:8080/hook")
            .await
            .unwrap_err();
        assert!(refused.contains("127.0.0.1"), "{refused}");
        let port = webhooks
            .check_destination("http://93.184.216.34:5432/hook")
            .await
            .unwrap_err();
        assert!(port.contains("5432"), "{port}");
        assert!(
            webhooks
                .check_destination("ftp://example.com/")
                .await
                .is_err()
        );
        let allowed = Webhooks::new(
            &WebhooksConfig::default(),
            Path::new("/nonexistent"),
            AddressGuard::new(vec!["127.0.0.0/8".parse().unwrap()]),
        );
        allowed
            .check_destination("http://127.0.0.1:9/hook")
            .await
            .unwrap();
    }
}
