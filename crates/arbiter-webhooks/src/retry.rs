//! When to try a delivery again: the schedule (5 s, 30 s, 2 min, 10 min, 1 h by default), a
//! little jitter, `Retry-After` within bounds, and what each answer means.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The retry rules in force. Operators tune them in configuration (`webhooks.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before each retry; its length is the number of retries.
    pub schedule: Vec<Duration>,
    /// Each delay moves by up to this percentage either way, so that retries spread out.
    pub jitter_percent: u8,
    /// The longest `Retry-After` honoured; longer asks are cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: [5, 30, 120, 600, 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter_percent: 10,
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

/// What one attempt's outcome means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClass {
    /// A 2xx in time: delivered.
    Delivered,
    /// The endpoint answered 410 Gone: stop and disable it.
    Gone,
    /// Anything else (3xx, 4xx, 5xx, timeout, connection error): try again if retries remain.
    Failed,
}

/// Classifies an attempt by its status code (`None`: no answer in time).
pub fn classify(status: Option<u16>) -> AttemptClass {
    match status {
        Some(200..=299) => AttemptClass::Delivered,
        Some(410) => AttemptClass::Gone,
        _ => AttemptClass::Failed,
    }
}

impl RetryPolicy {
    /// How many attempts a delivery gets in all: the first plus one per scheduled retry.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.schedule.len())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1)
    }

    /// The delay after failed attempt number `attempts` (1 for the first), or `None` when the
    /// schedule is spent and the delivery is abandoned.
    ///
    /// `jitter` is a sample in `[-1, 1]` (the caller's randomness, so that this stays pure);
    /// `retry_after` is the endpoint's ask on a 429 or 503, honoured up to `max_retry_after` and
    /// never below the scheduled delay's jittered floor of one second.
    pub fn next_delay(
        &self,
        attempts: u32,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
        let base = *self.schedule.get(index)?;
        if let Some(asked) = retry_after {
            return Some(asked.clamp(
                Duration::from_secs(1),
                self.max_retry_after.max(Duration::from_secs(1)),
            ));
        }
        let jitter = jitter.clamp(-1.0, 1.0) * f64::from(self.jitter_percent.min(100)) / 100.0;
        let jittered = base.as_secs_f64() * (1.0 + jitter);
        Some(Duration::from_secs_f64(jittered.max(0.0)))
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_schedule_then_abandon() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (1..=6)
            .map(|n| policy.next_delay(n, 0.0, None).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            delays,
            [Some(5), Some(30), Some(120), Some(600), Some(3600), None]
        );
        assert_eq!(policy.max_attempts(), 6);
        assert_eq!(policy.next_delay(0, 0.0, None), None);
    }

    #[test]
    fn jitter_stays_within_its_percentage() {
        let policy = RetryPolicy::default();
        let low = policy.next_delay(2, -1.0, None).unwrap();
        let high = policy.next_delay(2, 1.0, None).unwrap();
        assert_eq!(low, Duration::from_secs(27));
        assert_eq!(high, Duration::from_secs(33));
        // Samples out of range are clamped.
        assert_eq!(policy.next_delay(2, 7.0, None).unwrap(), high);
        let none = RetryPolicy {
            jitter_percent: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(
            none.next_delay(1, 1.0, None).unwrap(),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let policy = RetryPolicy::default();
        let ask = |s| policy.next_delay(1, 0.0, Some(Duration::from_secs(s)));
        assert_eq!(ask(42), Some(Duration::from_secs(42)));
        assert_eq!(ask(0), Some(Duration::from_secs(1)));
        assert_eq!(ask(86_400), Some(Duration::from_secs(3600)));
        // Retry-After does not add attempts beyond the schedule.
        assert_eq!(
            policy.next_delay(6, 0.0, Some(Duration::from_secs(5))),
            None
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("later", now), None);
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(Some(200)), AttemptClass::Delivered);
        assert_eq!(classify(Some(204)), AttemptClass::Delivered);
        assert_eq!(classify(Some(301)), AttemptClass::Failed);
        assert_eq!(classify(Some(410)), AttemptClass::Gone);
        assert_eq!(classify(Some(429)), AttemptClass::Failed);
        assert_eq!(classify(Some(500)), AttemptClass::Failed);
        assert_eq!(classify(None), AttemptClass::Failed);
    }
}
