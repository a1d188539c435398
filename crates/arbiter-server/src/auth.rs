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
    use arbiter_core::KeyId;

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
}
