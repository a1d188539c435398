//! `/console`, `/console/login`, `/console/logout`: signing in and out, and the start page.

use super::html::{self, escape};
use super::{LOGIN_CSRF_COOKIE, SESSION_COOKIE, cookie, set_cookie};
use crate::state::AppState;
use arbiter_console::sessions::{self, SignInError, Throttle};
use arbiter_console::{Session, token};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// How long the sign-in form's CSRF cookie lasts.
const LOGIN_CSRF_SECS: u64 = 3600;

/// `GET /console`: the sign-in page for a visitor, the start page for a signed-in person.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match super::current(&state, &headers).await {
        Ok(Some(session)) => start(&session),
        Ok(None) => sign_in_page(&state, &headers, StatusCode::OK, None),
        Err(response) => response,
    }
}

/// `GET /console/login`: the sign-in page (or the start page when signed in already).
pub async fn page(state: State<AppState>, headers: HeaderMap) -> Response {
    home(state, headers).await
}

fn start(session: &Session) -> Response {
    let what = |path: &str| match path {
        "/console/scan" => {
            "Analyse up to 10 images and see each verdict, the evidence and the decision."
        }
        "/console/requests" => "Search analysed images by reference, SHA-256, action or flow.",
        "/console/review" => "Claim and resolve the images policies sent for human review.",
        "/console/audit" => "Read, verify and export the tamper-evident audit trail.",
        "/console/policies" => {
            "The live policies, their files, a simulator, and four-eyes proposals of new versions."
        }
        "/console/users" => "Who can sign in to this tenant's console, and their roles.",
        _ => "",
    };
    let cards: String = html::nav_for(session)
        .into_iter()
        .map(|(path, name)| {
            format!(
                r#"<div class="card"><h2><a href="{path}">{name}</a></h2><p>{}</p></div>"#,
                what(path)
            )
        })
        .collect();
    let body = format!(
        r#"<p>Signed in as <strong>{}</strong> ({}) for tenant <strong>{}</strong>.</p><div class="cards">{cards}</div>"#,
        escape(&session.user),
        session.role,
        escape(&session.tenant)
    );
    html::page("Start", session, "/console", &body)
}

/// The sign-in page, with a fresh CSRF token in its form and cookie (kept when the visitor has
/// one already).
fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<(&str, &str, &str)>,
) -> Response {
    let csrf = cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|value| value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()))
        .map_or_else(token::new, str::to_owned);
    let (notice, tenant, user) = match error {
        Some((text, tenant, user)) => (
            format!(
                r#"<p class="notice" role="alert" id="login-error">{}</p>"#,
                escape(text)
            ),
            tenant,
            user,
        ),
        None => (String::new(), "", ""),
    };
    let body = format!(
        r#"{notice}<form method="post" action="/console/login" class="login">
<input type="hidden" name="csrf" value="{csrf}">
<label for="tenant">Tenant</label><input type="text" id="tenant" name="tenant" value="{tenant}" autocomplete="organization" required>
<label for="user">User</label><input type="text" id="user" name="user" value="{user}" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>{sso}"#,
        sso = if state.config.console.oidc.is_some() {
            r#"<p class="sso"><a href="/console/login/oidc" id="sso">Sign in with single sign-on</a></p>"#
        } else {
            ""
        },
        csrf = escape(&csrf),
        tenant = escape(tenant),
        user = escape(user),
    );
    let mut response = html::respond(status, html::layout("Sign in", None, "", &body));
    if let Ok(value) = HeaderValue::from_str(&set_cookie(
        state,
        LOGIN_CSRF_COOKIE,
        &csrf,
        LOGIN_CSRF_SECS,
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignInForm {
    tenant: Option<String>,
    user: Option<String>,
    password: Option<String>,
    csrf: Option<String>,
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
    let tenant = form.tenant.unwrap_or_default();
    let user = form.user.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let config = &state.config.console;
    let throttle = Throttle {
        session_ttl: chrono::Duration::seconds(
            i64::try_from(config.session_ttl_secs).unwrap_or(i64::MAX / 1000),
        ),
        max_failures: config.max_failed_sign_ins,
        window: chrono::Duration::seconds(
            i64::try_from(config.throttle_window_secs).unwrap_or(i64::MAX / 1000),
        ),
    };
    let now = state.clock.now();
    match sessions::sign_in(
        state.pipeline.db(),
        &throttle,
        &tenant,
        &user,
        &password,
        now,
    )
    .await
    {
        Ok(new) => {
            let mut response = (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/console"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
            )
                .into_response();
            let cookies = [
                set_cookie(&state, SESSION_COOKIE, &new.token, config.session_ttl_secs),
                set_cookie(&state, LOGIN_CSRF_COOKIE, "", 0),
            ];
            for value in cookies {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(SignInError::Refused) => sign_in_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some(("Wrong tenant, user or password.", &tenant, &user)),
        ),
        Err(SignInError::Throttled) => sign_in_page(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some((
                "Too many failed sign-ins for this user. Wait a few minutes and try again.",
                &tenant,
                &user,
            )),
        ),
        Err(SignInError::Db(err)) => html::server_error(&err),
    }
}

/// The sign-out form.
#[derive(Deserialize)]
pub struct SignOutForm {
    csrf: Option<String>,
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
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(err) = sessions::sign_out(state.pipeline.db(), token, state.clock.now()).await
    {
        return html::server_error(&err);
    }
    let mut response = (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console"),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(&state, SESSION_COOKIE, "", 0)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
