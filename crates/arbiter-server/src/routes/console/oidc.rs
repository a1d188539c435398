//! `/console/login/oidc` and its callback: single sign-on with OpenID Connect (authorization
//! code with PKCE, S256), when `console.oidc` is configured.
//!
//! The sign-in under way (state, nonce, PKCE verifier) lives in a short-lived HttpOnly cookie
//! signed with a key derived from the client secret, so any replica can take the callback. The
//! provider's discovery document and JWKS are fetched once and cached (the JWKS is fetched
//! again when a token names a key it does not have). The ID token's signature is checked
//! against the JWKS by `kid` (RS256, ES256), then `iss`, `aud`, `exp` and `nonce`; the person
//! gets the console role their `roles_claim` maps to, or is refused.

use super::html;
use super::{SESSION_COOKIE, cookie, set_cookie};
use crate::config::OidcConfig;
use crate::state::AppState;
use arbiter_console::oidc::{self as flow, Expected, Jwks, Pending};
use arbiter_console::sessions::{self, SignInError, Throttle};
use arbiter_console::{Role, token};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The cookie holding the sign-in under way.
pub const OIDC_COOKIE: &str = "arbiter_oidc";
/// How long a person has at the provider before the sign-in must start again.
const PENDING_SECS: u64 = 600;
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
fn cookie_key(config: &OidcConfig, secret: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(b"arbiter console oidc pending\0");
    digest.update(config.client_id.as_bytes());
    digest.update([0]);
    digest.update(secret.as_bytes());
    digest.finalize().to_vec()
}

fn with_cookie(mut response: Response, value: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn not_configured() -> Response {
    html::message(
        StatusCode::NOT_FOUND,
        None,
        "Not found",
        "Single sign-on is not configured for this console.",
    )
}

/// `GET /console/login/oidc`: starts a sign-in at the provider.
pub async fn start(State(state): State<AppState>) -> Response {
    let Some(config) = &state.config.console.oidc else {
        return not_configured();
    };
    let secret = match config.client_secret() {
        Ok(secret) => secret,
        Err(err) => return html::server_error(&err),
    };
    let provider = match provider(config, false).await {
        Ok(provider) => provider,
        Err(err) => {
            tracing::warn!(error = %err, "the identity provider could not be reached");
            return html::message(
                StatusCode::BAD_GATEWAY,
                None,
                "Single sign-on unavailable",
                "The identity provider could not be reached. Try again later, or sign in with a password.",
            );
        }
    };
    let now = state.clock.now().timestamp();
    let pending = Pending::new(now + i64::try_from(PENDING_SECS).unwrap_or(600));
    let Ok(mut url) = reqwest::Url::parse(&provider.discovery.authorization_endpoint) else {
        return html::server_error(&"the provider's authorization_endpoint is not a URL");
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", &config.redirect_url)
        .append_pair("scope", "openid email profile")
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &flow::pkce_challenge(&pending.verifier))
        .append_pair("code_challenge_method", "S256");
    let response = (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url.as_str()),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
        .into_response();
    with_cookie(
        response,
        &set_cookie(
            &state,
            OIDC_COOKIE,
            &pending.seal(&cookie_key(config, &secret)),
            PENDING_SECS,
        ),
    )
}

/// The provider's answer.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// A refused single sign-on: its audit entry, and the error page.
struct Refusal {
    actor: String,
    reason: &'static str,
    status: StatusCode,
    text: String,
}

impl Refusal {
    fn new(reason: &'static str, status: StatusCode, text: impl Into<String>) -> Self {
        Self {
            actor: "oidc".to_owned(),
            reason,
            status,
            text: text.into(),
        }
    }
}

/// `GET /console/login/oidc/callback`: checks the answer, exchanges the code, verifies the
/// ID token and opens a session.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(config) = &state.config.console.oidc else {
        return not_configured();
    };
    let clear = set_cookie(&state, OIDC_COOKIE, "", 0);
    let response = match complete(&state, config, &headers, answer).await {
        Ok(response) => response,
        Err(refusal) => {
            if let Err(err) = sessions::sso_failed(
                state.pipeline.db(),
                &config.tenant,
                &refusal.actor,
                refusal.reason,
                state.clock.now(),
            )
            .await
            {
                return html::server_error(&err);
            }
            let body = format!(
                r#"<p class="notice" role="alert" id="login-error">{}</p><p><a href="/console">Back to sign-in</a></p>"#,
                html::escape(&refusal.text)
            );
            html::respond(
                refusal.status,
                html::layout("Single sign-on failed", None, "", &body),
            )
        }
    };
    with_cookie(response, &clear)
}

async fn complete(
    state: &AppState,
    config: &OidcConfig,
    headers: &HeaderMap,
    answer: Callback,
) -> Result<Response, Refusal> {
    let secret = config.client_secret().map_err(|err| {
        tracing::error!(error = %err, "console.oidc client secret");
        Refusal::new(
            "oidc_configuration",
            StatusCode::INTERNAL_SERVER_ERROR,
            "Single sign-on is misconfigured on this server.",
        )
    })?;
    let now = state.clock.now();
    let state_refused = || {
        Refusal::new(
            "oidc_state",
            StatusCode::BAD_REQUEST,
            "This sign-in was not started here or took too long. Start again from the sign-in page.",
        )
    };
    let pending = cookie(headers, OIDC_COOKIE)
        .and_then(|value| Pending::open(value, &cookie_key(config, &secret), now.timestamp()))
        .ok_or_else(state_refused)?;
    if !answer
        .state
        .as_deref()
        .is_some_and(|given| token::equal(given, &pending.state))
    {
        return Err(state_refused());
    }
    if let Some(error) = answer.error {
        tracing::warn!(error, "the identity provider refused the sign-in");
        return Err(Refusal::new(
            "oidc_provider_refused",
            StatusCode::UNAUTHORIZED,
            "The identity provider did not sign you in.",
        ));
    }
    let unreachable = |err: String| {
        tracing::warn!(error = %err, "the identity provider could not be reached");
        Refusal::new(
            "oidc_provider_unreachable",
            StatusCode::BAD_GATEWAY,
            "The identity provider could not be reached. Try again later.",
        )
    };
    let code = answer.code.ok_or_else(|| {
        Refusal::new(
            "oidc_no_code",
            StatusCode::BAD_REQUEST,
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
                StatusCode::UNAUTHORIZED,
                "The identity provider would not exchange the sign-in for a token.",
            )
        })?;
    if !provider.jwks.has(flow::token_kid(&id_token).as_deref()) {
        provider = self::provider(config, true).await.map_err(unreachable)?;
    }
    let expected = Expected {
        issuer: &provider.discovery.issuer,
        client_id: &config.client_id,
        nonce: &pending.nonce,
        now: now.timestamp(),
    };
    let claims = flow::verify_id_token(&id_token, &provider.jwks, &expected).map_err(|err| {
        tracing::warn!(error = %err, "ID token refused");
        Refusal::new(
            err.reason(),
            StatusCode::UNAUTHORIZED,
            format!("The sign-in could not be verified: {err}."),
        )
    })?;
    let user = match claims.get(&config.user_claim) {
        Some(Value::String(user)) if !user.is_empty() => user.clone(),
        _ => {
            return Err(Refusal::new(
                "oidc_no_user",
                StatusCode::UNAUTHORIZED,
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
                StatusCode::UNAUTHORIZED,
                "Your email address is not verified at the identity provider.",
            )
        });
    }
    let Some(role) = mapped_role(config, claims.get(&config.roles_claim)) else {
        return Err(Refusal {
            actor: user,
            ..Refusal::new(
                "oidc_no_role",
                StatusCode::FORBIDDEN,
                "You are signed in at the identity provider, but none of your groups gives a role in this console.",
            )
        });
    };
    let console = &state.config.console;
    let throttle = Throttle {
        session_ttl: chrono::Duration::seconds(
            i64::try_from(console.session_ttl_secs).unwrap_or(i64::MAX / 1000),
        ),
        max_failures: console.max_failed_sign_ins,
        window: chrono::Duration::seconds(
            i64::try_from(console.throttle_window_secs).unwrap_or(i64::MAX / 1000),
        ),
    };
    match sessions::sign_in_external(
        state.pipeline.db(),
        &throttle,
        &config.tenant,
        &user,
        role,
        "oidc",
        now,
    )
    .await
    {
        Ok(new) => {
            let response = (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/console"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
            )
                .into_response();
            Ok(with_cookie(
                response,
                &set_cookie(state, SESSION_COOKIE, &new.token, console.session_ttl_secs),
            ))
        }
        // Already recorded by `sign_in_external`: answered here without a second entry.
        Err(SignInError::Refused | SignInError::Throttled) => Ok(html::message(
            StatusCode::FORBIDDEN,
            None,
            "Single sign-on failed",
            "Your console user is disabled or its id is not accepted. Ask an admin of this console.",
        )),
        Err(SignInError::Db(err)) => Ok(html::server_error(&err)),
    }
}

/// The most powerful console role the claim's values map to (admin, reviewer, auditor, analyst).
fn mapped_role(config: &OidcConfig, claim: Option<&Value>) -> Option<Role> {
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
        // RFC 6749 2.3.1: each part form-encoded, then Basic.
        let encode =
            |s: &str| serde_urlencoded::to_string([("", s)]).unwrap_or_default()[1..].to_owned();
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(&config.client_id),
            encode(secret)
        ));
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
