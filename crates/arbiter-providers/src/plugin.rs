//! The door every detector comes through. A detector plugin is its configuration type: it has a
//! name (the one routes use), it builds the detector ([`DetectorPlugin::build`]), and the
//! detector it builds answers for its own health through [`Detector::health`], which `/readyz`
//! calls. The closed set of plugins is [`crate::DetectorConfig::plugins`]: the local detector
//! (`detector.local`) and each vendor of [`crate::ProvidersConfig`].

use crate::BuildError;
use crate::call::{Provider, Usage, Vendor};
use crate::config::CallLimits;
use crate::route::Member;
use arbiter_core::Detector;
use arbiter_core::net::AddressGuard;
use arbiter_detect::{LocalDetector, LocalDetectorConfig};
use std::sync::Arc;
use std::time::Duration;

/// What building a detector takes besides its own configuration.
#[derive(Clone)]
pub struct BuildContext {
    /// Checks the URLs a vendor hands back (upload URLs) before anything is sent to them.
    pub guard: AddressGuard,
    /// Where vendors' monthly budgets are counted.
    pub usage: Arc<dyn Usage>,
}

impl BuildContext {
    /// A vendor's client as a provider: the client behind `limits` (concurrency, monthly budget,
    /// circuit breaker), counting its budget in this context's usage.
    pub fn provider(
        &self,
        name: &str,
        vendor: Box<dyn Vendor>,
        deadline: Duration,
        limits: &CallLimits,
    ) -> Member {
        Member::Provider(Arc::new(Provider::new(
            name,
            vendor,
            deadline,
            limits.clone(),
            self.usage.clone(),
        )))
    }
}

/// A detector's configuration, which builds it.
pub trait DetectorPlugin {
    /// The detector's name in routes, analyses and policies (`local`, `reality_defender`).
    fn name(&self) -> &'static str;

    /// Builds the detector; its [`Detector::health`] is its health check. `None` when the
    /// configuration leaves it unusable on purpose (a vendor without an API key): a route that
    /// names it is then refused at start-up, naming the key to set.
    fn build(&self, context: &BuildContext) -> Result<Option<Member>, BuildError>;
}

/// The local detector (`detector.local`); its configuration, construction and health are
/// `arbiter-detect`'s.
impl DetectorPlugin for LocalDetectorConfig {
    fn name(&self) -> &'static str {
        LocalDetector::NAME
    }

    fn build(&self, _context: &BuildContext) -> Result<Option<Member>, BuildError> {
        let local: Arc<dyn Detector> = Arc::new(LocalDetector::build(self.clone())?);
        Ok(Some(Member::Plain(local)))
    }
}

/// One detector's health, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorHealth {
    /// The detector's name.
    pub name: String,
    /// Whether it is a vendor (reached over the network, shared by every replica) rather than
    /// a detector running in this process.
    pub vendor: bool,
    /// Why it cannot take work now; `None` when it can.
    pub problem: Option<String>,
}

impl DetectorHealth {
    /// Whether it can take work now.
    pub fn healthy(&self) -> bool {
        self.problem.is_none()
    }

    /// Whether it makes this process unready. A detector of this process that cannot work
    /// fails every image routed to it here, while another replica may serve them: the process
    /// should leave rotation. A vendor that is down is down for every replica alike, and its
    /// routes answer with an error naming it (or fail over), so it only shows.
    pub fn blocks_readiness(&self) -> bool {
        !self.vendor && self.problem.is_some()
    }
}

/// The `yaml` example of a configuration type's doc comment in `source` (the last one before
/// `item`), its comment markers stripped: the example tests parse the documentation itself.
#[cfg(all(test, any(feature = "reality-defender", feature = "reality-ai")))]
pub(crate) fn documented_example(source: &str, item: &str) -> String {
    let before = &source[..source.find(item).unwrap_or(source.len())];
    let start = before.rfind("```yaml").unwrap_or(before.len());
    before[start..]
        .lines()
        .skip(1)
        .take_while(|line| !line.trim_start_matches(['/', '!', ' ']).starts_with("```"))
        .map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix("///")
                .or_else(|| line.strip_prefix("//!"))
                .unwrap_or(line);
            line.strip_prefix(' ').unwrap_or(line)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file holding an API key, standing in for the one an example names.
#[cfg(all(test, any(feature = "reality-defender", feature = "reality-ai")))]
pub(crate) fn key_file(name: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "arbiter-providers-{name}-{}.key",
        std::process::id()
    ));
    std::fs::write(&path, "example-key\n").expect("a temporary key file");
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::MemoryUsage;

    fn context() -> BuildContext {
        BuildContext {
            guard: AddressGuard::default(),
            usage: Arc::new(MemoryUsage::default()),
        }
    }

    #[tokio::test]
    async fn the_local_registration_builds_a_healthy_detector_of_this_process() {
        // Its documented example is parsed and built by `arbiter-detect`'s own test.
        let config = LocalDetectorConfig::default();
        assert_eq!(config.name(), "local");
        let Some(Member::Plain(local)) = config.build(&context()).unwrap() else {
            panic!("the local detector is built in this process");
        };
        assert_eq!(local.name(), "local");
        assert!(local.health().await.is_ok());
    }

    #[test]
    fn an_unreadable_trust_list_is_refused_naming_the_local_key() {
        let config = LocalDetectorConfig {
            trust_anchors: Some("/nonexistent/arbiter/anchors.pem".into()),
            ..LocalDetectorConfig::default()
        };
        let err = match config.build(&context()) {
            Ok(_) => panic!("a missing trust list builds"),
            Err(err) => err.to_string(),
        };
        assert!(err.starts_with("detector.local:"), "{err}");
    }

    #[test]
    fn only_a_detector_of_this_process_that_cannot_work_blocks_readiness() {
        let health = |vendor: bool, problem: Option<&str>| DetectorHealth {
            name: "x".to_owned(),
            vendor,
            problem: problem.map(str::to_owned),
        };
        assert!(health(false, Some("no analysis thread is running")).blocks_readiness());
        assert!(!health(true, Some("circuit open")).blocks_readiness());
        assert!(!health(false, None).blocks_readiness());
        assert!(!health(true, None).blocks_readiness());
        assert!(health(true, None).healthy() && !health(true, Some("x")).healthy());
    }
}
