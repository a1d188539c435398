//! The console's pages as HTTP responses: the console's headers on every page, and the
//! stylesheet and script. The HTML itself is `arbiter_console::pages`'.

use arbiter_console::Session;
use arbiter_console::pages::{CSP, CSS, JS, Page};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use arbiter_console::pages::html::*;

/// A page with the console's headers: no caching, the content security policy, no sniffing,
/// no framing.
pub fn answer(page: Page) -> Response {
    respond(
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        page.html,
    )
}

/// An HTML response with the console's headers.
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

/// A page with one message.
pub fn message(status: StatusCode, session: Option<&Session>, title: &str, text: &str) -> Response {
    answer(Page::message(status.as_u16(), session, title, text))
}

/// The 403 page for a role that does not reach a page.
pub fn refused(session: &Session) -> Response {
    answer(Page::refused(session))
}

/// The 500 page; the cause is logged, never shown.
pub fn server_error(err: &dyn std::fmt::Display) -> Response {
    answer(Page::server_error(err))
}

/// `/console/console.css`.
pub async fn css() -> Response {
    static_file("text/css; charset=utf-8", CSS)
}

/// `/console/console.js`.
pub async fn js() -> Response {
    static_file("text/javascript; charset=utf-8", JS)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
