//! Faithful fake vendor servers on loopback, built from the vendors' references and recorded
//! bodies (not mocks of Arbiter's own clients): the provider tests and benchmarks run the real
//! clients against them over HTTP. Behind the `fake` feature; never in a production build.

pub mod reality_ai;
pub mod reality_defender;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpListener;

/// A failure answered instead of the real answer: status, optional `Retry-After`, body.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    /// The body (JSON text, or anything for a malformed one).
    pub body: String,
}

impl Failure {
    /// A failure with a JSON body.
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            retry_after: None,
            body: body.to_owned(),
        }
    }

    /// A 429 asking to wait `secs`.
    pub fn too_many(secs: u64) -> Self {
        Self {
            status: 429,
            retry_after: Some(secs),
            body: r#"{"code":"too-many-requests","errno":429,"response":"Too many requests"}"#
                .to_owned(),
        }
    }

    fn respond(&self) -> Response {
        let mut response = json_response(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            self.body.clone(),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Takes the next scripted failure, if any.
fn next_failure(queue: &mut VecDeque<Failure>) -> Option<Response> {
    queue.pop_front().map(|failure| failure.respond())
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Serves `router` on a free loopback port; the server lives as long as the runtime.
async fn serve(router: axum::Router) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(listener, router).await.ok();
    });
    Ok(format!("http://{addr}"))
}

/// Sleeps for a scripted stall.
async fn stall(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}
