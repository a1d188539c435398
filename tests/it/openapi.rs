//! The OpenAPI document and the router agree: every route the server serves has exactly one
//! operation in `GET /v1/openapi.json`, and every operation is served.

use crate::harness::{TestServer, config, new_key};
use arbiter_server::keys::Scope;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;

/// Served, and not API operations: the operator console's pages and the document itself.
fn undocumented(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/") || path == "/v1/openapi.json"
}

/// The methods an operation may have.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

/// The paths a router serves, read from its `Debug` form, as axum has no other way to list
/// them: each `RouteId(n): "/path"` of its path router (its fallback router comes after).
fn routed_paths(router: &impl std::fmt::Debug) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let paths = text.split("fallback_router").next().unwrap_or_default();
    paths
        .split("RouteId(")
        .skip(1)
        .filter_map(|entry| entry.split_once("): \""))
        .filter_map(|(_, rest)| rest.split_once('"'))
        .map(|(path, _)| path.to_owned())
        .collect()
}

/// `path` with every `{parameter}` set to `1`.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some((before, after)) = rest.split_once('{') {
        out.push_str(before);
        out.push('1');
        rest = after.split_once('}').map_or("", |(_, tail)| tail);
    }
    out.push_str(rest);
    out
}

#[test]
fn a_path_with_parameters_is_made_concrete() {
    assert_eq!(concrete("/v1/a/{x}/b/{y}"), "/v1/a/1/b/1");
    assert_eq!(concrete("/healthz"), "/healthz");
}

#[tokio::test]
async fn every_route_has_one_operation_and_every_operation_a_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path(), "")).await;
    let doc: Value = server
        .client
        .get(format!("{}/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routed: BTreeSet<String> =
        routed_paths(&arbiter_server::routes::router(server.state.clone()))
            .into_iter()
            .filter(|path| !undocumented(path))
            .collect();
    assert!(routed.contains("/v1/analyze"), "{routed:?}");
    let unlisted: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unlisted.is_empty(),
        "routes without an operation: {unlisted:?}"
    );
    assert!(
        unrouted.is_empty(),
        "operations without a route: {unrouted:?}"
    );

    // On a served path the router answers 405 to a method it has no route for: each method
    // has a route exactly when the document has an operation for it. The key has every scope
    // (some routes check it before the method); no request has a body or names a thing that
    // exists, so none changes anything.
    let (_, key) = server
        .mint_key(new_key("acme", "enterprise", &Scope::ALL))
        .await;
    for path in &documented {
        for method in METHODS {
            let operation = doc["paths"][path][method.as_str().to_lowercase()].is_object();
            let status = server
                .client
                .request(method.clone(), format!("{}{}", server.base, concrete(path)))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .status();
            let routed = status != StatusCode::METHOD_NOT_ALLOWED;
            assert_eq!(routed, operation, "{method} {path}: {status}");
        }
    }
    server.stop().await;
}
