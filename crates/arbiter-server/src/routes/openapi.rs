//! `GET /v1/openapi.json`: the API document, generated from the handlers and types.

use crate::state::AppState;
use arbiter_config::Config;
use arbiter_core::ModelKind;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayItems, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API document's info and the schemas no handler names; its operations come from the
/// routers (see [`super::router`]) and [`served`] completes it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Arbiter",
        description = "Image-authenticity detection wired into claims, moderation and KYC workflows."
    ),
    components(schemas(
        crate::cases::CaseImageReply,
        crate::cases::CaseView,
        arbiter_jobs::UploadAccepted
    ))
)]
pub struct ApiDoc;

/// The security schemes: the bearer key, and the same key as `X-API-KEY`.
struct BearerAuth;

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
    }
}

/// The rules the API enforces on bodies that the derived schemas cannot state: an image is
/// sent by exactly one of `image_url` and `image_base64`, `options.models` names known models,
/// and a review label is one of the engine's labels.
struct StatedRules;

/// The schemas that carry one image by URL or inline.
const IMAGE_SOURCES: [&str; 2] = ["AnalyzeRequest", "BatchImage"];

impl Modify for StatedRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in IMAGE_SOURCES {
            if let Some(schema) = components.schemas.get_mut(name) {
                let fields = std::mem::replace(schema, RefOr::T(Schema::default()));
                *schema = AllOfBuilder::new()
                    .item(fields)
                    .item(exactly_one_of(&["image_url", "image_base64"]))
                    .into();
            }
        }
        let models = std::iter::once("all").chain(ModelKind::ALL.map(ModelKind::short_name));
        if let Some(RefOr::T(Schema::Array(array))) =
            property_mut(&mut components.schemas, "RequestOptions", "models")
        {
            array.items = ArrayItems::RefOrSchema(Box::new(string_enum(models).into()));
        }
        let labels = crate::review::LABELS.map(|(label, _)| label);
        if let Some(RefOr::T(Schema::Object(label))) =
            property_mut(&mut components.schemas, "ResolveRequest", "label")
        {
            label.enum_values = Some(labels.map(serde_json::Value::from).to_vec());
        }
    }
}

/// A schema that holds when exactly one of `fields` is present.
fn exactly_one_of(fields: &[&str]) -> Schema {
    fields
        .iter()
        .fold(OneOfBuilder::new(), |one_of, field| {
            one_of.item(ObjectBuilder::new().required(*field))
        })
        .into()
}

/// A string schema that takes one of `values`.
fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

/// The schema of `property` in the component schema `schema`, if both exist; in a schema
/// that [`StatedRules`] made an `allOf`, the property of its fields.
fn property_mut<'a>(
    schemas: &'a mut std::collections::BTreeMap<String, RefOr<Schema>>,
    schema: &str,
    property: &str,
) -> Option<&'a mut RefOr<Schema>> {
    let object = match schemas.get_mut(schema)? {
        RefOr::T(Schema::Object(object)) => object,
        RefOr::T(Schema::AllOf(all_of)) => match all_of.items.first_mut()? {
            RefOr::T(Schema::Object(object)) => object,
            _ => return None,
        },
        _ => return None,
    };
    object.properties.get_mut(property)
}

/// The document of the documented routes `api` (merged into [`ApiDoc`]) as this server
/// serves it: with the security schemes, the rules the derived schemas cannot state and the
/// limits of `config` (each scoped router documents the answers of its authentication layer).
pub fn served(mut api: utoipa::openapi::OpenApi, config: &Config) -> utoipa::openapi::OpenApi {
    BearerAuth.modify(&mut api);
    StatedRules.modify(&mut api);
    ServedLimits::of(config).state(&mut api);
    api
}

/// `GET /v1/openapi.json`, serving `document`; no authentication.
pub fn router(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::new().route(
        "/v1/openapi.json",
        get(move || std::future::ready(Json(document.clone()))),
    )
}

/// The limits of a server's configuration that bound request fields: the document states
/// these, not the defaults it is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedLimits {
    /// `limits.max_reference_id_len`: the longest `reference_id`.
    pub max_reference_id_len: usize,
    /// The largest `batch_size` of the rate-limit plans: the most images a batch may carry.
    pub max_batch_size: u32,
}

impl ServedLimits {
    /// The limits `config` sets.
    pub fn of(config: &Config) -> Self {
        Self {
            max_reference_id_len: config.limits.max_reference_id_len,
            max_batch_size: config
                .rate_limits
                .plans
                .values()
                .map(|plan| plan.batch_size)
                .max()
                .unwrap_or_default(),
        }
    }

    /// Writes the limits into the fields they bound.
    pub fn state(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let reference_ids = [
            ("AnalyzeRequest", "reference_id"),
            ("BatchImage", "reference_id"),
            ("BatchRequest", "batch_reference_id"),
        ];
        for (schema, property) in reference_ids {
            if let Some(RefOr::T(Schema::Object(field))) =
                property_mut(&mut components.schemas, schema, property)
            {
                field.max_length = Some(self.max_reference_id_len);
            }
        }
        if let Some(RefOr::T(Schema::Array(images))) =
            property_mut(&mut components.schemas, "BatchRequest", "images")
        {
            images.max_items = usize::try_from(self.max_batch_size).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    /// The document of the operations whose bodies the rules and limits are about.
    fn document() -> utoipa::openapi::OpenApi {
        OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
            .routes(routes!(crate::routes::analyze::analyze_image))
            .routes(routes!(crate::routes::batches::submit_batch))
            .routes(routes!(crate::routes::review::resolve_item))
            .into_openapi()
    }

    fn schemas() -> Value {
        let doc = served(document(), &Config::default());
        let doc = serde_json::to_value(doc).expect("the document is JSON");
        doc["components"]["schemas"].clone()
    }

    #[test]
    fn an_image_is_sent_by_exactly_one_of_url_and_base64() {
        let schemas = schemas();
        for name in IMAGE_SOURCES {
            let [fields, rule] = [0, 1].map(|i| &schemas[name]["allOf"][i]);
            assert!(
                fields["properties"]["image_url"].is_object(),
                "{name}: {fields}"
            );
            assert_eq!(
                rule["oneOf"],
                json!([
                    {"type": "object", "required": ["image_url"]},
                    {"type": "object", "required": ["image_base64"]},
                ]),
                "{name}"
            );
        }
    }

    #[test]
    fn the_served_document_states_the_configured_limits() {
        let mut config = Config::default();
        config.limits.max_reference_id_len = 40;
        let limits = ServedLimits::of(&config);
        let largest = config
            .rate_limits
            .plans
            .values()
            .map(|p| p.batch_size)
            .max();
        assert_eq!(Some(limits.max_batch_size), largest);
        let doc = serde_json::to_value(served(document(), &config)).expect("the document is JSON");
        let schemas = &doc["components"]["schemas"];
        for reference_id in [
            &schemas["AnalyzeRequest"]["allOf"][0]["properties"]["reference_id"],
            &schemas["BatchImage"]["allOf"][0]["properties"]["reference_id"],
            &schemas["BatchRequest"]["properties"]["batch_reference_id"],
        ] {
            assert_eq!(reference_id["maxLength"], json!(40), "{reference_id}");
        }
        assert_eq!(
            schemas["BatchRequest"]["properties"]["images"]["maxItems"],
            json!(limits.max_batch_size)
        );
    }

    #[test]
    fn models_and_review_labels_are_listed() {
        let schemas = schemas();
        assert_eq!(
            schemas["RequestOptions"]["properties"]["models"]["items"]["enum"],
            json!([
                "all",
                "gan",
                "diffusion",
                "noise",
                "metadata",
                "frequency",
                "splicing"
            ])
        );
        assert_eq!(
            schemas["ResolveRequest"]["properties"]["label"]["enum"],
            json!([
                "confirmed_fake",
                "confirmed_authentic",
                "false_positive",
                "unclear"
            ])
        );
    }
}
