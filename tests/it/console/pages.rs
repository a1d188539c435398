//! Snapshots of the console's main pages as an admin sees them after a claim of two photos (one
//! sent to SIU and claimed by a reviewer): sign-in, requests, a request, claims, a claim,
//! review, audit and policies. Ids, times, tokens, hashes, images and paths are redacted, so
//! SQLite and PostgreSQL give the same HTML.

use super::{Visitor, add_user, claim_held_by_rita, console_config};
use crate::harness::{TestServer, each_database, new_key, repo};
use arbiter_server::keys::Scope;
use reqwest::StatusCode;

/// Asserts the snapshot `name` of a page, its volatile parts redacted.
fn assert_page(name: &str, page: &str, dir: &std::path::Path) {
    let dir = regex_escape(&dir.display().to_string());
    let root = regex_escape(&repo().display().to_string());
    insta::with_settings!({
        snapshot_path => "../snapshots",
        filters => vec![
            (dir.as_str(), "[DIR]"),
            (root.as_str(), "[REPO]"),
            (r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "data:[IMAGE]"),
            (r#"name="csrf" value="[0-9a-f]+""#, r#"name="csrf" value="[CSRF]""#),
            (r"\b(req|rev|key|batch)_[0-9A-Za-z]{8,}", "[${1}_ID]"),
            (r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?( UTC|Z|[+-]\d{2}:\d{2})?", "[TIME]"),
            // The policies' own text is theirs to change; the page around it is the console's.
            (r"(?s)<summary>The YAML</summary><pre>.*?</pre>", "<summary>The YAML</summary><pre>[YAML]</pre>"),
            (r"The verifier key: <code>[^<]*</code>", "The verifier key: <code>[VKEY]</code>"),
            (r"\b[0-9a-f]{16,}\b", "[HEX]"),
        ],
    }, {
        insta::assert_snapshot!(name, page);
    });
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$#&-~".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn the_main_pages_keep_their_html() {
    each_database(async |label, dir, url| {
        let server = TestServer::start(console_config(dir, &url)).await;
        let (_, key) = server
            .mint_key(new_key("acme", "enterprise", &Scope::ALL))
            .await;
        add_user(&server, "acme", "alice", "admin", "pw-alice").await;
        let mut visitor = Visitor::new(&server.base);
        let (status, _, page) = visitor.get("/console").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert_page("login", &page, dir);

        let request_ids = claim_held_by_rita(&server, &key, label).await;

        let mut alice = Visitor::new(&server.base);
        alice.sign_in("acme", "alice", "pw-alice").await;
        for (name, path) in [
            ("requests", "/console/requests".to_owned()),
            ("request", format!("/console/requests/{}", request_ids[1])),
            ("claims", "/console/claims".to_owned()),
            ("claim", "/console/claims/CLM-1001".to_owned()),
            ("review", "/console/review?queue=siu".to_owned()),
            ("audit", "/console/audit".to_owned()),
            ("policies", "/console/policies".to_owned()),
        ] {
            let (status, _, page) = alice.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{label}: {path}");
            assert_page(name, &page, dir);
        }
        server.stop().await;
    })
    .await;
}
