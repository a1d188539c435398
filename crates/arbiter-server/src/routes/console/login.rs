//! `/console`, `/console/login`, `/console/logout`: signing in and out, and the start page;
//! `/console/login/oidc` and its callback: single sign-on with OpenID Connect, when
//! `console.oidc` is configured. The pages are `arbiter_console::pages::login`'s and the
//! protocol `arbiter_console::oidc`'s; this module reads and sets the cookies (the session's,
//! the sign-in form's CSRF token, the single sign-on under way).

use super::html::answer;
use super::{LOGIN_CSRF_COOKIE, SESSION_COOKIE, cookie, see_other, with_cookies};
use crate::state::AppState;
use arbiter_console::oidc::{Callback, PENDING_SECS};
use arbiter_console::pages::form;
use arbiter_console::pages::login::{self, SignIn, SignOutForm, SsoStart};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How long the sign-in form's CSRF cookie lasts.
const LOGIN_CSRF_SECS: u64 = 3600;
/// The cookie holding the single sign-on under way.
pub const OIDC_COOKIE: &str = "arbiter_oidc";

/// A sign-in's answer: the form with its CSRF cookie, a page, or the start page with the new
/// session's cookie; then `clear` (the cookie the sign-in no longer needs) is cleared, except
/// with the form (`LOGIN_CSRF_COOKIE` then clears nothing on a page, as the form's token stays).
fn signed_in(state: &AppState, answer_of: SignIn, clear: &str) -> Response {
    match answer_of {
        SignIn::Page(page) if clear == LOGIN_CSRF_COOKIE => answer(page),
        SignIn::Page(page) => with_cookies(state, answer(page), &[(clear, "", 0)]),
        SignIn::Form { page, csrf } => with_cookies(
            state,
            answer(page),
            &[(LOGIN_CSRF_COOKIE, &csrf, LOGIN_CSRF_SECS)],
        ),
        SignIn::SignedIn { token } => {
            let ttl = state.config.console.session_ttl_secs;
            let cookies = [(SESSION_COOKIE, token.as_str(), ttl), (clear, "", 0)];
            with_cookies(state, see_other("/console"), &cookies)
        }
    }
}

/// `GET /console` and `GET /console/login`: the sign-in page for a visitor, the start page for
/// a signed-in person.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match super::current(&state, &headers).await {
        Ok(Some(session)) => answer(login::start(&session)),
        Ok(None) => {
            let csrf = cookie(&headers, LOGIN_CSRF_COOKIE);
            let sso = state.config.console.oidc.is_some();
            let form = login::sign_in_form(sso, csrf, 200, None);
            signed_in(&state, form, LOGIN_CSRF_COOKIE)
        }
        Err(response) => response,
    }
}

/// `POST /console/login`: signs in, sets the session cookie and goes to the start page.
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (db, now) = (state.pipeline.db(), state.clock.now());
    let csrf = cookie(&headers, LOGIN_CSRF_COOKIE);
    let answer_of = login::sign_in(db, &state.config.console, csrf, &body, now).await;
    signed_in(&state, answer_of, LOGIN_CSRF_COOKIE)
}

/// `POST /console/logout`: ends the session, clears the cookie, back to the sign-in page.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let session = match super::current(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, "/console")]).into_response();
        }
        Err(response) => return response,
    };
    if let Err(page) = form::posted::<SignOutForm>(&session, &body) {
        return answer(page);
    }
    let token = cookie(&headers, SESSION_COOKIE);
    match login::sign_out(state.pipeline.db(), token, state.clock.now()).await {
        Ok(()) => with_cookies(&state, see_other("/console"), &[(SESSION_COOKIE, "", 0)]),
        Err(page) => answer(page),
    }
}

/// `GET /console/login/oidc`: starts a sign-in at the provider.
pub async fn sso_start(State(state): State<AppState>) -> Response {
    match login::sso_start(state.config.console.oidc.as_ref(), state.clock.now()).await {
        SsoStart::Page(page) => answer(page),
        SsoStart::Redirect(to) => {
            let cookies = [(OIDC_COOKIE, to.pending.as_str(), PENDING_SECS)];
            with_cookies(&state, see_other(&to.url), &cookies)
        }
    }
}

/// `GET /console/login/oidc/callback`: checks the answer, exchanges the code, verifies the
/// ID token and opens a session.
pub async fn sso_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(given): Query<Callback>,
) -> Response {
    if state.config.console.oidc.is_none() {
        // No sign-in can be under way: no cookie to clear.
        return answer(login::sso_not_configured());
    }
    let (db, now) = (state.pipeline.db(), state.clock.now());
    let pending = cookie(&headers, OIDC_COOKIE);
    let answer_of = login::sso_callback(db, &state.config.console, pending, given, now).await;
    // The sign-in under way is over either way: its cookie is cleared.
    signed_in(&state, answer_of, OIDC_COOKIE)
}
