//! The console's pages as HTTP responses: the console's headers on every page, the report
//! cards as downloads, and the stylesheet and script. The HTML and the PDFs themselves are
//! `arbiter_console::pages`'.

use crate::routes::reports::pdf_response;
use arbiter_console::pages::reports::Pdf;
use arbiter_console::pages::{CSP, CSS, JS, Page};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A page with the console's headers: no caching, the content security policy, no sniffing,
/// no framing.
pub fn answer(page: Page) -> Response {
    (
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        page.html,
    )
        .into_response()
}

/// A report card as a download, with the API's headers, or the page saying why there is none.
pub fn pdf(made: Result<Pdf, Page>) -> Response {
    made.map_or_else(answer, |pdf| pdf_response(pdf.bytes, &pdf.name))
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
