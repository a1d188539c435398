//! The scan page: up to [`MAX_FILES`] images analysed on the path of `POST /v1/analyze`, for the
//! signed-in person's tenant, each with its colour-coded verdict, the models' scores, the
//! evidence in plain words, the splicing heatmap over the image, and the decision under a
//! chosen flow. The server reads the upload (multipart) and counts the scan against the tenant's
//! plan; everything after having the images is here.

use super::Page;
use super::html::{csrf_field, escape, layout, percent, verdict_badge};
use crate::Session;
use arbiter_core::{AnalyzeOptions, ErrorCode, RequestId};
use arbiter_engine::EngineError;
use arbiter_engine::FlowRegistry;
use arbiter_engine::analyze::{
    AnalysisHandles, AnalyzeCall, AnalyzeReply, ImageSource, analyze_for,
};
use base64::Engine as _;
use serde_json::Value;

/// Images a scan takes at once.
pub const MAX_FILES: usize = 10;

/// One uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file's name (or `image N` when the upload gave none).
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The scan form as posted, once the upload is read.
#[derive(Debug, Clone, Default)]
pub struct ScanForm {
    /// The form's CSRF token.
    pub csrf: Option<String>,
    /// The flow to decide under; empty for the analysis only.
    pub flow: String,
    /// The flow's facts, one `path=value` a line.
    pub facts: String,
    /// The images.
    pub uploads: Vec<Upload>,
}

impl ScanForm {
    /// Takes one field of the upload: `name`, the file name it gave, its bytes. Unknown fields
    /// and empty files are left out.
    pub fn field(&mut self, name: &str, file_name: Option<&str>, data: &[u8]) {
        let text = || String::from_utf8_lossy(data).into_owned();
        match name {
            "csrf" => self.csrf = Some(text()),
            "flow" => self.flow = text().trim().to_owned(),
            "facts" => self.facts = text(),
            "file" if !data.is_empty() => self.uploads.push(Upload {
                name: file_name.map_or_else(
                    || format!("image {}", self.uploads.len() + 1),
                    str::to_owned,
                ),
                bytes: data.to_vec(),
            }),
            _ => {}
        }
    }
}

/// The page refusing an upload that could not be read (`status`, and why).
pub fn unreadable(session: &Session, status: u16, text: &str) -> Page {
    Page::message(
        status,
        Some(session),
        "Scan refused",
        &format!("The upload could not be read: {text}"),
    )
}

/// A limit of the tenant's plan a scan would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// The requests of the minute: the plan allows this many.
    Minute(u32),
    /// The day's quota: the plan allows this many images.
    Day(u32),
}

/// The 429 page for a scan of `images` over the tenant's plan: which limit and when to try
/// again.
pub fn too_many(session: &Session, spent: Spent, images: usize, retry_after: u64) -> Page {
    let text = match spent {
        Spent::Minute(per_minute) => format!(
            "Your organisation's plan allows {per_minute} requests a minute, and they are spent. Try again in {retry_after} seconds."
        ),
        Spent::Day(per_day) => format!(
            "Your organisation's daily quota of {per_day} images is spent (this scan has {images}); it renews at 00:00 UTC."
        ),
    };
    Page::message(429, Some(session), "Too many scans", &text)
}

/// The upload form.
pub fn page(flows: &FlowRegistry, session: &Session) -> Page {
    Page::ok(
        "Scan",
        session,
        "/console/scan",
        &form(flows, session, "", ""),
    )
}

fn form(flows: &FlowRegistry, session: &Session, flow: &str, facts: &str) -> String {
    let options: String = std::iter::once(("", "No flow: the analysis only"))
        .chain(flows.names().map(|name| (name, name)))
        .map(|(value, text)| {
            let selected = if value == flow { " selected" } else { "" };
            format!(r#"<option value="{value}"{selected}>{text}</option>"#)
        })
        .collect();
    format!(
        r#"<form method="post" action="/console/scan" enctype="multipart/form-data" class="scan">
{csrf}
<label for="files">Images (up to {MAX_FILES}: JPEG, PNG, WebP, HEIC, BMP, TIFF)</label>
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

/// A flow and its domain input, for a decision.
pub type FlowInput = Option<(String, Value)>;

/// Checks a posted scan before anything is counted or analysed: its CSRF token (else the 403
/// page), at least one image and at most [`MAX_FILES`], and the chosen flow's facts; the flow
/// input, or the form again with what is wrong (400).
pub fn check(
    flows: &FlowRegistry,
    session: &Session,
    posted: &ScanForm,
) -> Result<FlowInput, Page> {
    super::form::check_csrf(session, posted.csrf.as_deref())?;
    let refuse = |text: String| {
        let body = format!(
            r#"<p class="notice" role="alert">{}</p>{}"#,
            escape(&text),
            form(flows, session, &posted.flow, &posted.facts)
        );
        Page {
            status: 400,
            html: layout("Scan", Some(session), "/console/scan", &body),
        }
    };
    if posted.uploads.is_empty() {
        return Err(refuse("Choose at least one image.".to_owned()));
    }
    if posted.uploads.len() > MAX_FILES {
        return Err(refuse(format!(
            "A scan takes at most {MAX_FILES} images; {} were sent.",
            posted.uploads.len()
        )));
    }
    if posted.flow.is_empty() {
        return Ok(None);
    }
    match domain_input(flows, &posted.flow, &posted.facts) {
        Ok(input) => Ok(Some((posted.flow.clone(), input))),
        Err(text) => Err(refuse(text)),
    }
}

/// Analyses each image of a checked scan for the session's tenant and shows each result, with
/// the form again below.
pub async fn results(
    handles: &impl AnalysisHandles,
    session: &Session,
    posted: ScanForm,
    input: FlowInput,
) -> Page {
    let pipeline = handles.analyzer().pipeline;
    let mut cards = String::new();
    for upload in &posted.uploads {
        let request_id = RequestId::new();
        let outcome = match ImageSource::Bytes(upload.bytes.clone()).take_in(pipeline.limits()) {
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
                analyze_for(handles, &session.tenant, &request_id, call).await
            }
            Err(err) => Err(err),
        };
        cards.push_str(&card(upload, outcome));
    }
    tracing::info!(tenant = session.tenant, user = session.user, "console scan");
    let body = format!(
        r#"<h2>Results</h2><div class="cards" id="results">{cards}</div><h2>Scan more</h2>{}"#,
        form(pipeline.flows(), session, &posted.flow, &posted.facts)
    );
    Page::ok("Scan", session, "/console/scan", &body)
}

/// The flow's domain input from `path=value` lines, typed as its schema declares.
fn domain_input(flows: &FlowRegistry, flow_name: &str, facts: &str) -> Result<Value, String> {
    let flow = flows
        .get(flow_name)
        .ok_or_else(|| format!("{flow_name:?} is not a flow of this server."))?;
    let mut input = arbiter_core::Facts::new();
    for (path, raw) in fact_lines(facts)? {
        input.set_path(path, flow.schema().typed_value(path, raw));
    }
    let input = Value::Object(input.as_map().clone());
    flow.schema()
        .validate(&input)
        .map_err(|err| format!("Facts: {}: {}", err.field, err.message))?;
    Ok(input)
}

/// The `path=value` lines of the facts field, trimmed, blank lines skipped; a line that is not
/// one is named by its number.
fn fact_lines(facts: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut lines = Vec::new();
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
        lines.push((path, raw.trim()));
    }
    Ok(lines)
}

/// The MIME type of an image format as the intake names it.
fn mime(format: &str) -> String {
    match format.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg".to_owned(),
        "tif" | "tiff" => "image/tiff".to_owned(),
        other => format!("image/{other}"),
    }
}

fn card(upload: &Upload, outcome: Result<AnalyzeReply, EngineError>) -> String {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(err) => {
            if err.code() == ErrorCode::InternalError {
                tracing::error!(error = %err, "internal error");
            }
            return format!(
                r#"<article class="card inconclusive"><h3>{}</h3><p class="notice" role="alert">Not analysed: {}</p></article>"#,
                escape(&upload.name),
                escape(&err.caller_message())
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

/// The first heatmap among the model results (the splicing model's), as base64 PNG.
pub fn heatmap_of(models: &Value) -> Option<String> {
    models
        .as_object()?
        .values()
        .find_map(|model| model["heatmap"]["png_base64"].as_str())
        .filter(|png| {
            png.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        })
        .map(str::to_owned)
}

/// The models' scores and evidence.
pub fn models_table(models: &Value) -> String {
    let Some(models) = models.as_object() else {
        return String::new();
    };
    let rows: String = models
        .iter()
        .map(|(name, model)| {
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&name.replace('_', " ")),
                percent(model["score"].as_f64()),
                escape(model["label"].as_str().unwrap_or("")),
                escape(model["detail"].as_str().unwrap_or("")),
            )
        })
        .collect();
    format!(
        r#"<div class="table-wrap"><table><caption class="muted">Models: score (higher is more suspicious) and evidence</caption><thead><tr><th scope="col">Model</th><th scope="col">Score</th><th scope="col">Label</th><th scope="col">Evidence</th></tr></thead><tbody>{rows}</tbody></table></div>"#
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fact_lines_are_trimmed_and_a_bad_line_is_named() {
        assert_eq!(
            fact_lines(" a.b = 12 \n\n c=x=y\n").unwrap(),
            vec![("a.b", "12"), ("c", "x=y")]
        );
        let err = fact_lines("a.b=1\nno equals sign").unwrap_err();
        assert!(
            err.starts_with("Facts, line 2: expected path=value"),
            "{err}"
        );
        let err = fact_lines("a..b=1").unwrap_err();
        assert_eq!(err, r#"Facts, line 1: "a..b" is not a dotted fact path."#);
        assert!(fact_lines(" =1").is_err());
    }

    #[test]
    fn the_upload_fields_fill_the_form() {
        let mut form = ScanForm::default();
        form.field("csrf", None, b"t0k");
        form.field("flow", None, b" ugc \n");
        form.field("facts", None, b"a.b=1");
        form.field("file", Some("cat.png"), b"png");
        form.field("file", None, b"jpg");
        form.field("file", Some("empty.png"), b"");
        form.field("other", None, b"x");
        assert_eq!(form.csrf.as_deref(), Some("t0k"));
        assert_eq!((form.flow.as_str(), form.facts.as_str()), ("ugc", "a.b=1"));
        let names: Vec<&str> = form.uploads.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["cat.png", "image 2"]);
        assert_eq!(form.uploads[1].bytes, b"jpg");
    }

    #[test]
    fn formats_name_their_mime_types() {
        assert_eq!(mime("JPG"), "image/jpeg");
        assert_eq!(mime("tif"), "image/tiff");
        assert_eq!(mime("png"), "image/png");
    }

    #[test]
    fn only_a_base64_heatmap_is_taken() {
        let models = json!({
            "ai": {"score": 0.1},
            "splicing": {"heatmap": {"png_base64": "iVBORw0KGgo="}},
        });
        assert_eq!(heatmap_of(&models).as_deref(), Some("iVBORw0KGgo="));
        let hostile = json!({"splicing": {"heatmap": {"png_base64": "x\" onerror=\"y"}}});
        assert_eq!(heatmap_of(&hostile), None);
        assert_eq!(heatmap_of(&Value::Null), None);
    }

    #[test]
    fn the_models_table_escapes_evidence() {
        let table = models_table(&json!({
            "ai_generated": {"score": 0.5, "label": "AI", "detail": "<b>odd</b>"}
        }));
        assert!(
            table.contains(r#"<th scope="row">ai generated</th>"#),
            "{table}"
        );
        assert!(table.contains("&lt;b&gt;odd&lt;/b&gt;"), "{table}");
        assert_eq!(models_table(&Value::Null), "");
    }

    #[test]
    fn a_decision_names_its_rules_or_none() {
        assert_eq!(
            decision_block(&Value::Null),
            r#"<p class="muted">No flow chosen: no decision.</p>"#
        );
        let block = decision_block(&json!({
            "flow": "f", "action": "approve", "reason": "clean", "fired": [],
            "policy": {"id": "p", "version": 3},
        }));
        assert!(block.contains("Rules fired: none. Policy p v3."), "{block}");
        let block = decision_block(&json!({
            "flow": "f", "action": "review", "reason": "r", "description": "<x>",
            "fired": ["a", "b"], "policy": {"id": "p", "version": 1},
        }));
        assert!(
            block.contains("(r): &lt;x&gt;. Rules fired: a, b."),
            "{block}"
        );
    }
}
