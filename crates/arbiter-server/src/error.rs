//! The API's error body: `{"error": {"code", "message", "request_id"}}`.

use arbiter_core::{ErrorCode, RequestId};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to an API caller. A 5xx never carries internals: the full error is logged
/// with the request id and the body says only that something failed.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// What is wrong, for the caller.
    pub message: String,
    /// The request it answers.
    pub request_id: Option<RequestId>,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// The error's details.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable code: INVALID_API_KEY, IMAGE_TOO_SMALL, UNSUPPORTED_FORMAT, URL_UNREACHABLE,
    /// FILE_SIZE_EXCEEDED, RATE_LIMIT_EXCEEDED, QUOTA_EXCEEDED, INVALID_REQUEST, ...
    code: String,
    /// What is wrong.
    message: String,
    /// The request this answers.
    request_id: Option<String>,
}

impl ApiError {
    /// An error with a code and a message for the caller.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            request_id: None,
            retry_after: None,
        }
    }

    /// A 400 INVALID_REQUEST.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// A 404 NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A 500 whose cause is logged, not shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalError,
            arbiter_engine::error::INTERNAL_MESSAGE,
        )
    }

    /// The same error, answering a given request.
    pub fn for_request(mut self, request_id: &RequestId) -> Self {
        self.request_id = Some(request_id.clone());
        self
    }
}

impl From<arbiter_db::sea_orm::DbErr> for ApiError {
    fn from(err: arbiter_db::sea_orm::DbErr) -> Self {
        Self::internal(&err)
    }
}

impl From<arbiter_engine::EngineError> for ApiError {
    fn from(err: arbiter_engine::EngineError) -> Self {
        Self::of_engine(&err)
    }
}

impl From<crate::pipeline::PipelineError> for ApiError {
    fn from(err: crate::pipeline::PipelineError) -> Self {
        Self::of_pipeline(&err)
    }
}

impl From<arbiter_jobs::batch_body::BodyError> for ApiError {
    fn from(err: arbiter_jobs::batch_body::BodyError) -> Self {
        match err.code() {
            ErrorCode::InternalError => Self::internal(&err),
            code => Self {
                retry_after: err.retry_after(),
                ..Self::new(code, err.to_string())
            },
        }
    }
}

impl From<arbiter_jobs::BatchError> for ApiError {
    fn from(err: arbiter_jobs::BatchError) -> Self {
        match err {
            arbiter_jobs::BatchError::Body(err) => err.into(),
            arbiter_jobs::BatchError::Engine(err) => err.into(),
        }
    }
}

impl ApiError {
    /// The answer to an engine error (one shared by identical requests is answered as its
    /// cause).
    fn of_engine(err: &arbiter_engine::EngineError) -> Self {
        use arbiter_engine::EngineError;
        match err {
            EngineError::Refused { code, message } => Self::new(*code, message.clone()),
            EngineError::Pipeline(err) => Self::of_pipeline(err),
            EngineError::Shared(err) => Self::of_engine(err),
            failure => Self::internal(failure),
        }
    }

    fn of_pipeline(err: &crate::pipeline::PipelineError) -> Self {
        match err.code() {
            ErrorCode::InternalError => Self::internal(err),
            code => Self {
                // Seconds to wait, when the detector said (a full analysis queue).
                retry_after: match err {
                    crate::pipeline::PipelineError::Detect(err) => err.retry_after(),
                    _ => None,
                },
                ..Self::new(code, err.to_string())
            },
        }
    }
}

impl ErrorBody {
    fn of(err: &ApiError) -> Self {
        Self {
            error: ErrorDetail {
                code: err.code.as_str().to_owned(),
                message: err.message.clone(),
                request_id: err.request_id.as_ref().map(ToString::to_string),
            },
        }
    }
}

tokio::task_local! {
    /// The id of the request being answered, set by the request-context layer around the
    /// routes, so that every error body names its request without a handler attaching it.
    static ANSWERING: RequestId;
}

/// Runs `answer` (the routes' answer to one request) with `request_id` as the id every error
/// body made inside it names.
pub(crate) async fn answering<F: Future>(request_id: RequestId, answer: F) -> F::Output {
    ANSWERING.scope(request_id, answer).await
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if self.request_id.is_none() {
            self.request_id = ANSWERING.try_with(Clone::clone).ok();
        }
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(ErrorBody::of(&self))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON request body whose rejection is the API's error body: 400 `INVALID_REQUEST` naming the
/// problem (413 `FILE_SIZE_EXCEEDED` when it is over the body limit), never axum's plain-text 415
/// or 422.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let code = match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::FileSizeExceeded,
                    _ => ErrorCode::InvalidRequest,
                };
                Err(ApiError::new(code, rejection.body_text()))
            }
        }
    }
}

/// A query string whose rejection is the API's error body: 400 `INVALID_REQUEST` naming the
/// problem, never axum's plain text.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::DetectError;

    async fn body_of(response: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn an_error_body_made_while_answering_a_request_names_it() {
        let request_id = RequestId::new();
        let response = answering(request_id.clone(), async {
            ApiError::not_found("no such thing").into_response()
        })
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = body_of(response).await;
        assert_eq!(body["error"]["request_id"], request_id.to_string());
        assert_eq!(body["error"]["code"], "NOT_FOUND");
        assert_eq!(body["error"]["message"], "no such thing");

        // An error that names its request already keeps it; outside a request there is none.
        let other = RequestId::new();
        let response = answering(request_id, async {
            ApiError::bad_request("x")
                .for_request(&other)
                .into_response()
        })
        .await;
        assert_eq!(
            body_of(response).await["error"]["request_id"],
            other.to_string()
        );
        let response = ApiError::bad_request("x").into_response();
        assert!(body_of(response).await["error"]["request_id"].is_null());
    }

    #[tokio::test]
    async fn a_busy_detector_is_a_503_with_retry_after_and_no_internals() {
        let busy = crate::pipeline::PipelineError::Detect(DetectError::Busy {
            detector: "local".into(),
            retry_after: 2,
        });
        let response = ApiError::from(busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
        assert_eq!(
            body["error"]["message"],
            "detector local is busy; retry after 2 s"
        );
    }

    /// The status, `Retry-After` and body of `err` as answered.
    async fn answered(err: impl Into<ApiError>) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = err.into().into_response();
        let status = response.status();
        let retry = response.headers().get(header::RETRY_AFTER);
        let retry = retry.map(|v| v.to_str().unwrap().to_owned());
        (status, retry, body_of(response).await["error"].clone())
    }

    #[tokio::test]
    async fn an_engine_refusal_is_answered_with_its_own_code_and_message() {
        use arbiter_engine::EngineError;
        let conflict = EngineError::refused(ErrorCode::Conflict, "already claimed");
        let (status, retry, body) = answered(conflict).await;
        assert_eq!((status, retry), (StatusCode::CONFLICT, None));
        assert_eq!(body["code"], "CONFLICT");
        assert_eq!(body["message"], "already claimed");
        // A refusal shared by identical requests is answered as its cause.
        let shared = EngineError::Shared(std::sync::Arc::new(EngineError::invalid("bad flow")));
        let (status, _, body) = answered(shared).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "bad flow");
        let unknown =
            EngineError::Pipeline(crate::pipeline::PipelineError::UnknownFlow("x".into()));
        let (status, _, body) = answered(unknown).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "unknown flow `x`");
    }

    #[tokio::test]
    async fn a_failure_is_a_500_that_shows_none_of_its_cause() {
        use arbiter_db::sea_orm::DbErr;
        use arbiter_engine::EngineError;
        let failures: Vec<ApiError> = vec![
            DbErr::Custom("disk full at /var/lib".into()).into(),
            EngineError::Internal("row 7 does not parse".into()).into(),
            EngineError::Shared(std::sync::Arc::new(EngineError::Db(DbErr::Custom(
                "disk full at /var/lib".into(),
            ))))
            .into(),
            crate::pipeline::PipelineError::NoPolicy("ugc".into()).into(),
            arbiter_jobs::batch_body::BodyError::Internal("spool at /tmp/x".into()).into(),
        ];
        for failure in failures {
            let (status, retry, body) = answered(failure).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(retry, None);
            assert_eq!(body["code"], "INTERNAL_ERROR");
            assert_eq!(body["message"], arbiter_engine::error::INTERNAL_MESSAGE);
        }
    }

    #[tokio::test]
    async fn a_batch_body_error_keeps_its_code_message_and_wait() {
        use arbiter_jobs::BatchError;
        use arbiter_jobs::batch_body::{BodyError, FULL_RETRY_SECS};
        let full = BatchError::Body(BodyError::Full { room: 1024 });
        let (status, retry, body) = answered(full).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry, Some(FULL_RETRY_SECS.to_string()));
        assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("jobs.max_spooled_bytes: 1024")
        );
        let (status, retry, body) = answered(BodyError::TooLarge { limit: 10 }).await;
        assert_eq!((status, retry), (StatusCode::PAYLOAD_TOO_LARGE, None));
        assert_eq!(body["code"], "FILE_SIZE_EXCEEDED");
        let invalid = BatchError::Body(BodyError::Invalid("images[2]: no image".into()));
        let (status, _, body) = answered(invalid).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "images[2]: no image");
        let refused = BatchError::Engine(arbiter_engine::EngineError::invalid("too many images"));
        let (status, _, body) = answered(refused).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "too many images");
    }

    #[derive(Debug, serde::Deserialize)]
    struct Page {
        #[expect(dead_code, reason = "read only to be refused")]
        limit: u32,
    }

    #[tokio::test]
    async fn a_rejected_json_body_or_query_is_the_api_s_error_body() {
        use axum::extract::{FromRequest, FromRequestParts};
        let request = |uri: &str, content_type: &str, body: &'static str| {
            axum::http::Request::post(uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        for (content_type, body) in [
            ("text/plain", r#"{"limit": 1}"#),
            ("application/json", r#"{"limit": -1}"#),
            ("application/json", "{"),
        ] {
            let err = ApiJson::<Page>::from_request(request("/", content_type, body), &())
                .await
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{content_type} {body}");
            assert!(!err.message.is_empty());
        }
        let (mut parts, _) = request("/?limit=many", "text/plain", "").into_parts();
        let err = ApiQuery::<Page>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.message.contains("limit"), "{}", err.message);
        let (mut parts, _) = request("/?limit=5", "text/plain", "").into_parts();
        assert!(
            ApiQuery::<Page>::from_request_parts(&mut parts, &())
                .await
                .is_ok()
        );
    }
}
