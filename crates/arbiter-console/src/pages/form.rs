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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::login::admit;
    use crate::{Area, Role};

    fn session(role: Role) -> Session {
        Session {
            tenant: "acme".to_owned(),
            user: "ana".to_owned(),
            role,
            csrf: "t0k".to_owned(),
            expires_at: chrono::Utc::now(),
            cases: Vec::new(),
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Note {
        text: String,
    }

    #[test]
    fn a_form_is_read_only_with_the_sessions_token() {
        let session = session(Role::Admin);
        let note: Note = posted(&session, b"csrf=t0k&text=a%20b").unwrap();
        assert_eq!(note.text, "a b");
        for body in [&b"text=x"[..], b"csrf=other&text=x", b"csrf=t0&text=x"] {
            let page = posted::<Note>(&session, body).unwrap_err();
            assert_eq!(page.status, 403, "{}", String::from_utf8_lossy(body));
            assert!(page.html.contains("Form refused"));
        }
        let page = posted::<Note>(&session, b"csrf=t0k").unwrap_err();
        assert_eq!(page.status, 400);
        assert!(
            page.html
                .contains("The form could not be read: missing field")
        );
    }

    #[test]
    fn a_role_is_admitted_only_to_its_areas() {
        assert!(admit(session(Role::Reviewer), Area::Review).is_ok());
        let page = admit(session(Role::Reviewer), Area::Users).unwrap_err();
        assert_eq!(page.status, 403);
        assert!(
            page.html
                .contains("Your role (reviewer) does not give access")
        );
    }
}
