//! The users page (admins only): the tenant's console users; create one, disable one.

use super::Page;
use super::html::{csrf_field, escape, layout};
use crate::{Role, Session, users};
use arbiter_db::Db;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The users page with `status` and a `notice` (HTML) above the table.
pub async fn page(db: &Db, session: &Session, status: u16, notice: &str) -> Page {
    let all = match users::list(db.conn(), Some(&session.tenant)).await {
        Ok(all) => all,
        Err(err) => return Page::server_error(&err),
    };
    let rows: String = all
        .iter()
        .map(|user| {
            let action = if user.disabled || user.user == session.user {
                String::new()
            } else {
                format!(
                    r#"<form method="post" action="/console/users/disable">{csrf}<input type="hidden" name="user" value="{id}"><button type="submit" class="secondary" aria-label="Disable {id}">Disable</button></form>"#,
                    csrf = csrf_field(&session.csrf),
                    id = escape(&user.user)
                )
            };
            format!(
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="hide-narrow">{}</td><td>{action}</td></tr>"#,
                escape(&user.user),
                user.role,
                if user.disabled { "disabled" } else { "active" },
                user.created_at.format("%Y-%m-%d"),
            )
        })
        .collect();
    let roles: String = Role::ALL
        .iter()
        .map(|role| format!(r#"<option value="{role}">{role}</option>"#))
        .collect();
    let body = format!(
        r#"{notice}<div class="table-wrap"><table id="users"><thead><tr><th scope="col">User</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col" class="hide-narrow">Created</th><th scope="col"><span class="muted">Change</span></th></tr></thead><tbody>{rows}</tbody></table></div>
<h2>Add a user</h2>
<form method="post" action="/console/users">{csrf}
<label for="new-user">User id</label><input type="text" id="new-user" name="user" required autocomplete="off">
<label for="new-role">Role</label><select id="new-role" name="role">{roles}</select>
<label for="new-password">Password</label><input type="password" id="new-password" name="password" required autocomplete="new-password">
<button type="submit">Add user</button></form>"#,
        csrf = csrf_field(&session.csrf),
    );
    Page {
        status,
        html: layout("Users", Some(session), "/console/users", &body),
    }
}

/// The add-a-user form.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    user: Option<String>,
    role: Option<String>,
    password: Option<String>,
}

/// A refusal above the table.
fn alert(text: &str) -> String {
    format!(r#"<p class="notice" role="alert">{}</p>"#, escape(text))
}

/// Adds a user to the admin's tenant, then the page with what happened.
pub async fn create(db: &Db, session: &Session, new: CreateForm, now: DateTime<Utc>) -> Page {
    let result = users::create(
        db.writer(),
        &session.tenant,
        new.user.as_deref().unwrap_or(""),
        new.role.as_deref().unwrap_or(""),
        new.password.as_deref().unwrap_or(""),
        now,
    )
    .await;
    match result {
        Ok(user) => {
            tracing::info!(
                tenant = session.tenant,
                admin = session.user,
                user = user.user,
                role = user.role,
                "console user created"
            );
            let notice = format!(
                r#"<p class="ok" role="status">Added {} as {}.</p>"#,
                escape(&user.user),
                user.role
            );
            page(db, session, 200, &notice).await
        }
        Err(users::UserError::Db(err)) => Page::server_error(&err),
        Err(err) => page(db, session, 400, &alert(&err.to_string())).await,
    }
}

/// The disable form.
#[derive(Debug, Default, Deserialize)]
pub struct DisableForm {
    user: Option<String>,
}

/// Disables a user of the admin's tenant (ending their sessions), then the page with what
/// happened.
pub async fn disable(db: &Db, session: &Session, form: DisableForm) -> Page {
    let user = form.user.unwrap_or_default();
    match users::set_disabled(db.writer(), &session.tenant, &user, true).await {
        Ok(()) => {
            let notice = format!(
                r#"<p class="ok" role="status">Disabled {}; their sessions have ended.</p>"#,
                escape(&user)
            );
            page(db, session, 200, &notice).await
        }
        Err(users::UserError::Db(err)) => Page::server_error(&err),
        Err(err) => page(db, session, 404, &alert(&err.to_string())).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_are_read_with_missing_fields_as_none() {
        let form: CreateForm =
            serde_urlencoded::from_str("csrf=t&user=ann&role=reviewer&password=p%20w").unwrap();
        assert_eq!(form.user.as_deref(), Some("ann"));
        assert_eq!(form.role.as_deref(), Some("reviewer"));
        assert_eq!(form.password.as_deref(), Some("p w"));
        let form: CreateForm = serde_urlencoded::from_str("csrf=t").unwrap();
        assert_eq!((form.user, form.role, form.password), (None, None, None));
        let form: DisableForm = serde_urlencoded::from_str("csrf=t&user=bob").unwrap();
        assert_eq!(form.user.as_deref(), Some("bob"));
    }

    #[test]
    fn a_refusal_is_escaped() {
        assert_eq!(
            alert("user <x> exists"),
            r#"<p class="notice" role="alert">user &lt;x&gt; exists</p>"#
        );
    }
}
