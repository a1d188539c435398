//! `/console/users`: the tenant's console users (admins only): create one, disable one.

use super::html::{self, csrf_field, escape};
use super::{posted, require};
use crate::state::AppState;
use arbiter_console::{Area, Role, Session, users};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

/// `GET /console/users`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Users).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    render(&state, &session, StatusCode::OK, "").await
}

async fn render(state: &AppState, session: &Session, status: StatusCode, notice: &str) -> Response {
    let all = match users::list(state.pipeline.db().conn(), Some(&session.tenant)).await {
        Ok(all) => all,
        Err(err) => return html::server_error(&err),
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
    html::respond(
        status,
        html::layout("Users", Some(session), "/console/users", &body),
    )
}

/// The add-a-user form.
#[derive(Deserialize)]
pub struct CreateForm {
    user: Option<String>,
    role: Option<String>,
    password: Option<String>,
}

/// `POST /console/users`.
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (session, new) = match posted::<CreateForm>(&state, &headers, Area::Users, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let result = users::create(
        state.pipeline.db().writer(),
        &session.tenant,
        new.user.as_deref().unwrap_or(""),
        new.role.as_deref().unwrap_or(""),
        new.password.as_deref().unwrap_or(""),
        state.clock.now(),
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
            render(&state, &session, StatusCode::OK, &notice).await
        }
        Err(users::UserError::Db(err)) => html::server_error(&err),
        Err(err) => {
            let notice = format!(
                r#"<p class="notice" role="alert">{}</p>"#,
                escape(&err.to_string())
            );
            render(&state, &session, StatusCode::BAD_REQUEST, &notice).await
        }
    }
}

/// The disable form.
#[derive(Deserialize)]
pub struct DisableForm {
    user: Option<String>,
}

/// `POST /console/users/disable`.
pub async fn disable(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (session, form_in) = match posted::<DisableForm>(&state, &headers, Area::Users, &body).await
    {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let user = form_in.user.unwrap_or_default();
    match users::set_disabled(state.pipeline.db().writer(), &session.tenant, &user, true).await {
        Ok(()) => {
            let notice = format!(
                r#"<p class="ok" role="status">Disabled {}; their sessions have ended.</p>"#,
                escape(&user)
            );
            render(&state, &session, StatusCode::OK, &notice).await
        }
        Err(users::UserError::Db(err)) => html::server_error(&err),
        Err(err) => {
            let notice = format!(
                r#"<p class="notice" role="alert">{}</p>"#,
                escape(&err.to_string())
            );
            render(&state, &session, StatusCode::NOT_FOUND, &notice).await
        }
    }
}
