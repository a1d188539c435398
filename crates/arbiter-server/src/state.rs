//! `AppState`: the handles every handler needs.

use crate::analyze::Inflight;
use crate::clock::Clock;
use crate::fetch::Fetcher;
use crate::pipeline::Pipeline;
use crate::ratelimit::RateLimiter;
use arbiter_audit::{AuditSigning, CheckpointWorker};
use arbiter_config::Config;
use arbiter_db::api_keys::{KeyLookup, Lookups};
use arbiter_db::requests::{CachedLookup, CachedLookups};
use arbiter_engine::metrics::Metrics;
use arbiter_webhooks::{DeliveryWorker, Webhooks};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::Notify;

/// The handles every handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Intake, detector, flows, policies, storage.
    pub pipeline: Pipeline,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Outbound fetching of `image_url`.
    pub fetcher: Fetcher,
    /// API keys read for concurrent requests together.
    pub key_lookups: Lookups,
    /// Earlier results read for concurrent requests together.
    pub cached_lookups: CachedLookups,
    /// Per-tenant rate limits, counted in the database.
    pub limiter: RateLimiter,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Analyses under way, shared by identical concurrent requests.
    pub inflight: Inflight,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Webhook secrets, sender and retry rules.
    pub webhooks: Webhooks,
    /// Rung when jobs are queued.
    pub jobs_wake: Arc<Notify>,
    /// The audit checkpoint signer and when it signs.
    pub audit: AuditSigning,
    /// Set at shutdown: `/readyz` answers 503 while in-flight work finishes.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    /// The state for a pipeline, configuration and checkpoint signer.
    /// A configuration without `replica.id` gets its default id here.
    pub fn new(
        pipeline: Pipeline,
        mut config: Config,
        clock: Arc<dyn Clock>,
        audit: AuditSigning,
    ) -> Self {
        config.replica.resolve();
        let webhooks = Webhooks::new(&config.webhooks, &config.data_dir, config.outbound.guard());
        Self {
            fetcher: Fetcher::new(&config.outbound),
            limiter: RateLimiter::new(pipeline.db().clone(), clock.clone()),
            key_lookups: Lookups::start(pipeline.db().conn().clone(), KeyLookup),
            cached_lookups: CachedLookups::start(pipeline.db().conn().clone(), CachedLookup),
            pipeline,
            config: Arc::new(config),
            clock,
            inflight: Inflight::default(),
            metrics: Metrics::default(),
            webhooks,
            jobs_wake: Arc::default(),
            audit,
            draining: Arc::default(),
        }
    }

    /// The settings of an analysis, from the configuration.
    pub fn analysis_settings(&self) -> arbiter_engine::analyze::AnalysisSettings {
        arbiter_engine::analyze::AnalysisSettings {
            cache_ttl_secs: self.config.cache.ttl_secs,
            single_flight: self.config.cache.single_flight,
            request_timeout_secs: self.config.limits.request_timeout_secs,
            thumbnails: self.config.reports.thumbnails,
        }
    }

    /// The request limits of the intake, from the configuration.
    pub fn request_limits(&self) -> arbiter_engine::intake::RequestLimits {
        arbiter_engine::intake::RequestLimits {
            max_image_bytes: self.config.limits.max_image_bytes,
            max_reference_id_len: self.config.limits.max_reference_id_len,
        }
    }

    /// The intake's handles, borrowed from this state.
    pub fn intake(&self) -> arbiter_engine::intake::Intake<'_> {
        arbiter_engine::intake::Intake {
            limits: self.request_limits(),
            registry: self.pipeline.flows(),
            flows: &self.config.flows,
        }
    }

    /// The engine's handles, borrowed from this state.
    pub fn engine(&self) -> arbiter_engine::Engine<'_> {
        arbiter_engine::Engine {
            pipeline: &self.pipeline,
            flows: &self.config.flows,
            clock: self.clock.as_ref(),
            deliveries_wake: &self.webhooks.wake,
        }
    }

    /// The verifier key of the audit checkpoints, printed on report cards.
    pub fn verifier_key(&self) -> String {
        self.audit.signer.verifier_key().to_string()
    }

    /// The audit checkpoint signer over this state's database and clock; each checkpoint is
    /// announced as an `audit.checkpoint` webhook in its own transaction.
    pub fn checkpoint_worker(&self) -> CheckpointWorker {
        let clock = self.clock.clone();
        let announce = crate::announce::CheckpointWebhooks {
            wake: self.webhooks.wake.clone(),
        };
        CheckpointWorker::new(
            self.pipeline.db().clone(),
            self.audit.clone(),
            Arc::new(announce),
            Arc::new(move || clock.now()),
        )
    }

    /// A webhook delivery loop over this state's database, webhook services and clock; an idle
    /// loop looks for deliveries every `jobs.poll_interval_ms`.
    pub fn delivery_worker(&self) -> DeliveryWorker {
        let clock = self.clock.clone();
        DeliveryWorker::new(
            self.pipeline.db().clone(),
            self.webhooks.clone(),
            Arc::new(move || clock.now()),
            std::time::Duration::from_millis(self.config.jobs.poll_interval_ms),
        )
        .with_owner(&self.config.replica.id)
    }
}

impl arbiter_engine::analyze::AnalysisHandles for AppState {
    fn analyzer(&self) -> arbiter_engine::analyze::Analyzer<'_> {
        arbiter_engine::analyze::Analyzer {
            pipeline: &self.pipeline,
            clock: &self.clock,
            fetcher: &self.fetcher,
            cached_lookups: &self.cached_lookups,
            inflight: &self.inflight,
            metrics: &self.metrics,
            settings: self.analysis_settings(),
            replica_id: &self.config.replica.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{config, state_of};

    #[tokio::test]
    async fn a_state_gets_a_replica_id_unless_one_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let unnamed = state_of(config(&dir.path().join("a"), "")).await;
        let id = &unnamed.config.replica.id;
        assert!(id.ends_with(&format!("-{}", std::process::id())), "{id}");
        let mut named = config(&dir.path().join("b"), "");
        named.replica.id = "eu-1".into();
        let named = state_of(named).await;
        assert_eq!(named.config.replica.id, "eu-1");
    }

    #[tokio::test]
    async fn the_settings_handed_to_the_engine_are_the_configuration_s() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path(), "");
        config.cache.ttl_secs = 77;
        config.cache.single_flight = false;
        config.limits.request_timeout_secs = 9;
        config.limits.max_image_bytes = 1234;
        config.limits.max_reference_id_len = 12;
        config.reports.thumbnails = false;
        let state = state_of(config).await;
        let settings = state.analysis_settings();
        assert_eq!(settings.cache_ttl_secs, 77);
        assert!(!settings.single_flight);
        assert_eq!(settings.request_timeout_secs, 9);
        assert!(!settings.thumbnails);
        let limits = state.request_limits();
        assert_eq!(
            (limits.max_image_bytes, limits.max_reference_id_len),
            (1234, 12)
        );
        let intake = state.intake();
        assert_eq!(intake.limits.max_image_bytes, 1234);
    }
}
