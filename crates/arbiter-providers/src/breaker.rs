//! A circuit breaker per provider: after `failures` failed analyses in a row the circuit opens and
//! the provider is not called; after `open_for` one probe is let through (half-open); its success
//! closes the circuit, its failure opens it again. Pure: the caller passes the time.

use std::time::{Duration, Instant};

/// The circuit's state, as `/readyz` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the probe time.
    Open,
    /// One probe call is under way.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// The breaker of one provider.
#[derive(Debug, Clone)]
pub struct Breaker {
    failures_to_open: u32,
    open_for: Duration,
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

impl Breaker {
    /// A closed breaker that opens after `failures_to_open` failures in a row (0: never).
    pub fn new(failures_to_open: u32, open_for: Duration) -> Self {
        Self {
            failures_to_open,
            open_for,
            failures: 0,
            opened_at: None,
            probing: false,
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> CircuitState {
        match self.opened_at {
            None => CircuitState::Closed,
            Some(_) if self.probing => CircuitState::HalfOpen,
            Some(at) if now.duration_since(at) >= self.open_for => CircuitState::HalfOpen,
            Some(_) => CircuitState::Open,
        }
    }

    /// Whether a call may start at `now`; an open circuit whose wait is over lets exactly one
    /// probe through. `Err` holds the time left until the next probe.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let Some(at) = self.opened_at else {
            return Ok(());
        };
        let waited = now.duration_since(at);
        if self.probing || waited < self.open_for {
            return Err(self.open_for.saturating_sub(waited));
        }
        self.probing = true;
        Ok(())
    }

    /// Gives back a probe that [`Breaker::admit`] let through but that was never made.
    pub fn cancel_probe(&mut self) {
        self.probing = false;
    }

    /// Records a call's end: a success closes the circuit, a failure counts towards opening it
    /// (and a failed probe opens it again at once).
    pub fn record(&mut self, success: bool, now: Instant) {
        if success {
            *self = Self::new(self.failures_to_open, self.open_for);
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let probe_failed = self.probing;
        self.probing = false;
        if probe_failed || (self.failures_to_open > 0 && self.failures >= self.failures_to_open) {
            self.opened_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_failures_then_lets_one_probe_through() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut breaker = Breaker::new(3, secs(30));
        for _ in 0..2 {
            assert!(breaker.admit(t0).is_ok());
            breaker.record(false, t0);
        }
        assert_eq!(breaker.state(t0), CircuitState::Closed);
        breaker.record(false, t0);
        assert_eq!(breaker.state(t0), CircuitState::Open);
        assert_eq!(breaker.admit(t0 + secs(10)), Err(secs(20)));
        // The wait is over: one probe, and only one, goes through.
        assert!(breaker.admit(t0 + secs(30)).is_ok());
        assert_eq!(breaker.state(t0 + secs(30)), CircuitState::HalfOpen);
        assert!(breaker.admit(t0 + secs(31)).is_err());
        // The probe failed: open again for a full wait.
        breaker.record(false, t0 + secs(32));
        assert_eq!(breaker.state(t0 + secs(33)), CircuitState::Open);
        assert!(breaker.admit(t0 + secs(61)).is_err());
        assert!(breaker.admit(t0 + secs(62)).is_ok());
        // The probe succeeded: closed, and the count starts again.
        breaker.record(true, t0 + secs(63));
        assert_eq!(breaker.state(t0 + secs(63)), CircuitState::Closed);
        breaker.record(false, t0 + secs(64));
        assert_eq!(breaker.state(t0 + secs(64)), CircuitState::Closed);
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(2, Duration::from_secs(5));
        breaker.record(false, t0);
        breaker.record(true, t0);
        breaker.record(false, t0);
        assert_eq!(breaker.state(t0), CircuitState::Closed);
    }
}
