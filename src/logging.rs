//! The log on stderr: readable lines (coloured only on a terminal) or JSON lines for log
//! shippers; a server's lines name its replica.

use arbiter_config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The log of a command other than `serve`: warnings and errors, as text (`RUST_LOG`
/// overrides the level).
pub fn init_command() {
    let config = LogConfig {
        format: LogFormat::Text,
        level: "warn".to_owned(),
    };
    init(&config, None);
}

/// The log as configured, each line naming `replica` when given. `RUST_LOG`, when set and valid,
/// overrides `log.level`.
pub fn init(config: &LogConfig, replica: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_timer(ReplicaTime(replica.map(str::to_owned)))
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .event_format(JsonWithReplica {
                inner: format::Format::default()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true),
                replica: replica.map(json_string),
            })
            .try_init(),
    };
    // Installed once per process; a second call keeps the first.
    installed.ok();
}

/// The line that says where a server listens, written whatever the level: tests and scripts
/// read the address from it. In JSON, a log line whose `message` is that text.
pub fn announce_listening(config: &LogConfig, replica: &str, addr: std::net::SocketAddr) {
    let message = format!("arbiter listening on http://{addr}");
    match config.format {
        LogFormat::Text => eprintln!("{message}"),
        LogFormat::Json => eprintln!(
            "{}",
            serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "INFO",
                "replica": replica,
                "message": message,
                "addr": addr.to_string(),
                "target": "arbiter",
            })
        ),
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The time, then the replica, at the start of a text line.
struct ReplicaTime(Option<String>);

impl FormatTime for ReplicaTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        SystemTime.format_time(w)?;
        match &self.0 {
            Some(replica) => write!(w, " {replica}"),
            None => Ok(()),
        }
    }
}

/// tracing's JSON line with `"replica"` as its first field.
struct JsonWithReplica {
    inner: format::Format<format::Json>,
    /// The replica as a JSON string.
    replica: Option<String>,
}

impl<S, N> FormatEvent<S, N> for JsonWithReplica
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some(replica) = &self.replica else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"replica\":{replica},{rest}"),
            None => writer.write_str(&line),
        }
    }
}
