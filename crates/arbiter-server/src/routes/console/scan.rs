//! `/console/scan`: up to 10 images analysed on the path of `POST /v1/analyze`, for the
//! signed-in person's tenant, each with its colour-coded verdict, the models' scores, the
//! evidence in plain words, the splicing heatmap over the image, and the decision under a
//! chosen flow.

use super::html::{self, csrf_field, escape, percent, verdict_badge};
use super::{MAX_SCAN_FILES, check_csrf, require};
use crate::analyze::{AnalyzeCall, AnalyzeReply, ImageSource, analyze_for};
use crate::config::Plan;
use crate::error::ApiError;
use crate::ratelimit::Refusal;
use crate::state::AppState;
use arbiter_console::pages::scan::{heatmap_of, models_table};
use arbiter_console::{Area, Session};
use arbiter_core::{AnalyzeOptions, RequestId};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use serde_json::Value;

/// `GET /console/scan`: the upload form.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&state, &headers, Area::Scan).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let body = form(&state, &session, "", "");
    html::page("Scan", &session, "/console/scan", &body)
}

fn form(state: &AppState, session: &Session, flow: &str, facts: &str) -> String {
    let options: String = std::iter::once(("", "No flow: the analysis only"))
        .chain(state.pipeline.flows().names().map(|name| (name, name)))
        .map(|(value, text)| {
            let selected = if value == flow { " selected" } else { "" };
            format!(r#"<option value="{value}"{selected}>{text}</option>"#)
        })
        .collect();
    format!(
        r#"<form method="post" action="/console/scan" enctype="multipart/form-data" class="scan">
{csrf}
<label for="files">Images (up to {MAX_SCAN_FILES}: JPEG, PNG, WebP, HEIC, BMP, TIFF)</label>
<input type="file" id="files" name="file" accept="image/*" multiple required>
<label for="flow">Decide under the flow</label>
<select id="flow" name="flow">{options}</select>
<label for="facts">Facts for the flow, one <code>path=value</code> a line (such as <code>claim.amount=12000</code>)</label>
<textarea id="facts" name="facts">{facts}</textarea>
<button type="submit">Scan</button>
</form>"#,
        csrf = csrf_field(&session.csrf),
        facts = escape(facts),
    )
}

/// One uploaded file.
struct Upload {
    name: String,
    bytes: Vec<u8>,
}

/// `POST /console/scan`: analyses the uploaded images and shows each result.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let session = match require(&state, &headers, Area::Scan).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let mut csrf = None;
    let mut flow = String::new();
    let mut facts = String::new();
    let mut uploads = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(err) => {
                return html::message(
                    err.status(),
                    Some(&session),
                    "Scan refused",
                    &format!("The upload could not be read: {}", err.body_text()),
                );
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let data = match field.bytes().await {
            Ok(data) => data,
            Err(err) => {
                return html::message(
                    err.status(),
                    Some(&session),
                    "Scan refused",
                    &format!("The upload could not be read: {}", err.body_text()),
                );
            }
        };
        match name.as_str() {
            "csrf" => csrf = Some(String::from_utf8_lossy(&data).into_owned()),
            "flow" => flow = String::from_utf8_lossy(&data).trim().to_owned(),
            "facts" => facts = String::from_utf8_lossy(&data).into_owned(),
            "file" if !data.is_empty() => uploads.push(Upload {
                name: file_name.unwrap_or_else(|| format!("image {}", uploads.len() + 1)),
                bytes: data.to_vec(),
            }),
            _ => {}
        }
    }
    if let Err(response) = check_csrf(&session, csrf.as_deref()) {
        return response;
    }
    let refuse = |text: String| {
        let body = format!(
            r#"<p class="notice" role="alert">{}</p>{}"#,
            escape(&text),
            form(&state, &session, &flow, &facts)
        );
        html::respond(
            StatusCode::BAD_REQUEST,
            html::layout("Scan", Some(&session), "/console/scan", &body),
        )
    };
    if uploads.is_empty() {
        return refuse("Choose at least one image.".to_owned());
    }
    if uploads.len() > MAX_SCAN_FILES {
        return refuse(format!(
            "A scan takes at most {MAX_SCAN_FILES} images; {} were sent.",
            uploads.len()
        ));
    }
    let input = if flow.is_empty() {
        None
    } else {
        match domain_input(&state, &flow, &facts) {
            Ok(input) => Some((flow.clone(), input)),
            Err(text) => return refuse(text),
        }
    };
    if let Err(response) = admit(&state, &session, uploads.len()).await {
        return response;
    }
    let mut cards = String::new();
    for upload in uploads {
        let request_id = RequestId::new();
        let outcome =
            match ImageSource::Bytes(upload.bytes.clone()).take_in(state.pipeline.limits()) {
                Ok(source) => {
                    let call = AnalyzeCall {
                        source,
                        options: AnalyzeOptions {
                            return_heatmap: true,
                            ..AnalyzeOptions::default()
                        },
                        reference_id: None,
                        flow: input.clone(),
                    };
                    analyze_for(&state, &session.tenant, &request_id, call)
                        .await
                        .map_err(ApiError::from)
                }
                Err(err) => Err(ApiError::from(err)),
            };
        cards.push_str(&card(&upload, outcome));
    }
    tracing::info!(tenant = session.tenant, user = session.user, "console scan");
    let body = format!(
        r#"<h2>Results</h2><div class="cards" id="results">{cards}</div><h2>Scan more</h2>{}"#,
        form(&state, &session, &flow, &facts)
    );
    html::page("Scan", &session, "/console/scan", &body)
}

/// The plan a tenant's console scans count against: the most generous plan among the tenant's
/// live API keys (the counters are the tenant's, shared with the API), or
/// `rate_limits.default_plan` for a tenant without keys.
pub async fn tenant_plan(
    state: &AppState,
    tenant: &str,
) -> Result<Plan, arbiter_db::sea_orm::DbErr> {
    let limits = &state.config.rate_limits;
    let keys = arbiter_db::api_keys::list(state.pipeline.db().conn(), Some(tenant)).await?;
    let best = keys
        .iter()
        .filter(|key| key.revoked_at.is_none())
        .filter_map(|key| limits.plans.get(&key.plan))
        .max_by_key(|plan| (plan.per_minute, plan.per_day))
        .or_else(|| limits.plans.get(&limits.default_plan));
    // Start-up validation makes the default plan one of the plans.
    best.copied().ok_or_else(|| {
        arbiter_db::sea_orm::DbErr::Custom("rate_limits.default_plan is not a plan".into())
    })
}

/// Counts a scan against the tenant's plan, as the API counts a request: one request in the
/// minute and each image in the day's quota. Over either limit, a 429 page that says which and
/// when to try again (and `Retry-After`).
async fn admit(state: &AppState, session: &Session, images: usize) -> Result<(), Response> {
    let counted = async {
        let plan = tenant_plan(state, &session.tenant).await?;
        let (_, refusal) = state
            .limiter
            .check_counting(&session.tenant, &plan, images as u64)
            .await?;
        Ok::<_, arbiter_db::sea_orm::DbErr>((plan, refusal))
    }
    .await;
    let (plan, refusal) = counted.map_err(|err| html::server_error(&err))?;
    let (text, retry_after) = match refusal {
        None => return Ok(()),
        Some(Refusal::RateLimit { retry_after }) => (
            format!(
                "Your organisation's plan allows {} requests a minute, and they are spent. Try again in {retry_after} seconds.",
                plan.per_minute
            ),
            retry_after,
        ),
        Some(Refusal::Quota { retry_after }) => (
            format!(
                "Your organisation's daily quota of {} images is spent (this scan has {images}); it renews at 00:00 UTC.",
                plan.per_day
            ),
            retry_after,
        ),
    };
    let mut response = html::message(
        StatusCode::TOO_MANY_REQUESTS,
        Some(session),
        "Too many scans",
        &text,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    Err(response)
}

/// The flow's domain input from `path=value` lines, typed as its schema declares.
fn domain_input(state: &AppState, flow_name: &str, facts: &str) -> Result<Value, String> {
    let flow = state
        .pipeline
        .flows()
        .get(flow_name)
        .ok_or_else(|| format!("{flow_name:?} is not a flow of this server."))?;
    let mut input = arbiter_core::Facts::new();
    for (n, line) in facts.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((path, raw)) = line.split_once('=') else {
            return Err(format!(
                "Facts, line {}: expected path=value, such as claim.amount=12000; found {line:?}.",
                n + 1
            ));
        };
        let path = path.trim();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!(
                "Facts, line {}: {path:?} is not a dotted fact path.",
                n + 1
            ));
        }
        input.set_path(path, flow.schema().typed_value(path, raw.trim()));
    }
    let input = Value::Object(input.as_map().clone());
    flow.schema()
        .validate(&input)
        .map_err(|err| format!("Facts: {}: {}", err.field, err.message))?;
    Ok(input)
}

/// The MIME type of an image format as the intake names it.
fn mime(format: &str) -> String {
    match format.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg".to_owned(),
        "tif" | "tiff" => "image/tiff".to_owned(),
        other => format!("image/{other}"),
    }
}

fn card(upload: &Upload, outcome: Result<AnalyzeReply, ApiError>) -> String {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(err) => {
            return format!(
                r#"<article class="card inconclusive"><h3>{}</h3><p class="notice" role="alert">Not analysed: {}</p></article>"#,
                escape(&upload.name),
                escape(&err.message)
            );
        }
    };
    let json = serde_json::to_value(&reply).unwrap_or(Value::Null);
    let label = json["verdict"]["label"].as_str().unwrap_or("INCONCLUSIVE");
    let class = match label {
        "AUTHENTIC" => "authentic",
        "AI_GENERATED" => "ai",
        "MANIPULATED" => "manipulated",
        _ => "inconclusive",
    };
    let format = json["image_info"]["format"].as_str().unwrap_or("jpeg");
    let image = base64::engine::general_purpose::STANDARD.encode(&upload.bytes);
    let heatmap = heatmap_of(&json["model_results"]);
    let figure = format!(
        r#"<div class="figure"><img src="data:{};base64,{image}" alt="{}">{}</div>{}"#,
        mime(format),
        escape(&upload.name),
        heatmap.as_ref().map_or_else(String::new, |png| format!(
            r#"<img class="heat" src="data:image/png;base64,{png}" alt="Splicing heatmap: brighter regions are less consistent with the rest of the image">"#
        )),
        if heatmap.is_some() {
            r#"<p class="muted">The splicing heatmap is laid over the image: brighter regions are less consistent with the rest.</p>"#
        } else {
            ""
        },
    );
    format!(
        r#"<article class="card {class}" data-file="{name}"><h3>{name}</h3><p>{badge} at {confidence} confidence, {risk} risk</p>{figure}{models}{decision}<p><a href="/console/requests/{id}">Request {id}</a><br><span class="mono">SHA-256 {sha}</span></p></article>"#,
        name = escape(&upload.name),
        badge = verdict_badge(label),
        confidence = percent(json["verdict"]["confidence"].as_f64()),
        risk = escape(json["verdict"]["risk_level"].as_str().unwrap_or("")),
        models = models_table(&json["model_results"]),
        decision = decision_block(&json["decision"]),
        id = escape(json["request_id"].as_str().unwrap_or("")),
        sha = escape(json["image_info"]["sha256"].as_str().unwrap_or("")),
    )
}

/// A decision summary (`decision` of an analyze reply).
fn decision_block(decision: &Value) -> String {
    if decision.is_null() {
        return r#"<p class="muted">No flow chosen: no decision.</p>"#.to_owned();
    }
    let fired: Vec<String> = decision["fired"]
        .as_array()
        .map(|rules| rules.iter().filter_map(Value::as_str).map(escape).collect())
        .unwrap_or_default();
    format!(
        r#"<p class="decision">Decision under <strong>{flow}</strong>: <strong>{action}</strong> ({reason}){description}. Rules fired: {fired}. Policy {policy} v{version}.</p>"#,
        flow = escape(decision["flow"].as_str().unwrap_or("")),
        action = escape(decision["action"].as_str().unwrap_or("")),
        reason = escape(decision["reason"].as_str().unwrap_or("")),
        description = decision["description"]
            .as_str()
            .map_or_else(String::new, |d| format!(": {}", escape(d))),
        fired = if fired.is_empty() {
            "none".to_owned()
        } else {
            fired.join(", ")
        },
        policy = escape(decision["policy"]["id"].as_str().unwrap_or("")),
        version = decision["policy"]["version"].as_u64().unwrap_or(0),
    )
}
