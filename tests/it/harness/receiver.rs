//! A loopback receiver standing in for a customer's webhook endpoint: it records every delivery
//! (path, headers, exact body) and answers with a status the test switches.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

/// What arrived: the path (without its leading `/`), the headers and the exact body.
type Deliveries = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

/// A running receiver on 127.0.0.1; it stops with the test's runtime.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    status: Arc<AtomicU16>,
    deliveries: Deliveries,
}

impl Receiver {
    /// A receiver answering `status` at any path (with `Retry-After: 42` on 429, and a reply
    /// body of 5,000 bytes, longer than any stored response).
    pub async fn start(status: u16) -> Self {
        let status = Arc::new(AtomicU16::new(status));
        let deliveries: Deliveries = Arc::default();
        let app = axum::Router::new()
            .route(
                "/{*path}",
                post(
                    |State((status, deliveries)): State<(Arc<AtomicU16>, Deliveries)>,
                     Path(path): Path<String>,
                     headers: HeaderMap,
                     body: String| async move {
                        deliveries.lock().unwrap().push((path, headers, body));
                        let code = status.load(Ordering::SeqCst);
                        let mut reply_headers = HeaderMap::new();
                        if code == 429 {
                            reply_headers.insert("retry-after", "42".parse().unwrap());
                        }
                        (
                            StatusCode::from_u16(code).unwrap(),
                            reply_headers,
                            "x".repeat(5000),
                        )
                    },
                ),
            )
            .with_state((status.clone(), deliveries.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            status,
            deliveries,
        }
    }

    /// The URL of `path` on the receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Headers and body of every delivery, in arrival order.
    pub fn received(&self) -> Vec<(HeaderMap, String)> {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|(_, headers, body)| (headers.clone(), body.clone()))
            .collect()
    }

    /// Path, headers and body of every delivery, in arrival order.
    pub fn received_by_path(&self) -> Vec<(String, HeaderMap, String)> {
        self.deliveries.lock().unwrap().clone()
    }
}
