//! Authentication, authorization and rate limiting, as one route layer per scope.
//!
//! `Authorization: Bearer <key>`; a missing, unknown or revoked key gets 401 `INVALID_API_KEY`;
//! a key without the route's scope, or used from outside its networks, gets 403. Every
//! authenticated response carries the `X-RateLimit-*` headers; over the limit, 429 with
//! `Retry-After`.

use crate::config::Plan;
use crate::error::ApiError;
use crate::keys::{self, KeyRecord, Scope};
use crate::ratelimit::{RateStatus, Refusal};
use crate::state::AppState;
use arbiter_core::{ErrorCode, RequestId};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key used.
    pub key: KeyRecord,
    /// Its plan.
    pub plan: Plan,
}

/// The route layer: authenticates, checks `scope`, counts the request, and adds the rate-limit
/// headers to whatever the handler answers.
pub async fn require(
    State((state, scope)): State<(AppState, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    let (request_id, peer) = context(&request);
    match authorize(&state, request.headers(), peer, scope).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller.clone());
            admit(&state, &caller, &request_id, next.run(request)).await
        }
        Err(err) => err.for_request(&request_id).into_response(),
    }
}

/// [`require`] for a route whose images are taken from the day's quota by its handler once it
/// knows how many there are (a batch): the request is counted in its minute only.
pub async fn require_counting_images_later(
    State((state, scope)): State<(AppState, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    let (request_id, peer) = context(&request);
    match authorize(&state, request.headers(), peer, scope).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller.clone());
            admit_counting(&state, &caller, &request_id, 0, next.run(request)).await
        }
        Err(err) => err.for_request(&request_id).into_response(),
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
    let (request_id, peer) = context(&request);
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
            (Err(err), _) => return err.for_request(&request_id).into_response(),
            (Ok(caller), Some(worked)) => (caller, worked),
            (Ok(caller), None) => (caller, working.await),
        }
    };
    admit(state, &caller, &request_id, async {
        let response = match worked {
            Ok(worked) => then(caller.clone(), worked).await,
            Err(err) => Err(err),
        };
        response.unwrap_or_else(|err| err.for_request(&request_id).into_response())
    })
    .await
}

/// A request's id and the address it came from.
fn context(request: &Request) -> (RequestId, Option<SocketAddr>) {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_default();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    (request_id, peer)
}

/// Counts an authorized request against its plan and, within the limits, answers with `run`;
/// the rate-limit headers go on whatever is answered.
async fn admit(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    run: impl Future<Output = Response>,
) -> Response {
    admit_counting(state, caller, request_id, 1, run).await
}

/// [`admit`], counting `images` in the day's quota.
async fn admit_counting(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
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
            return ApiError::internal(&format!("cannot count the request: {err}"))
                .for_request(request_id)
                .into_response();
        }
    };
    let mut response = match refusal {
        Some(Refusal::RateLimit { retry_after }) => {
            let mut err = ApiError::new(
                ErrorCode::RateLimitExceeded,
                format!(
                    "more than {} requests this minute; retry after {retry_after} s",
                    caller.plan.per_minute
                ),
            );
            err.retry_after = Some(retry_after);
            err.for_request(request_id).into_response()
        }
        Some(Refusal::Quota { retry_after }) => {
            let mut err =
                ApiError::new(ErrorCode::QuotaExceeded, quota_message(caller.plan.per_day));
            err.retry_after = Some(retry_after);
            err.for_request(request_id).into_response()
        }
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
