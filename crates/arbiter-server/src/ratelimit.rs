//! Per-tenant rate limits (requests in fixed one-minute windows) and daily quotas (images in UTC
//! days).
//!
//! Counters live in the database (`rate_counters`): each request is counted in its minute and
//! its images in its day by one statement that refuses it when either is full, so the limits
//! hold exactly across replicas sharing the database. A request counts as one image in the day,
//! except a batch's, which is counted in its minute only and then takes its images from the day
//! together ([`RateLimiter::take_images`]): all of them, or none when they do not fit.

use crate::clock::Clock;
use arbiter_config::{Plan, RateLimitConfig};
use arbiter_db::Db;
use arbiter_db::rate_counters::{self, Taken, Windows};
use arbiter_db::sea_orm::DbErr;
use chrono::{DateTime, Duration, Timelike, Utc};
use std::sync::Arc;

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

/// Counts requests per tenant against their plan, in the database.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl RateLimiter {
    /// A limiter counting in `db` and reading time from `clock`.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// Counts one request; refused requests are not counted. The daily quota is checked before
    /// the minute's limit.
    pub async fn check(
        &self,
        tenant: &str,
        plan: &Plan,
    ) -> Result<(RateStatus, Option<Refusal>), DbErr> {
        self.check_counting(tenant, plan, 1).await
    }

    /// Counts one request in its minute and `images` in its day (0 for a request whose images
    /// are taken later by [`RateLimiter::take_images`]); refused requests are not counted.
    pub async fn check_counting(
        &self,
        tenant: &str,
        plan: &Plan,
        images: u64,
    ) -> Result<(RateStatus, Option<Refusal>), DbErr> {
        let now = self.clock.now();
        let windows = self.windows(now, plan);
        let reset = windows.minute_start + 60;
        let status = |used: u64| RateStatus {
            limit: plan.per_minute,
            remaining: u32::try_from(u64::from(plan.per_minute).saturating_sub(used))
                .unwrap_or_default(),
            reset,
        };
        let taken = rate_counters::take_many(&self.db, tenant, &windows, 1, images).await?;
        Ok(match taken {
            Taken::Counted(counts) => (status(counts.minute), None),
            Taken::Refused(counts) if images > 0 && counts.day + images > windows.per_day => (
                status(counts.minute),
                Some(Refusal::Quota {
                    retry_after: seconds_to_midnight(now),
                }),
            ),
            Taken::Refused(_) => {
                let retry_after = u64::try_from(reset - now.timestamp()).unwrap_or(1).max(1);
                (
                    status(windows.per_minute),
                    Some(Refusal::RateLimit { retry_after }),
                )
            }
        })
    }

    /// Takes `images` from the tenant's quota for the day, all or none: `Some` refusal (the
    /// quota, until midnight UTC) when fewer are left, and then nothing is taken.
    pub async fn take_images(
        &self,
        tenant: &str,
        plan: &Plan,
        images: u64,
    ) -> Result<Option<Refusal>, DbErr> {
        let now = self.clock.now();
        let windows = self.windows(now, plan);
        Ok(
            match rate_counters::take_many(&self.db, tenant, &windows, 0, images).await? {
                Taken::Counted(_) => None,
                Taken::Refused(_) => Some(Refusal::Quota {
                    retry_after: seconds_to_midnight(now),
                }),
            },
        )
    }

    /// Gives back `images` taken by [`RateLimiter::take_images`] for work that was then not
    /// accepted.
    pub async fn give_back_images(
        &self,
        tenant: &str,
        plan: &Plan,
        images: u64,
    ) -> Result<(), DbErr> {
        let windows = self.windows(self.clock.now(), plan);
        rate_counters::give_back(&self.db, tenant, &windows, images).await
    }

    fn windows(&self, now: DateTime<Utc>, plan: &Plan) -> Windows {
        Windows {
            minute_start: now.timestamp().div_euclid(60) * 60,
            per_minute: plan.per_minute.into(),
            day_start: now.timestamp().div_euclid(86_400) * 86_400,
            per_day: plan.per_day.into(),
        }
    }
}

/// The plan a tenant's console scans count against: the most generous plan among the tenant's
/// live API keys (the counters are the tenant's, shared with the API), or
/// `rate_limits.default_plan` for a tenant without keys.
pub async fn tenant_plan(db: &Db, limits: &RateLimitConfig, tenant: &str) -> Result<Plan, DbErr> {
    let keys = arbiter_db::api_keys::list(db.conn(), Some(tenant)).await?;
    let best = keys
        .iter()
        .filter(|key| key.revoked_at.is_none())
        .filter_map(|key| limits.plans.get(&key.plan))
        .max_by_key(|plan| (plan.per_minute, plan.per_day))
        .or_else(|| limits.plans.get(&limits.default_plan));
    // Start-up validation makes the default plan one of the plans.
    best.copied()
        .ok_or_else(|| DbErr::Custom("rate_limits.default_plan is not a plan".into()))
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
    use arbiter_db::DbTarget;

    async fn limiter(dir: &std::path::Path) -> (RateLimiter, ManualClock) {
        let clock = ManualClock::new(
            DateTime::parse_from_rfc3339("2026-03-16T14:23:10Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        let db = Db::connect(&DbTarget::DataDir(dir.to_path_buf()))
            .await
            .unwrap();
        (RateLimiter::new(db, Arc::new(clock.clone())), clock)
    }

    #[tokio::test]
    async fn the_minute_window_counts_down_refuses_and_resets() {
        let dir = tempfile::tempdir().unwrap();
        let (limiter, clock) = limiter(dir.path()).await;
        let plan = Plan {
            per_minute: 3,
            per_day: 100,
            batch_size: 1,
        };
        let mut remaining = Vec::new();
        for _ in 0..3 {
            remaining.push(limiter.check("acme", &plan).await.unwrap().0.remaining);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let (status, refusal) = limiter.check("acme", &plan).await.unwrap();
        assert_eq!(refusal, Some(Refusal::RateLimit { retry_after: 50 }));
        assert_eq!(status.remaining, 0);
        assert_eq!(
            status.reset,
            DateTime::parse_from_rfc3339("2026-03-16T14:24:00Z")
                .unwrap()
                .timestamp()
        );
        // Another tenant has its own window.
        assert_eq!(limiter.check("globex", &plan).await.unwrap().1, None);
        clock.advance(Duration::seconds(50));
        assert_eq!(
            limiter.check("acme", &plan).await.unwrap(),
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

    #[tokio::test]
    async fn the_daily_quota_outlasts_minute_windows_until_midnight() {
        let dir = tempfile::tempdir().unwrap();
        let (limiter, clock) = limiter(dir.path()).await;
        let plan = Plan {
            per_minute: 10,
            per_day: 4,
            batch_size: 1,
        };
        for _ in 0..4 {
            assert_eq!(limiter.check("acme", &plan).await.unwrap().1, None);
            clock.advance(Duration::minutes(1));
        }
        let (status, refusal) = limiter.check("acme", &plan).await.unwrap();
        // 14:27:10 → midnight is 9 h 32 min 50 s away.
        assert_eq!(
            refusal,
            Some(Refusal::Quota {
                retry_after: 9 * 3600 + 32 * 60 + 50
            })
        );
        // Nothing was counted in this minute.
        assert_eq!(status.remaining, 10);
        clock.advance(Duration::hours(10));
        assert_eq!(limiter.check("acme", &plan).await.unwrap().1, None);
    }

    #[tokio::test]
    async fn a_batch_takes_its_images_from_the_day_and_one_request_from_the_minute() {
        let dir = tempfile::tempdir().unwrap();
        let (limiter, _clock) = limiter(dir.path()).await;
        let plan = Plan {
            per_minute: 10,
            per_day: 8,
            batch_size: 20,
        };
        // The batch's request: one in the minute, nothing in the day yet.
        let (status, refusal) = limiter.check_counting("acme", &plan, 0).await.unwrap();
        assert_eq!((status.remaining, refusal), (9, None));
        assert_eq!(limiter.take_images("acme", &plan, 6).await.unwrap(), None);
        // 3 more do not fit in the 2 left: refused whole, until midnight.
        assert_eq!(
            limiter.take_images("acme", &plan, 3).await.unwrap(),
            Some(Refusal::Quota {
                retry_after: 9 * 3600 + 36 * 60 + 50
            })
        );
        limiter.give_back_images("acme", &plan, 1).await.unwrap();
        assert_eq!(limiter.take_images("acme", &plan, 3).await.unwrap(), None);
        // The day is spent: a single image's request is refused for the quota.
        let (_, refusal) = limiter.check("acme", &plan).await.unwrap();
        assert!(
            matches!(refusal, Some(Refusal::Quota { .. })),
            "{refusal:?}"
        );
        // A request taking no image is still counted in its minute.
        let (status, refusal) = limiter.check_counting("acme", &plan, 0).await.unwrap();
        assert_eq!((status.remaining, refusal), (8, None));
    }

    #[tokio::test]
    async fn two_limiters_on_one_database_share_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let (first, clock) = limiter(dir.path()).await;
        let second = RateLimiter::new(
            Db::connect(&DbTarget::DataDir(dir.path().to_path_buf()))
                .await
                .unwrap(),
            Arc::new(clock),
        );
        let plan = Plan {
            per_minute: 5,
            per_day: 100,
            batch_size: 1,
        };
        let mut answered = 0;
        for n in 0..8 {
            let limiter = if n % 2 == 0 { &first } else { &second };
            if limiter.check("acme", &plan).await.unwrap().1.is_none() {
                answered += 1;
            }
        }
        assert_eq!(answered, 5);
    }
}
