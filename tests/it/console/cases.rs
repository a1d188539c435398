//! The console's claims and KYC sessions (searchable lists paged through the database, a page
//! per case), scans counted against the tenant's plan, and verification of only the signed-in
//! tenant's chain; on SQLite and PostgreSQL.

use super::{Visitor, add_user, claim_held_by_rita, console_config};
use crate::harness::{TestServer, b64, each_database, fixture, new_key, sample};
use arbiter_config::Plan;
use arbiter_db::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use arbiter_server::clock::ManualClock;
use arbiter_server::keys::Scope;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The case ids linked from a list page, in order.
fn case_ids(page: &str, path: &str) -> Vec<String> {
    let link = format!(r#"<tr><td><a href="{path}/"#);
    page.match_indices(&link)
        .map(|(at, m)| page[at + m.len()..].split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn claims_and_kyc_sessions_are_searchable_and_each_has_a_page() {
    each_database(async |label, dir, url| {
        let server = TestServer::start(console_config(dir, &url)).await;
        let (_, key) = server.mint_key(new_key("acme", "enterprise", &Scope::ALL)).await;
        add_user(&server, "acme", "ana", "analyst", "pw-ana").await;
        add_user(&server, "other", "olga", "admin", "pw-olga").await;

        // A claim of two photos, the second AI-generated, sent to SIU and claimed by Rita; a
        // second claim; a KYC session.
        claim_held_by_rita(&server, &key, label).await;
        let (status, _, _) = server
            .post(&key, "/v1/flows/insurance/claims/CLM-2002/photos", json!({"image_base64": b64(&sample("plain-render.png")), "reference_id": "R-2002"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let (status, _, _) = server
            .post(&key, "/v1/flows/kyc/sessions/kyc-7/images", json!({"image_base64": b64(&fixture("camera/DSCN0010.jpg")), "role": "id_document"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}");

        let mut ana = Visitor::new(&server.base);
        ana.sign_in("acme", "ana", "pw-ana").await;
        // Both lists are in the navigation of every role.
        let (status, _, page) = ana.get("/console/claims").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains(r#"<a href="/console/claims" aria-current="page">Claims</a>"#), "{label}");
        assert!(page.contains(r#"<a href="/console/kyc">KYC</a>"#), "{label}");
        assert_eq!(case_ids(&page, "/console/claims"), ["CLM-2002", "CLM-1001"], "{label}: newest first");
        // By claim id, an image's reference id, an image's SHA-256, action and day.
        let duck = hex::encode(Sha256::digest(sample("sd-generated-duck.png")));
        for (query, expect) in [
            ("q=CLM-1001", vec!["CLM-1001"]),
            ("q=R-2002", vec!["CLM-2002"]),
            ("q=CLM-1001-photo-1", vec!["CLM-1001"]),
            (&format!("q={}", duck.to_uppercase()), vec!["CLM-1001"]),
            ("action=siu_escalation", vec!["CLM-1001"]),
            ("q=nothing-like-it", vec![]),
            ("until=2000-01-01", vec![]),
            (&format!("since={}", chrono::Utc::now().format("%Y-%m-%d")), vec!["CLM-2002", "CLM-1001"]),
        ] {
            let (status, _, page) = ana.get(&format!("/console/claims?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{label}: {query}");
            assert_eq!(case_ids(&page, "/console/claims"), expect, "{label}: {query}");
        }
        let (status, _, page) = ana.get("/console/claims?since=yesterday").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(page.contains("since: &quot;yesterday&quot; is not a day (YYYY-MM-DD)"), "{label}: {page}");
        let (_, _, page) = ana.get("/console/kyc").await;
        assert_eq!(case_ids(&page, "/console/kyc"), ["kyc-7"], "{label}: sessions are not claims");

        // The claim's page: its images with their verdicts and decisions, the assessment, the
        // fired rules, the policy version, the review and the trail; and the report link.
        let (status, _, page) = ana.get("/console/claims/CLM-1001").await;
        assert_eq!(status, StatusCode::OK, "{label}: {page}");
        assert!(page.contains(r#"href="/console/claims/CLM-1001/report.pdf">Download report (PDF)</a>"#), "{label}");
        assert_eq!(page.matches(r#"<section class="case-image">"#).count(), 2, "{label}");
        assert!(page.contains("<h3>Image 1 (damage)</h3>") && page.contains("<h3>Image 2 (vehicle)</h3>"), "{label}");
        assert!(page.contains(r#"data-verdict="AI_GENERATED""#) || page.contains("AI-generated"), "{label}");
        assert!(page.contains("<strong>adjuster_review</strong>") && page.contains("<strong>siu_escalation</strong>"), "{label}");
        assert!(page.contains("insurance.fnol version"), "{label}");
        assert!(page.contains(r#"<dl id="assessment"><dt>Status</dt><dd>decided"#), "{label}");
        assert!(page.contains("siu (req_") && page.contains("held by rita"), "{label}: {page}");
        for event in ["decision.recorded", "case.decided", "review.claimed"] {
            assert!(page.contains(&format!("<code>{event}</code>")), "{label}: {event}");
        }
        assert!(page.contains("data:image/png;base64,"), "{label}: the thumbnails");
        // A pending KYC session says what is missing.
        let (status, _, page) = ana.get("/console/kyc/kyc-7").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains("pending: the decision is provisional until selfie, liveness arrive"), "{label}: {page}");
        assert!(page.contains(r#"href="/console/kyc/kyc-7/report.pdf""#), "{label}");
        // Another tenant's case, and a claim id that is a session's, are not found.
        let mut olga = Visitor::new(&server.base);
        olga.sign_in("other", "olga", "pw-olga").await;
        let (status, _, _) = olga.get("/console/claims/CLM-1001").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");
        let (_, _, page) = olga.get("/console/claims").await;
        assert!(page.contains(r#"id="no-cases""#), "{label}");
        let (status, _, _) = ana.get("/console/claims/kyc-7").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");
        let (status, location, _) = Visitor::new(&server.base).get("/console/claims").await;
        assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"), "{label}");

        // 150 more claims, three to a second so that the paging cursor meets ties: every claim
        // once, newest first, 50 at a time.
        let start = chrono::Utc::now() + chrono::Duration::hours(1);
        let txn = server.state.pipeline.db().begin_write().await.unwrap();
        for n in 0..150 {
            let at = start + chrono::Duration::seconds(n / 3);
            arbiter_db::cases::open(&txn, "acme", "insurance", &format!("BULK-{n:03}"), at)
                .await
                .unwrap();
        }
        txn.commit().await.unwrap();
        let mut seen = Vec::new();
        let mut path = "/console/claims".to_owned();
        loop {
            let (status, _, page) = ana.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{label}");
            let ids = case_ids(&page, "/console/claims");
            assert!(ids.len() <= 50, "{label}");
            seen.extend(ids);
            match page.find(r#"rel="next" href=""#) {
                Some(at) => path = page[at + 17..].split('"').next().unwrap().replace("&amp;", "&"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 152, "{label}");
        let mut expected: Vec<String> = (0..150).rev().map(|n| format!("BULK-{n:03}")).collect();
        expected.extend(["CLM-2002".to_owned(), "CLM-1001".to_owned()]);
        assert_eq!(seen, expected, "{label}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn scans_count_against_the_tenants_plan_and_verification_walks_only_its_chain() {
    each_database(async |label, dir, url| {
        let mut config = console_config(dir, &url);
        config.rate_limits.plans.insert(
            "tiny".into(),
            Plan {
                per_minute: 1,
                per_day: 3,
                batch_size: 1,
            },
        );
        let clock = ManualClock::new(chrono::Utc::now());
        let server = TestServer::start_with(config, Arc::new(clock.clone()), None).await;
        server.mint_key(new_key("acme", "tiny", &Scope::ALL)).await;
        let (_, other_key) = server
            .mint_key(new_key("other", "enterprise", &Scope::ALL))
            .await;
        add_user(&server, "acme", "alice", "admin", "pw-alice").await;

        let mut alice = Visitor::new(&server.base);
        alice.sign_in("acme", "alice", "pw-alice").await;
        let scan = |csrf: &str, files: usize| {
            let mut form = reqwest::multipart::Form::new().text("csrf", csrf.to_owned());
            for n in 0..files {
                form = form.part(
                    "file",
                    reqwest::multipart::Part::bytes(sample("plain-render.png"))
                        .file_name(format!("p{n}.png")),
                );
            }
            form
        };
        let (_, _, page) = alice.get("/console/scan").await;
        let csrf = Visitor::csrf_in(&page);
        let cookies = alice.cookie_header();
        let scan_raw = async |csrf: &str, files: usize| {
            reqwest::Client::new()
                .post(format!("{}/console/scan", server.base))
                .header(reqwest::header::COOKIE, &cookies)
                .multipart(scan(csrf, files))
                .send()
                .await
                .unwrap()
        };
        let response = scan_raw(&csrf, 1).await;
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        // The minute's one request is spent: a 429 page saying so, and nothing analysed.
        let response = scan_raw(&csrf, 1).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{label}");
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{label}: {retry}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("allows 1 requests a minute, and they are spent"),
            "{label}: {page}"
        );
        // A minute later, three images do not fit in the day's quota of three (one is used).
        clock.advance(chrono::Duration::seconds(61));
        let response = scan_raw(&csrf, 3).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{label}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("daily quota of 3 images is spent (this scan has 3)"),
            "{label}: {page}"
        );
        let response = scan_raw(&csrf, 2).await;
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        let analysed = arbiter_db::entity::request::Entity::find()
            .filter(arbiter_db::entity::request::Column::Tenant.eq("acme"))
            .count(server.state.pipeline.db().conn())
            .await
            .unwrap();
        assert_eq!(analysed, 3, "{label}: refused scans analysed nothing");

        // Another tenant's entries are not walked: the count is acme's chain alone.
        let (status, _, _) = server
            .post(
                &other_key,
                "/v1/analyze",
                json!({"image_base64": b64(&sample("plain-render.png"))}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let acme_entries = super::audit_events(&server, "acme").await.len();
        assert!(acme_entries > 0, "{label}");
        let (status, _, page) = alice.get("/console/audit?verify=1").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(
            page.contains(&format!(
                "The live chain verifies: {acme_entries} entries and "
            )),
            "{label}: {page}"
        );
        server.stop().await;
    })
    .await;
}
