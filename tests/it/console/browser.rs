//! The console in a real browser: Debian's Chromium driven through chromedriver (WebDriver over
//! HTTP) against the real server on loopback. Signs in (a wrong password refused first), scans
//! two files and reads their verdicts, claims and resolves a review item and finds the audit
//! entry naming the person, searches the audit trail, is refused as a reviewer on an admin page,
//! proposes a policy version by pasting its YAML and is refused its approval (four-eyes) before
//! a second admin approves it, sees a POST without a CSRF token refused, opens a claim and a KYC
//! session from their lists, and keeps screenshots of every page at 1280 and
//! 390 pixels wide under `target/console-screenshots/`. Every page is audited at both widths as
//! rendered: WCAG AA text contrast, labelled controls, named links and buttons, keyboard order,
//! and no sideways scrolling.
//!
//! Without chromium and chromedriver the test is skipped with a message, unless
//! `ARBITER_REQUIRE_BROWSER=1` (set by CI), which makes that a failure.

use super::add_user;
use crate::harness::{TestServer, b64, config, fixture, new_key, repo, sample};
use arbiter_server::keys::Scope;
use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Checks the page as rendered, at the window's width: the text contrast of WCAG 2.1 AA (4.5:1,
/// 3:1 for large text) against the backgrounds behind it, a label for every form control, a name
/// for every link and button, no positive `tabindex` (keyboard order follows the page), and no
/// sideways scrolling of the page. Returns one line per problem.
const PAGE_AUDIT: &str = r#"
const problems = [];
const rgba = (text) => {
  const m = text.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const p = m[1].split(',').map(parseFloat);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
};
const over = (top, bottom) => ({
  r: top.r * top.a + bottom.r * (1 - top.a),
  g: top.g * top.a + bottom.g * (1 - top.a),
  b: top.b * top.a + bottom.b * (1 - top.a),
  a: 1,
});
const luminance = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
// The colour behind an element: its ancestors' backgrounds laid over white; null over an image.
const behind = (element) => {
  const chain = [];
  for (let e = element; e; e = e.parentElement) chain.unshift(e);
  let colour = { r: 255, g: 255, b: 255, a: 1 };
  for (const e of chain) {
    const style = getComputedStyle(e);
    if (style.backgroundImage !== 'none' || e.tagName === 'IMG' || e.tagName === 'CANVAS') return null;
    const c = rgba(style.backgroundColor);
    if (c && c.a > 0) colour = over(c, colour);
  }
  return colour;
};
const visible = (e) => {
  const style = getComputedStyle(e);
  return e.getClientRects().length > 0 && style.visibility !== 'hidden' && parseFloat(style.opacity) > 0;
};
const named = (e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : ''}`;
for (const e of document.body.querySelectorAll('*')) {
  const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '');
  if (!own || !visible(e) || e.disabled) continue;
  const bg = behind(e);
  const fg = rgba(getComputedStyle(e).color);
  if (!bg || !fg) continue;
  const text = over(fg, bg);
  const [hi, lo] = [luminance(text), luminance(bg)].sort((x, y) => y - x);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const style = getComputedStyle(e);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && parseInt(style.fontWeight, 10) >= 700);
  if (ratio < (large ? 3 : 4.5)) {
    problems.push(`contrast ${ratio.toFixed(2)}:1 of ${named(e)} "${e.textContent.trim().slice(0, 40)}"`);
  }
}
for (const e of document.querySelectorAll('input, select, textarea')) {
  if (['hidden', 'submit', 'button', 'image', 'reset'].includes(e.type)) continue;
  if (e.labels.length === 0 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')) {
    problems.push(`no label for ${named(e)}`);
  }
}
for (const e of document.querySelectorAll('a[href], button')) {
  const name = (e.textContent || '').trim() || e.getAttribute('aria-label') || e.getAttribute('title');
  if (!name && visible(e)) problems.push(`no name for ${named(e)}`);
}
for (const e of document.querySelectorAll('[tabindex]')) {
  if (parseInt(e.getAttribute('tabindex'), 10) > 0) problems.push(`positive tabindex on ${named(e)}`);
}
// What widens the page: elements past its edge or with content past their own, not counting
// those inside a scrolling box.
const scrolled = (e) => {
  for (let p = e.parentElement; p; p = p.parentElement) {
    if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true;
  }
  return false;
};
const past = (e) => e.getBoundingClientRect().right > window.innerWidth + 1 || e.scrollWidth > e.clientWidth + 1;
if (document.documentElement.scrollWidth > window.innerWidth + 1) {
  const wide = [...document.body.querySelectorAll('*')]
    .filter((e) => !scrolled(e) && past(e) && ![...e.children].some(past))
    .slice(0, 3)
    .map((e) => `${named(e)} to ${Math.round(e.getBoundingClientRect().right)} px`);
  problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px wide in ${window.innerWidth} px (${wide.join(', ')})`);
}
return problems;
"#;

/// A WebDriver session.
struct Driver {
    http: reqwest::Client,
    base: String,
    session: String,
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let mut driver = Self {
            http,
            base,
            session: String::new(),
            child,
        };
        let answer = driver.call("POST", "/session", capabilities).await;
        driver.session = answer["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_owned();
        driver
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(
            answer["value"]["error"].is_null(),
            "WebDriver {method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element")
            .to_owned()
    }

    /// Waits up to 30 s for an element (a page still loading after a submit).
    async fn wait_for(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(found) = self.find_all(css).await.into_iter().next() {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no {css}: {}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .call(
                "POST",
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned))
            .collect()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/clear"), json!({}))
            .await;
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Clicks what submits a form or follows a link, and waits up to 30 s for the page it
    /// leads to, so that nothing is read from the page being left.
    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.script("window.arbiterLeaving = true").await;
        self.call("POST", &format!("/element/{element}/click"), json!({}))
            .await;
        let started = Instant::now();
        let arrived =
            "return window.arbiterLeaving === undefined && document.readyState === 'complete'";
        while self.script(arrived).await != json!(true) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "clicking {css} led to no new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, element: &str) -> String {
        self.call("GET", &format!("/element/{element}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn title(&self) -> String {
        self.call("GET", "/title", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs a script; a promise it returns is awaited.
    async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn screenshot(&self, dir: &Path, name: &str, width: u32) {
        self.call(
            "POST",
            "/window/rect",
            json!({"width": width, "height": 900}),
        )
        .await;
        let png = self.call("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(format!("{name}-{width}.png")), bytes).unwrap();
        let problems = self.script(PAGE_AUDIT).await;
        assert_eq!(
            problems,
            json!([]),
            "the {name} page at {width} px fails the page audit"
        );
    }

    /// Screenshots of the current page at both widths, back at 1280 after.
    async fn screenshots(&self, dir: &Path, name: &str) {
        self.screenshot(dir, name, 390).await;
        self.screenshot(dir, name, 1280).await;
    }

    async fn sign_in(&self, base: &str, tenant: &str, user: &str, password: &str) {
        self.go(&format!("{base}/console")).await;
        self.type_into("#tenant", tenant).await;
        self.type_into("#user", user).await;
        self.type_into("#password", password).await;
        self.click("form.login button[type=submit]").await;
        self.wait_for(".who, #login-error").await;
    }

    async fn quit(self) {
        self.call("DELETE", "", Value::Null).await;
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn browser_available() -> bool {
    let there = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !there {
        assert!(
            std::env::var("ARBITER_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "ARBITER_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: the console browser test needs {CHROMIUM} and {CHROMEDRIVER}");
    }
    there
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(&dir.path().join("data"), "")).await;
    add_user(&server, "acme", "alice", "admin", "pw-alice-1").await;
    add_user(&server, "acme", "rita", "reviewer", "pw-rita-1").await;
    add_user(&server, "acme", "bob", "admin", "pw-bob-1").await;
    let base = server.base.clone();
    let shots = screenshot_dir();
    let driver = Driver::start().await;

    // A wrong password is refused; the right one reaches the start page.
    driver.go(&format!("{base}/console")).await;
    driver.screenshots(&shots, "sign-in").await;
    // The audit sees what it looks for: faint text, an unlabelled field, a page too wide (styled
    // through the DOM, since the console's content security policy refuses inline styles).
    driver
        .script(
            "document.body.insertAdjacentHTML('beforeend', '<p id=faint>faint</p><input id=bare><div id=wide>wide</div>');\
             document.getElementById('faint').style.color = '#aaa';\
             document.getElementById('wide').style.width = '2000px';",
        )
        .await;
    let found = driver.script(PAGE_AUDIT).await;
    let found: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap())
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("contrast 2.32:1 of p#faint"),
        "{found:?}"
    );
    assert_eq!(found[1], "no label for input#bare");
    assert!(
        found[2].starts_with("the page scrolls sideways"),
        "{found:?}"
    );
    driver
        .sign_in(&base, "acme", "alice", "not her password")
        .await;
    let error = driver.find("#login-error").await;
    assert_eq!(driver.text(&error).await, "Wrong tenant, user or password.");
    driver.sign_in(&base, "acme", "alice", "pw-alice-1").await;
    assert_eq!(driver.title().await, "Start · Arbiter");
    driver.screenshots(&shots, "start").await;

    // Two files scanned under the insurance flow; their verdicts read from the page.
    driver.go(&format!("{base}/console/scan")).await;
    driver.screenshots(&shots, "scan").await;
    let files = [
        repo().join("samples/plain-render.png"),
        repo().join("samples/sd-generated-duck.png"),
    ]
    .map(|p| p.display().to_string())
    .join("\n");
    driver.type_into("#files", &files).await;
    let flow = driver.find("#flow option[value=insurance]").await;
    driver
        .call("POST", &format!("/element/{flow}/click"), json!({}))
        .await;
    driver.click("form.scan button[type=submit]").await;
    driver.wait_for("#results").await;
    let mut verdicts = Vec::new();
    for badge in driver.find_all("#results .badge").await {
        verdicts.push(driver.text(&badge).await);
    }
    verdicts.sort();
    assert_eq!(
        verdicts,
        ["AI-generated", "Inconclusive"],
        "{}",
        driver.source().await
    );
    driver.screenshots(&shots, "scan-results").await;

    // The requests list.
    driver.go(&format!("{base}/console/requests")).await;
    assert_eq!(driver.find_all("#requests tbody tr").await.len(), 2);
    driver.screenshots(&shots, "requests").await;
    let link = driver.find("#requests tbody a").await;
    driver
        .call("POST", &format!("/element/{link}/click"), json!({}))
        .await;
    assert!(driver.title().await.starts_with("Request req_"));
    driver.screenshots(&shots, "request").await;

    // Claim the SIU item and resolve it: F picks "confirmed fake" from the keyboard.
    driver.go(&format!("{base}/console/review?queue=siu")).await;
    driver.screenshots(&shots, "review").await;
    driver
        .click("article[data-item] form button[type=submit]")
        .await;
    driver.wait_for("form.resolve").await;
    driver
        .call(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": "f"}, {"type": "keyUp", "value": "f"}
            ]}]}),
        )
        .await;
    let checked = driver
        .script("return document.querySelector('form.resolve input[name=label]:checked').value;")
        .await;
    assert_eq!(checked, "confirmed_fake");
    driver.screenshots(&shots, "review-claimed").await;
    driver
        .type_into("form.resolve textarea", "generator parameters in the file")
        .await;
    driver.click("form.resolve button[type=submit]").await;
    let done = driver.wait_for("p.ok").await;
    assert!(driver.text(&done).await.starts_with("You resolved"));

    // The audit trail, searched by event, names alice.
    driver.go(&format!("{base}/console/audit")).await;
    driver.type_into("#event", "review.resolved").await;
    driver.click("form.filters button[type=submit]").await;
    let started = Instant::now();
    let rows = loop {
        let rows = driver.find_all("table.entries tbody tr").await;
        if rows.len() == 1 || started.elapsed() > Duration::from_secs(30) {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows.len(), 1);
    let row = driver.text(&rows[0]).await;
    assert!(
        row.contains("review.resolved") && row.contains("actor alice"),
        "{row}"
    );
    driver.screenshots(&shots, "audit").await;
    driver.go(&format!("{base}/console/policies")).await;
    driver.screenshots(&shots, "policies").await;
    driver.go(&format!("{base}/console/users")).await;
    driver.screenshots(&shots, "users").await;

    // A policy change proposed by pasting its YAML: the proposal shows its diff and backtest,
    // and its proposer's approval is refused with the four-eyes message.
    driver.go(&format!("{base}/console/policies")).await;
    driver.click("#proposals-link").await;
    driver.wait_for("#propose").await;
    assert_eq!(driver.title().await, "Policy proposals · Arbiter");
    let yaml = serde_json::to_string(&super::proposals::insurance_at(3)).unwrap();
    driver
        .script(&format!(
            "document.querySelector('#policy').value = {yaml}; return true;"
        ))
        .await;
    driver.click("#propose button[type=submit]").await;
    driver.wait_for("#diff").await;
    let proposal = driver.title().await;
    assert!(proposal.starts_with("Proposal prop_"), "{proposal}");
    let diff = driver.find("#diff").await;
    assert!(driver.text(&diff).await.contains("version: 2 -> 3"));
    driver.screenshots(&shots, "proposal").await;
    driver.click("#approve button[type=submit]").await;
    let refused = driver.wait_for("#proposal-error").await;
    assert!(
        driver
            .text(&refused)
            .await
            .starts_with("four-eyes rule: alice proposed prop_")
    );
    driver.screenshots(&shots, "proposal-refused").await;
    driver
        .go(&format!("{base}/console/policies/proposals"))
        .await;
    assert_eq!(driver.find_all("#proposals tbody tr").await.len(), 1);
    driver.screenshots(&shots, "proposals").await;
    let proposal_path = format!(
        "{base}/console/policies/proposals/{}",
        proposal
            .trim_start_matches("Proposal ")
            .trim_end_matches(" · Arbiter")
    );

    // A POST without the CSRF token, from the signed-in browser: refused.
    driver
        .script(
            "const f = document.createElement('form'); f.method = 'post'; f.action = '/console/users'; \
             for (const [k, v] of [['user', 'eve'], ['role', 'admin'], ['password', 'x']]) { \
             const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); } \
             document.body.appendChild(f); f.submit(); return true;",
        )
        .await;
    driver.wait_for("p.notice").await;
    assert_eq!(driver.title().await, "Form refused · Arbiter");
    assert!(!driver.source().await.contains(">eve<"));

    // A second admin approves the proposal.
    driver.click(".who button[type=submit]").await;
    driver.wait_for("#tenant").await;
    driver.sign_in(&base, "acme", "bob", "pw-bob-1").await;
    driver.go(&proposal_path).await;
    driver.click("#approve button[type=submit]").await;
    driver.wait_for("dd[data-state=approved]").await;
    driver.screenshots(&shots, "proposal-approved").await;

    // Sign out; a reviewer is refused on an admin page.
    driver.click(".who button[type=submit]").await;
    driver.wait_for("#tenant").await;
    driver.sign_in(&base, "acme", "rita", "pw-rita-1").await;
    driver.go(&format!("{base}/console/users")).await;
    assert_eq!(driver.title().await, "Not allowed · Arbiter");
    driver.screenshots(&shots, "refused").await;

    // A claim and a KYC session made through the API, in their lists and on their pages (every
    // role reaches them, a reviewer too).
    let (_, key) = server
        .mint_key(new_key("acme", "enterprise", &Scope::ALL))
        .await;
    let (status, _, _) = server
        .post(
            &key,
            "/v1/flows/insurance/claims/CLM-1/photos",
            json!({"image_base64": b64(&sample("plain-render.png")), "claim": {"amount": 900, "currency": "EUR"}, "photo": {"role": "damage"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = server
        .post(
            &key,
            "/v1/flows/kyc/sessions/kyc-1/images",
            json!({"image_base64": b64(&fixture("camera/DSCN0010.jpg")), "role": "id_document"}),
        )
        .await;
    assert_eq!(status, 200);
    for (list, name, title) in [
        ("claims", "claim", "Claim CLM-1"),
        ("kyc", "kyc-session", "KYC session kyc-1"),
    ] {
        driver.go(&format!("{base}/console/{list}")).await;
        assert_eq!(driver.find_all("#cases tbody tr").await.len(), 1);
        driver.screenshots(&shots, list).await;
        let link = driver.find("#cases tbody a").await;
        driver
            .call("POST", &format!("/element/{link}/click"), json!({}))
            .await;
        driver.wait_for("#assessment").await;
        assert!(driver.title().await.starts_with(title));
        assert_eq!(driver.find_all("section.case-image").await.len(), 1);
        driver.screenshots(&shots, name).await;
        // Request ids are random, and one of wide letters must wrap rather than widen the page.
        let ids = driver
            .script(
                "const wide = 'req_01WWWWWWWWWWWWWWWWWWWWWWWW'; \
                 const places = [...document.querySelectorAll('#reviews li, #assessment a')]; \
                 for (const e of places) e.textContent = `(${wide}):`; \
                 return places.length;",
            )
            .await;
        assert!(ids.as_u64().unwrap() >= 1, "{name}: {ids}");
        driver
            .screenshot(&shots, &format!("{name}-wide-ids"), 390)
            .await;
        driver
            .call(
                "POST",
                "/window/rect",
                json!({"width": 1280, "height": 900}),
            )
            .await;
    }

    driver.quit().await;
    server.stop().await;
    for name in [
        "sign-in",
        "start",
        "scan",
        "scan-results",
        "requests",
        "request",
        "review",
        "audit",
        "policies",
        "users",
        "proposals",
        "proposal",
        "proposal-refused",
        "proposal-approved",
        "refused",
        "claims",
        "claim",
        "kyc",
        "kyc-session",
    ] {
        for width in [390, 1280] {
            assert!(
                shots.join(format!("{name}-{width}.png")).exists(),
                "{name}-{width}"
            );
        }
    }
}
