//! Posted forms: a urlencoded body read as a form, and its CSRF token checked against the
//! session's.

use super::Page;
use crate::{Session, token};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A form body as `T`; a malformed one gets the 400 page.
pub fn read<T: DeserializeOwned>(session: Option<&Session>, body: &[u8]) -> Result<T, Page> {
    serde_urlencoded::from_bytes(body).map_err(|err| {
        Page::message(
            400,
            session,
            "Bad form",
            &format!("The form could not be read: {err}."),
        )
    })
}

/// A form posted by the signed-in person, read as `T` once its CSRF token is the session's;
/// each refusal is the page `read` or `check_csrf` gives.
pub fn posted<T: DeserializeOwned>(session: &Session, body: &[u8]) -> Result<T, Page> {
    #[derive(Deserialize)]
    struct Token {
        csrf: Option<String>,
    }
    let given: Token = read(Some(session), body)?;
    check_csrf(session, given.csrf.as_deref())?;
    read(Some(session), body)
}

/// Refuses a form whose CSRF token is missing or not the session's.
pub fn check_csrf(session: &Session, given: Option<&str>) -> Result<(), Page> {
    match given {
        Some(given) if token::equal(given, &session.csrf) => Ok(()),
        _ => Err(refused(Some(session))),
    }
}

/// The 403 page for a form without a valid CSRF token.
pub fn refused(session: Option<&Session>) -> Page {
    Page::message(
        403,
        session,
        "Form refused",
        "The form's security token is missing or out of date. Reload the page and try again.",
    )
}
