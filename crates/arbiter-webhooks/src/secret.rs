//! Webhook secrets: `whsec_<base64 of 24-64 random bytes>`; the HMAC key is the decoded bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::str::FromStr;

/// The prefix of every webhook secret.
pub const PREFIX: &str = "whsec_";

/// How many random bytes a new secret holds.
pub const NEW_SECRET_BYTES: usize = 32;

/// Why a string is not a webhook secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// It does not start with `whsec_`.
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    /// The part after the prefix is not base64.
    #[error("the part after whsec_ is not base64")]
    Base64,
    /// The key is shorter than 24 or longer than 64 bytes.
    #[error("a webhook secret holds 24 to 64 bytes, not {0}")]
    Length(usize),
    /// The system gave no randomness.
    #[error("no randomness for a new secret: {0}")]
    Random(String),
}

/// A webhook signing secret. Prints `[REDACTED]` in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = vec![0u8; NEW_SECRET_BYTES];
        getrandom::fill(&mut key).map_err(|err| SecretError::Random(err.to_string()))?;
        Ok(Self {
            text: format!("{PREFIX}{}", STANDARD.encode(&key)),
            key,
        })
    }

    /// The secret as shown to its owner (`whsec_...`).
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The HMAC key of Standard Webhooks signatures: the decoded bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let encoded = s.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self {
            text: s.to_owned(),
            key,
        })
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_back_and_never_print() {
        let secret = WebhookSecret::generate().unwrap();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.key().len(), NEW_SECRET_BYTES);
        let parsed: WebhookSecret = secret.expose().parse().unwrap();
        assert_eq!(parsed, secret);
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_ne!(WebhookSecret::generate().unwrap(), secret);
    }

    #[test]
    fn malformed_secrets_are_refused() {
        assert_eq!("abc".parse::<WebhookSecret>(), Err(SecretError::Prefix));
        assert_eq!(
            "whsec_!!".parse::<WebhookSecret>(),
            Err(SecretError::Base64)
        );
        assert_eq!(
            "whsec_AAAA".parse::<WebhookSecret>(),
            Err(SecretError::Length(3))
        );
        // The reference vector's secret: 24 bytes.
        let secret: WebhookSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse().unwrap();
        assert_eq!(secret.key().len(), 24);
    }
}
