//! The flows' own routes, one set of handlers for every flow, served as each flow's intake
//! declaration says ([`arbiter_core::Intake`]): for a flow whose images are decided into cases,
//! `POST /v1/flows/<flow>/<path>/{id}/<images>`, `GET /v1/flows/<flow>/<path>/{id}` and a route
//! per case-level fact (`.../liveness`); for a flow whose images are collected into batches,
//! `POST /v1/flows/<flow>/<path>` (202). A flow serves its routes only when it is compiled in
//! and switched on (`flows.<name>.enabled`).

use crate::auth::{self, Caller};
use crate::cases::{self, CaseImageReply, CaseView, NewCaseImage};
use crate::error::{ApiError, ApiJson};
use crate::jobs::{self as collector, UploadAccepted};
use crate::keys::Scope;
use crate::routes::analyze::{RawBody, raw_body};
use crate::state::AppState;
use arbiter_core::{
    CaseFactIntake, CaseIntake, CaseSpec, CollectedIntake, Flow, ImageFacts, IntakeMode, RequestId,
};
use arbiter_engine::intake::{self, FlowBody};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router, middleware};
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Paths, Ref, Required, ResponseBuilder, Type};

/// The routes of the enabled flows, each declared with its operation in the API document:
/// intake behind the `analyze` scope, reading behind `requests:read`.
pub fn router(state: &AppState) -> utoipa_axum::router::OpenApiRouter<AppState> {
    let mut intake = Router::new();
    let mut read = Router::new();
    let mut paths = Paths::new();
    for (flow, mode) in served(state) {
        let name = flow.name();
        let path = flow_path(&*flow);
        match (mode, flow.case()) {
            (Served::Cases(cases), Some(&spec)) => {
                let base = case_path(name, path, &cases);
                let docs = CaseDocs {
                    flow: name,
                    spec,
                    cases,
                };
                let images = format!("{base}/{}", cases.images);
                paths.add_path_operation(&images, vec![HttpMethod::Post], docs.add_image());
                intake = intake.route(
                    &images,
                    post(
                        move |state: State<AppState>,
                              caller: Extension<Caller>,
                              request_id: Extension<RequestId>,
                              case_id: Path<String>,
                              request: Request| {
                            add_image(
                                state, caller, request_id, case_id, request, name, spec, cases,
                            )
                        },
                    ),
                );
                for fact in cases.case_facts {
                    let fact = *fact;
                    let fact_path = format!("{base}/{}", fact.name);
                    paths.add_path_operation(
                        &fact_path,
                        vec![HttpMethod::Post],
                        docs.set_fact(fact),
                    );
                    intake = intake.route(
                        &fact_path,
                        post(
                            move |state: State<AppState>,
                                  caller: Extension<Caller>,
                                  case_id: Path<String>,
                                  body: ApiJson<Value>| {
                                set_case_fact(state, caller, case_id, body, name, spec, fact)
                            },
                        ),
                    );
                }
                let report = format!("{base}/report.pdf");
                paths.add_path_operation(&report, vec![HttpMethod::Get], docs.report());
                paths.add_path_operation(&base, vec![HttpMethod::Get], docs.case());
                read = read
                    .route(
                        &base,
                        get(
                            move |state: State<AppState>,
                                  caller: Extension<Caller>,
                                  case_id: Path<String>| {
                                get_case(state, caller, case_id, name)
                            },
                        ),
                    )
                    .route(
                        &report,
                        get(
                            move |state: State<AppState>,
                                  caller: Extension<Caller>,
                                  Path(case_id): Path<String>| async move {
                                super::reports::case_report(&state, &caller, name, &case_id).await
                            },
                        ),
                    );
            }
            (Served::Collected(collected), _) => {
                let route = format!("/v1/flows/{name}/{path}");
                paths.add_path_operation(
                    &route,
                    vec![HttpMethod::Post],
                    collected_operation(name, path, &collected),
                );
                intake = intake.route(
                    &route,
                    post(
                        move |state: State<AppState>,
                              caller: Extension<Caller>,
                              request_id: Extension<RequestId>,
                              request: Request| {
                            add_collected(state, caller, request_id, request, name, collected)
                        },
                    ),
                );
            }
            (Served::Cases(_), None) => {}
        }
    }
    let max_image = state.config.limits.max_image_bytes;
    let body_limit = usize::try_from(max_image / 3 * 4 + 64 * 1024).unwrap_or(usize::MAX);
    let routes = intake
        .route_layer(DefaultBodyLimit::max(body_limit))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::Analyze),
            auth::require,
        ))
        .merge(read.route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::RequestsRead),
            auth::require,
        )));
    let mut routes = utoipa_axum::router::OpenApiRouter::from(routes);
    routes.get_openapi_mut().paths = paths;
    routes
}

/// How a served flow takes its images in.
#[derive(Clone, Copy)]
enum Served {
    Cases(CaseIntake),
    Collected(CollectedIntake),
}

/// The flows compiled in and switched on that have intake routes, with their intake.
fn served(state: &AppState) -> Vec<(std::sync::Arc<dyn Flow>, Served)> {
    state
        .pipeline
        .flows()
        .iter()
        .filter(|flow| state.config.flows.enabled(flow.name()))
        .filter_map(|flow| {
            let served = match flow.intake()?.mode {
                IntakeMode::Cases(cases) => Served::Cases(cases),
                IntakeMode::Collected(collected) => Served::Collected(collected),
            };
            Some((flow.clone(), served))
        })
        .collect()
}

/// The path segment of a flow's intake (`claims`).
fn flow_path(flow: &dyn Flow) -> &'static str {
    flow.intake().map_or("", |intake| intake.path)
}

/// `/v1/flows/<flow>/<path>/{<id>}`.
fn case_path(flow: &str, path: &str, cases: &CaseIntake) -> String {
    format!("/v1/flows/{flow}/{path}/{{{}}}", cases.id_param)
}

/// The case ids `cases::check_case_id` accepts, as the API document states them.
const CASE_ID_PATTERN: &str = "^[A-Za-z0-9._\\-:]{1,100}$";

/// Reads a JSON body, or a multipart form whose `file` part is the image and whose other parts
/// are JSON (or plain text), and takes out the image, `options` and `reference_id`.
async fn read_flow_body(state: &AppState, request: Request) -> Result<FlowBody, ApiError> {
    let fields = match raw_body(state, request).await? {
        RawBody::Parts(parts) => intake::flow_parts(parts)?,
        RawBody::Json(bytes) => intake::flow_json(&bytes)?,
    };
    Ok(state.intake().flow_body(fields)?)
}

/// Adds an image to a case: analysed and decided at once under the flow's policy; the case
/// decision is recomputed.
#[allow(clippy::too_many_arguments)]
async fn add_image(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Path(case_id): Path<String>,
    request: Request,
    flow: &'static str,
    spec: CaseSpec,
    cases: CaseIntake,
) -> Result<Json<CaseImageReply>, ApiError> {
    let result = async {
        cases::check_case_id(spec.kind, &case_id)?;
        let mut body = read_flow_body(&state, request).await?;
        let image = NewCaseImage::from_body(&cases, spec.kind, &case_id, &mut body)?;
        let (engine, tenant) = (state.engine(), &caller.key.tenant);
        Ok(
            cases::add_analyzed_image(&state, engine, tenant, flow, &request_id, body, image)
                .await?,
        )
    }
    .await;
    result.map(Json)
}

/// Records a case-level fact (a KYC session's liveness result): the case must exist; the fact
/// replaces any earlier one and the case decision is recomputed.
async fn set_case_fact(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(case_id): Path<String>,
    ApiJson(value): ApiJson<Value>,
    flow: &'static str,
    spec: CaseSpec,
    fact: CaseFactIntake,
) -> Result<Json<CaseView>, ApiError> {
    let outcome = async {
        let value = (fact.read)(value).map_err(ApiError::bad_request)?;
        cases::check_case_id(spec.kind, &case_id)?;
        cases::set_fact(
            state.engine(),
            &caller.key.tenant,
            flow,
            &case_id,
            fact.name,
            value,
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    outcome.map(Json)
}

/// A case, its images and both levels of decision.
async fn get_case(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(case_id): Path<String>,
    flow: &'static str,
) -> Result<Json<CaseView>, ApiError> {
    cases::get(state.engine(), &caller.key.tenant, flow, &case_id)
        .await
        .map(Json)
        .map_err(ApiError::from)
}

/// Collects an image for a later batch: answers 202 at once; each decision comes by webhook.
async fn add_collected(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    request: Request,
    flow: &'static str,
    collected: CollectedIntake,
) -> Result<(StatusCode, Json<UploadAccepted>), ApiError> {
    let base = super::batches::base_url(request.headers());
    let result = async {
        let body = read_flow_body(&state, request).await?;
        let max_len = state.config.limits.max_reference_id_len;
        let upload =
            collector::Upload::from_body(&state.pipeline, flow, &collected, body, max_len)?;
        collector::collect(&state, flow, &caller.key.tenant, &request_id, upload, &base).await
    }
    .await;
    result.map(|accepted| (StatusCode::ACCEPTED, Json(accepted)))
}

/// The API document's operations of a case flow's routes.
struct CaseDocs {
    flow: &'static str,
    spec: CaseSpec,
    cases: CaseIntake,
}

impl CaseDocs {
    /// The case id in the path.
    fn id(&self) -> ParameterBuilder {
        ParameterBuilder::new()
            .name(self.cases.id_param)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(format!(
                "Your {} id: 1 to 100 letters, digits and `. _ - :`",
                self.spec.kind
            )))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(CASE_ID_PATTERN)),
            ))
    }

    /// `POST <case>/<images>`.
    fn add_image(&self) -> OperationBuilder {
        let (name, kind, cases) = (self.flow, self.spec.kind, &self.cases);
        let fields = cases.fields(kind).join(", ");
        let roles = match cases.image_facts {
            ImageFacts::Role { roles, .. } => format!(" `role` is one of {}.", roles.join(", ")),
            ImageFacts::Object { field } => format!(" The image's role is `{field}.role`."),
        };
        operation(&format!("add_{kind}_{}", cases.images))
            .summary(Some(format!("Add an image to a {kind} of the {name} flow")))
            .description(Some(format!(
                "JSON with `image_url` or `image_base64`, or multipart with a `file` part; `{fields}`, `options`, `reference_id`.{roles} The image is analysed and decided under the {name} policy and the {kind} decision recomputed."
            )))
            .parameter(self.id())
            .request_body(Some(object_body(&format!("JSON or multipart: image, {fields}, options, reference_id"))))
            .response("200", reply("The image's analysis and decision, and the case", "CaseImageReply"))
            .response("400", reply("Malformed request or facts; the message names the field", "ErrorBody"))
            .response("413", reply("Image too large", "ErrorBody"))
            .response("422", reply("Unsupported, too small, corrupt or unreachable image", "ErrorBody"))
    }

    /// `POST <case>/<fact>`.
    fn set_fact(&self, fact: CaseFactIntake) -> OperationBuilder {
        let kind = self.spec.kind;
        operation(&format!("set_{}", fact.name))
            .summary(Some(format!("Record the {} of a {kind}", fact.name)))
            .description(Some(format!(
                "The {kind} must exist (an image was added to it). The result replaces any earlier one and the decision is recomputed."
            )))
            .parameter(self.id())
            .request_body(Some(schema_body(&format!("The {}", fact.name), fact.body_schema)))
            .response("200", reply("The case", "CaseView"))
            .response("400", reply("Malformed value; the message names the field", "ErrorBody"))
            .response("404", reply("No such case for this tenant", "ErrorBody"))
    }

    /// `GET <case>/report.pdf`.
    fn report(&self) -> OperationBuilder {
        let kind = self.spec.kind;
        operation(&format!("get_{kind}_report"))
            .summary(Some(format!("A {kind}'s report card (PDF)")))
            .description(Some(format!(
                "The {kind}'s decision, then each of its images as in a request's report, then the latest signed checkpoint covering every audit entry listed and the verifier key. Needs the `requests:read` scope."
            )))
            .parameter(self.id())
            .response(
                "200",
                ResponseBuilder::new().description("The report").content(
                    "application/pdf",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String).format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Binary)))))
                        .build(),
                ),
            )
            .response("404", reply("No such case for this tenant", "ErrorBody"))
    }

    /// `GET <case>`.
    fn case(&self) -> OperationBuilder {
        let (name, kind) = (self.flow, self.spec.kind);
        operation(&format!("get_{kind}"))
            .summary(Some(format!(
                "A {kind} of the {name} flow: its images, facts and decision"
            )))
            .parameter(self.id())
            .response("200", reply("The case", "CaseView"))
            .response("404", reply("No such case for this tenant", "ErrorBody"))
    }
}

/// `POST /v1/flows/<flow>/<path>` of a collecting flow.
fn collected_operation(name: &str, path: &str, collected: &CollectedIntake) -> OperationBuilder {
    let fields = collected.fields.join(", ");
    operation(&format!("add_{path}"))
        .summary(Some(format!("Submit an image to the {name} flow")))
        .description(Some(format!(
            "JSON with `image_url` or `image_base64`, or multipart with a `file` part; `{fields}`. Answers 202 at once: images are collected and analysed together as one batch once `flows.{name}.batch_size` have arrived or the oldest has waited `flows.{name}.max_wait_secs`; each decision is announced by webhook, and an image that cannot be analysed as `analysis.failed`."
        )))
        .request_body(Some(object_body(&format!("JSON or multipart: image, {fields}, options, reference_id"))))
        .response("202", reply("Collected; the decision comes by webhook", "UploadAccepted"))
        .response("400", reply("Malformed request or facts; the message names the field", "ErrorBody"))
        .response("413", reply("Image too large", "ErrorBody"))
}

/// An operation of the `flows` tag behind an API key.
fn operation(id: &str) -> OperationBuilder {
    OperationBuilder::new()
        .tag("flows")
        .operation_id(Some(id))
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
}

/// A JSON object body.
fn object_body(description: &str) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .description(Some(description))
        .required(Some(Required::True))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                .build(),
        )
        .build()
}

/// A JSON body of the schema a flow states (an object, should the text not be a schema).
fn schema_body(description: &str, schema: &str) -> utoipa::openapi::request_body::RequestBody {
    let schema = serde_json::from_str::<utoipa::openapi::Schema>(schema)
        .unwrap_or_else(|_| ObjectBuilder::new().schema_type(Type::Object).into());
    RequestBodyBuilder::new()
        .description(Some(description))
        .required(Some(Required::True))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

/// A JSON answer of a named schema.
fn reply(description: &str, schema: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
}

/// A build with the KYC flow alone (`--no-default-features --features flow-kyc`) starts and
/// serves that flow only.
#[cfg(test)]
#[cfg(all(
    feature = "flow-kyc",
    not(feature = "flow-insurance"),
    not(feature = "flow-ugc")
))]
mod one_flow_build_tests {
    use crate::config::Config;
    use crate::server::Server;
    use reqwest::StatusCode;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn a_build_with_one_flow_serves_only_that_flow() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".to_owned(),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let server = Server::bind(config).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(server.run(shutdown.clone()));
        let client = reqwest::Client::new();
        let status = |method: reqwest::Method, path: &str| {
            let request = client.request(method, format!("{base}{path}")).send();
            async move { request.await.unwrap().status() }
        };
        use reqwest::Method;
        // The KYC routes are there (they ask for a key)...
        for (method, path) in [
            (Method::POST, "/v1/flows/kyc/sessions/s1/images"),
            (Method::POST, "/v1/flows/kyc/sessions/s1/liveness"),
            (Method::GET, "/v1/flows/kyc/sessions/s1"),
        ] {
            assert_eq!(
                status(method, path).await,
                StatusCode::UNAUTHORIZED,
                "{path}"
            );
        }
        // ...the other flows' are not.
        for (method, path) in [
            (Method::POST, "/v1/flows/insurance/claims/c1/photos"),
            (Method::GET, "/v1/flows/insurance/claims/c1"),
            (Method::POST, "/v1/flows/ugc/uploads"),
        ] {
            assert_eq!(status(method, path).await, StatusCode::NOT_FOUND, "{path}");
        }
        // The console lists KYC sessions (a visitor is sent on to the sign-in page) and has no
        // claims.
        for path in [
            "/console/kyc",
            "/console/kyc/s1",
            "/console/kyc/s1/report.pdf",
        ] {
            assert_eq!(status(Method::GET, path).await, StatusCode::OK, "{path}");
        }
        for path in [
            "/console/claims",
            "/console/claims/c1",
            "/console/claims/c1/report.pdf",
        ] {
            assert_eq!(
                status(Method::GET, path).await,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let doc: serde_json::Value = serde_json::from_str(
            &client
                .get(format!("{base}/v1/openapi.json"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let flow_paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            // The case report routes are documented apart (`routes/reports.rs`).
            .filter(|path| path.starts_with("/v1/flows/") && !path.ends_with("/report.pdf"))
            .collect();
        assert!(!flow_paths.is_empty());
        assert!(
            flow_paths
                .iter()
                .all(|path| path.starts_with("/v1/flows/kyc/")),
            "{flow_paths:?}"
        );
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }
}
