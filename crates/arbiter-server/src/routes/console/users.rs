//! `/console/users`: the tenant's console users (admins only): create one, disable one. The
//! page is `arbiter_console::pages::users`'.

use super::html::answer;
use super::{posted, require};
use crate::state::AppState;
use arbiter_console::Area;
use arbiter_console::pages::users::{self, CreateForm, DisableForm};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

/// `GET /console/users`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Users).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    answer(users::page(state.pipeline.db(), &session, 200, "").await)
}

/// `POST /console/users`.
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (session, new) = match posted::<CreateForm>(&state, &headers, Area::Users, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    answer(users::create(state.pipeline.db(), &session, new, state.clock.now()).await)
}

/// `POST /console/users/disable`.
pub async fn disable(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (session, form) = match posted::<DisableForm>(&state, &headers, Area::Users, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    answer(users::disable(state.pipeline.db(), &session, form).await)
}
