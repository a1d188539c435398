//! `GET /v1/openapi.json`: the API document, generated from the handlers and types.

use crate::state::AppState;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Arbiter", description = "Image-authenticity detection wired into claims, moderation and KYC workflows."),
    paths(
        super::analyze::analyze_image,
        super::requests::get_request,
        super::trail::get_trail,
        super::audit::list_entries,
        super::audit::get_entry,
        super::audit::list_checkpoints,
        super::audit::verifier_key,
        super::audit::export_bundle,
        super::batches::submit_batch,
        super::batches::get_batch,
        super::webhooks::create_endpoint,
        super::webhooks::list_endpoints,
        super::webhooks::delete_endpoint,
        super::webhooks::list_deliveries,
        super::webhooks::get_delivery,
        super::webhooks::replay_delivery,
        super::policies::list_policies,
        super::policies::get_policy,
        super::policies::simulate,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The route; no authentication.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(openapi_json))
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
