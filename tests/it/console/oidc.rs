//! Single sign-on with OpenID Connect against a small provider started on loopback in the
//! test: discovery, JWKS, an authorization endpoint that redirects back with a code (recording
//! the PKCE challenge) and a token endpoint that checks the client secret and the verifier
//! against the challenge (SHA-256) and returns an RS256-signed ID token. On SQLite and
//! PostgreSQL: a full sign-in and its audit entry, and refusals for a wrong state, a tampered
//! signature, a wrong audience, an expired token, a person with no mapped role and a PKCE
//! verifier the provider refuses.

use super::{Visitor, audit_events, console_config};
use crate::harness::{TestServer, each_database};
use arbiter_config::OidcConfig;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A 2048-bit RSA key in PKCS#8 DER, made once with `openssl genpkey` for these tests only: it
/// signs the test provider's ID tokens and protects nothing.
const TEST_KEY: &[u8] = include_bytes!("oidc_test_rsa_key.pk8");
const CLIENT_ID: &str = "arbiter-console";
const CLIENT_SECRET: &str = "test client secret";

/// What the provider does wrong, for the refusals.
#[derive(Clone, Default)]
struct Knobs {
    user: String,
    groups: Vec<String>,
    wrong_state: bool,
    tamper: bool,
    audience: Option<String>,
    expired: bool,
    /// Records another challenge than the one sent, so the right verifier no longer matches.
    wrong_challenge: bool,
}

struct Grant {
    challenge: String,
    nonce: String,
    redirect_uri: String,
}

struct Idp {
    issuer: String,
    key: RsaKeyPair,
    knobs: Mutex<Knobs>,
    grants: Mutex<HashMap<String, Grant>>,
    /// The `code_challenge_method`s the authorization endpoint saw.
    methods: Mutex<Vec<String>>,
}

type Shared = Arc<Idp>;

async fn discovery(State(idp): State<Shared>) -> Response {
    axum::Json(json!({
        "issuer": idp.issuer,
        "authorization_endpoint": format!("{}/authorize", idp.issuer),
        "token_endpoint": format!("{}/token", idp.issuer),
        "jwks_uri": format!("{}/jwks", idp.issuer),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<Shared>) -> Response {
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(idp.key.public());
    axum::Json(json!({"keys": [{
        "kty": "RSA", "kid": "test-key", "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    }]}))
    .into_response()
}

async fn authorize(
    State(idp): State<Shared>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert!(query["scope"].split(' ').any(|s| s == "openid"));
    idp.methods
        .lock()
        .unwrap()
        .push(query["code_challenge_method"].clone());
    let knobs = idp.knobs.lock().unwrap().clone();
    let mut challenge = query["code_challenge"].clone();
    if knobs.wrong_challenge {
        challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(b"another verifier"));
    }
    let code = hex::encode(Sha256::digest(format!(
        "{}{}",
        query["state"], query["nonce"]
    )));
    idp.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            challenge,
            nonce: query["nonce"].clone(),
            redirect_uri: query["redirect_uri"].clone(),
        },
    );
    let state = if knobs.wrong_state {
        "forged"
    } else {
        &query["state"]
    };
    let location = format!("{}?code={code}&state={state}", query["redirect_uri"]);
    (AxumStatus::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn refuse(error: &str) -> Response {
    (
        AxumStatus::BAD_REQUEST,
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

async fn token(State(idp): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:test+client+secret"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(basic.as_str())
    {
        return (
            AxumStatus::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    let Some(grant) = form
        .get("code")
        .and_then(|code| idp.grants.lock().unwrap().remove(code))
    else {
        return refuse("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return refuse("invalid_grant");
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return refuse("invalid_grant");
    }
    let knobs = idp.knobs.lock().unwrap().clone();
    let now = chrono::Utc::now().timestamp();
    let exp = if knobs.expired { now - 3600 } else { now + 300 };
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"test-key","typ":"JWT"}"#);
    let claims = json!({
        "iss": idp.issuer,
        "sub": format!("sub-{}", knobs.user),
        "aud": knobs.audience.clone().unwrap_or_else(|| CLIENT_ID.to_owned()),
        "iat": now,
        "exp": exp,
        "nonce": grant.nonce,
        "email": knobs.user,
        "email_verified": true,
        "groups": knobs.groups,
    });
    let signed = format!(
        "{header}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let mut signature = vec![0; idp.key.public().modulus_len()];
    idp.key
        .sign(
            &RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signed.as_bytes(),
            &mut signature,
        )
        .unwrap();
    if knobs.tamper {
        signature[10] ^= 0x01;
    }
    let id_token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&signature));
    axum::Json(json!({"access_token": "opaque", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

/// Starts the provider on loopback.
async fn start_idp() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let idp = Arc::new(Idp {
        issuer,
        key: RsaKeyPair::from_pkcs8(TEST_KEY).unwrap(),
        knobs: Mutex::default(),
        grants: Mutex::default(),
        methods: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    idp
}

/// The server's port is chosen when it starts, after its configuration: the provider sends
/// people back to this URL, and the visitor takes its path and query to the server.
const REDIRECT_URL: &str = "http://127.0.0.1/console/login/oidc/callback";

fn oidc_config(idp: &Idp, dir: &std::path::Path) -> OidcConfig {
    std::fs::create_dir_all(dir).unwrap();
    let secret_file = dir.join("oidc-client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    OidcConfig {
        issuer: idp.issuer.clone(),
        client_id: CLIENT_ID.to_owned(),
        client_secret_file: Some(secret_file),
        client_secret_env: None,
        redirect_url: REDIRECT_URL.to_owned(),
        tenant: "acme".to_owned(),
        user_claim: "email".to_owned(),
        roles_claim: "groups".to_owned(),
        roles: [
            ("siu-reviewers".to_owned(), "reviewer".to_owned()),
            ("compliance".to_owned(), "auditor".to_owned()),
        ]
        .into(),
    }
}

/// The whole round: the console's redirect, the provider's, then the callback. The callback's
/// status, Location and page.
async fn sso(visitor: &mut Visitor, idp: &Idp) -> (StatusCode, String, String) {
    let (status, location, _) = visitor.get("/console/login/oidc").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with(&format!("{}/authorize?", idp.issuer)),
        "{location}"
    );
    assert!(visitor.cookies.contains_key("arbiter_oidc"));
    let at_provider = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&location)
        .send()
        .await
        .unwrap();
    assert_eq!(at_provider.status(), StatusCode::SEE_OTHER);
    let back = at_provider.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap();
    let path = back
        .strip_prefix("http://127.0.0.1")
        .expect("the redirect URL");
    let answer = visitor.get(path).await;
    assert!(
        !visitor.cookies.contains_key("arbiter_oidc"),
        "the pending sign-in is cleared whatever the outcome"
    );
    answer
}

fn set(idp: &Idp, knobs: Knobs) {
    *idp.knobs.lock().unwrap() = knobs;
}

fn alice() -> Knobs {
    Knobs {
        user: "alice@example.com".into(),
        groups: vec!["staff".into(), "siu-reviewers".into()],
        ..Knobs::default()
    }
}

#[tokio::test]
async fn single_sign_on_opens_a_session_and_refuses_what_does_not_verify() {
    each_database(async |label, dir, url| {
        let idp = start_idp().await;
        let mut config = console_config(dir, &url);
        config.console.oidc = Some(oidc_config(&idp, dir));
        config.validate().unwrap();
        let server = TestServer::start(config).await;

        // The sign-in page offers single sign-on.
        let mut visitor = Visitor::new(&server.base);
        let (_, _, page) = visitor.get("/console").await;
        assert!(
            page.contains(r#"<a href="/console/login/oidc" id="sso">Sign in with single sign-on</a>"#),
            "{label}"
        );

        // A full sign-in: a session whose pages work, with the mapped role.
        set(&idp, alice());
        let (status, location, _) = sso(&mut visitor, &idp).await;
        assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"), "{label}");
        assert!(visitor.cookies.contains_key("arbiter_session"), "{label}");
        let (status, _, page) = visitor.get("/console").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(
            page.contains("Signed in as <strong>alice@example.com</strong> (reviewer) for tenant <strong>acme</strong>"),
            "{label}: {page}"
        );
        let (status, _, _) = visitor.get("/console/review").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let (status, _, _) = visitor.get("/console/audit").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}: a reviewer is not an auditor");
        assert_eq!(*idp.methods.lock().unwrap(), ["S256"], "{label}");
        // No password signs in the person single sign-on created.
        let mut guesser = Visitor::new(&server.base);
        let (status, _) = guesser.sign_in("acme", "alice@example.com", "!oidc").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");

        let refusals: [(Knobs, StatusCode, &str); 6] = [
            (Knobs { wrong_state: true, ..alice() }, StatusCode::BAD_REQUEST, "was not started here"),
            (Knobs { tamper: true, ..alice() }, StatusCode::UNAUTHORIZED, "signature does not verify"),
            (
                Knobs { audience: Some("another-client".into()), ..alice() },
                StatusCode::UNAUTHORIZED,
                "is for another client",
            ),
            (Knobs { expired: true, ..alice() }, StatusCode::UNAUTHORIZED, "has expired"),
            (
                Knobs { user: "bob@example.com".into(), groups: vec!["marketing".into()], ..Knobs::default() },
                StatusCode::FORBIDDEN,
                "none of your groups gives a role",
            ),
            (
                Knobs { wrong_challenge: true, ..alice() },
                StatusCode::UNAUTHORIZED,
                "would not exchange the sign-in",
            ),
        ];
        for (knobs, expected, text) in refusals {
            set(&idp, knobs);
            let mut visitor = Visitor::new(&server.base);
            let (status, _, page) = sso(&mut visitor, &idp).await;
            assert_eq!(status, expected, "{label}: {text}: {page}");
            assert!(page.contains(text), "{label}: {text}: {page}");
            assert!(!visitor.cookies.contains_key("arbiter_session"), "{label}: {text}");
            let (status, location, _) = visitor.get("/console/requests").await;
            assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"), "{label}");
        }

        // A callback with no sign-in under way is refused too.
        let mut stranger = Visitor::new(&server.base);
        let (status, _, page) = stranger.get("/console/login/oidc/callback?code=x&state=y").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(page.contains("was not started here"), "{label}");

        let events: Vec<(String, String, String)> = audit_events(&server, "acme")
            .await
            .iter()
            .filter(|e| e["event"].as_str().unwrap().starts_with("console."))
            .map(|e| {
                let word = e.get("method").or(e.get("reason")).and_then(|v| v.as_str());
                (
                    e["event"].as_str().unwrap().to_owned(),
                    e["actor"].as_str().unwrap().to_owned(),
                    word.unwrap_or("").to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String, String)> = [
            ("console.signed_in", "alice@example.com", "oidc"),
            ("console.sign_in_failed", "alice@example.com", "wrong_password"),
            ("console.sign_in_failed", "oidc", "oidc_state"),
            ("console.sign_in_failed", "oidc", "oidc_signature"),
            ("console.sign_in_failed", "oidc", "oidc_audience"),
            ("console.sign_in_failed", "oidc", "oidc_expired"),
            ("console.sign_in_failed", "bob@example.com", "oidc_no_role"),
            ("console.sign_in_failed", "oidc", "oidc_token_exchange"),
            ("console.sign_in_failed", "oidc", "oidc_state"),
        ]
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
        assert_eq!(events, expected, "{label}");
        let signed_in = &audit_events(&server, "acme").await;
        let signed_in = signed_in.iter().find(|e| e["event"] == "console.signed_in").unwrap();
        assert_eq!(signed_in["role"], "reviewer", "{label}");
        server.stop().await;
    })
    .await;
}

#[test]
fn the_configuration_names_the_key_that_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let idp_config = |edit: &dyn Fn(&mut OidcConfig)| {
        let mut oidc = OidcConfig {
            issuer: "https://id.example".into(),
            client_id: CLIENT_ID.into(),
            client_secret_file: None,
            client_secret_env: None,
            redirect_url: "https://arbiter.example/console/login/oidc/callback".into(),
            tenant: "acme".into(),
            user_claim: "email".into(),
            roles_claim: "groups".into(),
            roles: [("g".to_owned(), "admin".to_owned())].into(),
        };
        edit(&mut oidc);
        oidc.validate().unwrap_err().to_string()
    };
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s").unwrap();
    type Edit<'a> = &'a dyn Fn(&mut OidcConfig);
    let cases: [(Edit, &str); 5] = [
        (&|_| {}, "console.oidc.client_secret_file: set exactly one"),
        (&|o| o.issuer = "not a url".into(), "console.oidc.issuer:"),
        (
            &|o| {
                o.client_secret_file = Some(secret.clone());
                o.roles.insert("x".into(), "superuser".into());
            },
            "console.oidc.roles: \"x\" maps to \"superuser\"",
        ),
        (
            &|o| o.client_secret_env = Some("ARBITER_TEST_UNSET_OIDC_SECRET".into()),
            "console.oidc.client_secret_env: the environment variable",
        ),
        (
            &|o| {
                o.client_secret_file = Some(secret.clone());
                o.tenant = "a b".into();
            },
            "console.oidc.tenant:",
        ),
    ];
    for (edit, expected) in cases {
        let message = idp_config(edit);
        assert!(message.starts_with(expected), "{message}");
    }
}
