//! `/console`, `/console/login`, `/console/logout`: signing in and out, and the start page.
//! The pages are `arbiter_console::pages::login`'s; this module reads and sets the cookies.

use super::html::{self, answer};
use super::{LOGIN_CSRF_COOKIE, SESSION_COOKIE, cookie, set_cookie};
use crate::state::AppState;
use arbiter_console::pages::login::{self, SignIn, SignInForm, SignOutForm};
use arbiter_console::token;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How long the sign-in form's CSRF cookie lasts.
const LOGIN_CSRF_SECS: u64 = 3600;

/// A `303 See Other` to `location`, not cached.
pub(super) fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
        .into_response()
}

/// `response` with `Set-Cookie` values appended.
pub(super) fn with_cookies(mut response: Response, cookies: &[String]) -> Response {
    for value in cookies {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A sign-in's answer: the form with its CSRF cookie, a page, or the start page with the new
/// session's cookie; then `clear` (the cookie the sign-in no longer needs) is cleared, except
/// with the form (`LOGIN_CSRF_COOKIE` then clears nothing on a page, as the form's token stays).
pub(super) fn signed_in(state: &AppState, answer_of: SignIn, clear: &str) -> Response {
    match answer_of {
        SignIn::Page(page) if clear == LOGIN_CSRF_COOKIE => answer(page),
        SignIn::Page(page) => with_cookies(answer(page), &[set_cookie(state, clear, "", 0)]),
        SignIn::Form { page, csrf } => with_cookies(
            answer(page),
            &[set_cookie(state, LOGIN_CSRF_COOKIE, &csrf, LOGIN_CSRF_SECS)],
        ),
        SignIn::SignedIn { token } => with_cookies(
            see_other("/console"),
            &[
                set_cookie(
                    state,
                    SESSION_COOKIE,
                    &token,
                    state.config.console.session_ttl_secs,
                ),
                set_cookie(state, clear, "", 0),
            ],
        ),
    }
}

/// `GET /console`: the sign-in page for a visitor, the start page for a signed-in person.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match super::current(&state, &headers).await {
        Ok(Some(session)) => answer(login::start(&session)),
        Ok(None) => signed_in(
            &state,
            login::sign_in_form(
                state.config.console.oidc.is_some(),
                cookie(&headers, LOGIN_CSRF_COOKIE),
                200,
                None,
            ),
            LOGIN_CSRF_COOKIE,
        ),
        Err(response) => response,
    }
}

/// `GET /console/login`: the sign-in page (or the start page when signed in already).
pub async fn page(state: State<AppState>, headers: HeaderMap) -> Response {
    home(state, headers).await
}

/// `POST /console/login`: signs in, sets the session cookie and goes to the start page.
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form: SignInForm = match super::form(None, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE);
    let csrf_ok = matches!(
        (expected, form.csrf.as_deref()),
        (Some(expected), Some(given)) if token::equal(expected, given)
    );
    if !csrf_ok {
        return super::csrf_refused(None);
    }
    let answer_of = login::sign_in(
        state.pipeline.db(),
        &state.config.console,
        expected,
        form,
        state.clock.now(),
    )
    .await;
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
    let form: SignOutForm = match super::form(Some(&session), &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    if let Err(response) = super::check_csrf(&session, form.csrf.as_deref()) {
        return response;
    }
    let token = cookie(&headers, SESSION_COOKIE);
    if let Err(page) = login::sign_out(state.pipeline.db(), token, state.clock.now()).await {
        return html::answer(page);
    }
    with_cookies(
        see_other("/console"),
        &[set_cookie(&state, SESSION_COOKIE, "", 0)],
    )
}
