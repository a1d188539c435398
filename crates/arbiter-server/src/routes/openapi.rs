//! `GET /v1/openapi.json`: the API document, generated from the handlers and types.

use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Arbiter", description = "Image-authenticity detection wired into claims, moderation and KYC workflows."),
    paths(
        super::analyze::analyze_image,
        super::requests::get_request,
        super::trail::get_trail,
        super::reports::get_request_report,
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
        super::reports::get_claim_report,
        super::reports::get_session_report,
        super::review::list_items,
        super::review::get_item,
        super::review::claim_item,
        super::review::resolve_item,
        super::rd::presign,
        super::rd::upload,
        super::rd::media_detail,
        super::rd::media_page,
        super::rd::feedback,
        super::rd::social,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
    ),
    components(schemas(
        crate::cases::CaseImageReply,
        crate::cases::CaseView,
        crate::collector::UploadAccepted
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

/// The answers the authentication layer may give on any route behind a key.
const AUTH_RESPONSES: [(&str, &str); 3] = [
    ("401", "Missing, unknown or revoked API key"),
    (
        "403",
        "The key lacks the route's scope, or is used from outside its networks",
    ),
    (
        "429",
        "Rate limit or daily quota exceeded (see Retry-After)",
    ),
];

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The Reality Defender–compatible routes take the same key as `X-API-KEY`.
        components.add_security_scheme(
            "x_api_key",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::new("X-API-KEY"),
            )),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.as_ref().is_none_or(Vec::is_empty) {
                    continue;
                }
                for (status, description) in AUTH_RESPONSES {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("application/json", content)
            .build(),
    )
}

/// The route; no authentication.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(openapi_json))
}

/// The document, with the operations of the flows this server serves.
async fn openapi_json(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    doc.paths
        .paths
        .extend(super::flows::openapi_paths(&state).paths);
    BearerAuth.modify(&mut doc);
    Json(doc)
}
