//! What a request brings in, checked before anything is analysed, apart from HTTP: the image (a
//! URL, base64 text refused by size before it is decoded, or a multipart file), an analysis
//! request's fields built into an [`AnalyzeCall`], and a flow's image body (the image,
//! `options`, `reference_id` and the flow's own fields) with the detector options the flow
//! chooses for it. The server reads the HTTP body (JSON, or multipart parts by name) and hands
//! it here as a [`RawBody`].

use crate::analyze::{
    AnalyzeCall, ImageSource, RequestOptions, check_reference_id, decode_base64, parse_options,
};
use crate::error::EngineError;
use crate::flows::{FlowRegistry, FlowsConfig};
use arbiter_core::{AnalyzeOptions, ErrorCode, ModelKind};
use arbiter_detect::IntakeLimits;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The limits a request's intake is held to.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// `limits.max_image_bytes`: the largest image, decoded.
    pub max_image_bytes: u64,
    /// `limits.max_reference_id_len`: the longest `reference_id`.
    pub max_reference_id_len: usize,
}

/// The handles an intake reads: its limits, the flows compiled in, and which are switched on.
#[derive(Clone, Copy)]
pub struct Intake<'a> {
    /// The request limits.
    pub limits: RequestLimits,
    /// The flows compiled in.
    pub registry: &'a FlowRegistry,
    /// Which flows are switched on (`flows.<name>.enabled`).
    pub flows: &'a FlowsConfig,
}

/// Refuses (413) base64 text whose image would be larger than `max_bytes`, before it is decoded.
pub fn check_encoded_size(encoded: &str, max_bytes: u64) -> Result<(), EngineError> {
    if (encoded.len() as u64) / 4 * 3 > max_bytes + 3 {
        return Err(EngineError::refused(
            ErrorCode::FileSizeExceeded,
            format!("the image is larger than the {max_bytes}-byte limit"),
        ));
    }
    Ok(())
}

/// The image of a request: exactly one of a URL, base64 text (refused by size before it is
/// decoded, past `max_image_bytes`) and a multipart file.
pub fn image_source(
    max_image_bytes: u64,
    image_url: Option<String>,
    image_base64: Option<String>,
    file: Option<Vec<u8>>,
) -> Result<ImageSource, EngineError> {
    match (image_url, image_base64, file) {
        (Some(url), None, None) => Ok(ImageSource::Url(url)),
        (None, Some(encoded), None) => {
            check_encoded_size(&encoded, max_image_bytes)?;
            Ok(ImageSource::Bytes(decode_base64(&encoded)?))
        }
        (None, None, Some(bytes)) => Ok(ImageSource::Bytes(bytes)),
        (None, None, None) => Err(EngineError::invalid(
            "send one of image_url, image_base64 or a multipart file",
        )),
        _ => Err(EngineError::invalid(
            "send only one of image_url, image_base64 or a multipart file, not several",
        )),
    }
}

/// A JSON analysis request (`POST /v1/analyze`): exactly one of `image_url` and `image_base64`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// A URL Arbiter fetches the image from (http or https, public addresses only).
    #[serde(default)]
    #[schema(nullable = false, pattern = "^https?://[^/?#]+")]
    pub image_url: Option<String>,
    /// The image, base64-encoded (standard alphabet, padded; a `data:` URL prefix is allowed).
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = "^(data:[^;,]*;base64,)?([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
    )]
    pub image_base64: Option<String>,
    /// Options.
    #[serde(default)]
    pub options: Option<RequestOptions>,
    /// Your own identifier, echoed in the response: 1 to `limits.max_reference_id_len` (128)
    /// letters, digits and `. _ - : / @ #`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._\\-:/@#]+$")]
    pub reference_id: Option<String>,
    /// Domain facts for the flow named by `?flow=` (`{"claim": {"amount": 12000}}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub facts: Option<Value>,
}

/// A request body as it came: JSON bytes, or multipart parts by name, in order.
#[derive(Debug)]
pub enum RawBody<B> {
    /// `application/json`.
    Json(B),
    /// `multipart/form-data`.
    Parts(Vec<(String, B)>),
}

impl<B: AsRef<[u8]> + Into<Vec<u8>>> RawBody<B> {
    /// The fields of an analysis request ([`analyze_json`], [`analyze_parts`]), with a multipart
    /// `file` beside them.
    pub fn analyze_fields(self) -> Result<(AnalyzeRequest, Option<Vec<u8>>), EngineError> {
        match self {
            Self::Json(bytes) => Ok((analyze_json(bytes.as_ref())?, None)),
            Self::Parts(parts) => analyze_parts(parts),
        }
    }

    /// The fields of a flow's body ([`flow_json`], [`flow_parts`]).
    pub fn flow_fields(self) -> Result<FlowFields, EngineError> {
        match self {
            Self::Json(bytes) => flow_json(bytes.as_ref()),
            Self::Parts(parts) => flow_parts(parts),
        }
    }
}

/// The fields of a JSON analysis request.
pub fn analyze_json(bytes: &[u8]) -> Result<AnalyzeRequest, EngineError> {
    serde_json::from_slice(bytes)
        .map_err(|err| EngineError::invalid(format!("invalid JSON body: {err}")))
}

/// The fields of a multipart analysis request, taken by name: the `file` (or `image`) part is the
/// image, `options` and `facts` are JSON text, `reference_id` is text; any other part is refused.
pub fn analyze_parts<B>(
    parts: impl IntoIterator<Item = (String, B)>,
) -> Result<(AnalyzeRequest, Option<Vec<u8>>), EngineError>
where
    B: AsRef<[u8]> + Into<Vec<u8>>,
{
    let mut body = AnalyzeRequest::default();
    let mut file = None;
    for (name, bytes) in parts {
        match name.as_str() {
            // The part's buffer is taken over, not copied.
            "file" | "image" => file = Some(bytes.into()),
            "options" => {
                body.options = Some(
                    serde_json::from_str(&part_text(&name, bytes.as_ref())?)
                        .map_err(|err| EngineError::invalid(format!("options: {err}")))?,
                )
            }
            "facts" => {
                body.facts = Some(
                    serde_json::from_str(&part_text(&name, bytes.as_ref())?)
                        .map_err(|err| EngineError::invalid(format!("facts: {err}")))?,
                )
            }
            "reference_id" => body.reference_id = Some(part_text(&name, bytes.as_ref())?),
            other => {
                return Err(EngineError::invalid(format!(
                    "unknown multipart field {other:?}; expected file, options, facts or reference_id"
                )));
            }
        }
    }
    Ok((body, file))
}

/// A multipart part as UTF-8 text.
fn part_text(name: &str, bytes: &[u8]) -> Result<String, EngineError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| EngineError::invalid(format!("multipart field {name:?} is not UTF-8 text")))
}

/// The multipart parts of a flow's body taken as plain text.
const TEXT_FIELDS: [&str; 4] = ["image_url", "image_base64", "reference_id", "role"];

/// A flow's body as fields: its top-level JSON fields, and a multipart `file` (or `image`) part.
pub type FlowFields = (Map<String, Value>, Option<Vec<u8>>);

/// The fields of a flow's JSON body, which must be an object.
pub fn flow_json(bytes: &[u8]) -> Result<FlowFields, EngineError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(fields)) => Ok((fields, None)),
        Ok(_) => Err(EngineError::invalid("the JSON body must be an object")),
        Err(err) => Err(EngineError::invalid(format!("invalid JSON body: {err}"))),
    }
}

/// The fields of a flow's multipart body: the `file` (or `image`) part is the image; the plain
/// text fields (`image_url`, `image_base64`, `reference_id`, `role`) stay text, and the others
/// are JSON (`claim`, `photo`, `options`, ...), or text when they do not parse.
pub fn flow_parts<B>(
    parts: impl IntoIterator<Item = (String, B)>,
) -> Result<FlowFields, EngineError>
where
    B: AsRef<[u8]> + Into<Vec<u8>>,
{
    let mut fields = Map::new();
    let mut file = None;
    for (name, bytes) in parts {
        if name == "file" || name == "image" {
            file = Some(bytes.into());
            continue;
        }
        let text = part_text(&name, bytes.as_ref())?;
        // A reference id of digits is not a number.
        let value = if TEXT_FIELDS.contains(&name.as_str()) {
            Value::String(text)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        fields.insert(name, value);
    }
    Ok((fields, file))
}

/// An image with a flow's own fields, as a flow's route takes it.
#[derive(Debug)]
pub struct FlowBody {
    /// The image.
    pub source: ImageSource,
    /// `options`, unchecked: [`FlowBody::options`] checks them.
    pub options: Option<RequestOptions>,
    /// The caller's `reference_id`, checked.
    pub reference_id: Option<String>,
    /// Every other top-level field.
    pub fields: Map<String, Value>,
}

impl FlowBody {
    /// The detector options: the caller's, else the flow's choice of models for this input
    /// (`registry` holding the flow).
    pub fn options(
        &mut self,
        registry: &FlowRegistry,
        flow: &str,
        input: &Value,
    ) -> Result<AnalyzeOptions, EngineError> {
        let mut given = self.options.take().unwrap_or_default();
        if given.webhook_url.take().is_some() {
            return Err(EngineError::invalid(
                "options.webhook_url is not taken here: register an endpoint for the flow's events",
            ));
        }
        let named = given.models.is_some();
        let mut options = parse_options(given)?;
        if !named && let Some(flow) = registry.get(flow) {
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

impl Intake<'_> {
    /// Checks an analysis request's fields (and a multipart `file`) and builds the call, with
    /// `options.webhook_url` if given. `flow` is the `?flow=` named.
    pub fn call(
        &self,
        body: AnalyzeRequest,
        file: Option<Vec<u8>>,
        flow: Option<String>,
    ) -> Result<(AnalyzeCall, Option<String>), EngineError> {
        let source = image_source(
            self.limits.max_image_bytes,
            body.image_url,
            body.image_base64,
            file,
        )?;
        let mut options = body.options.unwrap_or_default();
        let webhook_url = options.webhook_url.take();
        let options = parse_options(options)?;
        if let Some(reference_id) = &body.reference_id {
            check_reference_id(reference_id, self.limits.max_reference_id_len)?;
        }
        if let Some(name) = &flow
            && !self.flows.enabled(name)
            && self.registry.get(name).is_some()
        {
            return Err(EngineError::invalid(format!(
                "flow {name:?} is switched off (flows.{name}.enabled)"
            )));
        }
        let flow = match (flow, body.facts) {
            (Some(flow), facts) => Some((
                flow,
                facts.unwrap_or_else(|| Value::Object(Default::default())),
            )),
            (None, Some(_)) => {
                let names: Vec<&str> = self.registry.names().collect();
                let (last, rest) = names.split_last().unwrap_or((&"", &[]));
                let named = if rest.is_empty() {
                    (*last).to_owned()
                } else {
                    format!("{} or {last}", rest.join(", "))
                };
                return Err(EngineError::invalid(format!("facts need ?flow={named}")));
            }
            (None, None) => None,
        };
        let call = AnalyzeCall {
            source,
            options,
            reference_id: body.reference_id,
            flow,
        };
        Ok((call, webhook_url))
    }

    /// An analysis request's body checked and built into its call, with `options.webhook_url`
    /// if given ([`Intake::call`]); an image sent in the body is taken in at once unless it is
    /// for a webhook (its job takes it in).
    pub fn analyze<B: AsRef<[u8]> + Into<Vec<u8>>>(
        &self,
        body: RawBody<B>,
        flow: Option<String>,
        limits: &IntakeLimits,
    ) -> Result<(AnalyzeCall, Option<String>), EngineError> {
        let (fields, file) = body.analyze_fields()?;
        let (mut call, webhook_url) = self.call(fields, file, flow)?;
        if webhook_url.is_none() {
            call.source = call.source.take_in(limits)?;
        }
        Ok((call, webhook_url))
    }

    /// A flow's body as its route takes it ([`RawBody::flow_fields`], [`Intake::flow_body`]).
    pub fn flow<B: AsRef<[u8]> + Into<Vec<u8>>>(
        &self,
        body: RawBody<B>,
    ) -> Result<FlowBody, EngineError> {
        self.flow_body(body.flow_fields()?)
    }

    /// Takes the image, `options` and `reference_id` out of a flow's body fields (and its
    /// multipart `file`); the rest stay for the flow to read.
    pub fn flow_body(&self, (mut fields, file): FlowFields) -> Result<FlowBody, EngineError> {
        let text = |fields: &mut Map<String, Value>, name: &str| match fields.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(EngineError::invalid(format!("{name} must be a string"))),
        };
        let image_url = text(&mut fields, "image_url")?;
        let image_base64 = text(&mut fields, "image_base64")?;
        let reference_id = text(&mut fields, "reference_id")?;
        if let Some(reference_id) = &reference_id {
            check_reference_id(reference_id, self.limits.max_reference_id_len)?;
        }
        let options = match fields.remove("options") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                serde_json::from_value(value)
                    .map_err(|err| EngineError::invalid(format!("options: {err}")))?,
            ),
        };
        Ok(FlowBody {
            source: image_source(self.limits.max_image_bytes, image_url, image_base64, file)?,
            options,
            reference_id,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: RequestLimits = RequestLimits {
        max_image_bytes: 6,
        max_reference_id_len: 8,
    };

    fn registry() -> FlowRegistry {
        FlowRegistry::builtin().unwrap()
    }

    #[test]
    fn base64_is_refused_by_its_size_before_it_is_decoded() {
        // 16 characters are at most 12 bytes: over 6 + 3 of padding slack. Not even decoded.
        let err = check_encoded_size(&"!".repeat(16), 6).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FileSizeExceeded);
        assert_eq!(err.to_string(), "the image is larger than the 6-byte limit");
        assert!(check_encoded_size(&"!".repeat(12), 6).is_ok());
    }

    #[test]
    fn an_image_comes_from_exactly_one_source() {
        let source = |url: Option<&str>, encoded: Option<&str>, file: Option<&[u8]>| {
            image_source(
                6,
                url.map(str::to_owned),
                encoded.map(str::to_owned),
                file.map(<[u8]>::to_vec),
            )
        };
        assert!(matches!(
            source(Some("https://a/b"), None, None),
            Ok(ImageSource::Url(url)) if url == "https://a/b"
        ));
        assert!(matches!(
            source(None, Some("QUJD"), None),
            Ok(ImageSource::Bytes(bytes)) if bytes == b"ABC"
        ));
        assert!(matches!(
            source(None, None, Some(b"xy")),
            Ok(ImageSource::Bytes(_))
        ));
        for (url, encoded, file, expected) in [
            (None, None, None, "send one of"),
            (Some("https://a/b"), Some("QUJD"), None, "send only one of"),
            (None, Some("QUJD"), Some(&b"x"[..]), "send only one of"),
        ] {
            let err = source(url, encoded, file).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert!(err.to_string().starts_with(expected), "{err}");
        }
        let err = source(None, Some("QUJDQUJDQUJDQUJD"), None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FileSizeExceeded);
    }

    #[test]
    fn a_call_takes_the_webhook_out_of_the_options_and_facts_need_a_flow() {
        let registry = registry();
        let flows = FlowsConfig::default();
        let intake = Intake {
            limits: LIMITS,
            registry: &registry,
            flows: &flows,
        };
        let request = |facts: Option<Value>| AnalyzeRequest {
            image_url: Some("https://example.com/a.jpg".into()),
            options: Some(RequestOptions {
                webhook_url: Some("https://example.com/hook".into()),
                ..RequestOptions::default()
            }),
            reference_id: Some("r-1".into()),
            facts,
            ..AnalyzeRequest::default()
        };
        let (call, webhook) = intake.call(request(None), None, None).unwrap();
        assert_eq!(webhook.as_deref(), Some("https://example.com/hook"));
        assert_eq!(call.reference_id.as_deref(), Some("r-1"));
        assert!(call.flow.is_none());
        let err = intake
            .call(request(Some(json!({"claim": {}}))), None, None)
            .unwrap_err();
        assert!(err.to_string().starts_with("facts need ?flow="), "{err}");
        if let Some(name) = registry.names().next() {
            let (call, _) = intake
                .call(request(None), None, Some(name.to_owned()))
                .unwrap();
            assert_eq!(call.flow, Some((name.to_owned(), json!({}))));
        }
        let long = AnalyzeRequest {
            reference_id: Some("r".repeat(9)),
            ..request(None)
        };
        assert_eq!(
            intake.call(long, None, None).unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn an_analysis_request_comes_as_json_or_as_named_parts() {
        let body = analyze_json(br#"{"image_url": "https://a/b", "reference_id": "r"}"#).unwrap();
        assert_eq!(body.image_url.as_deref(), Some("https://a/b"));
        let err = analyze_json(br#"{"colour": 1}"#).unwrap_err();
        assert!(err.to_string().starts_with("invalid JSON body: "), "{err}");
        let (body, file) = analyze_parts([
            ("image".to_owned(), b"\x89PNG".to_vec()),
            ("options".to_owned(), br#"{"models": ["gan"]}"#.to_vec()),
            ("facts".to_owned(), br#"{"claim": {}}"#.to_vec()),
            ("reference_id".to_owned(), b"0042".to_vec()),
        ])
        .unwrap();
        assert_eq!(file.as_deref(), Some(&b"\x89PNG"[..]));
        assert_eq!(body.reference_id.as_deref(), Some("0042"));
        assert_eq!(body.facts, Some(json!({"claim": {}})));
        assert!(body.options.is_some());
        for (name, value, expected) in [
            ("colour", &b"red"[..], "unknown multipart field \"colour\""),
            ("options", b"{", "options: "),
            ("facts", b"[", "facts: "),
            ("reference_id", b"\xff", "is not UTF-8 text"),
        ] {
            let err = analyze_parts([(name.to_owned(), value.to_vec())]).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn a_flows_parts_keep_text_fields_as_text_and_read_the_rest_as_json() {
        let (fields, file) = flow_parts([
            ("reference_id".to_owned(), b"0042".to_vec()),
            ("claim".to_owned(), br#"{"amount": 5}"#.to_vec()),
            ("note".to_owned(), b"not json".to_vec()),
            ("file".to_owned(), b"\x89PNG".to_vec()),
        ])
        .unwrap();
        assert_eq!(fields["reference_id"], "0042");
        assert_eq!(fields["claim"], json!({"amount": 5}));
        assert_eq!(fields["note"], "not json");
        assert_eq!(file.as_deref(), Some(&b"\x89PNG"[..]));
        let err = flow_parts([("role".to_owned(), vec![0xff])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "multipart field \"role\" is not UTF-8 text"
        );
        assert!(flow_json(b"[1]").is_err());
        assert!(
            flow_json(b"{")
                .unwrap_err()
                .to_string()
                .starts_with("invalid JSON body: ")
        );
    }

    #[test]
    fn a_flow_body_takes_out_the_image_options_and_reference() {
        let registry = registry();
        let flows = FlowsConfig::default();
        let intake = Intake {
            limits: LIMITS,
            registry: &registry,
            flows: &flows,
        };
        let fields = |value: Value| match value {
            Value::Object(fields) => (fields, None),
            _ => unreachable!(),
        };
        let mut body = intake
            .flow_body(fields(
                json!({"image_url": "https://a/b", "reference_id": "r",
                "options": {"models": ["noise"]}, "claim": {"amount": 5}}),
            ))
            .unwrap();
        assert!(matches!(body.source, ImageSource::Url(_)));
        assert_eq!(body.reference_id.as_deref(), Some("r"));
        assert_eq!(body.fields.keys().collect::<Vec<_>>(), ["claim"]);
        let options = body.options(&registry, "insurance", &json!({})).unwrap();
        assert_eq!(options.models, [ModelKind::Noise]);
        for (given, expected) in [
            (json!({"image_url": 1}), "image_url must be a string"),
            (
                json!({"image_url": "https://a/b", "options": {"colour": 1}}),
                "options: ",
            ),
            (
                json!({"image_url": "https://a/b", "reference_id": "a b"}),
                "reference_id",
            ),
            (json!({}), "send one of"),
        ] {
            let err = intake.flow_body(fields(given)).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let mut hooked = intake
            .flow_body(fields(json!({"image_url": "https://a/b",
                "options": {"webhook_url": "https://example.com"}})))
            .unwrap();
        let err = hooked
            .options(&registry, "insurance", &json!({}))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("options.webhook_url is not taken here")
        );
    }
}
