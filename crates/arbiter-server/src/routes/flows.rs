//! The flows' own routes: insurance claim photos, KYC session images and liveness, UGC uploads.
//! A flow serves its routes only when it is compiled in and switched on (`flows.<name>.enabled`).

use crate::analyze::{self, ImageSource, check_reference_id};
use crate::auth::{self, Caller};
use crate::cases::{self, CaseImageReply, CaseView, NewCaseImage};
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{self as collector, UploadAccepted};
use crate::keys::Scope;
use crate::routes::analyze::{
    RawBody, RequestOptions, image_source, parse_options, part_text, raw_body,
};
use crate::state::AppState;
use arbiter_core::{AnalyzeOptions, ModelKind, RequestId};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router, middleware};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The routes of the enabled flows: intake behind the `analyze` scope, reading behind
/// `requests:read`.
pub fn router(state: &AppState) -> Router<AppState> {
    let on =
        |flow: &str| state.config.flows.enabled(flow) && state.pipeline.flows().get(flow).is_some();
    let mut intake = Router::new();
    let mut read = Router::new();
    if on("insurance") {
        intake = intake.route(
            "/v1/flows/insurance/claims/{claim_id}/photos",
            post(add_claim_photo),
        );
        read = read.route("/v1/flows/insurance/claims/{claim_id}", get(get_claim));
    }
    if on("kyc") {
        intake = intake
            .route(
                "/v1/flows/kyc/sessions/{session_id}/images",
                post(add_session_image),
            )
            .route(
                "/v1/flows/kyc/sessions/{session_id}/liveness",
                post(set_liveness),
            );
        read = read.route("/v1/flows/kyc/sessions/{session_id}", get(get_session));
    }
    if on("ugc") {
        intake = intake.route("/v1/flows/ugc/uploads", post(add_upload));
    }
    let max_image = state.config.limits.max_image_bytes;
    let body_limit = usize::try_from(max_image / 3 * 4 + 64 * 1024).unwrap_or(usize::MAX);
    intake
        .route_layer(DefaultBodyLimit::max(body_limit))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::Analyze),
            auth::require,
        ))
        .merge(read.route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::RequestsRead),
            auth::require,
        )))
}

/// The multipart parts taken as plain text.
const TEXT_FIELDS: [&str; 4] = ["image_url", "image_base64", "reference_id", "role"];

/// An image with domain fields, as JSON or multipart.
struct FlowBody {
    source: ImageSource,
    options: Option<RequestOptions>,
    reference_id: Option<String>,
    /// Every other top-level field.
    fields: Map<String, Value>,
}

/// Reads a JSON body, or a multipart form whose `file` part is the image and whose other parts
/// are JSON (or plain text), and takes out the image, `options` and `reference_id`.
async fn read_flow_body(state: &AppState, request: Request) -> Result<FlowBody, ApiError> {
    let (mut fields, file) = match raw_body(state, request).await? {
        RawBody::Parts(parts) => {
            let mut fields = Map::new();
            let mut file = None;
            for (name, bytes) in parts {
                if name == "file" || name == "image" {
                    file = Some(bytes.to_vec());
                    continue;
                }
                let text = part_text(&name, &bytes)?;
                // Text fields stay text (a reference id of digits is not a number); the others
                // are JSON (`claim`, `photo`, `options`, ...), or text when they do not parse.
                let value = if TEXT_FIELDS.contains(&name.as_str()) {
                    Value::String(text)
                } else {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                };
                fields.insert(name, value);
            }
            (fields, file)
        }
        RawBody::Json(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(fields)) => (fields, None),
            Ok(_) => return Err(ApiError::bad_request("the JSON body must be an object")),
            Err(err) => return Err(ApiError::bad_request(format!("invalid JSON body: {err}"))),
        },
    };
    let text = |fields: &mut Map<String, Value>, name: &str| -> Result<Option<String>, ApiError> {
        match fields.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(ApiError::bad_request(format!("{name} must be a string"))),
        }
    };
    let image_url = text(&mut fields, "image_url")?;
    let image_base64 = text(&mut fields, "image_base64")?;
    let reference_id = text(&mut fields, "reference_id")?;
    if let Some(reference_id) = &reference_id {
        check_reference_id(reference_id, state.config.limits.max_reference_id_len)?;
    }
    let options = match fields.remove("options") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            serde_json::from_value(value)
                .map_err(|err| ApiError::bad_request(format!("options: {err}")))?,
        ),
    };
    Ok(FlowBody {
        source: image_source(state, image_url, image_base64, file)?,
        options,
        reference_id,
        fields,
    })
}

impl FlowBody {
    /// Takes out the named domain fields; any other field is refused, by name.
    fn take(&mut self, allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
        if let Some(unknown) = self.fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown field {unknown:?}; expected image_url, image_base64 or a file, options, reference_id, {}",
                allowed.join(", ")
            )));
        }
        Ok(std::mem::take(&mut self.fields))
    }

    /// The detector options: the caller's, else the flow's choice of models for this input.
    fn options(
        &mut self,
        state: &AppState,
        flow: &str,
        input: &Value,
    ) -> Result<AnalyzeOptions, ApiError> {
        let mut given = self.options.take().unwrap_or_default();
        if given.webhook_url.take().is_some() {
            return Err(ApiError::bad_request(
                "options.webhook_url is not taken here: register an endpoint for the flow's events",
            ));
        }
        let named = given.models.is_some();
        let mut options = parse_options(given)?;
        if !named && let Some(flow) = state.pipeline.flows().get(flow) {
            options.models = flow.default_models(input);
            // A flow's choice of models keeps the metadata model unless metadata_analysis is
            // off.
            if options.metadata_analysis
                && !options.models.is_empty()
                && !options.models.contains(&ModelKind::Metadata)
            {
                options.models.push(ModelKind::Metadata);
            }
        }
        Ok(options)
    }
}

/// Adds the image of a case, analysed, to the case.
async fn add_case_image(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    flow: &str,
    mut body: FlowBody,
    image: NewCaseImage,
) -> Result<CaseImageReply, ApiError> {
    cases::check_image_input(state.engine(), flow, &image)?;
    let mut input = image.case_facts.clone();
    input.extend(image.image_facts.clone());
    let input = Value::Object(input);
    let options = body.options(state, flow, &input)?;
    let detector = state
        .pipeline
        .detector_for(Some(flow), Some(&input))
        .clone();
    let tenant = caller.key.tenant.as_str();
    let obtained =
        analyze::obtain(state, tenant, request_id, body.source, &options, &detector).await?;
    let reply =
        cases::add_image(state.engine(), tenant, flow, request_id, image, &obtained).await?;
    obtained.committed(state, request_id);
    Ok(reply)
}

/// Attach a photo to an insurance claim.
///
/// JSON with `image_url` or `image_base64`, or multipart with a `file` part; `claim` (the
/// claim's facts: `amount`, `currency`, `line_of_business`, `incident_date`) and `photo`
/// (`role`). Claim facts are kept with the claim: later photos may leave them out. The photo is
/// analysed and decided under the insurance policy; the claim's decision is the strictest over
/// its photos. `reference_id` defaults to `<claim_id>-photo-<n>`.
#[utoipa::path(
    post,
    path = "/v1/flows/insurance/claims/{claim_id}/photos",
    tag = "flows",
    params(("claim_id" = String, Path, description = "Your claim id: 1 to 100 letters, digits and `. _ - :`", pattern = "^[A-Za-z0-9._\\-:]{1,100}$")),
    request_body(content = Object, description = "JSON or multipart: image, claim, photo, options, reference_id"),
    responses(
        (status = 200, description = "The photo's analysis and decision, and the claim", body = CaseImageReply),
        (status = 400, description = "Malformed request or claim facts; the message names the field", body = ErrorBody),
        (status = 413, description = "Image too large", body = ErrorBody),
        (status = 422, description = "Unsupported, too small, corrupt or unreachable image", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn add_claim_photo(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Path(claim_id): Path<String>,
    request: Request,
) -> Result<Json<CaseImageReply>, ApiError> {
    let result = async {
        cases::check_case_id("claim", &claim_id)?;
        let mut body = read_flow_body(&state, request).await?;
        let mut fields = body.take(&["claim", "photo"])?;
        let mut claim = match fields.remove("claim") {
            None => Map::new(),
            Some(Value::Object(claim)) => claim,
            Some(_) => return Err(ApiError::bad_request("claim must be an object")),
        };
        match claim.get("id") {
            Some(id) if id != &json!(claim_id) => {
                return Err(ApiError::bad_request(format!(
                    "claim.id: {id} is not the claim of the path ({claim_id})"
                )));
            }
            _ => {}
        }
        claim.insert("id".to_owned(), json!(claim_id));
        let photo = fields.remove("photo");
        let role = photo
            .as_ref()
            .and_then(|p| p.get("role"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let image = NewCaseImage {
            case_id: claim_id.clone(),
            case_facts: [("claim".to_owned(), Value::Object(claim))]
                .into_iter()
                .collect(),
            image_facts: photo.map(|p| ("photo".to_owned(), p)).into_iter().collect(),
            role,
            reference_id: body.reference_id.take(),
            reference_stem: "photo".to_owned(),
        };
        add_case_image(&state, &caller, &request_id, "insurance", body, image).await
    }
    .await;
    result.map(Json)
}

/// A claim, its photos and both levels of decision.
#[utoipa::path(
    get,
    path = "/v1/flows/insurance/claims/{claim_id}",
    tag = "flows",
    params(("claim_id" = String, Path, description = "Your claim id")),
    responses(
        (status = 200, description = "The claim", body = CaseView),
        (status = 404, description = "No such claim for this tenant", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_claim(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(claim_id): Path<String>,
) -> Result<Json<CaseView>, ApiError> {
    cases::get(state.engine(), &caller.key.tenant, "insurance", &claim_id)
        .await
        .map(Json)
        .map_err(ApiError::from)
}

/// The image roles of a KYC session.
const KYC_ROLES: [&str; 2] = ["id_document", "selfie"];

/// Add an ID document or selfie to a KYC session.
///
/// JSON with `image_url` or `image_base64`, or multipart with a `file` part; `role`
/// (`id_document` or `selfie`). A selfie is analysed with the gan, diffusion and splicing
/// models (and the metadata model, unless `options.metadata_analysis` is false) unless
/// `options.models` says otherwise. The session decision is recomputed; it is
/// final (`status: decided`, webhook `kyc.decision`) once the session has a selfie, an ID
/// document and a liveness result.
#[utoipa::path(
    post,
    path = "/v1/flows/kyc/sessions/{session_id}/images",
    tag = "flows",
    params(("session_id" = String, Path, description = "Your verification session id: 1 to 100 letters, digits and `. _ - :`", pattern = "^[A-Za-z0-9._\\-:]{1,100}$")),
    request_body(content = Object, description = "JSON or multipart: image, role, options, reference_id"),
    responses(
        (status = 200, description = "The image's analysis and decision, and the session", body = CaseImageReply),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 422, description = "Unsupported, too small, corrupt or unreachable image", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn add_session_image(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Path(session_id): Path<String>,
    request: Request,
) -> Result<Json<CaseImageReply>, ApiError> {
    let result = async {
        cases::check_case_id("session", &session_id)?;
        let mut body = read_flow_body(&state, request).await?;
        let mut fields = body.take(&["role"])?;
        let role = match fields.remove("role") {
            Some(Value::String(role)) if KYC_ROLES.contains(&role.as_str()) => role,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "role: {other} is not one of {}",
                    KYC_ROLES.join(", ")
                )));
            }
            None => {
                return Err(ApiError::bad_request(format!(
                    "role is required: one of {}",
                    KYC_ROLES.join(", ")
                )));
            }
        };
        let image = NewCaseImage {
            case_id: session_id.clone(),
            case_facts: [("session".to_owned(), json!({"id": session_id}))]
                .into_iter()
                .collect(),
            image_facts: [("image_role".to_owned(), json!(role))]
                .into_iter()
                .collect(),
            role: Some(role.clone()),
            reference_id: body.reference_id.take(),
            reference_stem: role,
        };
        add_case_image(&state, &caller, &request_id, "kyc", body, image).await
    }
    .await;
    result.map(Json)
}

/// A liveness check's result, from the customer's liveness provider.
#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LivenessResult {
    /// Whether the check passed.
    #[schema(value_type = bool)]
    pub passed: Value,
    /// The provider's score, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, minimum = 0.0, maximum = 1.0)]
    pub score: Option<Value>,
    /// The provider's name, 1 to 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64)]
    pub provider: Option<Value>,
}

/// Record the liveness result of a KYC session.
///
/// The session must exist (an image was added to it). The result replaces any earlier one and
/// the session decision is recomputed; a session is never approved without a passed liveness
/// check.
#[utoipa::path(
    post,
    path = "/v1/flows/kyc/sessions/{session_id}/liveness",
    tag = "flows",
    params(("session_id" = String, Path, description = "Your verification session id: 1 to 100 letters, digits and `. _ - :`", pattern = "^[A-Za-z0-9._\\-:]{1,100}$")),
    request_body = LivenessResult,
    responses(
        (status = 200, description = "The session", body = CaseView),
        (status = 400, description = "Malformed result; the message names the field", body = ErrorBody),
        (status = 404, description = "No such session for this tenant", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_liveness(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(session_id): Path<String>,
    crate::error::ApiJson(result): crate::error::ApiJson<LivenessResult>,
) -> Result<Json<CaseView>, ApiError> {
    let outcome = async {
        cases::check_case_id("session", &session_id)?;
        let value = serde_json::to_value(&result).map_err(|err| ApiError::internal(&err))?;
        cases::set_fact(
            state.engine(),
            &caller.key.tenant,
            "kyc",
            &session_id,
            "liveness",
            value,
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    outcome.map(Json)
}

/// A KYC session: its images, liveness result and decision.
#[utoipa::path(
    get,
    path = "/v1/flows/kyc/sessions/{session_id}",
    tag = "flows",
    params(("session_id" = String, Path, description = "Your verification session id")),
    responses(
        (status = 200, description = "The session", body = CaseView),
        (status = 404, description = "No such session for this tenant", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_session(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(session_id): Path<String>,
) -> Result<Json<CaseView>, ApiError> {
    cases::get(state.engine(), &caller.key.tenant, "kyc", &session_id)
        .await
        .map(Json)
        .map_err(ApiError::from)
}

/// Submit a user upload for moderation.
///
/// JSON with `image_url` or `image_base64`, or multipart with a `file` part; `upload` (`id`,
/// `visibility`) and `uploader` (`id`, `account_age_days`, `prior_strikes`). Answers 202 at
/// once: uploads are collected and analysed together as one batch once `flows.ugc.batch_size`
/// have arrived or the oldest has waited `flows.ugc.max_wait_secs`; each decision is announced
/// as a `content.decision` webhook, and an upload that cannot be analysed (not an image, too
/// small, ...) as `analysis.failed`. `reference_id` defaults to `upload.id`.
#[utoipa::path(
    post,
    path = "/v1/flows/ugc/uploads",
    tag = "flows",
    request_body(content = Object, description = "JSON or multipart: image, upload, uploader, options, reference_id"),
    responses(
        (status = 202, description = "Collected; the decision comes by webhook", body = UploadAccepted),
        (status = 400, description = "Malformed request or upload facts; the message names the field", body = ErrorBody),
        (status = 413, description = "Image too large", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn add_upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    request: Request,
) -> Result<(StatusCode, Json<UploadAccepted>), ApiError> {
    let base = super::batches::base_url(request.headers());
    let result = async {
        let mut body = read_flow_body(&state, request).await?;
        let facts = Value::Object(body.take(&["upload", "uploader"])?);
        state.pipeline.check_input("ugc", &facts)?;
        let options = body.options(&state, "ugc", &facts)?;
        let reference_id = body.reference_id.take().or_else(|| {
            facts
                .pointer("/upload/id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        if let Some(reference_id) = &reference_id {
            check_reference_id(reference_id, state.config.limits.max_reference_id_len)?;
        }
        let upload = collector::Upload {
            source: body.source,
            options,
            reference_id,
            facts,
        };
        collector::collect(&state, &caller.key.tenant, &request_id, upload, &base).await
    }
    .await;
    result.map(|accepted| (StatusCode::ACCEPTED, Json(accepted)))
}
