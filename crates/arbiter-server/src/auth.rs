//! Authentication, authorization and rate limiting, as one route layer per scope.
//!
//! `Authorization: Bearer <key>`; a missing, unknown or revoked key gets 401 `INVALID_API_KEY`;
//! a key without the route's scope, or used from outside its networks, gets 403. Every
//! authenticated response carries the `X-RateLimit-*` headers; over the limit, 429 with
//! `Retry-After`.

use crate::error::ApiError;
use crate::keys::{self, KeyRecord, Scope};
use crate::ratelimit::{RateStatus, Refusal};
use crate::state::AppState;
use arbiter_config::Plan;
use arbiter_core::ErrorCode;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Type};
use utoipa_axum::router::OpenApiRouter;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key used.
    pub key: KeyRecord,
    /// Its plan.
    pub plan: Plan,
}

/// `router`'s routes behind `scope`: each request goes through [`require`], and each operation
/// is documented with the bearer key and the answers that layer may give.
pub fn scoped(
    router: OpenApiRouter<AppState>,
    state: &AppState,
    scope: Scope,
) -> OpenApiRouter<AppState> {
    scoped_as(router, state, scope, KeyScheme::BEARER)
}

/// [`scoped`], for callers presenting their key as `scheme` states.
pub fn scoped_as(
    router: OpenApiRouter<AppState>,
    state: &AppState,
    scope: Scope,
    scheme: KeyScheme,
) -> OpenApiRouter<AppState> {
    let router = router.route_layer(from_fn_with_state((state.clone(), scope), require));
    documented(router, scope, scheme)
}

/// `router`'s operations documented as behind `scope` (for routes authorized another way:
/// in the handler, or counting images later): the key's security requirement and the 401, 403
/// and 429 of [`refusals`].
pub fn documented(
    mut router: OpenApiRouter<AppState>,
    scope: Scope,
    scheme: KeyScheme,
) -> OpenApiRouter<AppState> {
    for operation in operations(router.get_openapi_mut()) {
        let key = SecurityRequirement::new(scheme.name, Vec::<String>::new());
        operation.security = Some(vec![key]);
        refusals(operation, scope, scheme);
    }
    router
}

/// Every operation of a document.
fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        let methods = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        methods.into_iter().flatten()
    })
}

/// How callers of a route present their key, as the API document states it.
#[derive(Debug, Clone, Copy)]
pub struct KeyScheme {
    /// The security scheme.
    pub name: &'static str,
    /// The component schema of a refusal's body; none: a JSON object in the route's own shape.
    pub error_body: Option<&'static str>,
}

impl KeyScheme {
    /// `Authorization: Bearer <key>`, refused with the API's error body.
    pub const BEARER: Self = Self {
        name: "bearer",
        error_body: Some("ErrorBody"),
    };
}

/// Documents on `operation` the answers the authentication layer may give (those it states
/// already stay): 401, 403 for a key without `scope` or used from outside its networks, and 429.
fn refusals(operation: &mut Operation, scope: Scope, scheme: KeyScheme) {
    let refusals = [
        ("401", "Missing, unknown or revoked API key".to_owned()),
        (
            "403",
            format!("The key lacks the {scope} scope, or is used from outside its networks"),
        ),
        (
            "429",
            "Rate limit or daily quota exceeded (see Retry-After)".to_owned(),
        ),
    ];
    for (status, description) in refusals {
        let schema = match scheme.error_body {
            Some(name) => RefOr::Ref(Ref::from_schema_name(name)),
            None => ObjectBuilder::new().schema_type(Type::Object).into(),
        };
        let content = ContentBuilder::new().schema(Some(schema)).build();
        let response = ResponseBuilder::new()
            .description(description)
            .content("application/json", content);
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(response.build()));
    }
}

/// The route layer: authenticates, checks `scope`, counts the request, and adds the rate-limit
/// headers to whatever the handler answers.
pub async fn require(
    State((state, scope)): State<(AppState, Scope)>,
    request: Request,
    next: Next,
) -> Response {
    guard(&state, scope, 1, request, next).await
}

/// [`require`] for a route whose images are taken from the day's quota by its handler once it
/// knows how many there are (a batch): the request is counted in its minute only.
pub async fn require_counting_images_later(
    State((state, scope)): State<(AppState, Scope)>,
    request: Request,
    next: Next,
) -> Response {
    guard(&state, scope, 0, request, next).await
}

/// Authorizes a request for `scope` and admits it, counting `images` in the day's quota.
async fn guard(
    state: &AppState,
    scope: Scope,
    images: u64,
    mut request: Request,
    next: Next,
) -> Response {
    match authorize(state, request.headers(), peer(&request), scope).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller.clone());
            admit(state, &caller, images, next.run(request)).await
        }
        Err(err) => err.into_response(),
    }
}

/// [`require`] for a handler whose work on the request can start before its caller is known:
/// `work` (reading the body, checking and hashing the image) runs while the key is looked up, so
/// neither waits for the other; then the request is counted and `then` runs with the caller and
/// what `work` gave (or its error is answered). A request refused for its key is answered at
/// once and its work is dropped: nothing is analysed for a caller not yet known. A body's limit
/// is the route's `DefaultBodyLimit`.
pub async fn require_while<T, W, R>(
    state: &AppState,
    scope: Scope,
    request: Request,
    work: impl FnOnce(Request) -> W,
    then: impl FnOnce(Caller, T) -> R,
) -> Response
where
    W: Future<Output = Result<T, ApiError>>,
    R: Future<Output = Result<Response, ApiError>>,
{
    let peer = peer(&request);
    let (parts, body) = request.into_parts();
    let (caller, worked) = {
        let authorized = authorize(state, &parts.headers, peer, scope);
        let working = work(Request::from_parts(parts.clone(), body));
        tokio::pin!(authorized, working);
        let (caller, worked) = tokio::select! {
            caller = &mut authorized => (caller, None),
            worked = &mut working => (authorized.await, Some(worked)),
        };
        match (caller, worked) {
            (Err(err), _) => return err.into_response(),
            (Ok(caller), Some(worked)) => (caller, worked),
            (Ok(caller), None) => (caller, working.await),
        }
    };
    admit(state, &caller, 1, async {
        let response = match worked {
            Ok(worked) => then(caller.clone(), worked).await,
            Err(err) => Err(err),
        };
        response.unwrap_or_else(IntoResponse::into_response)
    })
    .await
}

/// The address a request came from.
fn peer(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

/// Counts an authorized request against its plan (and `images` in the day's quota) and, within
/// the limits, answers with `run`; the rate-limit headers go on whatever is answered. Error
/// bodies name the request from the request-context layer.
async fn admit(
    state: &AppState,
    caller: &Caller,
    images: u64,
    run: impl Future<Output = Response>,
) -> Response {
    let counted = state
        .limiter
        .check_counting(&caller.key.tenant, &caller.plan, images)
        .await;
    let (status, refusal) = match counted {
        Ok(counted) => counted,
        Err(err) => {
            return ApiError::internal(&format!("cannot count the request: {err}")).into_response();
        }
    };
    let mut response = match refusal {
        Some(Refusal::RateLimit { retry_after }) => ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                ErrorCode::RateLimitExceeded,
                format!(
                    "more than {} requests this minute; retry after {retry_after} s",
                    caller.plan.per_minute
                ),
            )
        }
        .into_response(),
        Some(Refusal::Quota { retry_after }) => ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(ErrorCode::QuotaExceeded, quota_message(caller.plan.per_day))
        }
        .into_response(),
        None => run.await,
    };
    add_rate_headers(response.headers_mut(), status);
    response
}

/// What a caller over the day's quota is told.
pub(crate) fn quota_message(per_day: u32) -> String {
    format!(
        "the daily quota of {per_day} is spent (each image counts, a batch's one by one); \
         it renews at 00:00 UTC"
    )
}

fn add_rate_headers(headers: &mut HeaderMap, status: RateStatus) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(status.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(status.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(status.reset));
}

/// Whether a key may be used from `peer`. A key limited to networks is refused when the
/// caller's address is not known: the check fails closed.
fn check_network(key: &KeyRecord, peer: Option<SocketAddr>) -> Result<(), ApiError> {
    if key.allow_ips.is_empty() {
        return Ok(());
    }
    match peer {
        Some(peer) if key.allows_ip(peer.ip()) => Ok(()),
        Some(peer) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this API key may not be used from {}", peer.ip()),
        )),
        None => Err(ApiError::new(
            ErrorCode::Forbidden,
            "this API key may be used only from its networks, and the caller's address is unknown",
        )),
    }
}

/// The caller behind a request's bearer key, if it may use `scope` from `peer`.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    scope: Scope,
) -> Result<Caller, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidApiKey,
            "missing, unknown or revoked API key; send Authorization: Bearer <key>",
        )
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(invalid)?;
    let key = keys::authenticate(&state.key_lookups, presented)
        .await?
        .ok_or_else(invalid)?;
    // The request's log lines name the tenant from here on.
    tracing::Span::current().record("tenant", tracing::field::display(&key.tenant));
    if !key.scopes.contains(&scope) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this API key lacks the {scope} scope"),
        ));
    }
    check_network(&key, peer)?;
    let plan = state
        .config
        .rate_limits
        .plans
        .get(&key.plan)
        .copied()
        .ok_or_else(|| {
            ApiError::internal(&format!("key {} has unknown plan {}", key.id, key.plan))
        })?;
    Ok(Caller { key, plan })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{each_database, json, mint, new_key, state};
    use arbiter_core::KeyId;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use axum::routing::get;
    use serde_json::json;
    use tower::ServiceExt as _;
    use utoipa_axum::routes;

    fn key(allow_ips: &[&str]) -> KeyRecord {
        KeyRecord {
            id: KeyId::new(),
            tenant: "acme".into(),
            name: "n".into(),
            plan: "starter".into(),
            scopes: vec![Scope::Analyze],
            allow_ips: allow_ips.iter().map(|net| net.parse().unwrap()).collect(),
            created_at: chrono::Utc::now(),
            revoked_at: None,
            flow: None,
        }
    }

    #[test]
    fn a_key_limited_to_networks_fails_closed_without_a_peer_address() {
        let limited = key(&["10.1.0.0/16"]);
        assert!(check_network(&limited, Some("10.1.2.3:5000".parse().unwrap())).is_ok());
        let elsewhere = check_network(&limited, Some("10.2.0.1:5000".parse().unwrap()));
        assert_eq!(elsewhere.unwrap_err().code, ErrorCode::Forbidden);
        let unknown = check_network(&limited, None).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::Forbidden);
        assert!(
            unknown.message.contains("address is unknown"),
            "{}",
            unknown.message
        );
        // A key without networks is used from anywhere, known or not.
        assert!(check_network(&key(&[]), None).is_ok());
    }

    fn bearer(secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {secret}")).unwrap();
        headers.insert(header::AUTHORIZATION, value);
        headers
    }

    #[tokio::test]
    async fn a_request_without_a_live_bearer_key_is_refused_as_an_invalid_key() {
        each_database(
            |_| {},
            async |db, state| {
                let (record, secret) = mint(&state, new_key(&[Scope::Analyze])).await;
                let mut basic = HeaderMap::new();
                basic.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
                let wrong = format!("{}x", &secret[..secret.len() - 1]);
                for headers in [
                    HeaderMap::new(),
                    basic,
                    bearer("arb_nonsense"),
                    bearer(&wrong),
                ] {
                    let err = authorize(&state, &headers, None, Scope::Analyze)
                        .await
                        .unwrap_err();
                    assert_eq!(err.code, ErrorCode::InvalidApiKey, "{db}: {headers:?}");
                    assert_eq!(
                        err.message,
                        "missing, unknown or revoked API key; send Authorization: Bearer <key>"
                    );
                }
                // The live key is admitted (blanks around it do not matter) until it is revoked.
                let padded = bearer(&format!(" {secret} "));
                let caller = authorize(&state, &padded, None, Scope::Analyze)
                    .await
                    .unwrap();
                assert_eq!(caller.key.id, record.id, "{db}");
                keys::revoke(
                    state.pipeline.db().conn(),
                    &record.id,
                    "test",
                    chrono::Utc::now(),
                )
                .await
                .unwrap()
                .unwrap();
                let revoked = authorize(&state, &bearer(&secret), None, Scope::Analyze).await;
                assert_eq!(revoked.unwrap_err().code, ErrorCode::InvalidApiKey, "{db}");
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_key_is_admitted_with_its_plan_for_its_scopes_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let scopes = [Scope::Analyze, Scope::RequestsRead];
        let (record, secret) = mint(&state, new_key(&scopes)).await;
        let caller = authorize(&state, &bearer(&secret), None, Scope::RequestsRead)
            .await
            .unwrap();
        assert_eq!(caller.key.tenant, "acme");
        assert_eq!(caller.key.id, record.id);
        assert_eq!(caller.plan, state.config.rate_limits.plans["starter"]);
        let err = authorize(&state, &bearer(&secret), None, Scope::AuditRead)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert_eq!(err.message, "this API key lacks the audit:read scope");
    }

    #[tokio::test]
    async fn a_key_is_used_only_from_its_networks() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let limited = limited_to(&["10.1.0.0/16"]);
        let (_, secret) = mint(&state, limited).await;
        let from = |addr: &str| Some(addr.parse::<SocketAddr>().unwrap());
        let key = bearer(&secret);
        let inside = authorize(&state, &key, from("10.1.2.3:4000"), Scope::Analyze);
        assert!(inside.await.is_ok());
        let outside = authorize(
            &state,
            &bearer(&secret),
            from("10.2.0.1:4000"),
            Scope::Analyze,
        )
        .await
        .unwrap_err();
        assert_eq!(outside.code, ErrorCode::Forbidden);
        assert_eq!(
            outside.message,
            "this API key may not be used from 10.2.0.1"
        );
        // An IPv4 caller seen as an IPv6-mapped address is the same caller.
        let mapped = from("[::ffff:10.1.9.9]:4000");
        assert!(
            authorize(&state, &bearer(&secret), mapped, Scope::Analyze)
                .await
                .is_ok()
        );
    }

    /// A key of [`new_key`] for `analyze`, limited to `nets`.
    fn limited_to(nets: &[&str]) -> keys::NewKey {
        keys::NewKey {
            allow_ips: nets.iter().map(|net| net.parse().unwrap()).collect(),
            ..new_key(&[Scope::Analyze])
        }
    }

    #[tokio::test]
    async fn a_key_on_a_plan_the_configuration_lacks_is_an_internal_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let gold = keys::NewKey {
            plan: "gold".into(),
            ..new_key(&[Scope::Analyze])
        };
        let (_, secret) = mint(&state, gold).await;
        let err = authorize(&state, &bearer(&secret), None, Scope::Analyze)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InternalError);
        assert!(
            !err.message.contains("gold"),
            "no internals: {}",
            err.message
        );
    }

    /// The tenant of the caller, behind `scope`, as a router for `state`.
    fn probe(state: &AppState, scope: Scope) -> axum::Router {
        let route = OpenApiRouter::new().route(
            "/probe",
            get(
                |axum::Extension(caller): axum::Extension<Caller>| async move { caller.key.tenant },
            ),
        );
        let (router, _) = scoped(route, state, scope).split_for_parts();
        router.with_state(state.clone())
    }

    fn get_probe(secret: &str) -> HttpRequest<Body> {
        HttpRequest::get("/probe")
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .body(Body::empty())
            .unwrap()
    }

    fn rate_headers(response: &Response) -> [Option<String>; 3] {
        [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ]
        .map(|name| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        })
    }

    #[tokio::test]
    async fn a_scoped_route_counts_each_request_and_refuses_past_the_minute_limit() {
        let starter_twice_a_minute = |config: &mut arbiter_config::Config| {
            let plan = config.rate_limits.plans.get_mut("starter").unwrap();
            plan.per_minute = 2;
        };
        each_database(starter_twice_a_minute, async |db, state| {
            let (_, secret) = mint(&state, new_key(&[Scope::Analyze])).await;
            let reset = (crate::testing::now().timestamp() / 60 + 1) * 60;
            for remaining in ["1", "0"] {
                let response = probe(&state, Scope::Analyze)
                    .oneshot(get_probe(&secret))
                    .await;
                let response = response.unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{db}");
                let expected = [
                    Some("2".into()),
                    Some(remaining.into()),
                    Some(reset.to_string()),
                ];
                assert_eq!(rate_headers(&response), expected, "{db}");
            }
            let refused = probe(&state, Scope::Analyze)
                .oneshot(get_probe(&secret))
                .await
                .unwrap();
            assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{db}");
            // The clock stands 10 s into its minute: 50 s to wait.
            assert_eq!(refused.headers()[header::RETRY_AFTER], "50", "{db}");
            assert_eq!(rate_headers(&refused)[1].as_deref(), Some("0"), "{db}");
            let body = json(refused).await;
            assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED");
            assert_eq!(
                body["error"]["message"],
                "more than 2 requests this minute; retry after 50 s"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_scoped_route_refuses_past_the_daily_quota_until_midnight() {
        let once_a_day = |config: &mut arbiter_config::Config| {
            config.rate_limits.plans.get_mut("starter").unwrap().per_day = 1;
        };
        each_database(once_a_day, async |db, state| {
            let (_, secret) = mint(&state, new_key(&[Scope::Analyze])).await;
            let first = probe(&state, Scope::Analyze)
                .oneshot(get_probe(&secret))
                .await
                .unwrap();
            assert_eq!(first.status(), StatusCode::OK, "{db}");
            let refused = probe(&state, Scope::Analyze)
                .oneshot(get_probe(&secret))
                .await
                .unwrap();
            assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{db}");
            // 10:15:10 UTC: 13 h 44 min 50 s to midnight.
            let to_midnight = 13 * 3600 + 44 * 60 + 50;
            assert_eq!(
                refused.headers()[header::RETRY_AFTER],
                to_midnight.to_string()
            );
            let body = json(refused).await;
            assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED");
            assert_eq!(body["error"]["message"], quota_message(1));
        })
        .await;
    }

    #[tokio::test]
    async fn a_refused_key_is_answered_without_rate_headers_or_running_the_route() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let (_, secret) = mint(&state, new_key(&[Scope::Review])).await;
        let router = probe(&state, Scope::Analyze);
        let forbidden = router.clone().oneshot(get_probe(&secret)).await.unwrap();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(rate_headers(&forbidden), [None, None, None]);
        assert_eq!(json(forbidden).await["error"]["code"], "FORBIDDEN");
        let unknown = router.oneshot(get_probe("arb_nope")).await.unwrap();
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(json(unknown).await["error"]["code"], "INVALID_API_KEY");
        // Neither was counted: the key's first admitted request leaves 59 of 60.
        let (_, analyst) = mint(&state, new_key(&[Scope::Analyze])).await;
        let admitted = probe(&state, Scope::Analyze)
            .oneshot(get_probe(&analyst))
            .await
            .unwrap();
        assert_eq!(rate_headers(&admitted)[1].as_deref(), Some("59"));
    }

    #[tokio::test]
    async fn a_scoped_route_checks_the_networks_against_the_connection_address() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let (_, secret) = mint(&state, limited_to(&["127.0.0.0/8"])).await;
        let router = probe(&state, Scope::Analyze);
        // Without the connection's address the key is refused (fails closed).
        let unknown = router.clone().oneshot(get_probe(&secret)).await.unwrap();
        assert_eq!(unknown.status(), StatusCode::FORBIDDEN);
        let mut local = get_probe(&secret);
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        local.extensions_mut().insert(ConnectInfo(peer));
        let response = router.oneshot(local).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        assert_eq!(&body[..], b"acme");
    }

    /// The document of `/healthz` and of the RD upload (which states a 401 and a 403 of its
    /// own), documented behind `scope` as `scheme` presents keys.
    fn documented_json(scope: Scope, scheme: KeyScheme) -> serde_json::Value {
        let router = OpenApiRouter::<AppState>::new()
            .routes(routes!(crate::routes::health::healthz))
            .routes(routes!(crate::routes::rd::upload));
        serde_json::to_value(documented(router, scope, scheme).into_openapi()).unwrap()
    }

    #[test]
    fn a_documented_operation_names_its_key_scope_and_refusals() {
        let doc = documented_json(Scope::AuditRead, KeyScheme::BEARER);
        let healthz = &doc["paths"]["/healthz"]["get"];
        assert_eq!(healthz["security"], json!([{"bearer": []}]));
        let responses = &healthz["responses"];
        let body =
            json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
        let described = |status: &str| responses[status]["description"].clone();
        assert_eq!(described("401"), "Missing, unknown or revoked API key");
        assert_eq!(
            described("403"),
            "The key lacks the audit:read scope, or is used from outside its networks"
        );
        assert_eq!(
            described("429"),
            "Rate limit or daily quota exceeded (see Retry-After)"
        );
        for status in ["401", "403", "429"] {
            assert_eq!(responses[status]["content"], body, "{status}");
        }
        assert_eq!(responses["200"]["description"], "Up");
    }

    #[test]
    fn a_documented_operation_keeps_the_answers_it_states_and_a_scheme_s_own_body() {
        let x_api_key = KeyScheme {
            name: "x_api_key",
            error_body: None,
        };
        let doc = documented_json(Scope::Analyze, x_api_key);
        let upload = &doc["paths"]["/api/files/upload/{request_id}"]["put"];
        assert_eq!(upload["security"], json!([{"x_api_key": []}]));
        let responses = &upload["responses"];
        assert_eq!(
            responses["403"]["description"],
            "An unknown, wrong or expired upload URL"
        );
        assert_eq!(
            responses["401"]["description"],
            "The key that presigned the upload is revoked"
        );
        assert_eq!(
            responses["429"]["content"]["application/json"]["schema"],
            json!({"type": "object"})
        );
    }
}
