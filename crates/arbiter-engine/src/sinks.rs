//! Action sinks: where a committed decision's action goes.

use arbiter_core::{ActionRequest, ActionSink, SinkError};
use async_trait::async_trait;
use std::sync::Arc;

/// Writes each action to the log (`type: log`).
#[derive(Debug, Clone, Default)]
pub struct LogSink;

#[async_trait]
impl ActionSink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    async fn send(&self, action: &ActionRequest) -> Result<(), SinkError> {
        tracing::info!(
            sink = "log",
            tenant = %action.tenant,
            request_id = %action.request_id,
            flow = %action.flow,
            action = %action.action,
            reason = %action.reason,
            "action"
        );
        Ok(())
    }
}

/// The sinks every action is handed to. A failing sink is logged; the decision is already
/// committed and is not lost.
#[derive(Clone, Default)]
pub struct SinkSet {
    sinks: Vec<Arc<dyn ActionSink>>,
}

impl SinkSet {
    /// These sinks.
    pub fn new(sinks: Vec<Arc<dyn ActionSink>>) -> Self {
        Self { sinks }
    }

    /// Hands an action to every sink.
    pub async fn send(&self, action: &ActionRequest) {
        for sink in &self.sinks {
            if let Err(err) = sink.send(action).await {
                tracing::warn!(sink = sink.name(), request_id = %action.request_id, error = %err, "action sink failed");
            }
        }
    }
}
