//! `/console`: the console for people, server-rendered HTML over the same engine and database
//! as the API. Sign-in, sessions and the pages are `arbiter_console`'s; this module is the HTTP
//! side: the routes, the cookies, and the extractors that admit a page's role ([`SignedIn`]) and
//! a form's CSRF token ([`Posted`]).
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
mod policies;
mod requests;
mod review;
mod scan;
mod users;

use crate::state::AppState;
use arbiter_console::pages::{self, form};
use arbiter_console::{Area, Gate, Session};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use html::answer;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

pub use pages::html::escape;

/// The session cookie.
pub const SESSION_COOKIE: &str = "arbiter_session";
/// The sign-in form's CSRF cookie (before there is a session).
pub const LOGIN_CSRF_COOKIE: &str = "arbiter_login_csrf";

/// The console's routes; none when `console.enabled` is false.
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.config.console.enabled {
        return Router::new();
    }
    let scan_body = usize::try_from(state.config.limits.max_image_bytes)
        .unwrap_or(usize::MAX)
        .saturating_mul(pages::scan::MAX_FILES)
        .saturating_add(1 << 20);
    Router::new()
        .route("/console", get(login::home))
        .route("/console/login", get(login::home).post(login::sign_in))
        .route("/console/logout", post(login::sign_out))
        .route("/console/login/oidc", get(login::sso_start))
        .route("/console/login/oidc/callback", get(login::sso_callback))
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
            get(requests::report),
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
            get(policies::list_proposals).post(policies::propose),
        )
        .route(
            "/console/policies/proposals/{proposal_id}",
            get(policies::proposal),
        )
        .route(
            "/console/policies/proposals/{proposal_id}/approve",
            post(policies::approve),
        )
        .route(
            "/console/policies/proposals/{proposal_id}/reject",
            post(policies::reject),
        )
        .route("/console/users", get(users::page).post(users::create))
        .route("/console/users/disable", post(users::disable))
        .merge(cases::router(state))
}

/// The signed-in person allowed into the area `A`: a visitor is sent to the sign-in page, a
/// person whose role does not reach the area gets the 403 page (the 500 page when the session
/// cannot be read).
pub struct SignedIn<A>(pub Session, pub PhantomData<A>);

impl<A: Gate> FromRequestParts<AppState> for SignedIn<A> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Ok(Self(
            require(state, &parts.headers, A::AREA).await?,
            PhantomData,
        ))
    }
}

/// The signed-in person allowed into the area `A` and their posted form, read as `T` once its
/// CSRF token is the session's; each refusal is the page [`SignedIn`] or `form::posted` gives.
pub struct Posted<A, T>(pub Session, pub T, pub PhantomData<A>);

impl<A: Gate, T: DeserializeOwned> FromRequest<AppState> for Posted<A, T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let session = require(state, &headers, A::AREA).await?;
        let given = form::posted(&session, &body).map_err(answer)?;
        Ok(Self(session, given, PhantomData))
    }
}

/// A `303 See Other` to `location`, not cached.
pub fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
        .into_response()
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

/// `response` with console cookies set, each `(name, value, Max-Age in seconds)` (an empty
/// value and 0 clear one): HttpOnly, SameSite=Lax, and Secure when `console.secure_cookies`.
pub fn with_cookies(
    state: &AppState,
    mut response: Response,
    set: &[(&str, &str, u64)],
) -> Response {
    let secure = if state.config.console.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    for (name, value, max_age) in set {
        let cookie = format!(
            "{name}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The signed-in person, if any.
async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, Response> {
    let (pipeline, token) = (&state.pipeline, cookie(headers, SESSION_COOKIE));
    pages::login::current(pipeline.db(), pipeline.flows(), token, state.clock.now())
        .await
        .map_err(answer)
}

/// The signed-in person allowed into `area`: a visitor is sent to the sign-in page, a person
/// whose role does not reach the area gets a 403 page.
async fn require(state: &AppState, headers: &HeaderMap, area: Area) -> Result<Session, Response> {
    let session = current(state, headers).await?;
    pages::login::admit(session.ok_or_else(|| see_other("/console"))?, area).map_err(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{each_database, state};
    use arbiter_console::{Role, area, sessions};
    use axum::body::Body;
    use serde::Deserialize;
    use tower::ServiceExt as _;

    /// A person of `role` signed in to tenant `acme`: the session's cookie and its CSRF token.
    async fn signed_in(state: &AppState, user: &str, role: Role) -> (String, String) {
        let throttle = pages::login::throttle(&state.config.console);
        let db = state.pipeline.db();
        let new = sessions::sign_in_external(
            db,
            &throttle,
            "acme",
            user,
            role,
            "oidc",
            state.clock.now(),
        )
        .await
        .unwrap();
        (format!("{SESSION_COOKIE}={}", new.token), new.session.csrf)
    }

    #[derive(Deserialize)]
    struct Note {
        note: String,
    }

    /// `/console/x`: the reviewer's name (GET), or the note they posted (POST).
    fn review_area(state: &AppState) -> Router {
        Router::new()
            .route(
                "/console/x",
                get(|SignedIn(session, _): SignedIn<area::Review>| async move { session.user })
                    .post(
                        |Posted(session, note, _): Posted<area::Review, Note>| async move {
                            format!("{}: {}", session.user, note.note)
                        },
                    ),
            )
            .with_state(state.clone())
    }

    async fn send(app: &Router, method: &str, cookie: Option<&str>, body: &str) -> Response {
        let mut request = Request::builder().method(method).uri("/console/x");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let request = request
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap();
        app.clone().oneshot(request).await.unwrap()
    }

    async fn text(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_visitor_is_sent_to_the_sign_in_page() {
        let dir = tempfile::tempdir().unwrap();
        let app = review_area(&state(dir.path()).await);
        let unknown = format!("{SESSION_COOKIE}=not-a-session");
        for (method, cookie) in [
            ("GET", None),
            ("GET", Some(unknown.as_str())),
            ("POST", None),
        ] {
            let response = send(&app, method, cookie, "note=hi").await;
            assert_eq!(
                response.status(),
                StatusCode::SEE_OTHER,
                "{method} {cookie:?}"
            );
            assert_eq!(response.headers()[header::LOCATION], "/console");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        }
    }

    #[tokio::test]
    async fn a_role_that_does_not_reach_the_area_gets_the_403_page() {
        each_database(
            |_| {},
            async |db, state| {
                let app = review_area(&state);
                let (analyst, csrf) = signed_in(&state, "ana", Role::Analyst).await;
                let page = send(&app, "GET", Some(&analyst), "").await;
                assert_eq!(page.status(), StatusCode::FORBIDDEN, "{db}");
                assert_eq!(
                    page.headers()[header::CONTENT_TYPE],
                    "text/html; charset=utf-8"
                );
                let html = text(page).await;
                assert!(
                    html.contains("does not give access to this page"),
                    "{db}: {html}"
                );
                // A valid form does not get a person past the area's gate.
                let form = format!("csrf={csrf}&note=hi");
                let posted = send(&app, "POST", Some(&analyst), &form).await;
                assert_eq!(posted.status(), StatusCode::FORBIDDEN, "{db}");
                // A reviewer and an admin reach it.
                for (user, role) in [("rita", Role::Reviewer), ("adam", Role::Admin)] {
                    let (cookie, _) = signed_in(&state, user, role).await;
                    let page = send(&app, "GET", Some(&cookie), "").await;
                    assert_eq!(page.status(), StatusCode::OK, "{db}: {role:?}");
                    assert_eq!(text(page).await, user);
                }
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_form_is_read_only_with_the_session_s_csrf_token() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let app = review_area(&state);
        let (cookie, csrf) = signed_in(&state, "rita", Role::Reviewer).await;
        let (_, other_csrf) = signed_in(&state, "ruth", Role::Reviewer).await;
        for body in [
            "note=hi".to_owned(),
            format!("csrf={other_csrf}&note=hi"),
            "csrf=&note=hi".into(),
        ] {
            let refused = send(&app, "POST", Some(&cookie), &body).await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{body}");
            assert!(text(refused).await.contains("security token"), "{body}");
        }
        let missing = send(&app, "POST", Some(&cookie), &format!("csrf={csrf}")).await;
        assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
        assert!(text(missing).await.contains("The form could not be read"));
        let posted = send(
            &app,
            "POST",
            Some(&cookie),
            &format!("csrf={csrf}&note=hi%20there"),
        )
        .await;
        assert_eq!(posted.status(), StatusCode::OK);
        assert_eq!(text(posted).await, "rita: hi there");
    }

    #[tokio::test]
    async fn a_disabled_console_serves_no_route() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::testing::config(dir.path(), "");
        config.console.enabled = false;
        let state = crate::testing::state_of(config).await;
        let app = router(&state).with_state(state);
        let request = Request::get("/console").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_cookie_is_found_among_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; arbiter_session=abc"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("arbiter_login_csrf=xyz"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "theme"), Some("dark"));
        assert_eq!(cookie(&headers, "arbiter"), None, "a name is matched whole");
        assert_eq!(cookie(&HeaderMap::new(), SESSION_COOKIE), None);
    }

    #[tokio::test]
    async fn cookies_are_set_http_only_for_the_console_and_secure_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::testing::config(dir.path(), "");
        config.console.secure_cookies = true;
        let state = crate::testing::state_of(config).await;
        let set = [(SESSION_COOKIE, "tok", 3600), (LOGIN_CSRF_COOKIE, "", 0)];
        let response = with_cookies(&state, see_other("/console/scan"), &set);
        assert_eq!(response.headers()[header::LOCATION], "/console/scan");
        let cookies: Vec<_> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .collect();
        assert_eq!(
            cookies,
            [
                "arbiter_session=tok; Path=/console; HttpOnly; SameSite=Lax; Max-Age=3600; Secure",
                "arbiter_login_csrf=; Path=/console; HttpOnly; SameSite=Lax; Max-Age=0; Secure",
            ]
        );
    }
}
