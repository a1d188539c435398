//! Arbiter's results in Reality Defender's shapes, for the RD-compatible endpoints that RD's
//! own SDKs call (`reference/reality-defender.md`, sections 3 and 5): the one pending shape all
//! five SDKs accept, the final media detail, the presign answer, a presign body's file name,
//! and RD's error body.
//!
//! | Arbiter | `resultsSummary.status` | `finalScore` |
//! |---|---|---|
//! | AUTHENTIC | `AUTHENTIC` | 100 × (1 − confidence) |
//! | AI_GENERATED, MANIPULATED | `FAKE` (RD has no split; its SDKs print MANIPULATED) | 100 × confidence |
//! | INCONCLUSIVE with a vendor's score | `SUSPICIOUS` | 100 × the highest vendor score |
//! | INCONCLUSIVE without one (nothing could score the image) | `NOT_APPLICABLE`, with `reasons` | `null` |
//! | the analysis failed | `UNABLE_TO_EVALUATE`, with `resultsSummary.error` | `null` |
//!
//! `finalScore` is always 100 × the likelihood that the image is synthetic or manipulated, or an
//! explicit `null`; `overallStatus` is always the summary's word; `models` is always an array.

use arbiter_core::{DetectorRun, ModelLabel, ModelResults, RunStatus, Verdict, VerdictLabel};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Where an analysis stands.
#[derive(Debug, Clone, Copy)]
pub enum AnalysisState<'a> {
    /// Not analysed yet (or the bytes have not arrived).
    Pending,
    /// Analysed.
    Final {
        /// The verdict.
        verdict: &'a Verdict,
        /// The models' results.
        model_results: &'a ModelResults,
        /// What each detector of the route said.
        providers: &'a [DetectorRun],
    },
    /// The analysis failed with this error.
    Failed {
        /// Arbiter's error code.
        code: &'a str,
        /// Its message.
        message: &'a str,
    },
}

/// The media an answer is about.
#[derive(Debug, Clone, Copy)]
pub struct Media<'a> {
    /// The `requestId`.
    pub request_id: &'a str,
    /// The file name the SDK sent (or the caller's reference).
    pub file_name: &'a str,
    /// When it was presigned or submitted.
    pub uploaded: DateTime<Utc>,
    /// The file's size, once known.
    pub file_size: Option<u64>,
}

/// RD's summary word and `finalScore` (0..100) for an analysis.
pub fn summary(verdict: &Verdict, providers: &[DetectorRun]) -> (&'static str, Option<f64>) {
    match verdict.label {
        VerdictLabel::Authentic => ("AUTHENTIC", Some(percent(1.0 - verdict.confidence))),
        VerdictLabel::AiGenerated | VerdictLabel::Manipulated => {
            ("FAKE", Some(percent(verdict.confidence)))
        }
        VerdictLabel::Inconclusive => {
            let vendor = providers
                .iter()
                .filter(|run| run.status == RunStatus::Ok && run.name != "local")
                .filter_map(|run| run.score)
                .fold(None, |best: Option<f64>, s| {
                    Some(best.map_or(s, |b| b.max(s)))
                });
            match vendor {
                Some(score) => ("SUSPICIOUS", Some(percent(score))),
                None => ("NOT_APPLICABLE", None),
            }
        }
    }
}

fn percent(unit: f64) -> f64 {
    (unit.clamp(0.0, 1.0) * 10_000.0).round() / 100.0
}

/// RD's word for a verdict label.
fn word(label: VerdictLabel) -> &'static str {
    match label {
        VerdictLabel::Authentic => "AUTHENTIC",
        VerdictLabel::AiGenerated | VerdictLabel::Manipulated => "FAKE",
        VerdictLabel::Inconclusive => "SUSPICIOUS",
    }
}

/// One entry of `models`, in the shape every SDK reads.
fn model(name: &str, status: &str, score: Option<f64>) -> Value {
    json!({
        "name": name, "data": null, "error": null, "code": null, "status": status,
        "predictionNumber": score,
        "normalizedPredictionNumber": score.map(percent),
        "rollingAvgNumber": null,
        "finalScore": score.map(percent),
    })
}

/// `models`: one entry per Arbiter model that ran (`arbiter-frequency`, ...) and per detector of
/// the route (`reality_defender`, ...), scores 0..1.
fn models(model_results: &ModelResults, providers: &[DetectorRun]) -> Vec<Value> {
    let mut out: Vec<Value> = model_results
        .iter()
        .filter(|(_, result)| result.label != ModelLabel::NotRun)
        .map(|(kind, result)| {
            let status = match result.label {
                ModelLabel::Synthetic | ModelLabel::Manipulated => "FAKE",
                other => other.as_str(),
            };
            model(
                &format!("arbiter-{}", kind.short_name()),
                status,
                result.score,
            )
        })
        .collect();
    out.extend(providers.iter().map(|run| match (run.status, run.verdict) {
        (RunStatus::Ok, Some(verdict)) => model(&run.name, word(verdict.label), run.score),
        _ => model(&run.name, "NOT_APPLICABLE", None),
    }));
    out
}

/// The media detail (`GET /api/media/users/{requestId}`).
pub fn media_detail(media: &Media<'_>, standing: &AnalysisState<'_>) -> Value {
    let (status, summary_value, models) = match standing {
        // The one pending shape all five SDKs accept: never a null or missing summary.
        AnalysisState::Pending => (
            "ANALYZING",
            json!({"status": "ANALYZING", "metadata": {"finalScore": null}}),
            Vec::new(),
        ),
        AnalysisState::Final {
            verdict,
            model_results,
            providers,
        } => {
            let (status, score) = summary(verdict, providers);
            let mut metadata = json!({ "finalScore": score });
            if status == "NOT_APPLICABLE" {
                let mut reasons: Vec<Value> = providers
                    .iter()
                    .flat_map(|run| &run.reasons)
                    .map(|reason| json!({"code": "relevance", "message": reason}))
                    .collect();
                reasons.push(json!({
                    "code": "evidence",
                    "message": "no declared provenance or generator metadata, and no detector \
                                that scores pixels answered",
                }));
                metadata["reasons"] = Value::Array(reasons);
            }
            (
                status,
                json!({"status": status, "metadata": metadata}),
                models(model_results, providers),
            )
        }
        AnalysisState::Failed { code, message } => (
            "UNABLE_TO_EVALUATE",
            json!({
                "status": "UNABLE_TO_EVALUATE",
                "metadata": {"finalScore": null},
                "error": {"code": code, "message": message},
            }),
            Vec::new(),
        ),
    };
    let uploaded = media.uploaded.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({
        "requestId": media.request_id,
        "name": media.file_name,
        "filename": media.file_name,
        "originalFileName": media.file_name,
        "uploadedDate": uploaded,
        "createdAt": uploaded,
        "mediaType": "IMAGE",
        "overallStatus": status,
        "resultsSummary": summary_value,
        "models": models,
        "heatmaps": {},
        "webhookUrls": [],
        "media_metadata_info": {
            "file_size": media.file_size.unwrap_or(0),
            "gps_information": {},
            "audio_length": null,
        },
    })
}

/// RD's error body: `{code, errno, response}`.
pub fn error_body(code: &str, status: u16, message: &str) -> Value {
    json!({"code": code, "errno": status, "response": message})
}

/// RD's error body for an error answered with `status` and `body`: an Arbiter error body's code
/// becomes RD's word for it and its message RD's `response`; any other body is the message as it
/// is. `None` when `body` is in RD's shape already.
pub fn error_of(status: u16, body: &[u8]) -> Option<Value> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = parsed["error"]["code"].as_str().unwrap_or_default();
    let message = parsed["error"]["message"]
        .as_str()
        .map_or_else(|| String::from_utf8_lossy(body).into_owned(), str::to_owned);
    let word = match code {
        "INVALID_API_KEY" => "unauthorized",
        "FORBIDDEN" => "forbidden",
        "NOT_FOUND" => "not-found",
        "FILE_SIZE_EXCEEDED" => "file-too-large",
        "RATE_LIMIT_EXCEEDED" => "too-many-requests",
        "QUOTA_EXCEEDED" => "upload-limit-reached",
        "" if parsed.get("code").is_some() => return None,
        _ => "error",
    };
    Some(error_body(word, status, &message))
}

/// RD's presign answer: `requestId`, its `mediaId`, and the upload URL under `base_url` that
/// carries `token`.
pub fn presign_answer(request_id: &str, token: &str, base_url: &str) -> Value {
    json!({
        "code": "success",
        "errno": 0,
        "requestId": request_id,
        "mediaId": format!("media_{}", request_id.get(4..).unwrap_or_default()),
        "response": {"signedUrl": format!("{base_url}/api/files/upload/{request_id}?token={token}")},
    })
}

/// `fileName` from a presign body, JSON (TS, Go, Rust, Java) or form-urlencoded (Python) when
/// `form`; other fields (`fileSize`) are ignored. Only the base name (after the last `/` or `\`)
/// is kept, at most 200 characters; a blank one is refused.
pub fn file_name(form: bool, body: &[u8]) -> Result<String, FacadeError> {
    let given = if form {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map_err(|err| FacadeError(format!("the form body is malformed: {err}")))?
            .into_iter()
            .find_map(|(name, value)| (name == "fileName").then_some(value))
    } else {
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| FacadeError(format!("the body is not JSON: {err}")))?;
        value["fileName"].as_str().map(str::to_owned)
    };
    let given = given.unwrap_or_default();
    let base = given.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() {
        return Err(FacadeError("fileName is required".to_owned()));
    }
    Ok(base.chars().take(200).collect())
}

/// A field of an RD-compatible request that Arbiter cannot take: answered 400 `INVALID_REQUEST`
/// with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FacadeError(pub String);

/// A `YYYY-M-D` date (unpadded months and days are read too) as its first instant in UTC;
/// `field` names it in the error.
pub fn day(text: &str, field: &str) -> Result<DateTime<Utc>, FacadeError> {
    let bad = || FacadeError(format!("{field}: {text:?} is not a date (YYYY-MM-DD)"));
    let mut parts = text.trim().splitn(3, '-').map(str::parse::<u32>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(y).map_err(|_| bad())?, m, d)
        .ok_or_else(bad)?;
    Ok(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc())
}

/// The review label RD's feedback means: REAL → `confirmed_authentic` (`false_positive` when
/// the category says so), SYNTHETIC and MANIPULATED → `confirmed_fake`, UNKNOWN → `unclear`.
pub fn review_label(label: &str, category: Option<&str>) -> Result<&'static str, FacadeError> {
    Ok(match (label, category) {
        ("REAL", Some("FALSE_POSITIVE")) => "false_positive",
        ("REAL", _) => "confirmed_authentic",
        ("SYNTHETIC" | "MANIPULATED", _) => "confirmed_fake",
        ("UNKNOWN", _) => "unclear",
        (other, _) => {
            return Err(FacadeError(format!(
                "label must be REAL, SYNTHETIC, MANIPULATED or UNKNOWN; found {other:?}"
            )));
        }
    })
}

/// An uploaded file's name as a `reference_id`: the characters a reference may hold, others as
/// `_`, at most 128.
pub fn reference_id(file_name: &str) -> String {
    file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-:/@#".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

/// Compares two equal-length strings (an upload token's hashes) in constant time.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::{ModelKind, ModelResult, RiskLevel};

    fn media() -> Media<'static> {
        Media {
            request_id: "req_01",
            file_name: "photo.jpg",
            uploaded: DateTime::parse_from_rfc3339("2026-12-04T15:16:16.809Z")
                .unwrap()
                .with_timezone(&Utc),
            file_size: Some(12345),
        }
    }

    fn verdict(label: VerdictLabel, confidence: f64) -> Verdict {
        Verdict::new(label, confidence)
    }

    #[test]
    fn pending_is_the_one_shape_every_sdk_accepts() {
        let body = media_detail(&media(), &AnalysisState::Pending);
        assert_eq!(body["overallStatus"], "ANALYZING");
        assert_eq!(body["resultsSummary"]["status"], "ANALYZING");
        assert!(body["resultsSummary"]["metadata"]["finalScore"].is_null());
        assert_eq!(body["models"], json!([]));
        assert_eq!(body["requestId"], "req_01");
    }

    #[test]
    fn final_answers_map_as_the_table_says() {
        let mut results = ModelResults::default();
        results.set(
            ModelKind::Frequency,
            ModelResult::ran(0.2, ModelLabel::Inconclusive, "x"),
        );
        results.set(ModelKind::Gan, ModelResult::not_run("no classifier"));
        let fake = verdict(VerdictLabel::AiGenerated, 0.95);
        let body = media_detail(
            &media(),
            &AnalysisState::Final {
                verdict: &fake,
                model_results: &results,
                providers: &[],
            },
        );
        assert_eq!(body["overallStatus"], "FAKE");
        assert_eq!(body["resultsSummary"]["status"], "FAKE");
        assert_eq!(body["resultsSummary"]["metadata"]["finalScore"], 95.0);
        assert_eq!(body["uploadedDate"], "2026-12-04T15:16:16.809Z");
        // Models that ran only; scores 0..1.
        assert_eq!(body["models"].as_array().unwrap().len(), 1);
        assert_eq!(body["models"][0]["name"], "arbiter-frequency");
        assert_eq!(body["models"][0]["predictionNumber"], 0.2);

        let authentic = verdict(VerdictLabel::Authentic, 0.9);
        assert_eq!(summary(&authentic, &[]), ("AUTHENTIC", Some(10.0)));

        // Nothing could score it: NOT_APPLICABLE with reasons and an explicit null.
        let unsure = verdict(VerdictLabel::Inconclusive, 0.0);
        let body = media_detail(
            &media(),
            &AnalysisState::Final {
                verdict: &unsure,
                model_results: &results,
                providers: &[],
            },
        );
        assert_eq!(body["overallStatus"], "NOT_APPLICABLE");
        assert!(body["resultsSummary"]["metadata"]["finalScore"].is_null());
        assert!(
            body["resultsSummary"]["metadata"]
                .get("finalScore")
                .is_some()
        );
        assert_eq!(
            body["resultsSummary"]["metadata"]["reasons"][0]["code"],
            "evidence"
        );

        // A vendor scored it but could not decide: SUSPICIOUS at the vendor's score.
        let run = DetectorRun {
            score: Some(0.55),
            verdict: Some(Verdict {
                label: VerdictLabel::Inconclusive,
                confidence: 0.55,
                risk_level: RiskLevel::Medium,
            }),
            vendor_status: Some("SUSPICIOUS".into()),
            status: RunStatus::Ok,
            ..DetectorRun::without_answer("reality_defender", RunStatus::Ok, "")
        };
        assert_eq!(summary(&unsure, &[run]), ("SUSPICIOUS", Some(55.0)));
    }

    #[test]
    fn a_failed_analysis_is_unable_to_evaluate_with_its_error() {
        let body = media_detail(
            &media(),
            &AnalysisState::Failed {
                code: "UNSUPPORTED_FORMAT",
                message: "not an image",
            },
        );
        assert_eq!(body["overallStatus"], "UNABLE_TO_EVALUATE");
        assert_eq!(
            body["resultsSummary"]["error"]["code"],
            "UNSUPPORTED_FORMAT"
        );
        assert!(body["resultsSummary"]["metadata"]["finalScore"].is_null());
        assert_eq!(body["models"], json!([]));
    }

    #[cfg(feature = "reality-defender")]
    #[test]
    fn what_arbiter_answers_reads_back_through_its_own_provider_mapping() {
        // The facade's final body is a valid RD answer for Arbiter's own RD client.
        let fake = verdict(VerdictLabel::Manipulated, 0.9);
        let body = media_detail(
            &media(),
            &AnalysisState::Final {
                verdict: &fake,
                model_results: &ModelResults::default(),
                providers: &[],
            },
        );
        let read = super::super::wire::read_detail(body.to_string().as_bytes()).unwrap();
        let super::super::wire::Progress::Final(mapped) = read else {
            panic!("final")
        };
        assert_eq!(mapped.status, "FAKE");
        assert_eq!(mapped.score, Some(0.9));
        let pending = media_detail(&media(), &AnalysisState::Pending);
        assert_eq!(
            super::super::wire::read_detail(pending.to_string().as_bytes()).unwrap(),
            super::super::wire::Progress::Pending
        );
    }

    #[test]
    fn dates_may_be_unpadded_and_labels_map_to_review_labels() {
        assert_eq!(
            day("2025-7-3", "startDate").unwrap().to_rfc3339(),
            "2025-07-03T00:00:00+00:00"
        );
        assert!(day("2025-13-01", "startDate").is_err());
        assert!(day("yesterday", "endDate").is_err());
        assert_eq!(review_label("REAL", None).unwrap(), "confirmed_authentic");
        assert_eq!(
            review_label("REAL", Some("FALSE_POSITIVE")).unwrap(),
            "false_positive"
        );
        assert_eq!(review_label("SYNTHETIC", None).unwrap(), "confirmed_fake");
        assert_eq!(review_label("UNKNOWN", Some("OTHER")).unwrap(), "unclear");
        assert!(review_label("FAKE", None).is_err());
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
        assert_eq!(reference_id("selfie a+b.png"), "selfie_a_b.png");
    }

    #[test]
    fn file_names_come_from_json_or_a_form_and_keep_their_base_name() {
        assert_eq!(
            file_name(false, br#"{"fileName":"dir/photo 1.jpg","fileSize":3}"#).unwrap(),
            "photo 1.jpg"
        );
        assert_eq!(
            file_name(true, b"fileName=selfie%20a.png").unwrap(),
            "selfie a.png"
        );
        assert!(file_name(false, b"{}").is_err());
        assert!(file_name(true, b"other=1").is_err());
    }

    #[test]
    fn an_arbiter_error_body_is_answered_in_rds_shape() {
        let body =
            br#"{"error":{"code":"NOT_FOUND","message":"no such request","request_id":null}}"#;
        assert_eq!(
            error_of(404, body),
            Some(error_body("not-found", 404, "no such request"))
        );
        assert_eq!(
            error_of(500, b"plain text"),
            Some(error_body("error", 500, "plain text"))
        );
        let rd = error_body("error", 400, "social links are not supported").to_string();
        assert_eq!(error_of(400, rd.as_bytes()), None);
        let answer = presign_answer("req_01ABC", "t0k", "http://h");
        assert_eq!(answer["mediaId"], "media_01ABC");
        assert_eq!(
            answer["response"]["signedUrl"],
            "http://h/api/files/upload/req_01ABC?token=t0k"
        );
    }
}
