//! The two signatures of every delivery.
//!
//! - `X-CheckReal-Signature`: lowercase hex HMAC-SHA256 of the exact body bytes, keyed with the
//!   secret's text as the customer holds it (`whsec_...`), as in the integration guide's check.
//! - Standard Webhooks 1.0: `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature: v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>`, keyed with the
//!   secret's decoded bytes; during a rotation one `v1,` signature per secret, space-separated.

use crate::secret::WebhookSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The guide's signature header.
pub const CHECKREAL_HEADER: &str = "x-checkreal-signature";

/// During a rotation: the guide's signature with the previous secret.
pub const CHECKREAL_PREVIOUS_HEADER: &str = "x-checkreal-signature-previous";

/// Consumers accept timestamps this many seconds either side of their clock.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Why a delivery's signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// The timestamp is not whole seconds.
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    /// The timestamp is too far from now.
    #[error("webhook-timestamp is more than 5 minutes from now")]
    Stale,
    /// No signature matches.
    #[error("no signature matches")]
    Mismatch,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_key(),
    }
}

#[cold]
fn unreachable_key() -> HmacSha256 {
    // `new_from_slice` fails only for fixed-length MACs; HMAC accepts every length.
    <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default())
}

/// The guide's `X-CheckReal-Signature`: hex HMAC-SHA256 of `body` keyed with the secret's text.
pub fn checkreal_signature(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = mac(secret.expose().as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One Standard Webhooks signature: `v1,<base64>`.
pub fn standard_signature(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(secret.key());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The signature headers of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`: the same on every retry.
    pub id: String,
    /// `webhook-timestamp`: this attempt's unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`: one `v1,` signature per live secret, space-separated.
    pub signature: String,
    /// `X-CheckReal-Signature` with the newest secret.
    pub checkreal: String,
    /// `X-CheckReal-Signature-Previous` with the previous secret, during a rotation.
    pub checkreal_previous: Option<String>,
}

impl SignedHeaders {
    /// The headers as name/value pairs.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("webhook-id", self.id.clone()),
            ("webhook-timestamp", self.timestamp.to_string()),
            ("webhook-signature", self.signature.clone()),
            (CHECKREAL_HEADER, self.checkreal.clone()),
        ];
        if let Some(previous) = &self.checkreal_previous {
            pairs.push((CHECKREAL_PREVIOUS_HEADER, previous.clone()));
        }
        pairs
    }
}

/// Signs one attempt with the current secret and, during a rotation, the previous one.
pub fn sign(
    current: &WebhookSecret,
    previous: Option<&WebhookSecret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> SignedHeaders {
    let mut signature = standard_signature(current, id, timestamp, body);
    if let Some(previous) = previous {
        signature.push(' ');
        signature.push_str(&standard_signature(previous, id, timestamp, body));
    }
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature,
        checkreal: checkreal_signature(current, body),
        checkreal_previous: previous.map(|p| checkreal_signature(p, body)),
    }
}

/// Compares in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies Standard Webhooks headers as a consumer holding `secret` would, at `now` (unix s).
pub fn verify_standard(
    secret: &WebhookSecret,
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id = id.ok_or(SignatureError::Missing("webhook-id"))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("webhook-signature"))?;
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - ts).abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let expected = standard_signature(secret, id, ts, body);
    signature
        .split(' ')
        .any(|candidate| constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
        .then_some(())
        .ok_or(SignatureError::Mismatch)
}

/// Verifies an `X-CheckReal-Signature` as the guide's consumer does.
pub fn verify_checkreal(
    secret: &WebhookSecret,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing(CHECKREAL_HEADER))?;
    let expected = checkreal_signature(secret, body);
    constant_time_eq(signature.as_bytes(), expected.as_bytes())
        .then_some(())
        .ok_or(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn the_standard_webhooks_golden_vector() {
        let secret: WebhookSecret = SECRET.parse().unwrap();
        assert_eq!(
            standard_signature(&secret, ID, TS, BODY),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        let headers = sign(&secret, None, ID, TS, BODY);
        assert_eq!(
            headers.signature,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        verify_standard(
            &secret,
            Some(ID),
            Some("1649367553"),
            Some(&headers.signature),
            BODY,
            TS + 10,
        )
        .unwrap();
    }

    #[test]
    fn the_guides_hmac_is_hex_over_the_exact_body() {
        let secret: WebhookSecret = SECRET.parse().unwrap();
        // Independent: HMAC-SHA256 keyed with the secret's text, as the guide's Node.js check.
        let mut mac = HmacSha256::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(BODY);
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(checkreal_signature(&secret, BODY), expected);
        assert_eq!(expected.len(), 64);
        assert!(
            expected
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        verify_checkreal(&secret, BODY, Some(&expected)).unwrap();
        let mut other = BODY.to_vec();
        other.push(b' ');
        assert_eq!(
            verify_checkreal(&secret, &other, Some(&expected)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn during_a_rotation_both_secrets_verify() {
        let old = WebhookSecret::generate().unwrap();
        let new = WebhookSecret::generate().unwrap();
        let headers = sign(&new, Some(&old), ID, TS, BODY);
        assert_eq!(headers.signature.split(' ').count(), 2);
        for secret in [&old, &new] {
            verify_standard(
                secret,
                Some(ID),
                Some(&TS.to_string()),
                Some(&headers.signature),
                BODY,
                TS,
            )
            .unwrap();
        }
        verify_checkreal(&new, BODY, Some(&headers.checkreal)).unwrap();
        verify_checkreal(&old, BODY, headers.checkreal_previous.as_deref()).unwrap();
        let stranger = WebhookSecret::generate().unwrap();
        assert_eq!(
            verify_standard(
                &stranger,
                Some(ID),
                Some(&TS.to_string()),
                Some(&headers.signature),
                BODY,
                TS
            ),
            Err(SignatureError::Mismatch)
        );
        assert!(
            headers
                .pairs()
                .iter()
                .any(|(name, _)| *name == CHECKREAL_PREVIOUS_HEADER)
        );
    }

    #[test]
    fn stale_or_malformed_timestamps_and_missing_headers_are_refused() {
        let secret: WebhookSecret = SECRET.parse().unwrap();
        let sig = standard_signature(&secret, ID, TS, BODY);
        let ts = TS.to_string();
        let check = |ts: Option<&str>, now: i64| {
            verify_standard(&secret, Some(ID), ts, Some(&sig), BODY, now)
        };
        assert_eq!(check(Some(&ts), TS + 301), Err(SignatureError::Stale));
        assert_eq!(check(Some(&ts), TS - 301), Err(SignatureError::Stale));
        assert!(check(Some(&ts), TS + 300).is_ok());
        assert_eq!(check(Some("soon"), TS), Err(SignatureError::BadTimestamp));
        assert_eq!(
            check(None, TS),
            Err(SignatureError::Missing("webhook-timestamp"))
        );
        // A changed id or timestamp breaks the signature.
        assert_eq!(
            verify_standard(&secret, Some("msg_other"), Some(&ts), Some(&sig), BODY, TS),
            Err(SignatureError::Mismatch)
        );
    }
}
