//! Console paging benchmark: whether a deep page of a large list costs what the first does.
//!
//! `cargo bench --bench console_paging` (or `-- --quick` for a tenth of the rounds). A server in
//! this process on 127.0.0.1:0 over a fresh SQLite file; one tenant with 10,000 requests and
//! 10,000 insurance claims, and a signed-in console user. Then, in the same run and interleaved
//! round by round so that the machine's load falls on all of them alike, it times over loopback
//! HTTP:
//!
//! 1. the baseline: `/console/requests?q=ID`, the list page searched down to one request;
//! 2. `/console/requests/ID`, that request's own page;
//! 3. `/console/requests`, the first page of 50;
//! 4. `/console/requests?after=ID`, a page 9,000 requests deep (keyset cursor);
//! 5. `/console/claims`, the first page of claims;
//! 6. `/console/claims?after=ID`, a page 9,000 claims deep.
//!
//! It prints each one's median and 90th percentile and their ratios to (1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Served, ms, quantile};
use std::time::{Duration, Instant};

const ROUNDS: usize = 100;
const WARMUP: usize = 5;
const ITEMS: usize = 10_000;
const DEPTH: usize = 9_000;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { ROUNDS / 10 } else { ROUNDS };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(rounds));
}

/// The value of a `name=value` cookie in a response's `Set-Cookie` headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .unwrap()
}

async fn run(rounds: usize) {
    let served = Served::start().await;
    let (state, base) = (served.state.clone(), served.base.clone());

    // 10,000 requests and 10,000 claims, one second apart.
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    let analysis = r#"{"verdict":{"label":"AUTHENTIC","confidence":0.9,"risk_level":"LOW"}}"#;
    let mut request_ids = Vec::with_capacity(ITEMS);
    let txn = state.pipeline.db().begin_write().await.unwrap();
    for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|n| {
                let id = arbiter_core::RequestId::new().to_string();
                request_ids.push(id.clone());
                arbiter_db::entity::request::Model {
                    request_id: id,
                    tenant: "acme".into(),
                    reference_id: Some(format!("ref-{n}")),
                    image_sha256: format!("{n:064x}"),
                    cache_key: format!("key-{n}"),
                    cached_from: None,
                    status: "complete".into(),
                    analysis: analysis.into(),
                    created_at: start,
                }
            })
            .collect();
        arbiter_db::requests::insert(&txn, rows).await.unwrap();
    }
    for n in 0..ITEMS {
        let at = start + chrono::Duration::seconds(n as i64);
        arbiter_db::cases::open(&txn, "acme", "insurance", &format!("CLM-{n:05}"), at)
            .await
            .unwrap();
    }
    arbiter_console::users::create(&txn, "acme", "ana", "analyst", "pw-ana", start)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    request_ids.sort();
    let deep_request = request_ids[ITEMS - 1 - DEPTH].clone();
    let one_request = request_ids[ITEMS / 2].clone();
    let deep_claim = format!("CLM-{:05}", ITEMS - 1 - DEPTH);

    // Sign in as a browser does: the form's CSRF cookie and token, then the session cookie.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(format!("{base}/console")).send().await.unwrap();
    let login_cookie = set_cookie(&page, "arbiter_login_csrf");
    let body = page.text().await.unwrap();
    let at = body.find(r#"name="csrf" value=""#).unwrap() + 19;
    let csrf = body[at..at + 64].to_owned();
    let signed_in = client
        .post(format!("{base}/console/login"))
        .header(
            reqwest::header::COOKIE,
            format!("arbiter_login_csrf={login_cookie}"),
        )
        .form(&[
            ("tenant", "acme"),
            ("user", "ana"),
            ("password", "pw-ana"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let cookie = format!(
        "arbiter_session={}",
        set_cookie(&signed_in, "arbiter_session")
    );

    let pages = [
        (
            "one request (/console/requests?q=ID)",
            format!("/console/requests?q={one_request}"),
            1,
        ),
        (
            "one request's page (/console/requests/ID)",
            format!("/console/requests/{one_request}"),
            0,
        ),
        ("first page of requests", "/console/requests".to_owned(), 50),
        (
            "requests 9,000 deep (?after=ID)",
            format!("/console/requests?after={deep_request}"),
            50,
        ),
        ("first page of claims", "/console/claims".to_owned(), 50),
        (
            "claims 9,000 deep (?after=ID)",
            format!("/console/claims?after={deep_claim}"),
            50,
        ),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); pages.len()];
    for round in 0..WARMUP + rounds {
        for (n, (name, path, rows)) in pages.iter().enumerate() {
            let started = Instant::now();
            let response = client
                .get(format!("{base}{path}"))
                .header(reqwest::header::COOKIE, &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{name}");
            let body = response.text().await.unwrap();
            let elapsed = started.elapsed();
            let shown = body.matches("<tr><td><a href=").count();
            assert_eq!(shown, *rows, "{name}: rows on the page");
            if round >= WARMUP {
                samples[n].push(elapsed);
            }
        }
    }
    served.stop().await;

    let baseline = quantile(&mut samples[0], 0.5);
    println!(
        "console paging over {ITEMS} requests and {ITEMS} claims ({rounds} rounds after {WARMUP} \
         warm-up, interleaved; SQLite; load {})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{:<44} {:>10} {:>10} {:>12}",
        "", "median ms", "p90 ms", "x one"
    );
    for ((name, _, _), samples) in pages.iter().zip(samples.iter_mut()) {
        let median = quantile(samples, 0.5);
        let p90 = quantile(samples, 0.9);
        println!(
            "{name:<44} {:>10.3} {:>10.3} {:>12.2}",
            ms(median),
            ms(p90),
            median.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}
