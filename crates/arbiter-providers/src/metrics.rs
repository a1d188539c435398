//! The vendors' counters, circuit and budget as `/metrics` shows them (Prometheus text format).

use crate::breaker::CircuitState;
use crate::call::{Provider, ProviderStatus};
use std::fmt::Write;
use std::sync::Arc;

/// Each vendor's calls, errors, time, circuit and budget left, in the Prometheus text format.
pub fn render(providers: &[Arc<Provider>]) -> String {
    let statuses: Vec<ProviderStatus> =
        providers.iter().map(|provider| provider.status()).collect();
    render_statuses(&statuses)
}

/// [`render`] of the providers' statuses; nothing without providers.
pub fn render_statuses(statuses: &[ProviderStatus]) -> String {
    let mut out = String::new();
    if statuses.is_empty() {
        return out;
    }
    out.push_str("# HELP arbiter_provider_calls_total Analyses asked of each vendor.\n# TYPE arbiter_provider_calls_total counter\n");
    out.push_str("# HELP arbiter_provider_errors_total Vendor analyses that gave no answer.\n# TYPE arbiter_provider_errors_total counter\n");
    out.push_str("# HELP arbiter_provider_seconds_total Seconds spent in each vendor's analyses.\n# TYPE arbiter_provider_seconds_total counter\n");
    out.push_str("# HELP arbiter_provider_up Whether the vendor can take work (circuit not open, budget left, not blocked).\n# TYPE arbiter_provider_up gauge\n");
    out.push_str("# HELP arbiter_provider_circuit_open Whether the vendor's circuit is open (1) or half-open (0.5).\n# TYPE arbiter_provider_circuit_open gauge\n");
    out.push_str("# HELP arbiter_provider_budget_left Analyses left in the vendor's monthly budget (absent without a budget).\n# TYPE arbiter_provider_budget_left gauge\n");
    for s in statuses {
        let name = &s.name;
        let open = match s.circuit {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 0.5,
            CircuitState::Open => 1.0,
        };
        let _ = writeln!(
            out,
            "arbiter_provider_calls_total{{provider=\"{name}\"}} {}",
            s.calls
        );
        let _ = writeln!(
            out,
            "arbiter_provider_errors_total{{provider=\"{name}\"}} {}",
            s.errors
        );
        let _ = writeln!(
            out,
            "arbiter_provider_seconds_total{{provider=\"{name}\"}} {}",
            s.seconds
        );
        let _ = writeln!(
            out,
            "arbiter_provider_up{{provider=\"{name}\"}} {}",
            u8::from(s.healthy)
        );
        let _ = writeln!(
            out,
            "arbiter_provider_circuit_open{{provider=\"{name}\"}} {open}"
        );
        if let Some(left) = s.budget_left {
            let _ = writeln!(
                out,
                "arbiter_provider_budget_left{{provider=\"{name}\"}} {left}"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, circuit: CircuitState, budget_left: Option<u64>) -> ProviderStatus {
        ProviderStatus {
            name: name.to_owned(),
            healthy: circuit == CircuitState::Closed,
            problem: None,
            circuit,
            calls: 7,
            errors: 2,
            seconds: 1.5,
            budget_left,
        }
    }

    #[test]
    fn no_providers_no_lines() {
        assert_eq!(render(&[]), "");
        assert_eq!(render_statuses(&[]), "");
    }

    #[test]
    fn each_provider_has_its_samples() {
        let text = render_statuses(&[
            status("rd", CircuitState::HalfOpen, Some(40)),
            status("rai", CircuitState::Closed, None),
        ]);
        assert_eq!(text.matches("# TYPE ").count(), 6);
        for line in [
            "arbiter_provider_calls_total{provider=\"rd\"} 7",
            "arbiter_provider_errors_total{provider=\"rd\"} 2",
            "arbiter_provider_seconds_total{provider=\"rd\"} 1.5",
            "arbiter_provider_up{provider=\"rd\"} 0",
            "arbiter_provider_circuit_open{provider=\"rd\"} 0.5",
            "arbiter_provider_budget_left{provider=\"rd\"} 40",
            "arbiter_provider_up{provider=\"rai\"} 1",
            "arbiter_provider_circuit_open{provider=\"rai\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(!text.contains("arbiter_provider_budget_left{provider=\"rai\"}"));
    }
}
