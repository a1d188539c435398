//! The console's HTML: escaping, the page layout, message pages, the stylesheet and the one
//! small script (keyboard shortcuts of the review page).

use arbiter_console::{Area, Session};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet, served at `/console/console.css`.
const CSS: &str = include_str!("console.css");
/// The script, served at `/console/console.js`.
const JS: &str = include_str!("console.js");

/// Who may load what: the console's own stylesheet and script, images from data URLs (the
/// scanned images and heatmaps), forms posted only to itself, never framed.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string value, percent-encoded.
pub fn url_encode(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)])
        .map(|s| s.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

/// The areas in the navigation, with their paths and names.
const NAV: [(Area, &str, &str); 8] = [
    (Area::Scan, "/console/scan", "Scan"),
    (Area::Requests, "/console/requests", "Requests"),
    (Area::Requests, "/console/claims", "Claims"),
    (Area::Requests, "/console/kyc", "KYC"),
    (Area::Review, "/console/review", "Review"),
    (Area::Audit, "/console/audit", "Audit"),
    (Area::Policies, "/console/policies", "Policies"),
    (Area::Users, "/console/users", "Users"),
];

/// The navigation links a role may follow, as `(path, name)`.
pub fn nav_for(session: &Session) -> Vec<(&'static str, &'static str)> {
    NAV.iter()
        .filter(|(area, _, _)| session.role.may(*area))
        .map(|(_, path, name)| (*path, *name))
        .collect()
}

/// A hidden CSRF field for a form of the session.
pub fn csrf_field(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        escape(token)
    )
}

/// A whole page: the header with the navigation and the person, and `body` under a heading.
pub fn layout(title: &str, session: Option<&Session>, current: &str, body: &str) -> String {
    let header = match session {
        Some(session) => {
            let links: String = nav_for(session)
                .into_iter()
                .map(|(path, name)| {
                    let here = if path == current {
                        r#" aria-current="page""#
                    } else {
                        ""
                    };
                    format!(r#"<li><a href="{path}"{here}>{name}</a></li>"#)
                })
                .collect();
            format!(
                r#"<header class="top"><a class="brand" href="/console">Arbiter</a><nav aria-label="Console"><ul>{links}</ul></nav><div class="who"><span>{user} · {role} · {tenant}</span><form method="post" action="/console/logout">{csrf}<button type="submit" class="link">Sign out</button></form></div></header>"#,
                user = escape(&session.user),
                role = session.role,
                tenant = escape(&session.tenant),
                csrf = csrf_field(&session.csrf),
            )
        }
        None => r#"<header class="top"><a class="brand" href="/console">Arbiter</a></header>"#
            .to_owned(),
    };
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · Arbiter</title><link rel="stylesheet" href="/console/console.css"><script src="/console/console.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a>{header}<main id="main"><h1>{title}</h1>
{body}
</main></body></html>
"##,
        title = escape(title),
    )
}

/// An HTML response with the console's headers: no caching, the content security policy,
/// no sniffing, no framing.
pub fn respond(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        html,
    )
        .into_response()
}

/// A page of the console.
pub fn page(title: &str, session: &Session, current: &str, body: &str) -> Response {
    respond(StatusCode::OK, layout(title, Some(session), current, body))
}

/// A page with one message.
pub fn message(status: StatusCode, session: Option<&Session>, title: &str, text: &str) -> Response {
    let body = format!(
        r#"<p class="notice" role="alert">{}</p><p><a href="/console">Back to the start page</a></p>"#,
        escape(text)
    );
    respond(status, layout(title, session, "", &body))
}

/// The 403 page for a role that does not reach a page.
pub fn refused(session: &Session) -> Response {
    message(
        StatusCode::FORBIDDEN,
        Some(session),
        "Not allowed",
        &format!(
            "Your role ({}) does not give access to this page.",
            session.role
        ),
    )
}

/// The 500 page; the cause is logged, never shown.
pub fn server_error(err: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %err, "console page failed");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "Something went wrong",
        "The server could not answer this page. Try again; if it keeps failing, tell your administrator.",
    )
}

/// A verdict label as a colour-coded badge (the word is always shown, not the colour alone).
pub fn verdict_badge(label: &str) -> String {
    let (class, text) = match label {
        "AUTHENTIC" => ("authentic", "Authentic"),
        "AI_GENERATED" => ("ai", "AI-generated"),
        "MANIPULATED" => ("manipulated", "Manipulated"),
        "INCONCLUSIVE" => ("inconclusive", "Inconclusive"),
        _ => ("inconclusive", label),
    };
    format!(
        r#"<span class="badge {class}" data-verdict="{}">{}</span>"#,
        escape(label),
        escape(text)
    )
}

/// A score from 0 to 1 as a percentage.
pub fn percent(score: Option<f64>) -> String {
    score.map_or_else(|| "—".to_owned(), |s| format!("{:.0}%", s * 100.0))
}

/// `/console/console.css`.
pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// `/console/console.js`.
pub async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(url_encode("a b&c"), "a+b%26c");
    }
}
