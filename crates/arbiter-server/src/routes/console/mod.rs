//! `/console`: the console for people, server-rendered HTML over the same engine and database
//! as the API. Sign-in and sessions are `arbiter_console`'s; this module is the HTTP side: the
//! session cookie, CSRF checks on every form, the role of each page, and the pages themselves.
//!
//! | path | who | what |
//! |---|---|---|
//! | `/console` | anyone | the sign-in page, or the start page once signed in |
//! | `/console/login`, `/console/logout` | anyone / signed in | sign in (`tenant`, `user`, `password`, `csrf`), sign out |
//! | `/console/login/oidc`, `/console/login/oidc/callback` | anyone | single sign-on with OpenID Connect, when `console.oidc` is set |
//! | `/console/scan` | analyst, admin | up to 10 images: verdicts, scores, evidence, heatmap, decision |
//! | `/console/requests`, `/console/requests/{id}` | every role | searchable requests; one request's decision, rules, policy and trail |
//! | `/console/requests/{id}/report.pdf`, `/console/<cases>/{id}/report.pdf` | every role | the report cards (PDF), as the API serves them |
//! | `/console/requests/{id}/replay` (POST) | every role | re-decides the recorded facts under the recorded policy version, as `arbiter replay` |
//! | `/console/<cases>`, `/console/<cases>/{case_id}` | every role | for each flow that keeps cases, at its console path (`/console/claims`, `/console/kyc`): its searchable cases; one case's images, assessment, reviews and trail |
//! | `/console/review?queue=Q` | reviewer, admin | claim and resolve review items |
//! | `/console/audit` | auditor, admin | entries, checkpoints, verification, the export bundle |
//! | `/console/policies` | admin | live policies, their files and a simulator |
//! | `/console/policies/proposals`, `/console/policies/proposals/{id}` | admin | propose a version (YAML); a proposal's diff and backtest; approve (a second admin) or reject |
//! | `/console/users` | admin | the tenant's console users |

// A page's early exits are whole responses (a redirect, a 403 page), returned as `Err` and
// answered at once; they are made once per request, so their size does not matter.
#![allow(clippy::result_large_err)]

mod audit;
mod cases;
mod html;
mod login;
mod oidc;
mod policies;
mod proposals;
mod reports;
mod requests;
mod review;
mod scan;
mod users;

use crate::state::AppState;
use arbiter_console::{Area, Session};
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

pub use html::escape;

/// The session cookie.
pub const SESSION_COOKIE: &str = "arbiter_session";
/// The sign-in form's CSRF cookie (before there is a session).
pub const LOGIN_CSRF_COOKIE: &str = "arbiter_login_csrf";
/// Images a scan takes at once.
pub const MAX_SCAN_FILES: usize = arbiter_console::pages::scan::MAX_FILES;

/// The console's routes; none when `console.enabled` is false.
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.config.console.enabled {
        return Router::new();
    }
    let scan_body = usize::try_from(state.config.limits.max_image_bytes)
        .unwrap_or(usize::MAX)
        .saturating_mul(MAX_SCAN_FILES)
        .saturating_add(1 << 20);
    Router::new()
        .route("/console", get(login::home))
        .route("/console/login", get(login::page).post(login::sign_in))
        .route("/console/logout", post(login::sign_out))
        .route("/console/login/oidc", get(oidc::start))
        .route("/console/login/oidc/callback", get(oidc::callback))
        .route("/console/console.css", get(html::css))
        .route("/console/console.js", get(html::js))
        .route(
            "/console/scan",
            get(scan::page)
                .post(scan::submit)
                .layer(DefaultBodyLimit::max(scan_body)),
        )
        .route("/console/requests", get(requests::list))
        .route("/console/requests/{request_id}", get(requests::detail))
        .route(
            "/console/requests/{request_id}/report.pdf",
            get(reports::request),
        )
        .route(
            "/console/requests/{request_id}/replay",
            post(requests::replay),
        )
        .route("/console/review", get(review::page))
        .route("/console/review/{item_id}/claim", post(review::claim))
        .route("/console/review/{item_id}/resolve", post(review::resolve))
        .route("/console/audit", get(audit::page))
        .route("/console/audit/export", get(audit::export))
        .route("/console/policies", get(policies::page))
        .route("/console/policies/simulate", post(policies::simulate))
        .route(
            "/console/policies/proposals",
            get(proposals::list).post(proposals::propose),
        )
        .route(
            "/console/policies/proposals/{proposal_id}",
            get(proposals::detail),
        )
        .route(
            "/console/policies/proposals/{proposal_id}/approve",
            post(proposals::approve),
        )
        .route(
            "/console/policies/proposals/{proposal_id}/reject",
            post(proposals::reject),
        )
        .route("/console/users", get(users::page).post(users::create))
        .route("/console/users/disable", post(users::disable))
        .merge(cases::router(state))
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value scoped to the console: HttpOnly, SameSite=Lax, and Secure when
/// `console.secure_cookies`.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: u64) -> String {
    let secure = if state.config.console.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

/// The signed-in person, if any.
async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let found =
        arbiter_console::sessions::lookup(state.pipeline.db().conn(), token, state.clock.now())
            .await
            .map_err(|err| html::server_error(&err))?;
    Ok(found.map(|session| Session {
        cases: arbiter_console::pages::cases::kinds(state.pipeline.flows()),
        ..session
    }))
}

/// The signed-in person allowed into `area`: a visitor is sent to the sign-in page, a person
/// whose role does not reach the area gets a 403 page.
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    area: Area,
) -> Result<Session, Response> {
    let Some(session) = current(state, headers).await? else {
        return Err((
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/console"),
                (header::CACHE_CONTROL, "no-store"),
            ],
        )
            .into_response());
    };
    if !session.role.may(area) {
        return Err(html::refused(&session));
    }
    Ok(session)
}

/// A form body, as `T`; a malformed one gets a 400 page.
pub fn form<T: DeserializeOwned>(session: Option<&Session>, body: &Bytes) -> Result<T, Response> {
    serde_urlencoded::from_bytes(body).map_err(|err| {
        html::message(
            StatusCode::BAD_REQUEST,
            session,
            "Bad form",
            &format!("The form could not be read: {err}."),
        )
    })
}

/// The signed-in person allowed into `area` and their posted form, read as `T` once its CSRF
/// token is the session's; each refusal is the page `require`, `form` or `check_csrf` gives.
pub async fn posted<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    area: Area,
    body: &Bytes,
) -> Result<(Session, T), Response> {
    #[derive(serde::Deserialize)]
    struct Token {
        csrf: Option<String>,
    }
    let session = require(state, headers, area).await?;
    let token: Token = form(Some(&session), body)?;
    check_csrf(&session, token.csrf.as_deref())?;
    let given = form(Some(&session), body)?;
    Ok((session, given))
}

/// Refuses a form whose CSRF token is missing or not the session's.
pub fn check_csrf(session: &Session, given: Option<&str>) -> Result<(), Response> {
    match given {
        Some(given) if arbiter_console::token::equal(given, &session.csrf) => Ok(()),
        _ => Err(csrf_refused(Some(session))),
    }
}

/// The 403 page for a form without a valid CSRF token.
pub fn csrf_refused(session: Option<&Session>) -> Response {
    html::message(
        StatusCode::FORBIDDEN,
        session,
        "Form refused",
        "The form's security token is missing or out of date. Reload the page and try again.",
    )
}
