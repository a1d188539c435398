//! Decisions per second for each shipped policy and a generated 200-rule policy, with and
//! without explanation, next to two baselines (a one-rule policy, and cloning the facts).
//!
//! `cargo bench -p arbiter-policy -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use arbiter_core::Facts;
use arbiter_policy::Policy;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::fmt::Write;
use std::hint::black_box;
use std::path::Path;

/// The facts an analysis gives every flow, plus a flow's own.
fn facts(label: &str, confidence: f64, risk: &str, flow: Value) -> Facts {
    let mut facts = json!({
        "verdict": { "label": label, "confidence": confidence, "risk_level": risk },
        "models": {
            "gan": { "score": 0.41, "label": "SUSPICIOUS" },
            "diffusion": { "score": 0.72, "label": "SYNTHETIC" },
            "noise": { "score": 0.66, "label": "SUSPICIOUS" },
            "metadata": { "score": 0.5, "label": "INCONCLUSIVE" },
            "frequency": { "score": 0.58, "label": "SUSPICIOUS" },
            "splicing": { "score": 0.12, "label": "AUTHENTIC" }
        },
        "metadata": { "exif_present": true, "gps_present": false, "c2pa_present": false,
                      "c2pa_valid": false, "ai_declared": false, "camera_make": "Canon" },
        "image": { "width": 3024, "height": 4032, "format": "JPEG", "file_size_bytes": 4_821_033,
                   "sha256": "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6abcd" },
        "detector": "local"
    });
    let map = facts.as_object_mut().unwrap();
    for (key, value) in flow.as_object().unwrap() {
        map.insert(key.clone(), value.clone());
    }
    Facts::from_map(map.clone())
}

/// Inputs that walk different paths through each shipped policy.
fn inputs(flow: &str) -> Vec<Facts> {
    let domain = match flow {
        "insurance" => json!({ "claim": { "id": "CLM-1", "amount": 12000, "currency": "EUR",
                                          "capture_days_before_incident": 1 },
                               "photo": { "role": "damage" } }),
        "ugc" => json!({ "upload": { "id": "up-1", "visibility": "public" },
                         "uploader": { "id": "u-1", "account_age_days": 30, "prior_strikes": 1 } }),
        _ => json!({ "session": { "id": "kyc-1" }, "image_role": "selfie",
                     "liveness": { "passed": true, "score": 0.93, "provider": "acme" } }),
    };
    vec![
        facts("AI_GENERATED", 0.94, "HIGH", domain.clone()),
        facts("MANIPULATED", 0.7, "MEDIUM", domain.clone()),
        facts("AUTHENTIC", 0.97, "LOW", domain.clone()),
        facts("INCONCLUSIVE", 0.0, "LOW", domain),
    ]
}

/// A first_match policy of `n` rules of two conditions each, none of which matches the
/// benchmark's facts, so every rule is evaluated.
fn generated(n: usize) -> Policy {
    let mut yaml = String::from(
        "apiVersion: arbiter/v1\nkind: Policy\nmetadata: { id: generated, flow: insurance, version: 1 }\n\
         evaluation: { on_error: adjuster_review }\n\
         actions: { siu_escalation: { severity: 3 }, adjuster_review: { severity: 2 }, proceed: { severity: 0 } }\n\
         default: { action: proceed, reason: NO_RULE_MATCHED }\nrules:\n",
    );
    for i in 0..n {
        let action = if i % 2 == 0 {
            "adjuster_review"
        } else {
            "siu_escalation"
        };
        writeln!(
            yaml,
            "  - id: rule-{i}\n    description: \"{{verdict.label}} on {{claim.amount}}\"\n    when:\n      all:\n        \
             - {{ fact: claim.amount, gte: {} }}\n        - {{ fact: verdict.label, in: [AI_GENERATED, MANIPULATED] }}\n    \
             then: {{ action: {action}, reason: R{i} }}",
            1_000_000 + i
        )
        .unwrap();
    }
    Policy::from_yaml(&yaml, "generated.yaml").unwrap()
}

fn trivial() -> Policy {
    Policy::from_yaml(
        "apiVersion: arbiter/v1\nkind: Policy\nmetadata: { id: trivial, flow: insurance, version: 1 }\n\
         actions: { adjuster_review: { severity: 2 }, proceed: { severity: 0 } }\n\
         default: { action: proceed, reason: NO_RULE_MATCHED }\nrules:\n\
         - id: high\n  when: { fact: verdict.risk_level, eq: HIGH }\n  then: { action: adjuster_review, reason: HIGH }\n",
        "trivial.yaml",
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut cases: Vec<(String, Policy, Vec<Facts>)> = Vec::new();
    cases.push(("baseline-one-rule".into(), trivial(), inputs("insurance")));
    for name in ["insurance-fnol.yaml", "ugc-moderation.yaml", "kyc.yaml"] {
        let policy = Policy::load(&root.join(name)).unwrap();
        let facts = inputs(policy.flow());
        cases.push((name.trim_end_matches(".yaml").into(), policy, facts));
    }
    cases.push((
        "generated-200-rules".into(),
        generated(200),
        inputs("insurance"),
    ));

    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    {
        let facts = inputs("insurance");
        let mut i = 0usize;
        group.bench_function("baseline-clone-facts", |b| {
            b.iter(|| {
                i = (i + 1) % facts.len();
                black_box(facts[i].clone())
            });
        });
    }
    for (name, policy, facts) in &cases {
        let mut i = 0usize;
        group.bench_function(name.as_str(), |b| {
            b.iter(|| {
                i = (i + 1) % facts.len();
                black_box(policy.decide(black_box(&facts[i])))
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("explain");
    group.throughput(Throughput::Elements(1));
    for (name, policy, facts) in &cases {
        let mut i = 0usize;
        group.bench_function(name.as_str(), |b| {
            b.iter(|| {
                i = (i + 1) % facts.len();
                black_box(policy.explain(black_box(&facts[i])))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
