//! `console:` in `arbiter.yaml`: whether the console is served, its sessions and sign-in
//! throttle, and single sign-on with OpenID Connect.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use arbiter_core::settings::InvalidKey;

/// The console for people at `/console`: sign-in, sessions and the throttle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Whether `/console` is served.
    pub enabled: bool,
    /// Mark the session cookie `Secure` (set it when people reach Arbiter over HTTPS, through a
    /// proxy that terminates TLS).
    pub secure_cookies: bool,
    /// How long a session lasts after sign-in, in seconds.
    pub session_ttl_secs: u64,
    /// Failed sign-ins of one user within `throttle_window_secs` after which sign-in is refused.
    pub max_failed_sign_ins: u64,
    /// The window failed sign-ins are counted over, in seconds.
    pub throttle_window_secs: u64,
    /// Single sign-on with OpenID Connect; absent, only passwords.
    pub oidc: Option<OidcConfig>,
}

/// `console.oidc`: single sign-on with an OpenID Connect provider (authorization code with
/// PKCE). The people it signs in belong to one tenant and get the console role their
/// `roles_claim` maps to; someone with no mapped role is refused.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL; its discovery document is `issuer/.well-known/openid-configuration`.
    pub issuer: String,
    /// This console's client id at the provider.
    pub client_id: String,
    /// A file holding the client secret (one of this and `client_secret_env`).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Where the provider sends people back: this server's `/console/login/oidc/callback`.
    pub redirect_url: String,
    /// The tenant the provider's users belong to.
    pub tenant: String,
    /// The claim that is the console user id (`email` or `sub`).
    #[serde(default = "OidcConfig::default_user_claim")]
    pub user_claim: String,
    /// The claim listing the person's groups or roles (a string or a list), e.g. `groups`.
    pub roles_claim: String,
    /// Claim value to console role (`admin`, `reviewer`, `auditor`, `analyst`).
    pub roles: BTreeMap<String, String>,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret_file", &self.client_secret_file)
            .field("client_secret_env", &self.client_secret_env)
            .field("redirect_url", &self.redirect_url)
            .field("tenant", &self.tenant)
            .field("user_claim", &self.user_claim)
            .field("roles_claim", &self.roles_claim)
            .field("roles", &self.roles)
            .finish()
    }
}

impl OidcConfig {
    fn default_user_claim() -> String {
        "email".to_owned()
    }

    /// The client secret, from `client_secret_file` (trimmed) or `client_secret_env`.
    pub fn client_secret(&self) -> Result<String, InvalidKey> {
        let secret = match (&self.client_secret_file, &self.client_secret_env) {
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|err| InvalidKey {
                    key: "console.oidc.client_secret_file",
                    message: format!("cannot read {}: {err}", path.display()),
                })?
                .trim()
                .to_owned(),
            (None, Some(var)) => std::env::var(var).map_err(|_| InvalidKey {
                key: "console.oidc.client_secret_env",
                message: format!("the environment variable {var} is not set"),
            })?,
            _ => {
                return Err(InvalidKey {
                    key: "console.oidc.client_secret_file",
                    message: "set exactly one of console.oidc.client_secret_file and \
                              console.oidc.client_secret_env (the secret is never inline)"
                        .to_owned(),
                });
            }
        };
        if secret.is_empty() {
            return Err(InvalidKey {
                key: if self.client_secret_file.is_some() {
                    "console.oidc.client_secret_file"
                } else {
                    "console.oidc.client_secret_env"
                },
                message: "the client secret is empty".to_owned(),
            });
        }
        Ok(secret)
    }

    /// Checks every key, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let invalid = |key: &'static str, message: String| Err(InvalidKey { key, message });
        for (key, value) in [
            ("console.oidc.issuer", &self.issuer),
            ("console.oidc.redirect_url", &self.redirect_url),
        ] {
            match url::Url::parse(value) {
                Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => {}
                _ => return invalid(key, format!("{value:?} is not an http(s) URL")),
            }
        }
        if self.client_id.is_empty() {
            return invalid("console.oidc.client_id", "must not be empty".to_owned());
        }
        if crate::users::check_id("tenant", &self.tenant).is_err() {
            return invalid(
                "console.oidc.tenant",
                format!("{:?} is not a tenant id", self.tenant),
            );
        }
        if self.user_claim.is_empty() {
            return invalid("console.oidc.user_claim", "must not be empty".to_owned());
        }
        if self.roles_claim.is_empty() {
            return invalid("console.oidc.roles_claim", "must not be empty".to_owned());
        }
        if self.roles.is_empty() {
            return invalid(
                "console.oidc.roles",
                "map at least one claim value to a console role".to_owned(),
            );
        }
        for (value, role) in &self.roles {
            if role.parse::<crate::Role>().is_err() {
                return invalid(
                    "console.oidc.roles",
                    format!(
                        "{value:?} maps to {role:?}, not one of admin, reviewer, auditor, analyst"
                    ),
                );
            }
        }
        self.client_secret().map(drop)
    }
}

impl Default for ConsoleConfig {
    /// The `console:` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("console")
    }
}

impl ConsoleConfig {
    /// Checks every key, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        for (key, value) in [
            ("console.session_ttl_secs", self.session_ttl_secs),
            ("console.max_failed_sign_ins", self.max_failed_sign_ins),
            ("console.throttle_window_secs", self.throttle_window_secs),
        ] {
            if value == 0 {
                return Err(InvalidKey {
                    key,
                    message: "must be more than 0".to_owned(),
                });
            }
        }
        match &self.oidc {
            Some(oidc) => oidc.validate(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example.com".to_owned(),
            client_id: "arbiter".to_owned(),
            client_secret_file: None,
            client_secret_env: Some("ARBITER_CONSOLE_CONFIG_TEST_SECRET".to_owned()),
            redirect_url: "https://arbiter.example.com/console/login/oidc/callback".to_owned(),
            tenant: "acme".to_owned(),
            user_claim: OidcConfig::default_user_claim(),
            roles_claim: "groups".to_owned(),
            roles: BTreeMap::from([("claims-team".to_owned(), "reviewer".to_owned())]),
        }
    }

    fn refused(config: &ConsoleConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn the_defaults_are_valid_and_a_zero_names_its_key() {
        assert_eq!(ConsoleConfig::default().validate(), Ok(()));
        let zero = ConsoleConfig {
            throttle_window_secs: 0,
            ..ConsoleConfig::default()
        };
        assert_eq!(
            refused(&zero),
            "console.throttle_window_secs: must be more than 0"
        );
    }

    #[test]
    fn single_sign_on_settings_are_checked_key_by_key() {
        let with = |edit: fn(&mut OidcConfig)| {
            let mut oidc = oidc();
            edit(&mut oidc);
            ConsoleConfig {
                oidc: Some(oidc),
                ..ConsoleConfig::default()
            }
        };
        assert_eq!(
            refused(&with(|o| o.issuer = "idp.example.com".to_owned())),
            "console.oidc.issuer: \"idp.example.com\" is not an http(s) URL"
        );
        assert_eq!(
            refused(&with(|o| {
                o.roles.insert("ops".to_owned(), "root".to_owned());
            })),
            "console.oidc.roles: \"ops\" maps to \"root\", not one of admin, reviewer, auditor, \
             analyst"
        );
        assert_eq!(
            refused(&with(|o| o.client_secret_env = None)),
            "console.oidc.client_secret_file: set exactly one of console.oidc.client_secret_file \
             and console.oidc.client_secret_env (the secret is never inline)"
        );
        // Every other key is right: only the unset secret variable is left to refuse.
        assert_eq!(
            refused(&with(|_| {})),
            "console.oidc.client_secret_env: the environment variable \
             ARBITER_CONSOLE_CONFIG_TEST_SECRET is not set"
        );
    }
}
