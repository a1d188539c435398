//! Evidence from the request page, on SQLite and PostgreSQL: the report cards downloaded under
//! the console's session (the same PDFs as the API's, for every role that reads requests), the
//! deciding rule's description kept with the request's decision, and replay (identical, then a
//! record altered behind the log's back, named field by field; a row without a description,
//! as recorded before descriptions were kept, still reads and replays).

use super::{Visitor, add_user, console_config};
use crate::harness::{TestServer, b64, each_database, fixture, new_key, sample};
use crate::reports::{pdf_tools, read_back};
use arbiter_db::sea_orm::ConnectionTrait;
use arbiter_server::keys::Scope;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn reports_download_and_replay_from_the_request_page() {
    let tools = pdf_tools();
    each_database(async |label, dir, url| {
        let server = TestServer::start(console_config(dir, &url)).await;
        add_user(&server, "acme", "ana", "analyst", "pw-ana").await;
        add_user(&server, "acme", "aude", "auditor", "pw-aude").await;
        add_user(&server, "other", "olga", "admin", "pw-olga").await;
        let (_, key) = server.mint_key(new_key("acme", "enterprise", &Scope::ALL)).await;

        // A claim photo escalated to SIU, and a KYC session image.
        let (status, _, photo) = server
            .post(
                &key,
                "/v1/flows/insurance/claims/CLM-5/photos",
                json!({"image_base64": b64(&sample("sd-generated-duck.png")), "claim": {"amount": 12000, "currency": "EUR"}, "photo": {"role": "vehicle"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {photo}");
        let request_id = photo["request_id"].as_str().unwrap().to_owned();
        let description = photo["decision"]["description"].as_str().expect("the deciding rule has a description").to_owned();
        let (status, _, image) = server
            .post(&key, "/v1/flows/kyc/sessions/kyc-5/images", json!({"image_base64": b64(&fixture("camera/DSCN0010.jpg")), "role": "id_document"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {image}");

        // The request's decision keeps the deciding rule's description; the page shows it,
        // with the download button and the replay form.
        let stored = arbiter_db::decisions::get(server.state.pipeline.db().conn(), "acme", &request_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.description.as_deref(), Some(description.as_str()), "{label}");
        let mut ana = Visitor::new(&server.base);
        ana.sign_in("acme", "ana", "pw-ana").await;
        let page_path = format!("/console/requests/{request_id}");
        let (status, _, page) = ana.get(&page_path).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains(&format!(r#"id="description">{}</dd>"#, arbiter_server::routes::console::escape(&description))), "{label}: {page}");
        assert!(page.contains(&format!(r#"href="/console/requests/{request_id}/report.pdf" download>Download report (PDF)</a>"#)), "{label}: {page}");
        assert!(page.contains(&format!(r#"action="/console/requests/{request_id}/replay""#)), "{label}");

        // The report cards, under the console's session, for an analyst and an auditor.
        let mut aude = Visitor::new(&server.base);
        aude.sign_in("acme", "aude", "pw-aude").await;
        let mut pdfs = Vec::new();
        for (analyst, path, what) in [
            (true, format!("/console/requests/{request_id}/report.pdf"), "request"),
            (false, "/console/claims/CLM-5/report.pdf".to_owned(), "claim"),
            (false, "/console/kyc/kyc-5/report.pdf".to_owned(), "session"),
        ] {
            let visitor = if analyst { &mut ana } else { &mut aude };
            let (status, kind, pdf) = visitor.get_bytes(&path).await;
            assert_eq!(status, StatusCode::OK, "{label} {what}: {}", String::from_utf8_lossy(&pdf));
            assert_eq!(kind, "application/pdf", "{label} {what}");
            assert!(pdf.starts_with(b"%PDF-"), "{label} {what}");
            pdfs.push(pdf);
        }
        // Not signed in: the sign-in page; another tenant's and unknown ids: not found.
        let (status, _, _) = Visitor::new(&server.base).get_bytes(&format!("/console/requests/{request_id}/report.pdf")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let mut olga = Visitor::new(&server.base);
        olga.sign_in("other", "olga", "pw-olga").await;
        for path in [
            format!("/console/requests/{request_id}/report.pdf"),
            "/console/claims/CLM-5/report.pdf".to_owned(),
            "/console/kyc/kyc-5/report.pdf".to_owned(),
            "/console/claims/CLM-404/report.pdf".to_owned(),
        ] {
            let (status, kind, _) = olga.get_bytes(&path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{label}: {path}");
            assert!(kind.starts_with("text/html"), "{label}: {path}");
        }
        if tools {
            let text = read_back(&pdfs[0], &format!("{label}-console-request"));
            assert!(text.contains(&request_id), "{label}: {text}");
            let words: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(words.contains(&description), "{label}: the description is in the report: {words}");
            let text = read_back(&pdfs[1], &format!("{label}-console-claim"));
            assert!(text.contains("CLM-5") && text.contains(&request_id), "{label}: {text}");
            let text = read_back(&pdfs[2], &format!("{label}-console-session"));
            assert!(text.contains("kyc-5"), "{label}: {text}");
        }

        // Replay: refused without the form's token; identical as recorded.
        let csrf = Visitor::csrf_in(&page);
        let replay = format!("/console/requests/{request_id}/replay");
        let (status, _, _) = ana.post(&replay, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let (status, _, page) = ana.post(&replay, &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::OK, "{label}: {page}");
        assert!(page.contains(r#"id="replay" data-identical="true""#) && page.contains("<strong>Identical</strong>"), "{label}: {page}");
        assert!(page.contains("siu_escalation"), "{label}");
        // Another tenant cannot replay it.
        let olga_csrf = olga.session_csrf().await;
        let (status, _, page) = olga.post(&replay, &[("csrf", &olga_csrf)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");
        assert!(page.contains("There is no request"), "{label}: {page}");

        // A record altered behind the log's back: each differing field, recorded and replayed.
        let conn = server.state.pipeline.db().conn();
        conn.execute_unprepared(&format!(
            "UPDATE decisions SET action = 'proceed', description = 'edited' WHERE request_id = '{request_id}'"
        ))
        .await
        .unwrap();
        let (status, _, page) = ana.post(&replay, &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains(r#"id="replay" data-identical="false""#), "{label}: {page}");
        assert!(page.contains(r#"<th scope="row">action</th><td class="mono">&quot;proceed&quot;</td><td class="mono">&quot;siu_escalation&quot;</td>"#), "{label}: {page}");
        assert!(page.contains(r#"<th scope="row">description</th><td class="mono">&quot;edited&quot;</td>"#), "{label}: {page}");
        assert!(!page.contains(r#"<th scope="row">fired</th>"#), "{label}: the rules are as recorded");

        // A row as recorded before descriptions were kept: it reads, and replays identical.
        conn.execute_unprepared(&format!(
            "UPDATE decisions SET action = 'siu_escalation', description = NULL WHERE request_id = '{request_id}'"
        ))
        .await
        .unwrap();
        let (status, _, page) = ana.get(&page_path).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(!page.contains(r#"id="description""#), "{label}");
        let (status, _, page) = ana.post(&replay, &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains(r#"data-identical="true""#), "{label}: {page}");
        let (status, _, pdf) = ana.get_bytes(&format!("/console/requests/{request_id}/report.pdf")).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(pdf.starts_with(b"%PDF-"), "{label}");
        server.stop().await;
    })
    .await;
}

/// A request's or a case's trail that cannot be read answers the error page, never the page
/// with an empty trail: an auditor must not read "no entries" when the entries are unreadable.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_trail_answers_the_error_page() {
    each_database(async |label, dir, url| {
        let server = TestServer::start(console_config(dir, &url)).await;
        add_user(&server, "acme", "ana", "analyst", "pw-ana").await;
        let (_, key) = server.mint_key(new_key("acme", "enterprise", &Scope::ALL)).await;
        let (status, _, photo) = server
            .post(
                &key,
                "/v1/flows/insurance/claims/CLM-7/photos",
                json!({"image_base64": b64(&fixture("camera/DSCN0010.jpg")), "claim": {"amount": 900, "currency": "EUR"}, "photo": {"role": "vehicle"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {photo}");
        let request_id = photo["request_id"].as_str().unwrap().to_owned();
        let mut ana = Visitor::new(&server.base);
        ana.sign_in("acme", "ana", "pw-ana").await;
        let pages = [format!("/console/requests/{request_id}"), "/console/claims/CLM-7".to_owned()];
        for path in &pages {
            let (status, _, page) = ana.get(path).await;
            assert_eq!(status, StatusCode::OK, "{label}: {path}");
            assert!(page.contains("decision.recorded"), "{label}: {path}: the trail is shown");
        }

        server
            .state
            .pipeline
            .db()
            .writer()
            .execute_unprepared("ALTER TABLE audit_entries RENAME TO audit_entries_away")
            .await
            .unwrap();
        for path in &pages {
            let (status, _, page) = ana.get(path).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{label}: {path}");
            assert!(page.contains("Something went wrong"), "{label}: {path}: {page}");
        }
        server.stop().await;
    })
    .await;
}
