//! The `audit:` section of `arbiter.yaml`: the checkpoint signing key and mode, the log name,
//! when checkpoints are signed, and how many exports run at once.

use arbiter_core::settings::InvalidKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Whether Arbiter may sign audit checkpoints with a key it makes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditMode {
    /// Without `audit.signing_key`, a key is made in the data directory (with a loud warning).
    Development,
    /// `audit.signing_key` is required; Arbiter refuses to start without it.
    Production,
}

/// The audit log's signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `development` or `production` (a signing key is required).
    pub mode: AuditMode,
    /// The checkpoint signing key file, made by `arbiter audit keygen`. Empty: none in
    /// production; `<data_dir>/audit-signing.key` (made on first start) in development.
    pub signing_key: String,
    /// The log name checkpoints are signed under, e.g. `audit.example.com/arbiter`.
    pub log_name: String,
    /// Sign a chain once this many of its entries are not covered by a checkpoint.
    pub checkpoint_every_entries: u64,
    /// Sign a chain once its oldest entry not covered by a checkpoint is this many seconds old.
    pub checkpoint_every_secs: u64,
    /// Exports (`GET /v1/audit/export`) under way at once in a process; more: 503.
    pub max_concurrent_exports: u32,
}

impl Default for AuditConfig {
    /// The `audit:` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("audit")
    }
}

impl AuditConfig {
    /// The development key file made when no key is configured.
    pub const DEVELOPMENT_KEY_FILE: &str = "audit-signing.key";

    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        for (key, value) in [
            (
                "audit.checkpoint_every_entries",
                self.checkpoint_every_entries,
            ),
            (
                "audit.max_concurrent_exports",
                u64::from(self.max_concurrent_exports),
            ),
            ("audit.checkpoint_every_secs", self.checkpoint_every_secs),
        ] {
            if value == 0 {
                return Err(InvalidKey {
                    key,
                    message: "must be more than 0".to_owned(),
                });
            }
        }
        if self.mode == AuditMode::Production && self.signing_key.is_empty() {
            return Err(InvalidKey {
                key: "audit.signing_key",
                message: "production mode needs a checkpoint signing key: make one with \
                          `arbiter audit keygen --out FILE` and set audit.signing_key (or \
                          ARBITER_AUDIT_SIGNING_KEY) to it"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// The configured key file, else (in development) the one in `data_dir`.
    pub fn signing_key_path(&self, data_dir: &Path) -> Option<PathBuf> {
        match (self.signing_key.is_empty(), self.mode) {
            (false, _) => Some(PathBuf::from(&self.signing_key)),
            (true, AuditMode::Development) => Some(data_dir.join(Self::DEVELOPMENT_KEY_FILE)),
            (true, AuditMode::Production) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::settings::section_with;

    /// The `audit:` section of the committed `arbiter.yaml`, the documented defaults.
    #[derive(Deserialize)]
    struct File {
        audit: AuditConfig,
    }

    #[test]
    fn the_documented_section_is_the_defaults() {
        let text = include_str!("../../../arbiter.yaml");
        let file: File = serde_saphyr::from_str(text).unwrap();
        assert_eq!(file.audit, AuditConfig::default());
        assert_eq!(
            file.audit.signing_key_path(Path::new("/data")),
            Some(PathBuf::from("/data/audit-signing.key"))
        );
    }

    #[test]
    fn unknown_keys_are_refused_and_production_names_no_key_of_its_own() {
        let err = section_with::<AuditConfig>("audit", "signing_key_file: x\n").unwrap_err();
        assert!(err.to_string().contains("signing_key_file"), "{err}");
        let config: AuditConfig = section_with("audit", "mode: production\n").unwrap();
        assert_eq!(config.mode, AuditMode::Production);
        assert_eq!(config.signing_key_path(Path::new("/data")), None);
        let config: AuditConfig =
            section_with("audit", "mode: production\nsigning_key: /etc/a.key\n").unwrap();
        assert_eq!(
            config.signing_key_path(Path::new("/data")),
            Some(PathBuf::from("/etc/a.key"))
        );
    }
}
