//! Snapshot corpora: `tests/broken/*.yaml` (each has at least one error) and
//! `tests/lints/*.yaml` (valid, with warnings). One snapshot per file, holding every
//! diagnostic as `arbiter policy check` prints it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_core::Flow;
use arbiter_policy::Policy;
use std::path::{Path, PathBuf};

fn flows() -> Vec<Box<dyn Flow>> {
    vec![
        Box::new(arbiter_flow_insurance::InsuranceFlow::new().unwrap()),
        Box::new(arbiter_flow_ugc::UgcFlow::new().unwrap()),
        Box::new(arbiter_flow_kyc::KycFlow::new().unwrap()),
    ]
}

/// Every diagnostic for one file, errors and warnings, one per line; and whether any is an
/// error.
fn check(path: &Path) -> (String, bool) {
    let policy = match Policy::load(path) {
        Ok(policy) => policy,
        Err(error) => return (error.to_string(), true),
    };
    let flows = flows();
    let Some(flow) = flows.iter().find(|f| f.name() == policy.flow()) else {
        return (format!("unknown flow {}", policy.flow()), true);
    };
    match policy.validate_against(flow.as_ref()) {
        Err(error) => (error.to_string(), true),
        Ok(warnings) => (
            warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            false,
        ),
    }
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| Path::new(dir).join(p.file_name().unwrap()))
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_broken_policy_is_refused_with_its_diagnostics() {
    let paths = files("tests/broken");
    assert!(paths.len() >= 20, "only {} broken policies", paths.len());
    for path in paths {
        let (output, has_error) = check(&path);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(has_error, "{name} was accepted:\n{output}");
        // Every diagnostic names the file, and a position wherever one is known.
        for line in output.lines() {
            assert!(line.starts_with(&path.display().to_string()), "{line}");
        }
        insta::assert_snapshot!(format!("broken__{name}"), output);
    }
}

#[test]
fn every_lint_fixture_loads_with_its_warnings() {
    for path in files("tests/lints") {
        let (output, has_error) = check(&path);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(!has_error, "{name} has errors:\n{output}");
        assert!(!output.is_empty(), "{name} has no warning");
        insta::assert_snapshot!(format!("lints__{name}"), output);
    }
}

#[test]
fn the_shipped_policies_are_clean() {
    // Each flow's shipped policy, by the file name the flow declares for it.
    for flow in flows() {
        let name = flow.default_policy().file;
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../policies")
            .join(name);
        let policy = Policy::load(&path).unwrap();
        assert_eq!(policy.flow(), flow.name(), "{name}");
        let warnings = policy
            .validate_against(flow.as_ref())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(warnings.is_empty(), "{name}: {warnings:#?}");
    }
}
