//! End to end: the real `arbiter policy` commands on the shipped policies, on broken files,
//! and a backtest over decisions `arbiter scan` stored, on SQLite and on PostgreSQL (when
//! `ARBITER_TEST_POSTGRES_URL` is set).

use crate::harness::{DbArg, arbiter, repo};

use std::path::Path;

/// Runs a command that needs no stored data, against a throwaway data dir.
fn offline(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = arbiter(&DbArg::DataDir(dir.path().join(".arbiter")), args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const SHIPPED: [&str; 3] = [
    "policies/insurance-fnol.yaml",
    "policies/ugc-moderation.yaml",
    "policies/kyc.yaml",
];

#[test]
fn check_accepts_the_shipped_policies_and_names_each_problem_at_file_line_column() {
    let (code, out) = offline(&[&["policy", "check"][..], &SHIPPED[..]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "policies/kyc.yaml: ok (kyc.verification v2, flow kyc, 6 rules, 14 tests, 0 warnings)"
        ),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = std::fs::read_to_string(repo().join("policies/insurance-fnol.yaml"))
        .unwrap()
        .replace(
            "{ fact: verdict.risk_level, eq: HIGH }",
            "{ fact: verdict.risk_level, eq: HGH }",
        )
        .replace(
            "{ fact: claim.amount, gte: 25000 }",
            "{ fact: claim.amont, gte: 25000 }",
        );
    let bad = write(dir.path(), "bad.yaml", &bad);
    let (code, out) = offline(&["policy", "check", "policies/kyc.yaml", &bad]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{bad}:65:43: `HGH` is not a value of `verdict.risk_level` (LOW, MEDIUM, HIGH); did you mean HIGH?"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{bad}:77:19: unknown fact `claim.amont` for the `insurance` flow (did you mean `claim.amount`?)"
        )),
        "{out}"
    );
    assert!(out.contains("1 of 2 files have errors"), "{out}");

    // Warnings are printed but do not fail the check.
    let lints =
        repo().join("crates/arbiter-policy/tests/lints/02-rule-shadowed-by-a-broader-one.yaml");
    let (code, out) = offline(&["policy", "check", lints.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(":14:5: warning: rule `siu-high-ai` can never fire"),
        "{out}"
    );

    // A file that is not YAML at all, and one that does not exist.
    let garbage = write(dir.path(), "garbage.yaml", "rules: [\n");
    let (code, out) = offline(&["policy", "check", &garbage]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{garbage}:1:8: unclosed bracket")),
        "{out}"
    );
    let (code, out) = offline(&["policy", "check", "no/such/file.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot read the policy file"), "{out}");
}

#[test]
fn test_reports_coverage_explains_failures_and_enforces_min_coverage() {
    let (code, out) = offline(
        &[
            &["policy", "test", "--min-coverage", "100"][..],
            &SHIPPED[..],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("13 passed, 0 failed; coverage 100% (7 of 7 rules)"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let failing = std::fs::read_to_string(repo().join("policies/insurance-fnol.yaml"))
        .unwrap()
        .replace(
            "expect: { action: proceed, reason: NO_RULE_MATCHED, fired: [] }",
            "expect: { action: adjuster_review }",
        );
    let failing = write(dir.path(), "failing.yaml", &failing);
    let (code, out) = offline(&["policy", "test", &failing]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL Authentic photo proceeds")
            && out.contains("expected action `adjuster_review`, got `proceed`"),
        "{out}"
    );
    // The failing test's explanation follows it.
    assert!(
        out.contains("verdict.risk_level eq HIGH (actual: LOW): false"),
        "{out}"
    );

    let lints =
        repo().join("crates/arbiter-policy/tests/lints/04-untested-rules-and-unused-action.yaml");
    let (code, out) = offline(&[
        "policy",
        "test",
        lints.to_str().unwrap(),
        "--min-coverage",
        "50",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("review-medium      0 tests  UNCOVERED"),
        "{out}"
    );
    assert!(
        out.contains("coverage 33% is below --min-coverage 50"),
        "{out}"
    );
}

#[test]
fn explain_shows_each_condition_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let facts = write(
        dir.path(),
        "facts.yaml",
        "verdict: { label: MANIPULATED, confidence: 0.8, risk_level: MEDIUM }\nclaim: { id: C-9, amount: 40000, currency: EUR }\n",
    );
    let (code, out) = offline(&[
        "policy",
        "explain",
        "policies/insurance-fnol.yaml",
        "--input",
        &facts,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("decision: siu_escalation (MEDIUM_RISK_LARGE_CLAIM) by rule siu-medium-risk-large-claim; policy insurance.fnol v2"),
        "{out}"
    );
    assert!(
        out.contains("    claim.amount gte 25000 (actual: 40000): true"),
        "{out}"
    );
    assert!(
        out.contains("rule review-no-verdict -> adjuster_review: not evaluated"),
        "{out}"
    );

    let json_facts = write(
        dir.path(),
        "facts.json",
        r#"{"verdict": {"label": "AUTHENTIC", "confidence": 0.97, "risk_level": "LOW"}, "image_role": "selfie", "liveness": {"passed": true}}"#,
    );
    let (code, out) = offline(&[
        "policy",
        "explain",
        "policies/kyc.yaml",
        "--input",
        &json_facts,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(value["decision"]["action"], "approve");
    assert_eq!(value["explanation"]["decided_by"], "approve-low-risk-live");
    let approve = &value["explanation"]["rules"][5]["condition"]["items"][3];
    assert_eq!(approve["fact"], "liveness.passed");
    assert_eq!(approve["actual"], true);
    assert_eq!(approve["result"], "true");

    let not_a_mapping = write(dir.path(), "list.yaml", "- 1\n");
    let (code, out) = offline(&[
        "policy",
        "explain",
        "policies/kyc.yaml",
        "--input",
        &not_a_mapping,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("list.yaml:1:1: facts must be a mapping"),
        "{out}"
    );
}

#[test]
fn diff_lists_rules_added_removed_and_changed() {
    let dir = tempfile::tempdir().unwrap();
    let new = std::fs::read_to_string(repo().join("policies/insurance-fnol.yaml"))
        .unwrap()
        .replace("version: 2\n", "version: 3\n")
        .replace(
            "{ fact: claim.amount, gte: 25000 }",
            "{ fact: claim.amount, gte: 10000 }",
        )
        .replace(
            "then: { action: adjuster_review, reason: INCONCLUSIVE_IMAGE }",
            "then: { action: siu_escalation, reason: INCONCLUSIVE_IMAGE }",
        );
    let new = write(dir.path(), "new.yaml", &new);
    let (code, out) = offline(&["policy", "diff", "policies/insurance-fnol.yaml", &new]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("~ version: 2 -> 3"), "{out}");
    assert!(out.contains("~ rule siu-medium-risk-large-claim"), "{out}");
    assert!(
        out.contains("claim.amount gte 25000, ") || out.contains("claim.amount gte 25000)"),
        "{out}"
    );
    assert!(
        out.contains("    action: adjuster_review -> siu_escalation"),
        "{out}"
    );
    assert!(out.contains("0 added, 0 removed, 2 changed"), "{out}");
}

#[tokio::test]
async fn backtest_replays_stored_facts_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    // The draft sends inconclusive photos to SIU instead of the adjuster.
    let draft = std::fs::read_to_string(repo().join("policies/insurance-fnol.yaml"))
        .unwrap()
        .replace("version: 2\n", "version: 3\n")
        .replace(
            "then: { action: adjuster_review, reason: INCONCLUSIVE_IMAGE }",
            "then: { action: siu_escalation, reason: INCONCLUSIVE_IMAGE }",
        );
    let draft = write(dir.path(), "draft.yaml", &draft);
    let check = |label: &str, db: DbArg| {
        let output = arbiter(
            &db,
            &[
                "scan",
                "--json",
                "--fact",
                "claim.amount=12000",
                "samples/sd-generated-duck.png",
                "samples/plain-render.png",
                "samples/c2pa-edited-photo.jpg",
            ],
        );
        assert!(
            output.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The draft changes exactly the decisions the inconclusive rule made; how many that is
        // depends on the detector, so count them from what scan recorded.
        let inconclusive = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|r| r["decision"]["reason"] == "INCONCLUSIVE_IMAGE")
            .count();
        assert!(
            inconclusive >= 1,
            "{label}: the samples include an inconclusive image"
        );

        // Reviewers label two of the queued decisions from the command line.
        let output = arbiter(&db, &["review", "list", "--tenant", "default", "--json"]);
        assert!(output.status.success(), "{label}");
        let items: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(items.len(), 3, "{label}: every decision here names a queue");
        let item_of = |file: &str| {
            items
                .iter()
                .find(|i| i["reference_id"] == file)
                .map(|i| i["item_id"].as_str().unwrap().to_owned())
                .unwrap()
        };
        let duck = item_of("sd-generated-duck.png");
        let plain = item_of("plain-render.png");
        let resolve = |item: &str, label: &str| {
            arbiter(
                &db,
                &[
                    "review",
                    "resolve",
                    item,
                    "--tenant",
                    "default",
                    "--label",
                    label,
                    "--reviewer",
                    "rv-17",
                    "--note",
                    "checked",
                ],
            )
        };
        let output = resolve(&duck, "confirmed_fake");
        assert!(
            output.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout)
                .contains("confirmed_fake by rv-17 -> siu_escalation"),
            "{label}"
        );
        assert!(
            resolve(&plain, "false_positive").status.success(),
            "{label}"
        );
        let again = resolve(&duck, "unclear");
        assert_eq!(again.status.code(), Some(1), "{label}");
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("CONFLICT"),
            "{label}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        let bad = resolve(&item_of("c2pa-edited-photo.jpg"), "fine");
        assert_eq!(bad.status.code(), Some(1), "{label}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("label must be one of"),
            "{label}"
        );
        let output = arbiter(
            &db,
            &[
                "review", "list", "--tenant", "default", "--status", "resolved",
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).lines().count(),
            2,
            "{label}"
        );

        let output = arbiter(
            &db,
            &["policy", "backtest", &draft, "--since", "2000-01-01"],
        );
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{label}: {out}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        #[allow(clippy::cast_precision_loss)]
        let share = inconclusive as f64 * 100.0 / 3.0;
        assert!(
            out.contains(&format!(
                "replayed 3 decisions; {inconclusive} would change action ({share:.1}%), 0 only the reason"
            )),
            "{label}: {out}"
        );
        assert!(
            out.contains(&format!(
                "  adjuster_review          -> siu_escalation           {inconclusive:>8}  (changed)"
            )),
            "{label}: {out}"
        );
        assert!(
            out.contains(&format!(
                "  review-inconclusive                      {inconclusive:>8} -> {inconclusive:>8}"
            )),
            "{label}: {out}"
        );
        assert!(
            out.contains(&format!("changed decisions (first {inconclusive})")),
            "{label}: {out}"
        );
        assert!(
            out.contains(
                "adjuster_review (INCONCLUSIVE_IMAGE) [insurance.fnol v2] -> siu_escalation (INCONCLUSIVE_IMAGE)"
            ),
            "{label}: {out}"
        );
        // The draft escalates the inconclusive photo a reviewer called authentic: wrong; the
        // AI-generated one it escalates was fake: right.
        assert!(
            out.contains("per-rule precision (2 decisions labelled by reviewers"),
            "{label}: {out}"
        );
        assert!(
            out.contains("  siu-high-risk                               1 of 1    right (100.0%)"),
            "{label}: {out}"
        );
        assert!(
            out.contains("  review-inconclusive                         0 of 1    right (0.0%)"),
            "{label}: {out}"
        );

        // A window with nothing in it, and one for another tenant.
        let output = arbiter(
            &db,
            &[
                "policy",
                "backtest",
                &draft,
                "--since",
                "2000-01-01",
                "--until",
                "2000-01-02",
            ],
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("replayed 0 decisions"),
            "{label}"
        );
        let output = arbiter(
            &db,
            &[
                "policy",
                "backtest",
                &draft,
                "--since",
                "2000-01-01",
                "--tenant",
                "other",
            ],
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("replayed 0 decisions"),
            "{label}"
        );
        // A bad date is an error.
        let output = arbiter(
            &db,
            &["policy", "backtest", &draft, "--since", "last month"],
        );
        assert_eq!(output.status.code(), Some(1), "{label}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("while reading --since"),
            "{label}"
        );
    };
    check("sqlite", DbArg::DataDir(dir.path().join(".arbiter")));
    if let Some(pg) = crate::harness::postgres().await {
        check("postgres", DbArg::Url(pg.url.clone()));
        pg.drop_db().await.unwrap();
    }
}
