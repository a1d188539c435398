//! Arbiter's decision engine, with no HTTP in it: the way one image travels (intake, detector,
//! the shared result cache and single flight, flow facts, policy, record), review, report cards,
//! policies and their four-eyes changes, API keys, the flows in force, where actions go and what
//! is announced. Functions take the handles they use (the database, the time, the flow
//! registry) and return [`EngineError`] or their own error type;
//! the server maps each to its error body once.
#![forbid(unsafe_code)]

pub mod analyze;
pub mod announce;
pub mod cases;
pub mod clock;
pub mod detector_result;
pub mod error;
pub mod flows;
pub mod intake;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod policies;
pub mod policy_changes;
pub mod policy_watch;
pub mod provider_usage;
pub mod reality_defender;
pub mod record;
pub mod replay;
pub mod reports;
pub mod review;
pub mod single_flight;
pub mod sinks;

pub use error::EngineError;
pub use flows::FlowRegistry;
pub use pipeline::{DecideRequest, Outcome, Pipeline, PipelineError};
pub use policies::{LivePolicies, PolicyLoadError, PolicyStore};
pub use sinks::{LogSink, SinkSet};

/// The handles the engine's operations on cases use, borrowed from the server's state: the
/// pipeline (storage, flows, policies), which flows are switched on, the time, and the bell rung
/// when webhook deliveries are queued.
#[derive(Clone, Copy)]
pub struct Engine<'a> {
    /// Intake, detector, flows, policies, storage.
    pub pipeline: &'a Pipeline,
    /// Which flows are switched on.
    pub flows: &'a flows::FlowsConfig,
    /// The time.
    pub clock: &'a dyn clock::Clock,
    /// Rung when webhook deliveries are queued.
    pub deliveries_wake: &'a tokio::sync::Notify,
}

#[cfg(test)]
#[cfg(feature = "flow-kyc")]
pub(crate) mod test_support {
    //! What the engine's unit tests share: a detector whose verdict is scripted, small images,
    //! a sink that keeps the actions it is handed, a pipeline over the shipped policies, and
    //! the handles of analyses with their counts.

    use crate::analyze::{
        AnalysisHandles, AnalysisMetrics, AnalysisSettings, Analyzer, ImageFetcher, Inflight,
    };
    use crate::clock::{Clock, SystemClock};
    use crate::{EngineError, FlowRegistry, LivePolicies, Pipeline, PolicyStore, SinkSet};
    use arbiter_core::{
        ActionRequest, ActionSink, Analysis, AnalyzeOptions, DetectError, Detector, ErrorCode,
        MediaInput, ModelKind, SinkError, Verdict, VerdictLabel,
    };
    use arbiter_db::Db;
    use arbiter_db::requests::{CachedLookup, CachedLookups};
    use arbiter_detect::{IntakeLimits, LocalDetector};
    use arbiter_providers::Detectors;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// The local detector, with its verdict replaced by a fixed one.
    pub struct Scripted(pub Verdict);

    #[async_trait]
    impl Detector for Scripted {
        fn name(&self) -> &str {
            "local"
        }
        fn models(&self) -> &[ModelKind] {
            &ModelKind::ALL
        }
        async fn analyze(
            &self,
            input: &MediaInput,
            options: &AnalyzeOptions,
        ) -> Result<Analysis, DetectError> {
            let mut analysis = LocalDetector::default().analyze(input, options).await?;
            analysis.verdict = self.0;
            Ok(analysis)
        }
        async fn health(&self) -> Result<(), DetectError> {
            Ok(())
        }
    }

    /// A small PNG, different for each `seed`, through intake.
    pub fn image(seed: u8) -> MediaInput {
        let pixels = image::RgbImage::from_fn(128, 128, |x, y| {
            image::Rgb([seed, (x * 2) as u8, (y * 2) as u8])
        });
        let mut png = Vec::new();
        pixels
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        arbiter_detect::intake(png, &IntakeLimits::default()).unwrap()
    }

    /// Keeps every action it is handed.
    #[derive(Default)]
    pub struct Kept(pub Mutex<Vec<ActionRequest>>);

    #[async_trait]
    impl ActionSink for Kept {
        fn name(&self) -> &str {
            "kept"
        }
        async fn send(&self, action: &ActionRequest) -> Result<(), SinkError> {
            self.0.lock().unwrap().push(action.clone());
            Ok(())
        }
    }

    /// A pipeline over `db` whose detector always says `verdict`, under the flows' shipped
    /// policies, handing actions to the returned sink.
    pub fn pipeline(db: Db, verdict: Verdict) -> (Pipeline, Arc<Kept>) {
        let flows = FlowRegistry::builtin().unwrap();
        let policies = LivePolicies::fixed(PolicyStore::embedded(&flows).unwrap());
        let kept = Arc::new(Kept::default());
        let pipeline = Pipeline::new(
            db,
            Detectors::single(Arc::new(Scripted(verdict))),
            flows,
            policies,
            SinkSet::new(vec![kept.clone()]),
            IntakeLimits::default(),
        );
        (pipeline, kept)
    }

    /// Counts what an analysis reports.
    #[derive(Default)]
    pub struct Counts {
        pub hits: AtomicUsize,
        pub misses: AtomicUsize,
        pub runs: AtomicUsize,
        pub leaders: AtomicUsize,
        pub followers: AtomicUsize,
    }

    impl AnalysisMetrics for Counts {
        fn cache(&self, hit: bool) {
            let counter = if hit { &self.hits } else { &self.misses };
            counter.fetch_add(1, Ordering::SeqCst);
        }
        fn detector(&self, _elapsed: Duration) {
            self.runs.fetch_add(1, Ordering::SeqCst);
        }
        fn single_flight(&self, leader: bool) {
            let counter = if leader {
                &self.leaders
            } else {
                &self.followers
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Counts {
        /// Cache hits, cache misses and detector runs.
        pub fn read(&self) -> (usize, usize, usize) {
            (
                self.hits.load(Ordering::SeqCst),
                self.misses.load(Ordering::SeqCst),
                self.runs.load(Ordering::SeqCst),
            )
        }
    }

    /// Refuses every URL.
    pub struct Unreachable;

    #[async_trait::async_trait]
    impl ImageFetcher for Unreachable {
        async fn fetch_image(&self, url: &str, _max: u64) -> Result<Vec<u8>, EngineError> {
            Err(EngineError::refused(
                ErrorCode::UrlUnreachable,
                format!("cannot fetch {url}"),
            ))
        }
    }

    /// The handles of analyses by one replica: a result cache with a TTL of `ttl` seconds (0:
    /// none), single flight on, and the counts of what they did.
    pub struct Handles {
        pub pipeline: Pipeline,
        pub clock: Arc<dyn Clock>,
        pub lookups: CachedLookups,
        pub inflight: Inflight,
        pub counts: Counts,
        pub ttl: u64,
        pub replica_id: &'static str,
    }

    impl AnalysisHandles for Handles {
        fn analyzer(&self) -> Analyzer<'_> {
            Analyzer {
                pipeline: &self.pipeline,
                clock: &self.clock,
                fetcher: &Unreachable,
                cached_lookups: &self.lookups,
                inflight: &self.inflight,
                metrics: &self.counts,
                settings: AnalysisSettings {
                    cache_ttl_secs: self.ttl,
                    single_flight: true,
                    request_timeout_secs: 5,
                    thumbnails: false,
                },
                replica_id: self.replica_id,
            }
        }
    }

    /// The handles of replica `r1` over `db`, whose detector says AI_GENERATED.
    pub fn handles(db: &Db, ttl: u64) -> Handles {
        let verdict = Verdict::new(VerdictLabel::AiGenerated, 0.97);
        Handles {
            pipeline: pipeline(db.clone(), verdict).0,
            clock: Arc::new(SystemClock),
            lookups: CachedLookups::start(db.conn().clone(), CachedLookup),
            inflight: Inflight::default(),
            counts: Counts::default(),
            ttl,
            replica_id: "r1",
        }
    }
}
