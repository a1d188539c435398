//! The process's Prometheus metrics: requests by route and status, latency histograms, detector
//! time, cache hits and single flights; the analyses report to it as [`AnalysisMetrics`].

use crate::analyze::AnalysisMetrics;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bucket, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bucket {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bucket, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bucket}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    detector: Histogram,
    cache_hits: u64,
    cache_misses: u64,
    single_flight_leaders: u64,
    single_flight_followers: u64,
}

/// The process's metrics. Cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct Metrics(Arc<Mutex<Inner>>);

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Counts one HTTP request.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.with(|m| {
            *m.requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
            m.latency
                .entry(route.to_owned())
                .or_default()
                .observe(elapsed.as_secs_f64());
        });
    }

    /// Records one detector run.
    pub fn detector(&self, elapsed: Duration) {
        self.with(|m| m.detector.observe(elapsed.as_secs_f64()));
    }

    /// Counts a cache lookup.
    pub fn cache(&self, hit: bool) {
        self.with(|m| {
            if hit {
                m.cache_hits += 1
            } else {
                m.cache_misses += 1
            }
        });
    }

    /// A cache miss that led the analysis of identical requests across replicas (`leader`), or
    /// waited for another replica's (`follower`).
    pub fn single_flight(&self, leader: bool) {
        self.with(|m| {
            if leader {
                m.single_flight_leaders += 1
            } else {
                m.single_flight_followers += 1
            }
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            out.push_str("# HELP arbiter_http_requests_total HTTP requests by method, route and status.\n# TYPE arbiter_http_requests_total counter\n");
            for ((method, route, status), count) in &m.requests {
                let _ = writeln!(out, "arbiter_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}");
            }
            out.push_str("# HELP arbiter_http_request_duration_seconds HTTP request latency by route.\n# TYPE arbiter_http_request_duration_seconds histogram\n");
            for (route, histogram) in &m.latency {
                histogram.render(&mut out, "arbiter_http_request_duration_seconds", &format!("route=\"{route}\""));
            }
            out.push_str("# HELP arbiter_detector_duration_seconds Time spent in the detector per image.\n# TYPE arbiter_detector_duration_seconds histogram\n");
            m.detector.render(&mut out, "arbiter_detector_duration_seconds", "");
            out.push_str("# HELP arbiter_cache_lookups_total Result-cache lookups by outcome.\n# TYPE arbiter_cache_lookups_total counter\n");
            let _ = writeln!(out, "arbiter_cache_lookups_total{{result=\"hit\"}} {}", m.cache_hits);
            let _ = writeln!(out, "arbiter_cache_lookups_total{{result=\"miss\"}} {}", m.cache_misses);
            out.push_str("# HELP arbiter_single_flight_total Cache misses by their part in a single flight across replicas: the leader runs the detector, a follower waits for its result.\n# TYPE arbiter_single_flight_total counter\n");
            let _ = writeln!(out, "arbiter_single_flight_total{{role=\"leader\"}} {}", m.single_flight_leaders);
            let _ = writeln!(out, "arbiter_single_flight_total{{role=\"follower\"}} {}", m.single_flight_followers);
            out
        })
    }
}

impl AnalysisMetrics for Metrics {
    fn cache(&self, hit: bool) {
        Metrics::cache(self, hit);
    }

    fn detector(&self, elapsed: Duration) {
        Metrics::detector(self, elapsed);
    }

    fn single_flight(&self, leader: bool) {
        Metrics::single_flight(self, leader);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.request("POST", "/v1/analyze", 200, Duration::from_millis(3));
        metrics.request("POST", "/v1/analyze", 200, Duration::from_millis(30));
        metrics.cache(true);
        let text = metrics.render();
        assert!(text.contains(
            "arbiter_http_requests_total{method=\"POST\",route=\"/v1/analyze\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "arbiter_http_request_duration_seconds_bucket{route=\"/v1/analyze\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "arbiter_http_request_duration_seconds_bucket{route=\"/v1/analyze\",le=\"0.05\"} 2"
        ));
        assert!(text.contains("arbiter_cache_lookups_total{result=\"hit\"} 1"));
    }
}
