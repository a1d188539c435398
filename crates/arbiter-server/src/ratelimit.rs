//! Per-tenant rate limits (fixed one-minute windows) and daily quotas (UTC days).
//!
//! Counters live in this process: with several replicas each enforces the limits on its own
//! share of the traffic.

use crate::clock::Clock;
use crate::config::Plan;
use chrono::{DateTime, Duration, Timelike, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the headers say after a request was counted (or refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// Requests allowed in the current minute (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in the current minute (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Unix time the minute window resets (`X-RateLimit-Reset`).
    pub reset: i64,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The per-minute limit is spent.
    RateLimit {
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// The daily quota is spent.
    Quota {
        /// Seconds until the UTC day ends.
        retry_after: u64,
    },
}

#[derive(Debug, Default)]
struct Counter {
    minute: i64,
    in_minute: u32,
    day: i64,
    in_day: u32,
}

/// Counts requests per tenant against their plan.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    clock: Arc<dyn Clock>,
    counters: Arc<Mutex<HashMap<String, Counter>>>,
}

impl RateLimiter {
    /// A limiter reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            counters: Arc::default(),
        }
    }

    /// Counts one request; refused requests are not counted.
    pub fn check(&self, tenant: &str, plan: &Plan) -> (RateStatus, Option<Refusal>) {
        let now = self.clock.now();
        let minute = now.timestamp().div_euclid(60);
        let day = now.timestamp().div_euclid(86_400);
        let reset = (minute + 1) * 60;
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counter = counters.entry(tenant.to_owned()).or_default();
        if counter.minute != minute {
            counter.minute = minute;
            counter.in_minute = 0;
        }
        if counter.day != day {
            counter.day = day;
            counter.in_day = 0;
        }
        let status = |used: u32| RateStatus {
            limit: plan.per_minute,
            remaining: plan.per_minute.saturating_sub(used),
            reset,
        };
        if counter.in_day >= plan.per_day {
            return (
                status(counter.in_minute),
                Some(Refusal::Quota {
                    retry_after: seconds_to_midnight(now),
                }),
            );
        }
        if counter.in_minute >= plan.per_minute {
            let retry_after = u64::try_from(reset - now.timestamp()).unwrap_or(1).max(1);
            return (
                status(counter.in_minute),
                Some(Refusal::RateLimit { retry_after }),
            );
        }
        counter.in_minute += 1;
        counter.in_day += 1;
        (status(counter.in_minute), None)
    }
}

fn seconds_to_midnight(now: DateTime<Utc>) -> u64 {
    let elapsed = Duration::seconds(i64::from(now.num_seconds_from_midnight()));
    u64::try_from((Duration::days(1) - elapsed).num_seconds())
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limiter() -> (RateLimiter, ManualClock) {
        let clock = ManualClock::new(
            DateTime::parse_from_rfc3339("2026-03-16T14:23:10Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        (RateLimiter::new(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn the_minute_window_counts_down_refuses_and_resets() {
        let (limiter, clock) = limiter();
        let plan = Plan {
            per_minute: 3,
            per_day: 100,
            batch_size: 1,
        };
        let remaining: Vec<_> = (0..3)
            .map(|_| limiter.check("acme", &plan).0.remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let (status, refusal) = limiter.check("acme", &plan);
        assert_eq!(refusal, Some(Refusal::RateLimit { retry_after: 50 }));
        assert_eq!(
            status.reset,
            DateTime::parse_from_rfc3339("2026-03-16T14:24:00Z")
                .unwrap()
                .timestamp()
        );
        // Another tenant has its own window.
        assert_eq!(limiter.check("globex", &plan).1, None);
        clock.advance(Duration::seconds(50));
        assert_eq!(
            limiter.check("acme", &plan),
            (
                RateStatus {
                    limit: 3,
                    remaining: 2,
                    reset: status.reset + 60
                },
                None
            )
        );
    }

    #[test]
    fn the_daily_quota_outlasts_minute_windows_until_midnight() {
        let (limiter, clock) = limiter();
        let plan = Plan {
            per_minute: 10,
            per_day: 4,
            batch_size: 1,
        };
        for _ in 0..4 {
            assert_eq!(limiter.check("acme", &plan).1, None);
            clock.advance(Duration::minutes(1));
        }
        let (_, refusal) = limiter.check("acme", &plan);
        // 14:27:10 → midnight is 9 h 32 min 50 s away.
        assert_eq!(
            refusal,
            Some(Refusal::Quota {
                retry_after: 9 * 3600 + 32 * 60 + 50
            })
        );
        clock.advance(Duration::hours(10));
        assert_eq!(limiter.check("acme", &plan).1, None);
    }
}
