//! `/console/policies`: the live policies, the watched files and a simulator. The page is
//! `arbiter_console::pages::policies`'.

use super::html::answer;
use super::{posted, require};
use crate::state::AppState;
use arbiter_console::Area;
use arbiter_console::pages::policies::{self, SimulateForm};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

/// `GET /console/policies`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Policies).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    answer(policies::page(state.pipeline.policies(), &session))
}

/// `POST /console/policies/simulate`.
pub async fn simulate(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (session, sim) = match posted::<SimulateForm>(&state, &headers, Area::Policies, &body).await
    {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    answer(policies::simulate(state.pipeline.policies(), &session, sim))
}
