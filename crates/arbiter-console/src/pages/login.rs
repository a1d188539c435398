//! Signing in and out, and the start page: the sign-in form, password sign-in, single sign-on
//! with OpenID Connect (its start and callback), sign-out. The cookies (the session's, the
//! sign-in form's CSRF token, the sign-in under way) are the server's to set and read: these
//! functions take their values and say what to put in them.

use super::Page;
use super::html::{escape, layout, nav_for};
use crate::config::{ConsoleConfig, OidcConfig};
use crate::oidc::{self, Callback, StartError};
use crate::sessions::{self, SignInError, Throttle};
use crate::{Area, Session, token};
use arbiter_db::Db;
use arbiter_engine::FlowRegistry;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What a sign-in answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A page (a refusal, or an error).
    Page(Page),
    /// The sign-in form, whose CSRF token the form's cookie must carry.
    Form {
        /// The page with the form.
        page: Page,
        /// The token in the form, for its cookie.
        csrf: String,
    },
    /// Signed in: to the start page, with this session token in the session cookie.
    SignedIn {
        /// The new session's token.
        token: String,
    },
}

/// The signed-in person of a session `token` (the session cookie's value), if any, with the
/// kinds of case the build keeps (`flows`'); the 500 page when the session cannot be read.
pub async fn current(
    db: &Db,
    flows: &FlowRegistry,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Session>, Page> {
    let Some(token) = token else {
        return Ok(None);
    };
    let found = sessions::lookup(db.conn(), token, now)
        .await
        .map_err(|err| Page::server_error(&err))?;
    Ok(found.map(|session| Session {
        cases: super::cases::kinds(flows),
        ..session
    }))
}

/// The signed-in person if their role reaches `area`, else the 403 page.
pub fn admit(session: Session, area: Area) -> Result<Session, Page> {
    if session.role.may(area) {
        Ok(session)
    } else {
        Err(Page::refused(&session))
    }
}

/// The start page of a signed-in person: a card for each page their role reaches.
pub fn start(session: &Session) -> Page {
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
    let cards: String = nav_for(session)
        .into_iter()
        .map(|(path, name)| {
            format!(
                r#"<div class="card"><h2><a href="{path}">{name}</a></h2><p>{}</p></div>"#,
                what(&path)
            )
        })
        .collect();
    let body = format!(
        r#"<p>Signed in as <strong>{}</strong> ({}) for tenant <strong>{}</strong>.</p><div class="cards">{cards}</div>"#,
        escape(&session.user),
        session.role,
        escape(&session.tenant)
    );
    Page::ok("Start", session, "/console", &body)
}

/// The CSRF token of the sign-in form: the visitor's cookie's when it is one this console
/// made (64 hex digits), else a fresh one.
pub fn form_token(cookie: Option<&str>) -> String {
    cookie
        .filter(|value| value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()))
        .map_or_else(token::new, str::to_owned)
}

/// The sign-in form with `status`, the CSRF token of `csrf_cookie` (or a fresh one), the
/// single sign-on link when `sso`, and an error with the tenant and user given again.
pub fn sign_in_form(
    sso: bool,
    csrf_cookie: Option<&str>,
    status: u16,
    error: Option<(&str, &str, &str)>,
) -> SignIn {
    let csrf = form_token(csrf_cookie);
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
        sso = if sso {
            r#"<p class="sso"><a href="/console/login/oidc" id="sso">Sign in with single sign-on</a></p>"#
        } else {
            ""
        },
        csrf = escape(&csrf),
        tenant = escape(tenant),
        user = escape(user),
    );
    SignIn::Form {
        page: Page {
            status,
            html: layout("Sign in", None, "", &body),
        },
        csrf,
    }
}

/// The sign-in form.
#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    tenant: Option<String>,
    user: Option<String>,
    password: Option<String>,
    /// The form's CSRF token, compared with its cookie's.
    pub csrf: Option<String>,
}

/// The sign-in throttle and session life of the console's configuration.
pub fn throttle(config: &ConsoleConfig) -> Throttle {
    Throttle {
        session_ttl: chrono::Duration::seconds(
            i64::try_from(config.session_ttl_secs).unwrap_or(i64::MAX / 1000),
        ),
        max_failures: config.max_failed_sign_ins,
        window: chrono::Duration::seconds(
            i64::try_from(config.throttle_window_secs).unwrap_or(i64::MAX / 1000),
        ),
    }
}

/// Signs in with the posted sign-in form (`body`), once its CSRF token is the one in the form's
/// cookie (`csrf_cookie`): a session, or the form again with why not; a form that cannot be
/// read or carries another token gets its refusal page.
pub async fn sign_in(
    db: &Db,
    config: &ConsoleConfig,
    csrf_cookie: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> SignIn {
    let form: SignInForm = match super::form::read(None, body) {
        Ok(form) => form,
        Err(page) => return SignIn::Page(page),
    };
    let csrf_ok = matches!(
        (csrf_cookie, form.csrf.as_deref()),
        (Some(expected), Some(given)) if token::equal(expected, given)
    );
    if !csrf_ok {
        return SignIn::Page(super::form::refused(None));
    }
    let tenant = form.tenant.unwrap_or_default();
    let user = form.user.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let sso = config.oidc.is_some();
    match sessions::sign_in(db, &throttle(config), &tenant, &user, &password, now).await {
        Ok(new) => SignIn::SignedIn { token: new.token },
        Err(SignInError::Refused) => sign_in_form(
            sso,
            csrf_cookie,
            401,
            Some(("Wrong tenant, user or password.", &tenant, &user)),
        ),
        Err(SignInError::Throttled) => sign_in_form(
            sso,
            csrf_cookie,
            429,
            Some((
                "Too many failed sign-ins for this user. Wait a few minutes and try again.",
                &tenant,
                &user,
            )),
        ),
        Err(SignInError::Db(err)) => SignIn::Page(Page::server_error(&err)),
    }
}

/// The sign-out form.
#[derive(Debug, Default, Deserialize)]
pub struct SignOutForm {
    /// The form's CSRF token, checked against the session's.
    pub csrf: Option<String>,
}

/// Ends the session of `token` (when the request carries one); the 500 page if it cannot.
pub async fn sign_out(db: &Db, token: Option<&str>, now: DateTime<Utc>) -> Result<(), Page> {
    if let Some(token) = token {
        sessions::sign_out(db, token, now)
            .await
            .map_err(|err| Page::server_error(&err))?;
    }
    Ok(())
}

/// The 404 page when single sign-on is not configured.
pub fn sso_not_configured() -> Page {
    Page::message(
        404,
        None,
        "Not found",
        "Single sign-on is not configured for this console.",
    )
}

/// What starting a single sign-on answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoStart {
    /// A page (not configured, the provider unreachable, an error).
    Page(Page),
    /// To the provider, with the sealed sign-in under way in its cookie.
    Redirect(oidc::Authorization),
}

/// Starts a single sign-on at `now`.
pub async fn sso_start(config: Option<&OidcConfig>, now: DateTime<Utc>) -> SsoStart {
    let Some(config) = config else {
        return SsoStart::Page(sso_not_configured());
    };
    match oidc::start(config, now.timestamp()).await {
        Ok(authorization) => SsoStart::Redirect(authorization),
        Err(StartError::Unreachable(err)) => {
            tracing::warn!(error = %err, "the identity provider could not be reached");
            SsoStart::Page(Page::message(
                502,
                None,
                "Single sign-on unavailable",
                "The identity provider could not be reached. Try again later, or sign in with a password.",
            ))
        }
        Err(err) => SsoStart::Page(Page::server_error(&err)),
    }
}

/// Completes a single sign-on at the callback: checks the answer against the sign-in under way
/// (`pending`, the cookie's value), exchanges the code, verifies the ID token and opens a
/// session; a refusal is recorded in the audit trail and answered with its page.
pub async fn sso_callback(
    db: &Db,
    console: &ConsoleConfig,
    pending: Option<&str>,
    answer: Callback,
    now: DateTime<Utc>,
) -> SignIn {
    let Some(config) = &console.oidc else {
        return SignIn::Page(sso_not_configured());
    };
    let vouched = match oidc::complete(config, pending, answer, now.timestamp()).await {
        Ok(vouched) => vouched,
        Err(refusal) => {
            if let Err(err) =
                sessions::sso_failed(db, &config.tenant, &refusal.actor, refusal.reason, now).await
            {
                return SignIn::Page(Page::server_error(&err));
            }
            return SignIn::Page(sso_failed(refusal.status, &refusal.text));
        }
    };
    match sessions::sign_in_external(
        db,
        &throttle(console),
        &config.tenant,
        &vouched.user,
        vouched.role,
        "oidc",
        now,
    )
    .await
    {
        Ok(new) => SignIn::SignedIn { token: new.token },
        // Already recorded by `sign_in_external`: answered here without a second entry.
        Err(SignInError::Refused | SignInError::Throttled) => SignIn::Page(Page::message(
            403,
            None,
            "Single sign-on failed",
            "Your console user is disabled or its id is not accepted. Ask an admin of this console.",
        )),
        Err(SignInError::Db(err)) => SignIn::Page(Page::server_error(&err)),
    }
}

/// The page of a refused single sign-on.
fn sso_failed(status: u16, text: &str) -> Page {
    let body = format!(
        r#"<p class="notice" role="alert" id="login-error">{}</p><p><a href="/console">Back to sign-in</a></p>"#,
        escape(text)
    );
    Page {
        status,
        html: layout("Single sign-on failed", None, "", &body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_form_is_read_with_missing_fields_as_none() {
        let form: SignInForm =
            serde_urlencoded::from_str("tenant=acme&user=a%20b&password=p%26w&csrf=t").unwrap();
        assert_eq!(form.tenant.as_deref(), Some("acme"));
        assert_eq!(form.user.as_deref(), Some("a b"));
        assert_eq!(form.password.as_deref(), Some("p&w"));
        assert_eq!(form.csrf.as_deref(), Some("t"));
        let form: SignInForm = serde_urlencoded::from_str("user=x").unwrap();
        assert_eq!((form.tenant, form.csrf), (None, None));
        let form: SignOutForm = serde_urlencoded::from_str("csrf=abc&other=1").unwrap();
        assert_eq!(form.csrf.as_deref(), Some("abc"));
    }

    #[test]
    fn the_form_keeps_a_token_this_console_made_and_replaces_any_other() {
        let made = "a".repeat(64);
        assert_eq!(form_token(Some(&made)), made);
        for other in [None, Some("short"), Some(&*"z".repeat(64))] {
            let fresh = form_token(other);
            assert_eq!(fresh.len(), 64);
            assert_ne!(Some(fresh.as_str()), other);
        }
    }

    #[test]
    fn a_refused_sign_in_gives_the_form_again_with_its_values_escaped() {
        let SignIn::Form { page, csrf } = sign_in_form(
            true,
            None,
            401,
            Some(("Wrong tenant, user or password.", "<acme>", "a\"b")),
        ) else {
            panic!("not the form");
        };
        assert_eq!(page.status, 401);
        assert!(
            page.html
                .contains(&format!(r#"name="csrf" value="{csrf}""#))
        );
        assert!(page.html.contains(r#"value="&lt;acme&gt;""#));
        assert!(page.html.contains(r#"value="a&quot;b""#));
        assert!(page.html.contains(r#"id="login-error">Wrong tenant"#));
        assert!(page.html.contains(r#"id="sso""#));
        let SignIn::Form { page, .. } = sign_in_form(false, None, 200, None) else {
            panic!("not the form");
        };
        assert!(!page.html.contains(r#"id="sso""#));
        assert!(!page.html.contains("login-error"));
    }
}
