//! `/console/login/oidc` and its callback: single sign-on with OpenID Connect, when
//! `console.oidc` is configured. The protocol is `arbiter_console::oidc`'s and the pages
//! `arbiter_console::pages::login`'s; this module keeps the sign-in under way in its cookie.

use super::html::answer;
use super::login::{see_other, signed_in, with_cookies};
use super::{cookie, set_cookie};
use crate::state::AppState;
use arbiter_console::oidc::{Callback, PENDING_SECS};
use arbiter_console::pages::login::{self, SsoStart};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

/// The cookie holding the sign-in under way.
pub const OIDC_COOKIE: &str = "arbiter_oidc";

/// `GET /console/login/oidc`: starts a sign-in at the provider.
pub async fn start(State(state): State<AppState>) -> Response {
    match login::sso_start(state.config.console.oidc.as_ref(), state.clock.now()).await {
        SsoStart::Page(page) => answer(page),
        SsoStart::Redirect(authorization) => with_cookies(
            see_other(&authorization.url),
            &[set_cookie(
                &state,
                OIDC_COOKIE,
                &authorization.pending,
                PENDING_SECS,
            )],
        ),
    }
}

/// The 404 page when single sign-on is not configured (no cookie to clear).
fn answer_page(answer_of: login::SignIn) -> Response {
    match answer_of {
        login::SignIn::Page(page) | login::SignIn::Form { page, .. } => answer(page),
        login::SignIn::SignedIn { .. } => answer(login::sso_not_configured()),
    }
}

/// `GET /console/login/oidc/callback`: checks the answer, exchanges the code, verifies the
/// ID token and opens a session.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(given): Query<Callback>,
) -> Response {
    let answer_of = login::sso_callback(
        state.pipeline.db(),
        &state.config.console,
        cookie(&headers, OIDC_COOKIE),
        given,
        state.clock.now(),
    )
    .await;
    if state.config.console.oidc.is_none() {
        return answer_page(answer_of);
    }
    // The sign-in under way is over either way: its cookie is cleared.
    signed_in(&state, answer_of, OIDC_COOKIE)
}
