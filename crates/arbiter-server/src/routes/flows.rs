//! The flows' own routes, one set of handlers for every flow, served as each flow's intake
//! declaration says ([`arbiter_core::Intake`]): for a flow whose images are decided into cases,
//! `POST /v1/flows/<flow>/<path>/{id}/<images>`, `GET /v1/flows/<flow>/<path>/{id}` and a route
//! per case-level fact (`.../liveness`); for a flow whose images are collected into batches,
//! `POST /v1/flows/<flow>/<path>` (202). A flow serves its routes only when it is compiled in
//! and switched on (`flows.<name>.enabled`). Each route's handler finds its flow in the
//! request's extensions.

use crate::auth::{self, Caller};
use crate::cases::{self, CaseImageReply, CaseView};
use crate::error::{ApiError, ApiJson};
use crate::keys::Scope;
use crate::routes::analyze::raw_body;
use crate::state::AppState;
use arbiter_core::{
    CaseFactIntake, CaseIntake, CaseSpec, CollectedIntake, ImageFacts, IntakeMode, RequestId,
};
use arbiter_jobs::{UploadAccepted, collector};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json};
use serde_json::Value;
use utoipa::openapi::path::HttpMethod::{self, Get, Post};
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa_axum::router::OpenApiRouter;

/// The routes of the enabled flows, each declared with its operation in the API document:
/// intake behind the `analyze` scope, reading behind `requests:read`.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let (mut intake, mut read) = (OpenApiRouter::new(), OpenApiRouter::new());
    let flows = state.pipeline.flows().iter();
    for flow in flows.filter(|flow| state.config.flows.enabled(flow.name())) {
        let (name, Some(flow_intake)) = (flow.name(), flow.intake()) else {
            continue;
        };
        let path = flow_intake.path;
        match (flow_intake.mode, flow.case()) {
            (IntakeMode::Cases(cases), Some(&spec)) => {
                let case = CaseFlow { name, spec, cases };
                let base = format!("/v1/flows/{name}/{path}/{{{}}}", cases.id_param);
                let images = format!("{base}/{}", cases.images);
                let add = post(add_image).layer(Extension(case));
                intake = declare(intake, (Post, &images), case.add_image(), add);
                for &fact in cases.case_facts {
                    let set = post(set_case_fact).layer(Extension((case, fact)));
                    let fact_path = format!("{base}/{}", fact.name);
                    intake = declare(intake, (Post, &fact_path), case.set_fact(fact), set);
                }
                let report = get(case_report).layer(Extension(case));
                let report_path = format!("{base}/report.pdf");
                read = declare(read, (Get, &report_path), case.report(), report);
                let view = get(get_case).layer(Extension(case));
                read = declare(read, (Get, &base), case.case(), view);
            }
            (IntakeMode::Collected(collected), _) => {
                let route = format!("/v1/flows/{name}/{path}");
                let operation = collected_operation(name, path, &collected);
                let add = post(add_collected).layer(Extension(CollectedFlow(name)));
                intake = declare(intake, (Post, &route), operation, add);
            }
            (IntakeMode::Cases(_), None) => {}
        }
    }
    let max_image = state.config.limits.max_image_bytes;
    let body_limit = usize::try_from(max_image / 3 * 4 + 64 * 1024).unwrap_or(usize::MAX);
    let intake = intake.route_layer(DefaultBodyLimit::max(body_limit));
    auth::scoped(intake, state, Scope::Analyze).merge(auth::scoped(
        read,
        state,
        Scope::RequestsRead,
    ))
}

/// `router` with a route, and its operation in the document.
fn declare(
    router: OpenApiRouter<AppState>,
    (method, path): (HttpMethod, &str),
    operation: OperationBuilder,
    route: MethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let mut router = router.route(path, route);
    let paths = &mut router.get_openapi_mut().paths;
    paths.add_path_operation(path, vec![method], operation);
    router
}

/// A served flow whose images are decided into cases: what its handlers and its operations in
/// the API document read.
#[derive(Clone, Copy)]
struct CaseFlow {
    name: &'static str,
    spec: CaseSpec,
    cases: CaseIntake,
}

/// A served flow whose images are collected into batches, by name.
#[derive(Clone, Copy)]
struct CollectedFlow(&'static str);

/// The case ids `cases::check_case_id` accepts, as the API document states them.
const CASE_ID_PATTERN: &str = "^[A-Za-z0-9._\\-:]{1,100}$";

/// Adds an image to a case: analysed and decided at once under the flow's policy; the case
/// decision is recomputed.
async fn add_image(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Extension(case): Extension<CaseFlow>,
    Path(case_id): Path<String>,
    request: Request,
) -> Result<Json<CaseImageReply>, ApiError> {
    cases::check_case_id(case.spec.kind, &case_id)?;
    let body = state.intake().flow(raw_body(request, &state).await?)?;
    let (engine, tenant) = (state.engine(), &caller.key.tenant);
    let reply = cases::add_analyzed_image(
        &state,
        engine,
        tenant,
        case.name,
        &request_id,
        &case_id,
        body,
    );
    Ok(Json(reply.await?))
}

/// Records a case-level fact (a KYC session's liveness result): the case must exist; the fact
/// replaces any earlier one and the case decision is recomputed.
async fn set_case_fact(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension((case, fact)): Extension<(CaseFlow, CaseFactIntake)>,
    Path(case_id): Path<String>,
    ApiJson(value): ApiJson<Value>,
) -> Result<Json<CaseView>, ApiError> {
    let tenant = &caller.key.tenant;
    let view = cases::set_fact(state.engine(), tenant, case.name, &case_id, &fact, value);
    Ok(Json(view.await?))
}

/// A case, its images and both levels of decision.
async fn get_case(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(case): Extension<CaseFlow>,
    Path(case_id): Path<String>,
) -> Result<Json<CaseView>, ApiError> {
    let view = cases::get(state.engine(), &caller.key.tenant, case.name, &case_id);
    Ok(Json(view.await?))
}

/// A case's report card (PDF).
async fn case_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(case): Extension<CaseFlow>,
    Path(case_id): Path<String>,
) -> Result<Response, ApiError> {
    super::reports::case_report(&state, &caller, case.name, &case_id).await
}

/// Collects an image for a later batch: answers 202 at once; each decision comes by webhook.
async fn add_collected(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Extension(CollectedFlow(flow)): Extension<CollectedFlow>,
    request: Request,
) -> Result<(StatusCode, Json<UploadAccepted>), ApiError> {
    let base = super::batches::base_url(request.headers());
    let body = state.intake().flow(raw_body(request, &state).await?)?;
    let (context, tenant) = (state.job_context(), &caller.key.tenant);
    let accepted = collector::collect(&context, flow, tenant, &request_id, body, &base).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

impl CaseFlow {
    /// An operation on one case: its id in the path.
    fn operation(&self, id: &str) -> OperationBuilder {
        let id_param = ParameterBuilder::new()
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
            ));
        operation(id).parameter(id_param)
    }

    /// `POST <case>/<images>`.
    fn add_image(&self) -> OperationBuilder {
        let (name, kind, cases) = (self.name, self.spec.kind, &self.cases);
        let fields = cases.fields(kind).join(", ");
        let roles = match cases.image_facts {
            ImageFacts::Role { roles, .. } => format!(" `role` is one of {}.", roles.join(", ")),
            ImageFacts::Object { field } => format!(" The image's role is `{field}.role`."),
        };
        let operation = self
            .operation(&format!("add_{kind}_{}", cases.images))
            .summary(Some(format!("Add an image to a {kind} of the {name} flow")))
            .description(Some(format!(
                "JSON with `image_url` or `image_base64`, or multipart with a `file` part; `{fields}`, `options`, `reference_id`.{roles} The image is analysed and decided under the {name} policy and the {kind} decision recomputed."
            )))
            .response("200", reply("The image's analysis and decision, and the case", "CaseImageReply"))
            .response("422", reply("Unsupported, too small, corrupt or unreachable image", "ErrorBody"));
        with_image(operation, &fields)
    }

    /// `POST <case>/<fact>`.
    fn set_fact(&self, fact: CaseFactIntake) -> OperationBuilder {
        let kind = self.spec.kind;
        let schema = serde_json::from_str::<Schema>(fact.body_schema)
            .unwrap_or_else(|_| ObjectBuilder::new().schema_type(Type::Object).into());
        self.operation(&format!("set_{}", fact.name))
            .summary(Some(format!("Record the {} of a {kind}", fact.name)))
            .description(Some(format!(
                "The {kind} must exist (an image was added to it). The result replaces any earlier one and the decision is recomputed."
            )))
            .request_body(Some(json_body(&format!("The {}", fact.name), schema)))
            .response("200", reply("The case", "CaseView"))
            .response("400", reply("Malformed value; the message names the field", "ErrorBody"))
            .response("404", reply(NO_CASE, "ErrorBody"))
    }

    /// `GET <case>/report.pdf`.
    fn report(&self) -> OperationBuilder {
        let kind = self.spec.kind;
        let pdf = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)));
        self.operation(&format!("get_{kind}_report"))
            .summary(Some(format!("A {kind}'s report card (PDF)")))
            .description(Some(format!(
                "The {kind}'s decision, then each of its images as in a request's report, then the latest signed checkpoint covering every audit entry listed and the verifier key. Needs the `requests:read` scope."
            )))
            .response(
                "200",
                ResponseBuilder::new().description("The report").content(
                    "application/pdf",
                    ContentBuilder::new().schema(Some(pdf)).build(),
                ),
            )
            .response("404", reply(NO_CASE, "ErrorBody"))
    }

    /// `GET <case>`.
    fn case(&self) -> OperationBuilder {
        let (name, kind) = (self.name, self.spec.kind);
        self.operation(&format!("get_{kind}"))
            .summary(Some(format!(
                "A {kind} of the {name} flow: its images, facts and decision"
            )))
            .response("200", reply("The case", "CaseView"))
            .response("404", reply(NO_CASE, "ErrorBody"))
    }
}

/// The 404 of an operation on one case.
const NO_CASE: &str = "No such case for this tenant";

/// `POST /v1/flows/<flow>/<path>` of a collecting flow.
fn collected_operation(name: &str, path: &str, collected: &CollectedIntake) -> OperationBuilder {
    let fields = collected.fields.join(", ");
    let operation = operation(&format!("add_{path}"))
        .summary(Some(format!("Submit an image to the {name} flow")))
        .description(Some(format!(
            "JSON with `image_url` or `image_base64`, or multipart with a `file` part; `{fields}`. Answers 202 at once: images are collected and analysed together as one batch once `flows.{name}.batch_size` have arrived or the oldest has waited `flows.{name}.max_wait_secs`; each decision is announced by webhook, and an image that cannot be analysed as `analysis.failed`."
        )))
        .response("202", reply("Collected; the decision comes by webhook", "UploadAccepted"));
    with_image(operation, &fields)
}

/// An operation of the `flows` tag.
fn operation(id: &str) -> OperationBuilder {
    OperationBuilder::new().tag("flows").operation_id(Some(id))
}

/// `operation` taking an image with the flow's `fields` (JSON or multipart), and its refusals.
fn with_image(operation: OperationBuilder, fields: &str) -> OperationBuilder {
    let object = ObjectBuilder::new().schema_type(Type::Object);
    let description = format!("JSON or multipart: image, {fields}, options, reference_id");
    operation
        .request_body(Some(json_body(&description, object)))
        .response(
            "400",
            reply(
                "Malformed request or facts; the message names the field",
                "ErrorBody",
            ),
        )
        .response("413", reply("Image too large", "ErrorBody"))
}

/// A required JSON body of `schema`.
fn json_body(description: &str, schema: impl Into<RefOr<Schema>>) -> RequestBody {
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
    use crate::server::Server;
    use arbiter_config::Config;
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
