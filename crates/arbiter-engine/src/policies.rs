//! The live policies, one per flow: loaded from a directory (or the copies built into the
//! binary), checked against the flow's vocabulary, and activated only when their embedded tests
//! pass.

use crate::flows::FlowRegistry;
use arbiter_policy::{Policy, PolicyError, check_vocabulary};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where a deployment's live policies come from: its one source of truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// Policy files (`policies_dir`), watched for changes: for teams that review changes in git.
    Files,
    /// The version approved in the database (`arbiter policy propose` / `approve`): a change
    /// goes live only when a second person approves it.
    Database,
}

/// Where the live policies come from, and the four-eyes change workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesConfig {
    /// `files` (watched files, as `policies_dir` and `policy_reload_secs` say) or `database`
    /// (the approved version in the database; the files seed a flow that has none yet).
    pub source: PolicySource,
    /// With `source: database`, how often a server looks for a newly approved version, in
    /// milliseconds.
    pub poll_interval_ms: u64,
    /// Days of stored decisions `arbiter policy propose` backtests a proposal over.
    pub backtest_days: u32,
}

impl Default for PoliciesConfig {
    /// The `policies:` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("policies")
    }
}

impl PoliciesConfig {
    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), arbiter_core::settings::InvalidKey> {
        for (key, zero) in [
            ("policies.poll_interval_ms", self.poll_interval_ms == 0),
            ("policies.backtest_days", self.backtest_days == 0),
        ] {
            if zero {
                return Err(arbiter_core::settings::InvalidKey {
                    key,
                    message: "must be more than 0".to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// Why a policy could not be activated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The policy directory could not be read.
    #[error("cannot read the policy directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("{0}")]
    Invalid(#[from] PolicyError),
    /// The policy names a flow this build does not have.
    #[error("{origin}: flow `{flow}` is not one of this build's flows ({known})")]
    UnknownFlow {
        /// The policy file.
        origin: String,
        /// The flow it names.
        flow: String,
        /// The flows available.
        known: String,
    },
    /// The policy's embedded tests fail.
    #[error("{origin}: {failed} of its embedded tests fail; not activated:\n{details}")]
    TestsFail {
        /// The policy file.
        origin: String,
        /// How many failed.
        failed: usize,
        /// Each failure.
        details: String,
    },
    /// A changed policy kept its version number.
    #[error("{origin}: version {version} must be greater than the live version {live} of `{id}`")]
    VersionNotIncreased {
        /// The policy file.
        origin: String,
        /// The policy's id.
        id: String,
        /// The file's version.
        version: u32,
        /// The live version.
        live: u32,
    },
    /// Two files define a policy for the same flow.
    #[error("{first} and {second} both define the policy of flow `{flow}`")]
    DuplicateFlow {
        /// The flow.
        flow: String,
        /// The first file.
        first: String,
        /// The second file.
        second: String,
    },
}

/// The live policy of each flow.
#[derive(Debug, Clone, Default)]
pub struct PolicyStore {
    by_flow: BTreeMap<String, Arc<Policy>>,
}

impl PolicyStore {
    /// The flows' shipped policies, built into the binary so that Arbiter runs anywhere on its
    /// defaults.
    pub fn embedded(flows: &FlowRegistry) -> Result<Self, PolicyLoadError> {
        let mut store = Self::default();
        for flow in flows.iter() {
            let shipped = flow.default_policy();
            store.activate(Policy::from_yaml(shipped.yaml, shipped.file)?, flows)?;
        }
        Ok(store)
    }

    /// Every `*.yaml` / `*.yml` file of a directory.
    pub fn from_dir(dir: &Path, flows: &FlowRegistry) -> Result<Self, PolicyLoadError> {
        let mut store = Self::default();
        for path in policy_files(dir)? {
            store.activate(Policy::load(&path)?, flows)?;
        }
        Ok(store)
    }

    /// Every live policy, by flow.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.by_flow.values()
    }

    /// The live policy with this id.
    pub fn by_id(&self, id: &str) -> Option<&Arc<Policy>> {
        self.by_flow.values().find(|policy| policy.id() == id)
    }

    /// Checks a policy against its flow, runs its embedded tests, and makes it the live policy
    /// of its flow.
    pub fn activate(
        &mut self,
        policy: Policy,
        flows: &FlowRegistry,
    ) -> Result<(), PolicyLoadError> {
        check(&policy, flows)?;
        if let Some(existing) = self.by_flow.get(policy.flow())
            && existing.origin() != policy.origin()
        {
            return Err(PolicyLoadError::DuplicateFlow {
                flow: policy.flow().to_owned(),
                first: existing.origin().to_owned(),
                second: policy.origin().to_owned(),
            });
        }
        self.by_flow
            .insert(policy.flow().to_owned(), Arc::new(policy));
        Ok(())
    }

    /// Replaces the live policy of the flow a policy names (used for `--policy FILE`).
    pub fn replace(&mut self, policy: Policy, flows: &FlowRegistry) -> Result<(), PolicyLoadError> {
        self.by_flow.remove(policy.flow());
        self.activate(policy, flows)
    }

    /// The live policy of a flow.
    pub fn for_flow(&self, flow: &str) -> Option<&Arc<Policy>> {
        self.by_flow.get(flow)
    }
}

/// What [`check`] found in a policy that may be activated.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Lints: the policy is valid, but a rule may not do what its author meant.
    pub warnings: Vec<arbiter_policy::Diagnostic>,
    /// The embedded tests, all passed.
    pub tests: arbiter_policy::TestReport,
}

/// The checks a policy passes before it may be activated: its flow is one of this build's, its
/// actions are the flow's, it is valid against the flow's facts, and its embedded tests pass.
pub fn check(policy: &Policy, flows: &FlowRegistry) -> Result<Checked, PolicyLoadError> {
    let flow = flows
        .get(policy.flow())
        .ok_or_else(|| PolicyLoadError::UnknownFlow {
            origin: policy.origin().to_owned(),
            flow: policy.flow().to_owned(),
            known: flows.names().collect::<Vec<_>>().join(", "),
        })?;
    check_vocabulary(policy, flow.actions())?;
    let warnings = policy.validate_against(flow.as_ref())?;
    let tests = policy.run_tests();
    if !tests.all_passed() {
        return Err(PolicyLoadError::TestsFail {
            origin: policy.origin().to_owned(),
            failed: tests.failed(),
            details: tests.to_string(),
        });
    }
    Ok(Checked { warnings, tests })
}

/// The `*.yaml` / `*.yml` files of a directory, sorted.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyLoadError> {
    let dir_error = |source| PolicyLoadError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        let path = entry.map_err(dir_error)?.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// What the live set knows of one policy file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FileStatus {
    /// The file.
    pub file: String,
    /// SHA-256 of the bytes last read.
    pub sha256: String,
    /// Why the last version read was not activated; the previous version stays live.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Live {
    store: Arc<PolicyStore>,
    dir: Option<PathBuf>,
    files: BTreeMap<PathBuf, FileStatus>,
}

/// The live policies: the configured directory, else `./policies` when present (both watched
/// for changes), else the copies built into the binary.
pub fn load_policies(
    policies_dir: &str,
    flows: &FlowRegistry,
) -> Result<LivePolicies, PolicyLoadError> {
    let default_dir = Path::new("policies");
    if !policies_dir.is_empty() {
        LivePolicies::from_dir(Path::new(policies_dir), flows)
    } else if default_dir.is_dir() {
        LivePolicies::from_dir(default_dir, flows)
    } else {
        PolicyStore::embedded(flows).map(LivePolicies::fixed)
    }
}

/// The live policies, swapped atomically when a changed file passes validation and its tests.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct LivePolicies(Arc<RwLock<Live>>);

impl LivePolicies {
    /// A set that never reloads (built-in policies, or a command-line run).
    pub fn fixed(store: PolicyStore) -> Self {
        Self(Arc::new(RwLock::new(Live {
            store: Arc::new(store),
            dir: None,
            files: BTreeMap::new(),
        })))
    }

    /// The policies of a directory, which [`LivePolicies::reload`] watches. Any bad file fails
    /// the start.
    pub fn from_dir(dir: &Path, flows: &FlowRegistry) -> Result<Self, PolicyLoadError> {
        let store = PolicyStore::from_dir(dir, flows)?;
        let files = file_hashes(dir)?
            .into_iter()
            .map(|(path, sha256)| {
                let status = FileStatus {
                    file: path.display().to_string(),
                    sha256,
                    error: None,
                };
                (path, status)
            })
            .collect();
        Ok(Self(Arc::new(RwLock::new(Live {
            store: Arc::new(store),
            dir: Some(dir.to_path_buf()),
            files,
        }))))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The policies in force now.
    pub fn snapshot(&self) -> Arc<PolicyStore> {
        self.read().store.clone()
    }

    /// Checks a policy (as [`PolicyStore::activate`]) and swaps it in as the live policy of its
    /// flow, whatever was live before (an approved version from the database). Returns it, with
    /// the version it replaced.
    pub fn install(
        &self,
        policy: Policy,
        flows: &FlowRegistry,
    ) -> Result<(Arc<Policy>, Option<u32>), PolicyLoadError> {
        check(&policy, flows)?;
        let policy = Arc::new(policy);
        let mut live = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut store = PolicyStore::clone(&live.store);
        let previous = store
            .by_flow
            .insert(policy.flow().to_owned(), policy.clone())
            .map(|p| p.version());
        live.store = Arc::new(store);
        Ok((policy, previous))
    }

    /// The status of each watched file.
    pub fn files(&self) -> Vec<FileStatus> {
        self.read().files.values().cloned().collect()
    }

    /// Re-reads the directory: each changed file is validated and its tests run before it
    /// replaces the live version; a bad file leaves the previous version live and its error is
    /// kept for `GET /v1/policies`. Returns the policies activated, with the version each replaced.
    pub fn reload(&self, flows: &FlowRegistry) -> Vec<(Arc<Policy>, Option<u32>)> {
        let Some(dir) = self.read().dir.clone() else {
            return Vec::new();
        };
        let hashes = match file_hashes(&dir) {
            Ok(hashes) => hashes,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the policy directory; the live policies stay");
                return Vec::new();
            }
        };
        let mut live = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut store = PolicyStore::clone(&live.store);
        let mut activated = Vec::new();
        for (path, sha256) in hashes.iter() {
            if live
                .files
                .get(path)
                .is_some_and(|status| &status.sha256 == sha256)
            {
                continue;
            }
            let file = path.display().to_string();
            let error = match load_changed(path, &store, flows) {
                Ok((policy, previous)) => {
                    tracing::info!(policy = policy.id(), version = policy.version(), %file, "policy activated");
                    store
                        .by_flow
                        .insert(policy.flow().to_owned(), policy.clone());
                    activated.push((policy, previous));
                    None
                }
                Err(err) => {
                    tracing::warn!(%file, error = %err, "policy not activated; the previous version stays live");
                    Some(err.to_string())
                }
            };
            live.files.insert(
                path.clone(),
                FileStatus {
                    file,
                    sha256: sha256.clone(),
                    error,
                },
            );
        }
        for (path, status) in live.files.iter_mut() {
            if !hashes.contains_key(path) && status.error.is_none() {
                status.error =
                    Some("the file was removed; the previous version stays live".to_owned());
            }
        }
        if !activated.is_empty() {
            live.store = Arc::new(store);
        }
        activated
    }
}

/// Loads a changed file and checks it against the live set: same checks as at start, and a
/// changed policy must raise its version.
fn load_changed(
    path: &Path,
    store: &PolicyStore,
    flows: &FlowRegistry,
) -> Result<(Arc<Policy>, Option<u32>), PolicyLoadError> {
    let policy = Policy::load(path)?;
    let flow = policy.flow().to_owned();
    let live = store.for_flow(&flow).cloned();
    let mut scratch = store.clone();
    scratch.by_flow.remove(&flow);
    scratch.activate(policy, flows)?;
    let policy = scratch
        .by_flow
        .remove(&flow)
        .ok_or_else(|| PolicyLoadError::UnknownFlow {
            origin: path.display().to_string(),
            flow: flow.clone(),
            known: flows.names().collect::<Vec<_>>().join(", "),
        })?;
    if let Some(live) = &live
        && live.id() == policy.id()
        && policy.version() <= live.version()
    {
        return Err(PolicyLoadError::VersionNotIncreased {
            origin: policy.origin().to_owned(),
            id: policy.id().to_owned(),
            version: policy.version(),
            live: live.version(),
        });
    }
    Ok((policy, live.map(|live| live.version())))
}

/// SHA-256 of each policy file's bytes.
fn file_hashes(dir: &Path) -> Result<BTreeMap<PathBuf, String>, PolicyLoadError> {
    let mut hashes = BTreeMap::new();
    for path in policy_files(dir)? {
        let bytes = std::fs::read(&path).map_err(|source| PolicyLoadError::Dir {
            path: path.clone(),
            source,
        })?;
        hashes.insert(path, hex::encode(Sha256::digest(&bytes)));
    }
    Ok(hashes)
}

/// The audit chain of events that concern every tenant, such as policy activations.
pub const SYSTEM_TENANT: &str = "system";

/// Keeps the exact text of each policy under its SHA-256 (once), so a decision it makes can be
/// traced to that text and replayed under it (`arbiter replay`).
pub async fn keep_versions(
    db: &arbiter_db::Db,
    policies: impl IntoIterator<Item = &Arc<Policy>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), arbiter_db::sea_orm::DbErr> {
    let txn = db.begin_write().await?;
    for policy in policies {
        let kept = arbiter_db::policy_versions::Kept {
            policy_id: policy.id().to_owned(),
            version: i32::try_from(policy.version()).unwrap_or(i32::MAX),
            flow: policy.flow().to_owned(),
            source: policy.source().to_owned(),
        };
        arbiter_db::policy_versions::keep(&txn, policy.sha256(), &kept, now).await?;
    }
    txn.commit().await
}

/// Records a `policy.activated` audit entry for each policy whose exact file is not the last one
/// recorded as activated under its id (so a restart on unchanged files records nothing), with
/// its row in the flow's history (`arbiter policy history`) and as the flow's live version, and
/// keeps each policy's text ([`keep_versions`]).
pub async fn record_activations(
    db: &arbiter_db::Db,
    policies: &[Arc<Policy>],
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, arbiter_audit::AuditError> {
    let filter = arbiter_audit::EntryFilter {
        tenant: Some(SYSTEM_TENANT.to_owned()),
        event: Some("policy.activated".to_owned()),
        ..Default::default()
    };
    keep_versions(db, policies, now)
        .await
        .map_err(arbiter_audit::AuditError::from)?;
    let mut recorded = 0;
    for policy in policies {
        // One replica at a time decides whether this file is new under its id, reading what the
        // others committed: a version is recorded once, not once per replica.
        let txn = db.begin_write().await?;
        arbiter_db::singleton::hold(
            &txn,
            &arbiter_db::singleton::names::policy_activated(policy.id()),
        )
        .await?;
        let mut previous: Option<arbiter_core::PolicyRef> = None;
        for stored in arbiter_audit::entries(&txn, &filter).await? {
            if let arbiter_audit::Event::PolicyActivated { policy: p, .. } = stored.entry.event
                && p.id == policy.id()
            {
                previous = Some(p);
            }
        }
        if previous
            .as_ref()
            .is_some_and(|p| p.sha256 == policy.sha256())
        {
            txn.rollback().await?;
            continue;
        }
        let event = arbiter_audit::Event::PolicyActivated {
            policy: policy.policy_ref(),
            actor: actor.to_owned(),
            previous_version: previous.map(|p| p.version),
        };
        arbiter_audit::append(&txn, SYSTEM_TENANT, now, event).await?;
        let activation = arbiter_db::policy_changes::ActivationRow {
            flow: policy.flow().to_owned(),
            policy_id: policy.id().to_owned(),
            version: i32::try_from(policy.version()).unwrap_or(i32::MAX),
            sha256: policy.sha256().to_owned(),
            proposal_id: None,
            proposed_by: None,
            approved_by: None,
            actor: actor.to_owned(),
            activated_at: now,
        };
        arbiter_db::policy_changes::insert_activation(&txn, &activation).await?;
        arbiter_db::policy_changes::set_head(&txn, policy.flow(), policy.sha256(), now).await?;
        txn.commit().await?;
        recorded += 1;
    }
    Ok(recorded)
}

#[cfg(test)]
#[cfg(all(feature = "flow-insurance", feature = "flow-ugc", feature = "flow-kyc"))]
mod tests {
    use super::*;
    use arbiter_db::{Db, testing};

    const KYC: &str = include_str!("../../../policies/kyc.yaml");

    fn flows() -> FlowRegistry {
        FlowRegistry::builtin().unwrap()
    }

    /// The shipped KYC policy at another version.
    fn kyc_text(version: u32) -> String {
        KYC.replacen("version: 2", &format!("version: {version}"), 1)
    }

    fn kyc(version: u32) -> Policy {
        Policy::from_yaml(&kyc_text(version), "kyc.yaml").unwrap()
    }

    /// The KYC policy with its approving rule's reason changed, so its tests fail.
    fn kyc_failing_tests(version: u32) -> String {
        let text = kyc_text(version);
        let changed = text.replacen(
            "then: { action: approve, reason: LOW_RISK_LIVENESS_PASSED }",
            "then: { action: approve, reason: LIVE }",
            1,
        );
        assert_ne!(changed, text);
        changed
    }

    #[test]
    fn the_shipped_policies_cover_every_flow_and_are_found_by_id() {
        let store = PolicyStore::embedded(&flows()).unwrap();
        let ids: Vec<_> = store.all().map(|p| (p.flow(), p.id())).collect();
        assert_eq!(
            ids,
            [
                ("insurance", "insurance.fnol"),
                ("kyc", "kyc.verification"),
                ("ugc", "ugc.moderation")
            ]
        );
        assert_eq!(store.by_id("kyc.verification").unwrap().flow(), "kyc");
        assert!(store.by_id("kyc").is_none());
        assert!(store.for_flow("payroll").is_none());
    }

    #[test]
    fn a_policy_whose_embedded_tests_fail_is_refused() {
        let policy = Policy::from_yaml(&kyc_failing_tests(3), "kyc.yaml").unwrap();
        let mut store = PolicyStore::default();
        let err = store.activate(policy, &flows()).unwrap_err();
        let PolicyLoadError::TestsFail {
            origin,
            failed,
            details,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(origin, "kyc.yaml");
        assert!(*failed >= 1);
        assert!(details.contains("LOW_RISK_LIVENESS_PASSED"), "{details}");
        assert!(
            err.to_string().starts_with(&format!(
                "kyc.yaml: {failed} of its embedded tests fail; not activated:\n"
            )),
            "{err}"
        );
        assert!(store.for_flow("kyc").is_none());
    }

    #[test]
    fn a_policy_of_a_flow_not_in_the_build_is_refused_naming_the_flows() {
        let text = kyc_text(2).replacen("flow: kyc", "flow: payroll", 1);
        let policy = Policy::from_yaml(&text, "payroll.yaml").unwrap();
        let err = check(&policy, &flows()).unwrap_err();
        assert!(matches!(err, PolicyLoadError::UnknownFlow { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "payroll.yaml: flow `payroll` is not one of this build's flows (insurance, kyc, ugc)"
        );
    }

    #[test]
    fn an_action_outside_the_flows_vocabulary_is_refused() {
        let text = kyc_text(2).replace("reject", "refuse");
        let policy = Policy::from_yaml(&text, "kyc.yaml").unwrap();
        let err = check(&policy, &flows()).unwrap_err();
        assert!(matches!(err, PolicyLoadError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("refuse"), "{err}");
    }

    #[test]
    fn two_files_for_one_flow_are_refused_but_replace_swaps_the_policy() {
        let flows = flows();
        let mut store = PolicyStore::default();
        store.activate(kyc(2), &flows).unwrap();
        // The same file again (a reload of it) is no conflict.
        store.activate(kyc(3), &flows).unwrap();
        let other = Policy::from_yaml(&kyc_text(4), "kyc-copy.yaml").unwrap();
        let err = store.activate(other.clone(), &flows).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kyc.yaml and kyc-copy.yaml both define the policy of flow `kyc`"
        );
        assert_eq!(store.for_flow("kyc").unwrap().version(), 3);
        store.replace(other, &flows).unwrap();
        let live = store.for_flow("kyc").unwrap();
        assert_eq!((live.origin(), live.version()), ("kyc-copy.yaml", 4));
    }

    #[test]
    fn a_directory_holds_only_its_yaml_files_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kyc.yml"), kyc_text(2)).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a policy").unwrap();
        std::fs::create_dir(dir.path().join("old.yaml")).unwrap();
        let store = PolicyStore::from_dir(dir.path(), &flows()).unwrap();
        let flows_live: Vec<_> = store.all().map(|p| p.flow()).collect();
        assert_eq!(flows_live, ["kyc"]);

        let missing = dir.path().join("nonesuch");
        let err = PolicyStore::from_dir(&missing, &flows()).unwrap_err();
        assert!(matches!(err, PolicyLoadError::Dir { .. }), "{err}");
        assert!(
            err.to_string().starts_with(&format!(
                "cannot read the policy directory {}: ",
                missing.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_directory_with_a_failing_file_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kyc.yaml"), kyc_failing_tests(2)).unwrap();
        let err = LivePolicies::from_dir(dir.path(), &flows()).unwrap_err();
        assert!(matches!(err, PolicyLoadError::TestsFail { .. }), "{err}");
    }

    #[test]
    fn a_reload_activates_a_raised_version_and_keeps_the_live_one_when_a_file_is_bad() {
        let flows = flows();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kyc.yaml");
        std::fs::write(&path, kyc_text(2)).unwrap();
        let live = LivePolicies::from_dir(dir.path(), &flows).unwrap();
        let version = || live.snapshot().for_flow("kyc").unwrap().version();
        let error = || live.files()[0].error.clone();
        assert!(live.reload(&flows).is_empty(), "nothing changed");
        assert_eq!(live.files().len(), 1);
        assert_eq!(live.files()[0].file, path.display().to_string());

        std::fs::write(&path, kyc_text(3)).unwrap();
        let activated = live.reload(&flows);
        assert_eq!(activated.len(), 1);
        assert_eq!((activated[0].0.version(), activated[0].1), (3, Some(2)));
        assert_eq!(version(), 3);
        assert_eq!(error(), None);

        // Changed, but at the same version: refused, the live version stays.
        std::fs::write(&path, format!("# edited\n{}", kyc_text(3))).unwrap();
        assert!(live.reload(&flows).is_empty());
        assert_eq!(version(), 3);
        let message = error().unwrap();
        assert!(
            message.ends_with(
                "version 3 must be greater than the live version 3 of `kyc.verification`"
            ),
            "{message}"
        );

        // A raised version whose tests fail: refused too.
        std::fs::write(&path, kyc_failing_tests(4)).unwrap();
        assert!(live.reload(&flows).is_empty());
        assert_eq!(version(), 3);
        assert!(error().unwrap().contains("embedded tests fail"));

        // A good raised version is taken, and its status cleared.
        std::fs::write(&path, kyc_text(5)).unwrap();
        let activated = live.reload(&flows);
        assert_eq!((activated[0].0.version(), activated[0].1), (5, Some(3)));
        assert_eq!(error(), None);

        std::fs::remove_file(&path).unwrap();
        assert!(live.reload(&flows).is_empty());
        assert_eq!(version(), 5, "a removed file's policy stays live");
        assert_eq!(
            error().as_deref(),
            Some("the file was removed; the previous version stays live")
        );
    }

    #[test]
    fn a_fixed_set_never_reloads_and_install_checks_before_it_swaps() {
        let flows = flows();
        let live = LivePolicies::fixed(PolicyStore::embedded(&flows).unwrap());
        assert!(live.reload(&flows).is_empty());
        assert!(live.files().is_empty());
        let before = live.snapshot();

        let bad = Policy::from_yaml(&kyc_failing_tests(7), "db").unwrap();
        assert!(matches!(
            live.install(bad, &flows),
            Err(PolicyLoadError::TestsFail { .. })
        ));
        assert_eq!(live.snapshot().for_flow("kyc").unwrap().version(), 2);

        let (installed, previous) = live.install(kyc(7), &flows).unwrap();
        assert_eq!((installed.version(), previous), (7, Some(2)));
        assert_eq!(live.snapshot().for_flow("kyc").unwrap().version(), 7);
        // A snapshot taken before keeps what it saw.
        assert_eq!(before.for_flow("kyc").unwrap().version(), 2);
        assert_eq!(
            live.snapshot().for_flow("ugc").unwrap().id(),
            "ugc.moderation"
        );
    }

    #[test]
    fn zero_intervals_are_refused_naming_the_key() {
        PoliciesConfig::default().validate().unwrap();
        let err = PoliciesConfig {
            poll_interval_ms: 0,
            ..PoliciesConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.key, "policies.poll_interval_ms");
        let err = PoliciesConfig {
            backtest_days: 0,
            ..PoliciesConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.key, "policies.backtest_days");
        assert_eq!(err.message, "must be more than 0");
    }

    #[tokio::test]
    async fn an_activation_is_recorded_once_per_policy_text() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let now = chrono::Utc::now();
            let v2 = vec![Arc::new(kyc(2))];
            assert_eq!(record_activations(&db, &v2, "start", now).await.unwrap(), 1);
            // A restart on the same file records nothing.
            assert_eq!(record_activations(&db, &v2, "start", now).await.unwrap(), 0);
            let v3 = vec![Arc::new(kyc(3))];
            assert_eq!(
                record_activations(&db, &v3, "reload", now).await.unwrap(),
                1
            );

            let filter = arbiter_audit::EntryFilter {
                tenant: Some(SYSTEM_TENANT.to_owned()),
                ..Default::default()
            };
            let recorded: Vec<_> = arbiter_audit::entries(db.conn(), &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|stored| match stored.entry.event {
                    arbiter_audit::Event::PolicyActivated {
                        policy,
                        actor,
                        previous_version,
                    } => (policy.version, actor, previous_version),
                    other => panic!("{label}: {other:?}"),
                })
                .collect();
            assert_eq!(
                recorded,
                [
                    (2, "start".to_owned(), None),
                    (3, "reload".to_owned(), Some(2))
                ],
                "{label}"
            );
            // Both texts are kept for replay.
            for policy in [&v2[0], &v3[0]] {
                let kept = arbiter_db::policy_versions::get(db.conn(), policy.sha256())
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{label}: v{} kept", policy.version()));
                assert_eq!(kept.source, policy.source(), "{label}");
            }
            db.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
