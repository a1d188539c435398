//! OpenID Connect pieces that need no network: the PKCE challenge (S256), the signed
//! short-lived record of a sign-in under way (state, nonce, PKCE verifier), and the ID token's
//! checks: its signature against the provider's JWKS by `kid` (RS256 or ES256), then `iss`,
//! `aud` (and `azp` when there are several audiences), `exp`, `nbf` and `nonce`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{hmac, signature};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Seconds of clock difference allowed with the provider for `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;

/// The PKCE `code_challenge` of a verifier: base64url(SHA-256(verifier)), the S256 method.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A sign-in under way, kept in a signed, short-lived, HttpOnly cookie between the redirect to
/// the provider and its callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The `state` sent to the provider, which must come back.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier, sent with the code to the token endpoint.
    pub verifier: String,
    /// When the record stops being accepted (Unix seconds).
    pub expires: i64,
}

impl Pending {
    /// A new record with random state, nonce and verifier, good until `expires`.
    pub fn new(expires: i64) -> Self {
        Self {
            state: crate::token::new(),
            nonce: crate::token::new(),
            verifier: crate::token::new(),
            expires,
        }
    }

    /// The cookie's value: base64url(JSON) `.` base64url(HMAC-SHA256 over it with `key`).
    pub fn seal(&self, key: &[u8]) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The record in a cookie's value, when its tag is right and it has not expired.
    pub fn open(value: &str, key: &[u8], now: i64) -> Option<Self> {
        let (body, tag) = value.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, key),
            body.as_bytes(),
            &tag,
        )
        .ok()?;
        let pending: Self = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (pending.expires > now).then_some(pending)
    }
}

/// A provider's JSON Web Key Set.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwks {
    /// Its keys.
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

/// One JSON Web Key (only what RS256 and ES256 need).
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    /// `RSA` or `EC`.
    pub kty: String,
    /// The key id tokens name in their header.
    #[serde(default)]
    pub kid: Option<String>,
    /// The algorithm the key is for, when the provider says.
    #[serde(default)]
    pub alg: Option<String>,
    /// `sig` for signing keys, when the provider says.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent, base64url.
    #[serde(default)]
    pub e: Option<String>,
    /// EC curve (`P-256`).
    #[serde(default)]
    pub crv: Option<String>,
    /// EC x coordinate, base64url.
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(default)]
    pub y: Option<String>,
}

impl Jwks {
    /// Whether a key with this id is in the set (an unknown `kid` means the set is refetched).
    pub fn has(&self, kid: Option<&str>) -> bool {
        self.find(kid).is_some()
    }

    fn find(&self, kid: Option<&str>) -> Option<&Jwk> {
        let mut signing = self
            .keys
            .iter()
            .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"));
        match kid {
            Some(kid) => signing.find(|k| k.kid.as_deref() == Some(kid)),
            // Without a `kid` only a set of one signing key says which key it is.
            None => {
                let keys: Vec<&Jwk> = signing.collect();
                (keys.len() == 1).then(|| keys[0])
            }
        }
    }
}

/// What an ID token must say.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The issuer, exactly as the discovery document gives it.
    pub issuer: &'a str,
    /// The client id: in `aud`.
    pub client_id: &'a str,
    /// The nonce sent with the authorization request.
    pub nonce: &'a str,
    /// Now, in Unix seconds.
    pub now: i64,
}

/// Why an ID token was refused; `reason` is the audit entry's word for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("the ID token is malformed")]
    Malformed,
    /// `alg` is not RS256 or ES256, or not the key's.
    #[error("the ID token's algorithm {0:?} is not accepted (RS256, ES256)")]
    Algorithm(String),
    /// No key in the provider's JWKS has the token's `kid`.
    #[error("no key of the provider has the ID token's key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the ID token's signature does not verify")]
    Signature,
    /// `iss` is not the provider's.
    #[error("the ID token was issued by someone else")]
    Issuer,
    /// `aud` does not name this client.
    #[error("the ID token is for another client")]
    Audience,
    /// `exp` passed (or is missing), or `nbf` is still to come.
    #[error("the ID token has expired")]
    Expired,
    /// `nonce` is not the one sent.
    #[error("the ID token's nonce is not this sign-in's")]
    Nonce,
}

impl TokenError {
    /// The audit entry's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "oidc_malformed_token",
            Self::Algorithm(_) => "oidc_algorithm",
            Self::UnknownKey => "oidc_unknown_key",
            Self::Signature => "oidc_signature",
            Self::Issuer => "oidc_issuer",
            Self::Audience => "oidc_audience",
            Self::Expired => "oidc_expired",
            Self::Nonce => "oidc_nonce",
        }
    }
}

/// The `kid` of a token's header, to know whether the JWKS needs refetching.
pub fn token_kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

fn b64(part: Option<&String>) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part.ok_or(TokenError::UnknownKey)?)
        .map_err(|_| TokenError::UnknownKey)
}

fn minimal(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

/// Checks an ID token and returns its claims.
pub fn verify_id_token(
    token: &str,
    jwks: &Jwks,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Map<String, Value> =
        serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
    let sig = decode(sig)?;
    let signed = &token[..token.rfind('.').unwrap_or(0)];

    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kid = header.get("kid").and_then(Value::as_str);
    let key = jwks.find(kid).ok_or(TokenError::UnknownKey)?;
    if key.alg.as_deref().is_some_and(|a| a != alg) {
        return Err(TokenError::Algorithm(alg));
    }
    match (alg.as_str(), key.kty.as_str()) {
        ("RS256", "RSA") => {
            let n = b64(key.n.as_ref())?;
            let e = b64(key.e.as_ref())?;
            signature::RsaPublicKeyComponents {
                n: minimal(&n),
                e: minimal(&e),
            }
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                signed.as_bytes(),
                &sig,
            )
            .map_err(|_| TokenError::Signature)?;
        }
        ("ES256", "EC") if key.crv.as_deref() == Some("P-256") => {
            let mut point = vec![4u8];
            point.extend(b64(key.x.as_ref())?);
            point.extend(b64(key.y.as_ref())?);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &sig)
                .map_err(|_| TokenError::Signature)?;
        }
        _ => return Err(TokenError::Algorithm(alg)),
    }

    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err(TokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(TokenError::Audience);
    }
    if audiences.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(expected.client_id)
    {
        return Err(TokenError::Audience);
    }
    let exp = claims.get("exp").and_then(Value::as_i64);
    if exp.is_none_or(|exp| exp + LEEWAY_SECS <= expected.now) {
        return Err(TokenError::Expired);
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf - LEEWAY_SECS > expected.now)
    {
        return Err(TokenError::Expired);
    }
    let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if !crate::token::equal(nonce, expected.nonce) {
        return Err(TokenError::Nonce);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_pending_record_opens_only_with_its_key_and_in_time() {
        let pending = Pending::new(1_000);
        let sealed = pending.seal(b"key");
        assert_eq!(Pending::open(&sealed, b"key", 999), Some(pending.clone()));
        assert_eq!(Pending::open(&sealed, b"other", 999), None);
        assert_eq!(Pending::open(&sealed, b"key", 1_000), None);
        let (body, tag) = sealed.split_once('.').unwrap();
        let forged = format!("{}x.{tag}", &body[..body.len() - 1]);
        assert_eq!(Pending::open(&forged, b"key", 999), None);
    }

    #[test]
    fn malformed_tokens_and_unknown_keys_are_refused() {
        let expected = Expected {
            issuer: "https://id.example",
            client_id: "arbiter",
            nonce: "n",
            now: 0,
        };
        let jwks = Jwks::default();
        assert_eq!(
            verify_id_token("a.b", &jwks, &expected),
            Err(TokenError::Malformed)
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        assert_eq!(
            verify_id_token(&format!("{header}.{body}.AA"), &jwks, &expected),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn es256_tokens_verify_and_their_claims_are_checked() {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        use serde_json::json;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = key.public_key().as_ref().to_vec();
        let jwks: Jwks = serde_json::from_value(json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }]}))
        .unwrap();
        let sign = |alg: &str, claims: Value| {
            let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "ec"}).to_string());
            let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
            let sig = key.sign(&rng, signed.as_bytes()).unwrap();
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        };
        let expected = Expected {
            issuer: "https://id.example",
            client_id: "arbiter",
            nonce: "n1",
            now: 1_000_000,
        };
        let claims = |edit: &dyn Fn(&mut Value)| {
            let mut claims = json!({
                "iss": "https://id.example", "aud": "arbiter", "exp": 1_000_100,
                "nonce": "n1", "sub": "s1",
            });
            edit(&mut claims);
            claims
        };
        let verified = verify_id_token(&sign("ES256", claims(&|_| {})), &jwks, &expected).unwrap();
        assert_eq!(verified["sub"], "s1");
        let refused = |alg: &str, edit: &dyn Fn(&mut Value)| {
            verify_id_token(&sign(alg, claims(edit)), &jwks, &expected).unwrap_err()
        };
        assert_eq!(
            refused("ES256", &|c| c["nonce"] = json!("n2")),
            TokenError::Nonce
        );
        assert_eq!(
            refused("ES256", &|c| c["iss"] = json!("https://evil")),
            TokenError::Issuer
        );
        assert_eq!(
            refused("ES256", &|c| c["aud"] = json!("other")),
            TokenError::Audience
        );
        assert_eq!(
            refused("ES256", &|c| c["aud"] = json!(["arbiter", "other"])),
            TokenError::Audience
        );
        assert_eq!(
            refused("ES256", &|c| c["exp"] = json!(999_000)),
            TokenError::Expired
        );
        assert_eq!(
            refused("ES256", &|c| c["nbf"] = json!(1_000_500)),
            TokenError::Expired
        );
        assert_eq!(
            refused("RS256", &|_| {}),
            TokenError::Algorithm("RS256".to_owned())
        );
        // Several audiences with this client as the authorized party are accepted.
        let many = claims(&|c| {
            c["aud"] = json!(["arbiter", "other"]);
            c["azp"] = json!("arbiter");
        });
        assert!(verify_id_token(&sign("ES256", many), &jwks, &expected).is_ok());
        // A payload changed after signing does not verify.
        let token = sign("ES256", claims(&|_| {}));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(claims(&|c| c["sub"] = json!("admin")).to_string());
        parts[1] = &forged;
        assert_eq!(
            verify_id_token(&parts.join("."), &jwks, &expected),
            Err(TokenError::Signature)
        );
    }
}
