//! The live policies, one per flow: loaded from a directory (or the copies built into the
//! binary), checked against the flow's vocabulary, and activated only when their embedded tests
//! pass.

use crate::flows::FlowRegistry;
use arbiter_policy::{Policy, PolicyError, check_vocabulary};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The shipped policies, built into the binary so that Arbiter runs anywhere on its defaults.
pub const EMBEDDED: [(&str, &str); 3] = [
    (
        "insurance-fnol.yaml",
        include_str!("../../../policies/insurance-fnol.yaml"),
    ),
    (
        "ugc-moderation.yaml",
        include_str!("../../../policies/ugc-moderation.yaml"),
    ),
    ("kyc.yaml", include_str!("../../../policies/kyc.yaml")),
];

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
    /// The policies built into the binary.
    pub fn embedded(flows: &FlowRegistry) -> Result<Self, PolicyLoadError> {
        let mut store = Self::default();
        for (origin, source) in EMBEDDED {
            store.activate(Policy::from_yaml(source, origin)?, flows)?;
        }
        Ok(store)
    }

    /// Every `*.yaml` / `*.yml` file of a directory.
    pub fn from_dir(dir: &Path, flows: &FlowRegistry) -> Result<Self, PolicyLoadError> {
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
        let mut store = Self::default();
        for path in paths {
            store.activate(Policy::load(&path)?, flows)?;
        }
        Ok(store)
    }

    /// Checks a policy against its flow, runs its embedded tests, and makes it the live policy
    /// of its flow.
    pub fn activate(
        &mut self,
        policy: Policy,
        flows: &FlowRegistry,
    ) -> Result<(), PolicyLoadError> {
        let flow = flows
            .get(policy.flow())
            .ok_or_else(|| PolicyLoadError::UnknownFlow {
                origin: policy.origin().to_owned(),
                flow: policy.flow().to_owned(),
                known: flows.names().collect::<Vec<_>>().join(", "),
            })?;
        check_vocabulary(&policy, flow.actions())?;
        let report = policy.run_tests();
        if !report.all_passed() {
            return Err(PolicyLoadError::TestsFail {
                origin: policy.origin().to_owned(),
                failed: report.failed(),
                details: report.to_string(),
            });
        }
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
