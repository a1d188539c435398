//! Four-eyes policy changes in the console, on SQLite and PostgreSQL, with
//! `policies.source: database`: an admin proposes a version by pasting its YAML (bad YAML is
//! refused naming line and column), cannot approve it herself, a second admin sees the diff and
//! the backtest and approves it, and the server's live version changes; a stale proposal and an
//! empty rejection are refused, a rejection with a reason recorded; the audit entries name the
//! people; a reviewer is refused the pages.

use super::{Visitor, add_user, console_config};
use crate::harness::{TestServer, each_database, repo};
use arbiter_config::PolicySource;
use reqwest::StatusCode;

/// The shipped insurance policy at `version`.
pub fn insurance_at(version: u32) -> String {
    let original = std::fs::read_to_string(repo().join("policies/insurance-fnol.yaml")).unwrap();
    let text = original.replacen("version: 2", &format!("version: {version}"), 1);
    assert_ne!(text, original, "the shipped policy states `version: 2`");
    text
}

/// Proposes `text` through the console; the proposal's id.
async fn propose(visitor: &mut Visitor, text: &str) -> String {
    let (_, _, page) = visitor.get("/console/policies/proposals").await;
    let csrf = Visitor::csrf_in(&page);
    let (status, location, page) = visitor
        .post(
            "/console/policies/proposals",
            &[("csrf", &csrf), ("policy", text)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let id = location
        .strip_prefix("/console/policies/proposals/")
        .unwrap_or_else(|| panic!("{location}"))
        .to_owned();
    assert!(id.starts_with("prop_"), "{id}");
    id
}

/// Posts an approval or rejection form from the proposal's page.
async fn decide(
    visitor: &mut Visitor,
    id: &str,
    what: &str,
    reason: Option<&str>,
) -> (StatusCode, String) {
    let (_, _, page) = visitor
        .get(&format!("/console/policies/proposals/{id}"))
        .await;
    let csrf = Visitor::csrf_in(&page);
    let mut form = vec![("csrf", csrf.as_str())];
    if let Some(reason) = reason {
        form.push(("reason", reason));
    }
    let (status, _, page) = visitor
        .post(&format!("/console/policies/proposals/{id}/{what}"), &form)
        .await;
    (status, page)
}

fn live_version(server: &TestServer) -> u32 {
    server
        .state
        .pipeline
        .policies()
        .snapshot()
        .for_flow("insurance")
        .unwrap()
        .version()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_admin_approves_a_proposal_in_the_console_and_it_goes_live() {
    each_database(async |label, dir, url| {
        let mut config = console_config(dir, &url);
        config.policies.source = PolicySource::Database;
        let server = TestServer::start(config).await;
        add_user(&server, "acme", "alice", "admin", "pw-alice").await;
        add_user(&server, "acme", "bob", "admin", "pw-bob").await;
        add_user(&server, "acme", "rita", "reviewer", "pw-rita").await;
        assert_eq!(live_version(&server), 2, "{label}");

        // A reviewer is refused, as on the other admin pages.
        let mut rita = Visitor::new(&server.base);
        rita.sign_in("acme", "rita", "pw-rita").await;
        for path in [
            "/console/policies/proposals",
            "/console/policies/proposals/prop_x",
        ] {
            let (status, _, _) = rita.get(path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {path}");
        }

        let mut alice = Visitor::new(&server.base);
        alice.sign_in("acme", "alice", "pw-alice").await;
        let (_, _, page) = alice.get("/console/policies").await;
        assert!(
            page.contains(r#"href="/console/policies/proposals""#),
            "{label}"
        );
        let (status, _, page) = alice.get("/console/policies/proposals").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains(r#"id="no-proposals""#), "{label}");

        // Without the form's token, nothing is proposed; bad YAML names its line and column.
        let (status, _, _) = alice
            .post(
                "/console/policies/proposals",
                &[("policy", &insurance_at(3))],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let csrf = Visitor::csrf_in(&page);
        let bad = "apiVersion: arbiter/v1\nkind: Policy\nmetadata: [id, \n";
        let (status, _, page) = alice
            .post(
                "/console/policies/proposals",
                &[("csrf", &csrf), ("policy", bad)],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {page}");
        assert!(page.contains(r#"id="proposal-error""#), "{label}: {page}");
        assert!(
            page.contains("pasted policy:4:1:") || page.contains("pasted policy:3:"),
            "{label}: {page}"
        );
        assert!(page.contains("pasted policy: not proposed"), "{label}");
        // A version that does not raise the live one is refused, naming the rule.
        let (status, _, page) = alice
            .post(
                "/console/policies/proposals",
                &[
                    ("csrf", &csrf),
                    (
                        "policy",
                        &insurance_at(3)
                            .replace("version: 3", "version: 2")
                            .replace("owner: claims-ops", "owner: claims"),
                    ),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {page}");
        assert!(
            page.contains("must be greater than the live version 2"),
            "{label}: {page}"
        );

        // Alice proposes version 3; the page shows the diff and the backtest.
        let v3 = propose(&mut alice, &insurance_at(3)).await;
        let (status, _, page) = alice
            .get(&format!("/console/policies/proposals/{v3}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(
            page.contains(r#"<dd data-state="pending">pending</dd>"#),
            "{label}: {page}"
        );
        assert!(
            page.contains(r#"<pre id="diff">"#) && page.contains("version: 2 -&gt; 3"),
            "{label}: {page}"
        );
        assert!(page.contains(r#"<pre id="backtest">"#), "{label}");
        assert!(page.contains("You proposed this change"), "{label}");
        let (_, _, list) = alice.get("/console/policies/proposals").await;
        assert!(
            list.contains(&format!(r#"<a href="/console/policies/proposals/{v3}">"#))
                && list.contains("<td>alice</td>"),
            "{label}: {list}"
        );

        // She cannot approve her own change.
        let (status, page) = decide(&mut alice, &v3, "approve", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {page}");
        assert!(
            page.contains(&format!(
                "four-eyes rule: alice proposed {v3} and cannot approve it"
            )),
            "{label}: {page}"
        );
        assert_eq!(live_version(&server), 2, "{label}");

        // Bob approves it (the approver is the signed-in person); it is live at once.
        let mut bob = Visitor::new(&server.base);
        bob.sign_in("acme", "bob", "pw-bob").await;
        let (status, _, _) = bob
            .post(&format!("/console/policies/proposals/{v3}/approve"), &[])
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{label}: no token, no approval"
        );
        let (_, _, page) = bob.get(&format!("/console/policies/proposals/{v3}")).await;
        assert!(page.contains("Approve as <strong>bob</strong>"), "{label}");
        let (status, page) = decide(&mut bob, &v3, "approve", None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {page}");
        assert_eq!(live_version(&server), 3, "{label}");
        let (_, _, page) = bob.get(&format!("/console/policies/proposals/{v3}")).await;
        assert!(
            page.contains(r#"<dd data-state="approved">approved</dd>"#)
                && page.contains("<dt>approved</dt><dd>by bob"),
            "{label}: {page}"
        );
        assert!(
            !page.contains(r#"id="approve""#),
            "{label}: decided, no form"
        );
        let (status, page) = decide(&mut bob, &v3, "approve", None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {page}");

        // Two proposals against version 3: once one is approved, the other is stale.
        let v4 = propose(&mut alice, &insurance_at(4)).await;
        let v5 = propose(&mut alice, &insurance_at(5)).await;
        let (status, _) = decide(&mut bob, &v4, "approve", None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let (status, page) = decide(&mut bob, &v5, "approve", None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {page}");
        assert!(
            page.contains(&format!("proposal {v5} is stale")),
            "{label}: {page}"
        );
        assert_eq!(live_version(&server), 4, "{label}");

        // A rejection needs a reason; with one it is recorded.
        let (status, page) = decide(&mut bob, &v5, "reject", Some("  ")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {page}");
        assert!(page.contains("A rejection needs a reason."), "{label}");
        let (status, _) = decide(&mut bob, &v5, "reject", Some("superseded by v4")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let (_, _, page) = alice
            .get(&format!("/console/policies/proposals/{v5}"))
            .await;
        assert!(
            page.contains(r#"data-state="rejected""#) && page.contains("<dd>superseded by v4</dd>"),
            "{label}: {page}"
        );

        // The audit entries name the people.
        let events = super::audit_events(&server, "system").await;
        let named = |event: &str| -> Vec<serde_json::Value> {
            events
                .iter()
                .filter(|e| e["event"] == event)
                .cloned()
                .collect()
        };
        let proposed = named("policy.proposed");
        assert_eq!(proposed.len(), 3, "{label}: {proposed:?}");
        assert!(
            proposed.iter().all(|e| e["proposed_by"] == "alice"),
            "{label}: {proposed:?}"
        );
        let approved = named("policy.approved");
        assert_eq!(approved.len(), 2, "{label}: {approved:?}");
        assert_eq!(approved[0]["proposal_id"], v3.as_str(), "{label}");
        assert_eq!(approved[0]["proposed_by"], "alice", "{label}");
        assert_eq!(approved[0]["approved_by"], "bob", "{label}");
        let rejected = named("policy.rejected");
        assert_eq!(rejected.len(), 1, "{label}");
        assert_eq!(rejected[0]["rejected_by"], "bob", "{label}");
        assert_eq!(rejected[0]["reason"], "superseded by v4", "{label}");
        assert!(
            named("policy.activated")
                .iter()
                .any(|e| e["actor"] == "bob"),
            "{label}"
        );
        server.stop().await;
    })
    .await;
}
