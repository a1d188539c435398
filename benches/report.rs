//! Report-card benchmark: what making a request's PDF costs next to reading the request.
//!
//! `cargo bench --bench report` (or `-- --quick` for a tenth of the rounds). A server in this
//! process on 127.0.0.1:0 over a fresh SQLite file; one claim photo (a camera JPEG with EXIF,
//! decided under the insurance flow, with a heatmap and a thumbnail) and a signed checkpoint.
//! Then, in the same run and interleaved round by round so that the machine's load falls on
//! all of them alike, it times:
//!
//! 1. reading the request from the database as `GET /v1/requests/{id}` does (`stored_reply`);
//! 2. gathering the report's facts (request, decision, reviews, audit entries, thumbnail,
//!    checkpoint: `reports::request_report`);
//! 3. writing the PDF from those facts (`arbiter_report::render`);
//! 4. the whole `GET /v1/requests/{id}/report.pdf` over loopback HTTP.
//!
//! It prints each one's median and 90th percentile, their ratios to (1), and the PDF's size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_server::keys::{self, NewKey, Scope};
mod common;

use base64::Engine;
use common::{Served, ms, quantile, repo};
use serde_json::{Value, json};
use std::time::Instant;

const ROUNDS: usize = 200;
const WARMUP: usize = 10;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { ROUNDS / 10 } else { ROUNDS };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(rounds));
}

async fn run(rounds: usize) {
    let served = Served::start().await;
    let (state, base) = (served.state.clone(), served.base.clone());
    let txn = state.pipeline.db().begin_write().await.unwrap();
    let new = NewKey {
        tenant: "acme".into(),
        name: "bench".into(),
        plan: "enterprise".into(),
        scopes: Scope::ALL.to_vec(),
        allow_ips: Vec::new(),
        flow: None,
    };
    let (_, secret) = keys::create(&txn, new, "bench", chrono::Utc::now())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let key = secret.expose().to_owned();
    let client = reqwest::Client::new();

    let image = std::fs::read(repo().join("tests/fixtures/camera/DSCN0010.jpg")).unwrap();
    let reply: Value = client
        .post(format!("{base}/v1/analyze?flow=insurance"))
        .bearer_auth(&key)
        .json(&json!({
            "image_base64": base64::engine::general_purpose::STANDARD.encode(&image),
            "reference_id": "CLM-1-photo-1",
            "options": {"return_heatmap": true},
            "facts": {"claim": {"amount": 12000, "currency": "EUR"}},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request_id = reply["request_id"].as_str().unwrap().to_owned();
    state
        .checkpoint_worker()
        .sign(true, chrono::Utc::now())
        .await
        .unwrap();
    let url = format!("{base}/v1/requests/{request_id}/report.pdf");

    let mut read = Vec::with_capacity(rounds);
    let mut gather = Vec::with_capacity(rounds);
    let mut render = Vec::with_capacity(rounds);
    let mut whole = Vec::with_capacity(rounds);
    let mut pdf_size = 0;
    for round in 0..WARMUP + rounds {
        let started = Instant::now();
        let conn = state.pipeline.db().conn();
        let stored = arbiter_server::analyze::stored_reply(conn, "acme", &request_id)
            .await
            .unwrap();
        let t_read = started.elapsed();
        std::hint::black_box(stored);

        let started = Instant::now();
        let verifier_key = state.verifier_key();
        let report = arbiter_server::reports::request_report(
            state.engine(),
            &verifier_key,
            "acme",
            &request_id,
        )
        .await
        .unwrap();
        let t_gather = started.elapsed();

        let started = Instant::now();
        let pdf = arbiter_report::render(&report).unwrap();
        let t_render = started.elapsed();
        pdf_size = pdf.len();

        let started = Instant::now();
        let response = client.get(&url).bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        let t_whole = started.elapsed();
        assert!(body.starts_with(b"%PDF-"));

        if round >= WARMUP {
            read.push(t_read);
            gather.push(t_gather);
            render.push(t_render);
            whole.push(t_whole);
        }
    }
    served.stop().await;

    let baseline = quantile(&mut read, 0.5);
    println!(
        "report card of one request ({rounds} rounds after {WARMUP} warm-up, interleaved; \
         SQLite; load {})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{:<52} {:>10} {:>10} {:>12}",
        "", "median ms", "p90 ms", "x read"
    );
    for (name, samples) in [
        ("read the request (GET /v1/requests body)", &mut read),
        ("gather the report's facts from the database", &mut gather),
        ("write the PDF from the facts", &mut render),
        ("whole GET /v1/requests/{id}/report.pdf", &mut whole),
    ] {
        let median = quantile(samples, 0.5);
        let p90 = quantile(samples, 0.9);
        println!(
            "{name:<52} {:>10.3} {:>10.3} {:>12.1}",
            ms(median),
            ms(p90),
            median.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    println!(
        "PDF size: {pdf_size} bytes ({:.1} KB)",
        pdf_size as f64 / 1024.0
    );
}
