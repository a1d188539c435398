//! When to try a delivery again: the schedule (5 s, 30 s, 2 min, 10 min, 1 h by default), a
//! little jitter, `Retry-After` within bounds, and what each answer means.
//!
//! The whole rule is one pure function, [`next`]: what an attempt came to, which attempt it was
//! and the policy in force give the delivery's next state. The delivery loop only records it.

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

/// What one attempt of a delivery came to, as the retry rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The endpoint answered with this status; `retry_after` is its `Retry-After` header,
    /// parsed ([`parse_retry_after`]), when it sent one.
    Answered {
        /// The status code.
        status: u16,
        /// The delay the endpoint asked for.
        retry_after: Option<Duration>,
    },
    /// No complete answer in time, a refused address, or a connection that failed.
    NoAnswer,
    /// The delivery could not be sent at all: its endpoint was deleted or disabled, or its
    /// signing secret does not decrypt. Nothing was sent.
    Unsendable,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    /// Delivered: a 2xx in time.
    Delivered,
    /// Tried again at this time.
    Retry {
        /// When the next attempt is due.
        at: DateTime<Utc>,
    },
    /// Given up: the schedule is spent, the endpoint answered 410 Gone, or the delivery cannot
    /// be sent. The abandonment is recorded in the audit log.
    Abandoned {
        /// The endpoint answered 410 Gone: it is disabled, and its other deliveries fail.
        disable_endpoint: bool,
    },
}

/// The retry rule: the state a delivery moves to after attempt number `attempt` (1 for the
/// first) came to `outcome` at `now`.
///
/// - a 2xx is delivered;
/// - 410 Gone abandons the delivery and disables its endpoint;
/// - an unsendable delivery is abandoned at once;
/// - anything else (3xx, other 4xx, 5xx, no answer) is tried again after the policy's next delay
///   ([`RetryPolicy::next_delay`], with `jitter` in `[-1, 1]` the caller's randomness), the
///   endpoint's `Retry-After` honoured on 429 and 503 only; once the schedule is spent, it is
///   abandoned. The next attempt's time is kept to the millisecond.
pub fn next(
    outcome: &AttemptOutcome,
    attempt: u32,
    policy: &RetryPolicy,
    jitter: f64,
    now: DateTime<Utc>,
) -> NextState {
    let (status, retry_after) = match *outcome {
        AttemptOutcome::Unsendable => {
            return NextState::Abandoned {
                disable_endpoint: false,
            };
        }
        AttemptOutcome::NoAnswer => (None, None),
        AttemptOutcome::Answered {
            status,
            retry_after,
        } => (
            Some(status),
            retry_after.filter(|_| matches!(status, 429 | 503)),
        ),
    };
    match classify(status) {
        AttemptClass::Delivered => NextState::Delivered,
        AttemptClass::Gone => NextState::Abandoned {
            disable_endpoint: true,
        },
        AttemptClass::Failed => match policy.next_delay(attempt, jitter, retry_after) {
            // To the millisecond, as the time is stored.
            Some(delay) => NextState::Retry {
                at: i64::try_from(delay.as_millis())
                    .ok()
                    .and_then(chrono::TimeDelta::try_milliseconds)
                    .and_then(|delay| now.checked_add_signed(delay))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            },
            None => NextState::Abandoned {
                disable_endpoint: false,
            },
        },
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

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn answered(status: u16) -> AttemptOutcome {
        AttemptOutcome::Answered {
            status,
            retry_after: None,
        }
    }

    fn retry_in(now: DateTime<Utc>, secs: i64) -> NextState {
        NextState::Retry {
            at: now + chrono::TimeDelta::seconds(secs),
        }
    }

    const ABANDONED: NextState = NextState::Abandoned {
        disable_endpoint: false,
    };

    #[test]
    fn a_failing_delivery_follows_the_schedule_then_is_abandoned_after_its_last_attempt() {
        let policy = RetryPolicy::default();
        let now = at("2026-12-05T10:00:00Z");
        let states: Vec<_> = (1..=6)
            .map(|attempt| next(&answered(500), attempt, &policy, 0.0, now))
            .collect();
        assert_eq!(
            states,
            [
                retry_in(now, 5),
                retry_in(now, 30),
                retry_in(now, 120),
                retry_in(now, 600),
                retry_in(now, 3600),
                ABANDONED,
            ]
        );
        // A shorter schedule gives up sooner; an empty one after the first attempt.
        let short = RetryPolicy {
            schedule: vec![Duration::from_secs(1)],
            ..RetryPolicy::default()
        };
        assert_eq!(next(&answered(500), 1, &short, 0.0, now), retry_in(now, 1));
        assert_eq!(next(&answered(500), 2, &short, 0.0, now), ABANDONED);
        let none = RetryPolicy {
            schedule: Vec::new(),
            ..RetryPolicy::default()
        };
        assert_eq!(
            next(&AttemptOutcome::NoAnswer, 1, &none, 0.0, now),
            ABANDONED
        );
    }

    #[test]
    fn a_2xx_is_delivered_whatever_the_attempt() {
        let policy = RetryPolicy::default();
        let now = at("2026-12-05T10:00:00Z");
        for status in [200, 201, 202, 204, 299] {
            for attempt in [1, 6, 7] {
                assert_eq!(
                    next(&answered(status), attempt, &policy, 1.0, now),
                    NextState::Delivered,
                    "{status} on attempt {attempt}"
                );
            }
        }
    }

    #[test]
    fn gone_disables_the_endpoint_at_once_and_an_unsendable_delivery_is_abandoned_at_once() {
        let policy = RetryPolicy::default();
        let now = at("2026-12-05T10:00:00Z");
        assert_eq!(
            next(&answered(410), 1, &policy, 0.0, now),
            NextState::Abandoned {
                disable_endpoint: true
            }
        );
        let asked = AttemptOutcome::Answered {
            status: 410,
            retry_after: Some(Duration::from_secs(5)),
        };
        assert_eq!(
            next(&asked, 1, &policy, 0.0, now),
            NextState::Abandoned {
                disable_endpoint: true
            }
        );
        assert_eq!(
            next(&AttemptOutcome::Unsendable, 1, &policy, 0.0, now),
            ABANDONED
        );
    }

    #[test]
    fn other_4xx_5xx_3xx_and_no_answer_are_all_retried_alike() {
        let policy = RetryPolicy::default();
        let now = at("2026-12-05T10:00:00Z");
        for outcome in [
            answered(301),
            answered(400),
            answered(401),
            answered(404),
            answered(409),
            answered(429),
            answered(500),
            answered(502),
            answered(503),
            AttemptOutcome::NoAnswer,
        ] {
            assert_eq!(
                next(&outcome, 2, &policy, 0.0, now),
                retry_in(now, 30),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn retry_after_counts_on_429_and_503_only_and_never_adds_attempts() {
        let policy = RetryPolicy::default();
        let now = at("2026-12-05T10:00:00Z");
        let asking = |status, secs| AttemptOutcome::Answered {
            status,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            next(&asking(429, 42), 1, &policy, 1.0, now),
            retry_in(now, 42)
        );
        assert_eq!(
            next(&asking(503, 42), 1, &policy, 1.0, now),
            retry_in(now, 42)
        );
        // Cut to max_retry_after, and at least a second.
        assert_eq!(
            next(&asking(503, 86_400), 1, &policy, 0.0, now),
            retry_in(now, 3600)
        );
        assert_eq!(
            next(&asking(429, 0), 1, &policy, 0.0, now),
            retry_in(now, 1)
        );
        // Elsewhere the schedule rules.
        for status in [500, 502, 400, 301] {
            assert_eq!(
                next(&asking(status, 42), 1, &policy, 0.0, now),
                retry_in(now, 5),
                "{status}"
            );
        }
        assert_eq!(next(&asking(429, 5), 6, &policy, 0.0, now), ABANDONED);
    }

    #[test]
    fn jitter_moves_the_retry_time_within_its_percentage() {
        let policy = RetryPolicy::default();
        let now = at("2026-12-05T10:00:00Z");
        assert_eq!(
            next(&answered(500), 2, &policy, -1.0, now),
            retry_in(now, 27)
        );
        assert_eq!(
            next(&answered(500), 2, &policy, 1.0, now),
            retry_in(now, 33)
        );
        // Kept to the millisecond.
        let late = now + chrono::TimeDelta::microseconds(300);
        let NextState::Retry { at } = next(&answered(500), 1, &policy, -1.0, late) else {
            panic!("not retried");
        };
        assert_eq!(at - late, chrono::TimeDelta::milliseconds(4500));
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
