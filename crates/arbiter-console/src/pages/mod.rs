//! The console's pages, apart from HTTP: each page is built from the engine and the database
//! into a [`Page`] (a status and its HTML), which the server answers with the console's headers.

pub mod audit;
pub mod cases;
pub mod form;
pub mod html;
pub mod login;
pub mod policies;
pub mod proposals;
pub mod reports;
pub mod requests;
pub mod review;
pub mod scan;
pub mod users;

use crate::Session;
use html::{escape, layout};

/// A form field as a filter: trimmed, and none when empty.
fn given(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The stylesheet, served at `/console/console.css`.
pub const CSS: &str = include_str!("console.css");
/// The script (keyboard shortcuts of the review page), served at `/console/console.js`.
pub const JS: &str = include_str!("console.js");

/// Who may load what: the console's own stylesheet and script, images from data URLs (the
/// scanned images and heatmaps), forms posted only to itself, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page of the console: its HTTP status and its whole HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The HTTP status code.
    pub status: u16,
    /// The whole document.
    pub html: String,
}

impl Page {
    /// A page of the console for a signed-in person: `body` under the heading `title`, with
    /// `current` marked in the navigation.
    pub fn ok(title: &str, session: &Session, current: &str, body: &str) -> Self {
        Self {
            status: 200,
            html: layout(title, Some(session), current, body),
        }
    }

    /// A page with one message.
    pub fn message(status: u16, session: Option<&Session>, title: &str, text: &str) -> Self {
        let body = format!(
            r#"<p class="notice" role="alert">{}</p><p><a href="/console">Back to the start page</a></p>"#,
            escape(text)
        );
        Self {
            status,
            html: layout(title, session, "", &body),
        }
    }

    /// The 403 page for a role that does not reach a page.
    pub fn refused(session: &Session) -> Self {
        Self::message(
            403,
            Some(session),
            "Not allowed",
            &format!(
                "Your role ({}) does not give access to this page.",
                session.role
            ),
        )
    }

    /// The 500 page; the cause is logged, never shown.
    pub fn server_error(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "console page failed");
        Self::message(
            500,
            None,
            "Something went wrong",
            "The server could not answer this page. Try again; if it keeps failing, tell your administrator.",
        )
    }
}
