//! The console at `/console` through its handlers, on SQLite and PostgreSQL: sign-in with a
//! right and a wrong password, the throttle, CSRF refusals, roles, a scan, a review claim and
//! resolution that name the signed-in person in the audit trail, paging of requests, and
//! sign-out. `browser` drives the same pages in Chromium.

mod browser;
mod cases;
mod evidence;
mod oidc;
mod pages;
mod proposals;

use crate::harness::{TestServer, b64, config, each_database, sample};
use arbiter_config::{Config, ConsoleConfig};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::collections::BTreeMap;

/// Someone with a browser's cookie jar, one cookie per name, redirects not followed.
pub struct Visitor {
    base: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Visitor {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let value = value.to_str().unwrap();
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            let (name, val) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), val.to_owned());
            }
        }
    }

    /// `GET path`: the status, the Location header and the body.
    pub async fn get(&mut self, path: &str) -> (StatusCode, String, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.answer(response).await
    }

    async fn answer(&mut self, response: reqwest::Response) -> (StatusCode, String, String) {
        self.keep(&response);
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, response.text().await.unwrap())
    }

    /// `GET path` as bytes: the status, the content type and the body.
    pub async fn get_bytes(&mut self, path: &str) -> (StatusCode, String, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        let status = response.status();
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, kind, response.bytes().await.unwrap().to_vec())
    }

    /// `POST path` with a form.
    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        self.answer(response).await
    }

    /// `POST path` with a multipart form.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> (StatusCode, String, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .multipart(form)
            .send()
            .await
            .unwrap();
        self.answer(response).await
    }

    /// The value of a hidden `csrf` field in a page.
    pub fn csrf_in(page: &str) -> String {
        let at = page.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
        page[at..at + 64].to_owned()
    }

    /// Signs in: the sign-in page, then the form with its CSRF token.
    pub async fn sign_in(
        &mut self,
        tenant: &str,
        user: &str,
        password: &str,
    ) -> (StatusCode, String) {
        let (_, _, page) = self.get("/console").await;
        let csrf = Self::csrf_in(&page);
        let (status, _, body) = self
            .post(
                "/console/login",
                &[
                    ("tenant", tenant),
                    ("user", user),
                    ("password", password),
                    ("csrf", &csrf),
                ],
            )
            .await;
        (status, body)
    }

    /// The CSRF token of the signed-in session (from the start page).
    pub async fn session_csrf(&mut self) -> String {
        let (status, _, page) = self.get("/console").await;
        assert_eq!(status, StatusCode::OK);
        Self::csrf_in(&page)
    }
}

/// Creates a console user in the server's database.
pub async fn add_user(server: &TestServer, tenant: &str, user: &str, role: &str, password: &str) {
    arbiter_console::users::create(
        server.state.pipeline.db().writer(),
        tenant,
        user,
        role,
        password,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
}

/// The events of a tenant's audit chain, in order, as JSON.
pub async fn audit_events(server: &TestServer, tenant: &str) -> Vec<serde_json::Value> {
    let filter = arbiter_audit::EntryFilter {
        tenant: Some(tenant.into()),
        ..Default::default()
    };
    arbiter_audit::entries(server.state.pipeline.db().conn(), &filter)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(&e.entry.canonical().unwrap()).unwrap())
        .collect()
}

/// A claim of two photos (`CLM-1001`; the second AI-generated, so its item is in the `siu`
/// queue) whose SIU item the reviewer `rita` (added here, password `pw-rita`) claimed in the
/// console; the photos' request ids.
pub async fn claim_held_by_rita(server: &TestServer, key: &str, label: &str) -> Vec<String> {
    add_user(server, "acme", "rita", "reviewer", "pw-rita").await;
    let photos = "/v1/flows/insurance/claims/CLM-1001/photos";
    let mut request_ids = Vec::new();
    for (name, role) in [
        ("plain-render.png", "damage"),
        ("sd-generated-duck.png", "vehicle"),
    ] {
        let (status, _, body) = server
            .post(key, photos, serde_json::json!({"image_base64": b64(&sample(name)), "claim": {"amount": 12000, "currency": "EUR"}, "photo": {"role": role}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        request_ids.push(body["request_id"].as_str().unwrap().to_owned());
    }
    let mut rita = Visitor::new(&server.base);
    rita.sign_in("acme", "rita", "pw-rita").await;
    let (_, _, page) = rita.get("/console/review?queue=siu").await;
    let at = page
        .find(r#"action="/console/review/rev_"#)
        .expect("an open item")
        + 24;
    let item = page[at..].split('/').next().unwrap().to_owned();
    let csrf = Visitor::csrf_in(&page);
    let (status, _, _) = rita
        .post(&format!("/console/review/{item}/claim"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
    request_ids
}

pub fn console_config(dir: &std::path::Path, url: &str) -> Config {
    Config {
        console: ConsoleConfig {
            max_failed_sign_ins: 3,
            ..ConsoleConfig::default()
        },
        ..config(dir, url)
    }
}

#[tokio::test]
async fn sign_in_refuses_a_wrong_password_throttles_and_signs_out() {
    each_database(async |label, dir, url| {
        let server = TestServer::start(console_config(dir, &url)).await;
        add_user(&server, "acme", "alice", "admin", "right password").await;

        let mut visitor = Visitor::new(&server.base);
        let (status, _, page) = visitor.get("/console").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains(r#"<label for="password">Password</label>"#), "{label}");
        assert!(visitor.cookies.contains_key("arbiter_login_csrf"), "{label}");

        // A wrong password: 401, the form again, nothing of the password in the audit entry.
        let (status, page) = visitor.sign_in("acme", "alice", "wrong password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        assert!(page.contains("Wrong tenant, user or password."), "{label}");
        assert!(!visitor.cookies.contains_key("arbiter_session"), "{label}");
        // What was typed comes back escaped.
        let (_, page) = visitor.sign_in("acme", "<script>x</script>", "p").await;
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"), "{label}");
        assert!(!page.contains("<script>x"), "{label}");

        // Right: a session cookie, HttpOnly and SameSite, then the start page.
        let (_, _, page) = visitor.get("/console").await;
        let csrf = Visitor::csrf_in(&page);
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/console/login", server.base))
            .header(COOKIE, visitor.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("tenant", "acme"), ("user", "alice"), ("password", "right password"), ("csrf", &csrf)]).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{label}");
        let set: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let session = set.iter().find(|c| c.starts_with("arbiter_session=")).expect("a session cookie");
        assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/console"), "{session}");
        assert!(!session.contains("Secure"), "{session}");
        visitor.keep(&response);
        let (status, _, page) = visitor.get("/console").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains("Signed in as <strong>alice</strong> (admin)"), "{label}");

        // Only the token's SHA-256 is stored.
        let token = visitor.cookies["arbiter_session"].clone();
        let stored: Vec<arbiter_db::entity::console_session::Model> =
            <arbiter_db::entity::console_session::Entity as arbiter_db::sea_orm::EntityTrait>::find()
                .all(server.state.pipeline.db().conn())
                .await
                .unwrap();
        assert_eq!(stored.len(), 1, "{label}");
        assert_eq!(stored[0].token_sha256, arbiter_console::token::sha256(&token), "{label}");
        assert_ne!(stored[0].token_sha256, token, "{label}");

        // Sign out without the CSRF token: refused; with it: the session is gone.
        let (status, _, _) = visitor.post("/console/logout", &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let csrf = visitor.session_csrf().await;
        let (status, location, _) = visitor.post("/console/logout", &[("csrf", &csrf)]).await;
        assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"), "{label}");
        let mut stale = Visitor::new(&server.base);
        stale.cookies.insert("arbiter_session".into(), token);
        let (status, location, _) = stale.get("/console/requests").await;
        assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"), "{label}");

        // Three failures within the window: even the right password is refused (429).
        let mut other = Visitor::new(&server.base);
        for _ in 0..2 {
            let (status, _) = other.sign_in("acme", "alice", "guess").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        }
        let (status, page) = other.sign_in("acme", "alice", "right password").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{label}: {page}");
        assert!(page.contains("Too many failed sign-ins"), "{label}");

        let events: Vec<(String, String, String)> = audit_events(&server, "acme")
            .await
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_owned(),
                    e["actor"].as_str().unwrap_or("").to_owned(),
                    e["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String, String)> = [
            ("console.sign_in_failed", "alice", "wrong_password"),
            ("console.sign_in_failed", "<script>x</script>", "unknown_user"),
            ("console.signed_in", "alice", ""),
            ("console.signed_out", "alice", ""),
            ("console.sign_in_failed", "alice", "wrong_password"),
            ("console.sign_in_failed", "alice", "wrong_password"),
            ("console.sign_in_failed", "alice", "throttled"),
        ]
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
        // The id with < > is not an id: refused before the tables, so not recorded.
        let expected: Vec<_> = expected.into_iter().filter(|(_, actor, _)| !actor.contains('<')).collect();
        assert_eq!(events, expected, "{label}");
        let all = serde_json::to_string(&audit_events(&server, "acme").await).unwrap();
        assert!(!all.contains("right password") && !all.contains("wrong password"), "{label}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn forms_without_a_csrf_token_and_roles_without_the_area_are_refused() {
    each_database(async |label, dir, url| {
        let server = TestServer::start(console_config(dir, &url)).await;
        add_user(&server, "acme", "rita", "reviewer", "pw-rita").await;
        add_user(&server, "acme", "audrey", "auditor", "pw-audrey").await;

        // The sign-in form needs its token, and the token must match the cookie's.
        let mut visitor = Visitor::new(&server.base);
        let (status, _, _) = visitor
            .post(
                "/console/login",
                &[
                    ("tenant", "acme"),
                    ("user", "rita"),
                    ("password", "pw-rita"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        visitor.get("/console").await;
        let (status, _, page) = visitor
            .post(
                "/console/login",
                &[
                    ("tenant", "acme"),
                    ("user", "rita"),
                    ("password", "pw-rita"),
                    ("csrf", &"0".repeat(64)),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        assert!(
            page.contains("security token is missing or out of date"),
            "{label}"
        );

        // A visitor is sent to the sign-in page.
        let (status, location, _) = Visitor::new(&server.base).get("/console/review").await;
        assert_eq!(
            (status, location.as_str()),
            (StatusCode::SEE_OTHER, "/console"),
            "{label}"
        );

        let (status, _) = visitor.sign_in("acme", "rita", "pw-rita").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        for path in [
            "/console/users",
            "/console/policies",
            "/console/scan",
            "/console/audit",
        ] {
            let (status, _, page) = visitor.get(path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{label} {path}");
            assert!(
                page.contains("Your role (reviewer) does not give access to this page."),
                "{label}"
            );
        }
        let (status, _, page) = visitor.get("/console/review").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        // Only the areas of the role are in the navigation.
        assert!(
            page.contains(r#"href="/console/review""#)
                && !page.contains(r#"href="/console/users""#),
            "{label}"
        );
        // A form of the session without its token.
        let (status, _, _) = visitor.post("/console/review/rev_x/claim", &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let (status, _, _) = visitor
            .post(
                "/console/users",
                &[("user", "eve"), ("role", "admin"), ("password", "p")],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");

        let mut auditor = Visitor::new(&server.base);
        auditor.sign_in("acme", "audrey", "pw-audrey").await;
        let (status, _, page) = auditor.get("/console/audit?verify=1").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(
            page.contains(r#"id="verify-result""#) && page.contains("The live chain verifies"),
            "{label}: {page}"
        );
        let (status, _, _) = auditor.get("/console/review").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let response = reqwest::Client::new()
            .get(format!("{}/console/audit/export", server.base))
            .header(COOKIE, auditor.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        assert_eq!(
            response.headers()["content-type"],
            "application/x-tar",
            "{label}"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_scan_then_a_review_claim_and_resolution_name_the_signed_in_person() {
    each_database(async |label, dir, url| {
        let server = TestServer::start(console_config(dir, &url)).await;
        add_user(&server, "acme", "alice", "admin", "pw-alice").await;
        add_user(&server, "acme", "rita", "reviewer", "pw-rita").await;
        add_user(&server, "other", "olga", "admin", "pw-olga").await;

        let mut alice = Visitor::new(&server.base);
        alice.sign_in("acme", "alice", "pw-alice").await;
        let (_, _, page) = alice.get("/console/scan").await;
        let csrf = Visitor::csrf_in(&page);
        // Without the token the files are not analysed.
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(sample("plain-render.png")).file_name("plain.png"));
        let (status, _, _) = alice.post_multipart("/console/scan", form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf)
            .text("flow", "insurance")
            .text("facts", "claim.amount=12000")
            .part("file", reqwest::multipart::Part::bytes(sample("plain-render.png")).file_name("plain.png"))
            .part("file", reqwest::multipart::Part::bytes(sample("sd-generated-duck.png")).file_name("duck.png"));
        let (status, _, page) = alice.post_multipart("/console/scan", form).await;
        assert_eq!(status, StatusCode::OK, "{label}: {page}");
        assert!(page.contains(r#"data-file="plain.png""#) && page.contains(r#"data-file="duck.png""#), "{label}");
        assert!(page.contains(r#"data-verdict="AI_GENERATED""#), "{label}: {page}");
        assert!(page.contains(r#"data-verdict="INCONCLUSIVE""#), "{label}");
        assert!(page.contains("Decision under <strong>insurance</strong>: <strong>siu_escalation</strong>"), "{label}");
        assert!(page.contains("<strong>adjuster_review</strong>"), "{label}");

        // Both requests are listed, searchable by action; another tenant sees neither.
        let (_, _, page) = alice.get("/console/requests?action=siu_escalation").await;
        assert_eq!(page.matches(r#"<tr><td><a href="/console/requests/req_"#).count(), 1, "{label}");
        let mut olga = Visitor::new(&server.base);
        olga.sign_in("other", "olga", "pw-olga").await;
        let (_, _, page) = olga.get("/console/requests").await;
        assert!(page.contains(r#"id="no-requests""#), "{label}");

        // Rita claims the SIU item and resolves it.
        let mut rita = Visitor::new(&server.base);
        rita.sign_in("acme", "rita", "pw-rita").await;
        let (_, _, page) = rita.get("/console/review?queue=siu").await;
        let at = page.find(r#"action="/console/review/rev_"#).expect("an open item") + 24;
        let item = page[at..].split('/').next().unwrap().to_owned();
        let csrf = Visitor::csrf_in(&page);
        let (status, location, _) = rita
            .post(&format!("/console/review/{item}/claim?queue=siu"), &[("csrf", &csrf), ("reviewer", "someone-else")])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert!(location.starts_with("/console/review?done="), "{label}: {location}");
        // Alice sees it claimed by Rita, and cannot take it.
        let (_, _, page) = alice.get("/console/review?queue=siu").await;
        assert!(page.contains("Claimed by rita"), "{label}");
        let csrf_alice = Visitor::csrf_in(&page);
        let (status, _, _) = alice.post(&format!("/console/review/{item}/claim"), &[("csrf", &csrf_alice)]).await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}");

        let (_, _, page) = rita.get("/console/review?queue=siu").await;
        assert!(page.contains(r#"class="resolve""#), "{label}");
        let (status, _, _) = rita
            .post(
                &format!("/console/review/{item}/resolve?queue=siu"),
                &[("csrf", &csrf), ("label", "confirmed_fake"), ("note", "generator parameters in the file"), ("action", "")],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let stored = arbiter_db::review::get(server.state.pipeline.db().conn(), "acme", &item)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.claimed_by.as_deref(), Some("rita"), "{label}");
        assert_eq!(stored.resolved_by.as_deref(), Some("rita"), "{label}");
        assert_eq!(stored.claimed_key.as_deref(), Some("console"), "{label}");
        let resolved: Vec<_> = audit_events(&server, "acme")
            .await
            .into_iter()
            .filter(|e| e["event"] == "review.resolved")
            .collect();
        assert_eq!(resolved.len(), 1, "{label}");
        assert_eq!(resolved[0]["actor"], "rita", "{label}");
        // The claim is an entry of its own, naming her (not the id typed into the form).
        let claimed: Vec<_> = audit_events(&server, "acme")
            .await
            .into_iter()
            .filter(|e| e["event"] == "review.claimed")
            .collect();
        assert_eq!(claimed.len(), 1, "{label}: the refused claim left no entry");
        assert_eq!(claimed[0]["actor"], "rita", "{label}");
        assert_eq!(claimed[0]["key_id"], "console", "{label}");
        assert_eq!(claimed[0]["request_id"], resolved[0]["request_id"], "{label}");
        assert_eq!(resolved[0]["label"], "confirmed_fake", "{label}");

        // The audit page, searched by event, shows the entry naming her.
        let (_, _, page) = alice.get("/console/audit?event=review.resolved").await;
        assert!(page.contains("actor rita"), "{label}: {page}");
        assert_eq!(page.matches("<code>review.resolved</code>").count(), 1, "{label}");
        let (status, _, page) = alice.get("/console/audit?since=yesterday").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains("is not an RFC 3339 time"), "{label}");

        // The request's page: decision, rules, policy version, review and trail.
        let request_id = stored.request_id.clone();
        let (status, _, page) = alice.get(&format!("/console/requests/{request_id}")).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains("<strong>siu_escalation</strong>") && page.contains("insurance.fnol version"), "{label}");
        assert!(page.contains("labelled confirmed_fake by rita"), "{label}");
        assert!(page.contains("<code>decision.recorded</code>") && page.contains("<code>review.resolved</code>"), "{label}");
        let (status, _, _) = olga.get(&format!("/console/requests/{request_id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");

        // The policy simulator.
        let (_, _, page) = alice.get("/console/policies").await;
        assert!(page.contains("insurance.fnol") && page.contains("apiVersion: arbiter/v1"), "{label}");
        let csrf = Visitor::csrf_in(&page);
        let (status, _, page) = alice
            .post(
                "/console/policies/simulate",
                &[("csrf", &csrf), ("policy", "insurance.fnol"), ("facts", r#"{"verdict": {"label": "AI_GENERATED", "confidence": 0.94, "risk_level": "HIGH"}, "metadata": {"ai_declared": true}}"#)],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(page.contains(r#"id="simulation""#) && page.contains("Decision: <strong>siu_escalation</strong>"), "{label}: {page}");
        let (status, _, _) = alice.post("/console/policies/simulate", &[("csrf", &csrf), ("policy", "insurance.fnol"), ("facts", "[1]")]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");

        // Users: an admin adds and disables one; a bad role is refused.
        let (_, _, page) = alice.get("/console/users").await;
        let csrf = Visitor::csrf_in(&page);
        let (status, _, page) = alice.post("/console/users", &[("csrf", &csrf), ("user", "ana"), ("role", "root"), ("password", "pw")]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(page.contains("role must be one of admin, reviewer, auditor, analyst"), "{label}");
        let (status, _, _) = alice.post("/console/users", &[("csrf", &csrf), ("user", "ana"), ("role", "analyst"), ("password", "pw-ana")]).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let (status, _, _) = alice.post("/console/users/disable", &[("csrf", &csrf), ("user", "rita")]).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let (status, location, _) = rita.get("/console/review").await;
        assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"), "{label}: a disabled user's session ends");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn requests_page_through_the_database() {
    each_database(async |label, dir, url| {
        let server = TestServer::start(console_config(dir, &url)).await;
        add_user(&server, "acme", "ana", "analyst", "pw-ana").await;
        let now = chrono::Utc::now();
        let analysis = r#"{"verdict":{"label":"AUTHENTIC","confidence":0.9,"risk_level":"LOW"}}"#;
        let rows: Vec<_> = (0..120)
            .map(|n| arbiter_db::entity::request::Model {
                request_id: arbiter_core::RequestId::new().to_string(),
                tenant: "acme".into(),
                reference_id: Some(format!("ref-{n}")),
                image_sha256: format!("{n:064x}"),
                cache_key: format!("key-{n}"),
                cached_from: None,
                status: "complete".into(),
                analysis: analysis.into(),
                created_at: now,
            })
            .collect();
        let newest = rows.iter().map(|r| r.request_id.clone()).max().unwrap();
        let txn = server.state.pipeline.db().begin_write().await.unwrap();
        arbiter_db::requests::insert(&txn, rows).await.unwrap();
        txn.commit().await.unwrap();

        let mut ana = Visitor::new(&server.base);
        ana.sign_in("acme", "ana", "pw-ana").await;
        let mut seen = Vec::new();
        let mut path = "/console/requests".to_owned();
        loop {
            let (status, _, page) = ana.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{label}");
            let ids: Vec<String> = page
                .match_indices(r#"<tr><td><a href="/console/requests/"#)
                .map(|(at, m)| page[at + m.len()..].split('"').next().unwrap().to_owned())
                .collect();
            assert!(ids.len() <= 50, "{label}");
            seen.extend(ids);
            match page.find(r#"rel="next" href=""#) {
                Some(at) => {
                    path = page[at + 17..]
                        .split('"')
                        .next()
                        .unwrap()
                        .replace("&amp;", "&");
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 120, "{label}");
        assert_eq!(seen[0], newest, "{label}: newest first");
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "{label}");
        // By reference id, and by SHA-256.
        let (_, _, page) = ana.get("/console/requests?q=ref-7").await;
        assert_eq!(
            page.matches(r#"<tr><td><a href="/console/requests/"#)
                .count(),
            1,
            "{label}"
        );
        let (_, _, page) = ana.get(&format!("/console/requests?q={:064x}", 9)).await;
        assert!(page.contains("ref-9"), "{label}");
        server.stop().await;
    })
    .await;
}
