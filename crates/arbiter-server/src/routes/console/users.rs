//! `/console/users`: the tenant's console users (admins only): create one, disable one. The
//! page is `arbiter_console::pages::users`'.

use super::html::answer;
use super::{Posted, SignedIn};
use crate::state::AppState;
use arbiter_console::area::Users;
use arbiter_console::pages::users::{self, CreateForm, DisableForm};
use axum::extract::State;
use axum::response::Response;

/// `GET /console/users`.
pub async fn page(
    State(state): State<AppState>,
    SignedIn(session, _): SignedIn<Users>,
) -> Response {
    answer(users::page(state.pipeline.db(), &session, 200, "").await)
}

/// `POST /console/users`.
pub async fn create(
    State(state): State<AppState>,
    Posted(session, new, _): Posted<Users, CreateForm>,
) -> Response {
    answer(users::create(state.pipeline.db(), &session, new, state.clock.now()).await)
}

/// `POST /console/users/disable`.
pub async fn disable(
    State(state): State<AppState>,
    Posted(session, form, _): Posted<Users, DisableForm>,
) -> Response {
    answer(users::disable(state.pipeline.db(), &session, form).await)
}
