//! OpenID Connect single sign-on (authorization code with PKCE, S256), apart from HTTP
//! serving: the PKCE challenge, the signed short-lived record of a sign-in under way (state,
//! nonce, PKCE verifier), the provider's discovery document and JWKS (fetched once and cached;
//! the JWKS fetched again when a token names a key it does not have), the authorization
//! request, the callback's checks, the code exchange, and the ID token's checks: its signature
//! against the provider's JWKS by `kid` (RS256 or ES256), then `iss`, `aud` (and `azp` when
//! there are several audiences), `exp`, `nbf` and `nonce`. The person gets the console role
//! their `roles_claim` maps to, or is refused.
//!
//! The sign-in under way lives in a short-lived HttpOnly cookie signed with a key derived from
//! the client secret, so any replica can take the callback; setting and reading the cookie is
//! the server's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{hmac, signature};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::Role;
use crate::config::{InvalidKey, OidcConfig};
use reqwest::header;

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

// --- The protocol with the provider: discovery, the authorization request, the callback, the
// code exchange. ---

/// How long a person has at the provider before the sign-in must start again (the pending
/// record's life, and its cookie's).
pub const PENDING_SECS: u64 = 600;
/// How long a discovery document is kept.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The least time between two fetches of a provider's JWKS for an unknown key.
const JWKS_REFETCH: Duration = Duration::from_secs(10);
/// Requests to the provider give up after this.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the discovery document says that the flow uses.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
struct Provider {
    discovery: Discovery,
    jwks: Jwks,
    fetched: Instant,
    jwks_fetched: Instant,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

fn cache() -> &'static Mutex<HashMap<String, Provider>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Provider>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let response = client()
        .get(url)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|err| format!("GET {url}: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("GET {url}: {err}"))?;
    serde_json::from_slice(&body).map_err(|err| format!("GET {url}: {err}"))
}

/// The provider's discovery document and JWKS, from the cache or fetched.
async fn provider(config: &OidcConfig, refetch_jwks: bool) -> Result<Provider, String> {
    let mut cache = cache().lock().await;
    if let Some(known) = cache.get_mut(&config.issuer)
        && known.fetched.elapsed() < DISCOVERY_TTL
    {
        if refetch_jwks && known.jwks_fetched.elapsed() >= JWKS_REFETCH {
            known.jwks = get_json(&known.discovery.jwks_uri).await?;
            known.jwks_fetched = Instant::now();
        }
        return Ok(known.clone());
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        config.issuer.trim_end_matches('/')
    );
    let discovery: Discovery = get_json(&url).await?;
    if discovery.issuer != config.issuer {
        return Err(format!(
            "the discovery document names the issuer {:?}, not console.oidc.issuer {:?}",
            discovery.issuer, config.issuer
        ));
    }
    let jwks: Jwks = get_json(&discovery.jwks_uri).await?;
    let now = Instant::now();
    let known = Provider {
        discovery,
        jwks,
        fetched: now,
        jwks_fetched: now,
    };
    cache.insert(config.issuer.clone(), known.clone());
    Ok(known)
}

/// The key the pending cookie is signed with: derived from the client secret, so every replica
/// with the same configuration agrees.
pub fn cookie_key(config: &OidcConfig, secret: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(b"arbiter console oidc pending\0");
    digest.update(config.client_id.as_bytes());
    digest.update([0]);
    digest.update(secret.as_bytes());
    digest.finalize().to_vec()
}

/// The authorization request: where the person is sent, and the sealed pending record their
/// cookie carries until the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The provider's authorization endpoint with the request's parameters.
    pub url: String,
    /// The [`Pending`] record, sealed with [`cookie_key`].
    pub pending: String,
}

/// Why a sign-in could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The client secret could not be read.
    #[error(transparent)]
    Secret(#[from] InvalidKey),
    /// The discovery document or the JWKS could not be fetched.
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    /// The discovery document's `authorization_endpoint` is not a URL.
    #[error("the provider's authorization_endpoint is not a URL")]
    BadEndpoint,
}

/// The authorization request (code flow, PKCE S256) for `pending`.
pub fn authorization_url(
    endpoint: &str,
    config: &OidcConfig,
    pending: &Pending,
) -> Result<String, StartError> {
    let mut url = url::Url::parse(endpoint).map_err(|_| StartError::BadEndpoint)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", &config.redirect_url)
        .append_pair("scope", "openid email profile")
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &pkce_challenge(&pending.verifier))
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Starts a sign-in at the provider at `now` (Unix seconds): a fresh pending record, and the
/// authorization request carrying its state, nonce and PKCE challenge.
pub async fn start(config: &OidcConfig, now: i64) -> Result<Authorization, StartError> {
    let secret = config.client_secret()?;
    let provider = provider(config, false)
        .await
        .map_err(StartError::Unreachable)?;
    let pending = Pending::new(now + i64::try_from(PENDING_SECS).unwrap_or(600));
    let url = authorization_url(&provider.discovery.authorization_endpoint, config, &pending)?;
    Ok(Authorization {
        url,
        pending: pending.seal(&cookie_key(config, &secret)),
    })
}

/// The provider's answer at the callback.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` sent with the request.
    pub state: Option<String>,
    /// The provider's refusal, if it refused.
    pub error: Option<String>,
}

/// A refused single sign-on: who its audit entry names, its reason, and the page's status and
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The actor of the `console.sign_in_failed` entry (`oidc` until the person is known).
    pub actor: String,
    /// The audit entry's reason.
    pub reason: &'static str,
    /// The page's HTTP status.
    pub status: u16,
    /// What the page says.
    pub text: String,
}

impl Refusal {
    fn new(reason: &'static str, status: u16, text: impl Into<String>) -> Self {
        Self {
            actor: "oidc".to_owned(),
            reason,
            status,
            text: text.into(),
        }
    }
}

/// A person the provider vouched for: their user id and the console role their claims map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    /// The value of `user_claim`.
    pub user: String,
    /// The most powerful role `roles_claim` maps to.
    pub role: Role,
}

/// The refusal of a callback whose pending record is missing, forged, expired or not this
/// answer's.
fn state_refused() -> Refusal {
    Refusal::new(
        "oidc_state",
        400,
        "This sign-in was not started here or took too long. Start again from the sign-in page.",
    )
}

/// The pending record of the cookie's value, when it opens with the configuration's key at
/// `now` and the answer's `state` is its own.
pub fn check_state(
    config: &OidcConfig,
    secret: &str,
    cookie: Option<&str>,
    given_state: Option<&str>,
    now: i64,
) -> Result<Pending, Refusal> {
    let pending = cookie
        .and_then(|value| Pending::open(value, &cookie_key(config, secret), now))
        .ok_or_else(state_refused)?;
    if !given_state.is_some_and(|given| crate::token::equal(given, &pending.state)) {
        return Err(state_refused());
    }
    Ok(pending)
}

/// Checks the provider's answer against the pending record in `cookie`, exchanges the code,
/// verifies the ID token at `now` and says who the person is and their role.
pub async fn complete(
    config: &OidcConfig,
    cookie: Option<&str>,
    answer: Callback,
    now: i64,
) -> Result<Vouched, Refusal> {
    let secret = config.client_secret().map_err(|err| {
        tracing::error!(error = %err, "console.oidc client secret");
        Refusal::new(
            "oidc_configuration",
            500,
            "Single sign-on is misconfigured on this server.",
        )
    })?;
    let pending = check_state(config, &secret, cookie, answer.state.as_deref(), now)?;
    if let Some(error) = answer.error {
        tracing::warn!(error, "the identity provider refused the sign-in");
        return Err(Refusal::new(
            "oidc_provider_refused",
            401,
            "The identity provider did not sign you in.",
        ));
    }
    let unreachable = |err: String| {
        tracing::warn!(error = %err, "the identity provider could not be reached");
        Refusal::new(
            "oidc_provider_unreachable",
            502,
            "The identity provider could not be reached. Try again later.",
        )
    };
    let code = answer.code.ok_or_else(|| {
        Refusal::new(
            "oidc_no_code",
            400,
            "The identity provider sent no authorization code.",
        )
    })?;
    let mut provider = provider(config, false).await.map_err(unreachable)?;
    let id_token = exchange(config, &provider, &secret, &code, &pending.verifier)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "the token exchange failed");
            Refusal::new(
                "oidc_token_exchange",
                401,
                "The identity provider would not exchange the sign-in for a token.",
            )
        })?;
    if !provider.jwks.has(token_kid(&id_token).as_deref()) {
        provider = self::provider(config, true).await.map_err(unreachable)?;
    }
    let expected = Expected {
        issuer: &provider.discovery.issuer,
        client_id: &config.client_id,
        nonce: &pending.nonce,
        now,
    };
    let claims = verify_id_token(&id_token, &provider.jwks, &expected).map_err(|err| {
        tracing::warn!(error = %err, "ID token refused");
        Refusal::new(
            err.reason(),
            401,
            format!("The sign-in could not be verified: {err}."),
        )
    })?;
    vouched(config, &claims)
}

/// Who verified claims say the person is, and their role; refused without a user, with an
/// unverified email as the user, or with no group that maps to a role.
pub fn vouched(config: &OidcConfig, claims: &Map<String, Value>) -> Result<Vouched, Refusal> {
    let user = match claims.get(&config.user_claim) {
        Some(Value::String(user)) if !user.is_empty() => user.clone(),
        _ => {
            return Err(Refusal::new(
                "oidc_no_user",
                401,
                format!(
                    "The identity provider did not say who you are (no {:?} claim).",
                    config.user_claim
                ),
            ));
        }
    };
    if config.user_claim == "email" && claims.get("email_verified") == Some(&Value::Bool(false)) {
        return Err(Refusal {
            actor: user,
            ..Refusal::new(
                "oidc_email_unverified",
                401,
                "Your email address is not verified at the identity provider.",
            )
        });
    }
    let Some(role) = mapped_role(config, claims.get(&config.roles_claim)) else {
        return Err(Refusal {
            actor: user,
            ..Refusal::new(
                "oidc_no_role",
                403,
                "You are signed in at the identity provider, but none of your groups gives a role in this console.",
            )
        });
    };
    Ok(Vouched { user, role })
}

/// The most powerful console role the claim's values map to (admin, reviewer, auditor, analyst).
pub fn mapped_role(config: &OidcConfig, claim: Option<&Value>) -> Option<Role> {
    let values: Vec<&str> = match claim {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let roles: Vec<Role> = values
        .iter()
        .filter_map(|value| config.roles.get(*value))
        .filter_map(|role| role.parse().ok())
        .collect();
    Role::ALL.into_iter().find(|role| roles.contains(role))
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct Tokens {
    id_token: Option<String>,
}

/// HTTP Basic credentials of a client (RFC 6749 2.3.1: each part form-encoded, then Basic).
fn basic_credentials(client_id: &str, secret: &str) -> String {
    let encode =
        |s: &str| serde_urlencoded::to_string([("", s)]).unwrap_or_default()[1..].to_owned();
    base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode(client_id),
        encode(secret)
    ))
}

/// Exchanges the code (with the PKCE verifier and the client secret) for the ID token.
async fn exchange(
    config: &OidcConfig,
    provider: &Provider,
    secret: &str,
    code: &str,
    verifier: &str,
) -> Result<String, String> {
    let basic = provider
        .discovery
        .token_endpoint_auth_methods_supported
        .as_ref()
        .is_none_or(|methods| methods.iter().any(|m| m == "client_secret_basic"));
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", config.redirect_url.as_str()),
        ("code_verifier", verifier),
        ("client_id", config.client_id.as_str()),
    ];
    let mut request = client()
        .post(&provider.discovery.token_endpoint)
        .header(header::ACCEPT, "application/json");
    if basic {
        let credentials = basic_credentials(&config.client_id, secret);
        request = request.header(header::AUTHORIZATION, format!("Basic {credentials}"));
    } else {
        form.push(("client_secret", secret));
    }
    let body = serde_urlencoded::to_string(&form).map_err(|err| err.to_string())?;
    let response = request
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|err| format!("POST {}: {err}", provider.discovery.token_endpoint))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!(
            "the token endpoint answered {status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("the token endpoint's answer: {err}"))?;
    let tokens: Tokens = serde_json::from_slice(&body)
        .map_err(|err| format!("the token endpoint's answer: {err}"))?;
    tokens
        .id_token
        .ok_or_else(|| "the token endpoint's answer has no id_token".to_owned())
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

    fn config() -> OidcConfig {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example",
            "client_id": "console app",
            "client_secret_env": "UNUSED",
            "redirect_url": "https://arbiter.example/console/login/oidc/callback",
            "tenant": "acme",
            "roles_claim": "groups",
            "roles": {"sec-admins": "admin", "fraud": "reviewer"},
        }))
        .unwrap()
    }

    #[test]
    fn the_authorization_request_carries_state_nonce_and_the_pkce_challenge() {
        let pending = Pending::new(100);
        let url =
            authorization_url("https://idp.example/authorize?x=1", &config(), &pending).unwrap();
        let url = url::Url::parse(&url).unwrap();
        let pairs: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["x"], "1");
        assert_eq!(pairs["response_type"], "code");
        assert_eq!(pairs["client_id"], "console app");
        assert_eq!(pairs["state"], pending.state);
        assert_eq!(pairs["nonce"], pending.nonce);
        assert_eq!(pairs["code_challenge"], pkce_challenge(&pending.verifier));
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert!(matches!(
            authorization_url("not a url", &config(), &pending),
            Err(StartError::BadEndpoint)
        ));
    }

    #[test]
    fn the_callback_state_must_be_the_sealed_records() {
        let config = config();
        let pending = Pending::new(100);
        let sealed = pending.seal(&cookie_key(&config, "secret"));
        let opened = check_state(&config, "secret", Some(&sealed), Some(&pending.state), 50);
        assert_eq!(opened.unwrap(), pending);
        for (cookie, state, secret, now) in [
            (None, Some(pending.state.as_str()), "secret", 50),
            (Some(sealed.as_str()), Some("other"), "secret", 50),
            (Some(sealed.as_str()), None, "secret", 50),
            (
                Some(sealed.as_str()),
                Some(pending.state.as_str()),
                "other secret",
                50,
            ),
            (
                Some(sealed.as_str()),
                Some(pending.state.as_str()),
                "secret",
                100,
            ),
        ] {
            let refused = check_state(&config, secret, cookie, state, now).unwrap_err();
            assert_eq!((refused.reason, refused.status), ("oidc_state", 400));
        }
    }

    #[test]
    fn claims_give_the_user_and_the_most_powerful_mapped_role() {
        let config = config();
        let claims = |v: Value| v.as_object().cloned().unwrap();
        let person = vouched(
            &config,
            &claims(serde_json::json!({"email": "ann@x", "groups": ["fraud", "sec-admins"]})),
        )
        .unwrap();
        assert_eq!((person.user.as_str(), person.role), ("ann@x", Role::Admin));
        assert_eq!(
            mapped_role(&config, Some(&serde_json::json!("fraud"))),
            Some(Role::Reviewer)
        );
        let refused = vouched(&config, &claims(serde_json::json!({"groups": "fraud"})));
        assert_eq!(refused.unwrap_err().reason, "oidc_no_user");
        let refused = vouched(
            &config,
            &claims(
                serde_json::json!({"email": "b@x", "email_verified": false, "groups": "fraud"}),
            ),
        )
        .unwrap_err();
        assert_eq!(
            (refused.actor.as_str(), refused.reason),
            ("b@x", "oidc_email_unverified")
        );
        let refused = vouched(
            &config,
            &claims(serde_json::json!({"email": "c@x", "groups": ["staff"]})),
        )
        .unwrap_err();
        assert_eq!((refused.reason, refused.status), ("oidc_no_role", 403));
    }

    #[test]
    fn basic_credentials_form_encode_each_part() {
        assert_eq!(
            basic_credentials("console app", "s:e&cret"),
            base64::engine::general_purpose::STANDARD.encode("console+app:s%3Ae%26cret")
        );
    }
}
