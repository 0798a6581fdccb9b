//! Logs: JSON lines through `tracing`, and the one access-log line per request.
//!
//! Threat answered: credentials leaking into logs (invariant 3). The access
//! log is an allow-list of typed fields: request id, listener, route id,
//! method, the normalised path without its query string, status, outcome,
//! latency, the peer address and the HTTP version. Headers, query strings and bodies are never logged. Refusal
//! causes are logged by their stable code, never with the offending input.
//! How it fails: a log line that cannot be written is dropped by the
//! subscriber; the request is unaffected.

use std::time::Duration;

use serde::Deserialize;

/// `[logging]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info` (default), `debug` or `trace`. `RUST_LOG`
    /// overrides it.
    pub level: String,
    /// `json` (default) or `text`.
    pub format: LogFormat,
    /// One line per request on target `rampart::access`. Default true.
    pub access_log: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Json,
            access_log: true,
        }
    }
}

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Checks a `logging.level`: a level, or comma-separated directives each of
/// which is a level or `target=level`. A bare word that is not a level would
/// be read by the filter as a target name and silence everything else, so
/// it is refused.
pub fn check_level(spec: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "`{spec}` is not a level ({}) or a list of `target=level` directives",
            LEVELS.join(", ")
        )
    };
    if spec.trim().is_empty() {
        return Err(bad());
    }
    for directive in spec.split(',').map(str::trim) {
        let level = directive.rsplit_once('=').map_or(
            directive,
            |(target, level)| {
                if target.is_empty() {
                    ""
                } else {
                    level
                }
            },
        );
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(bad());
        }
    }
    tracing_subscriber::EnvFilter::try_new(spec)
        .map(|_| ())
        .map_err(|_| bad())
}

/// Installs the global subscriber (once per process; later calls are no-ops).
/// Logs go to standard output.
pub fn init(cfg: &LoggingConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(true);
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// The fields of one access-log line. Every field is safe to log.
#[derive(Debug)]
pub struct AccessLog<'a> {
    /// Gateway-generated request id.
    pub request_id: &'a str,
    /// Listener name.
    pub listener: &'a str,
    /// Route id, or `-` when no route matched.
    pub route: &'a str,
    /// Request method (non-standard methods are logged as `OTHER`).
    pub method: &'a str,
    /// The normalised path, without query string; `-` if it did not
    /// normalise.
    pub path: &'a str,
    /// Response status.
    pub status: u16,
    /// `forwarded`, or the refusal code.
    pub outcome: &'a str,
    /// Time from request start to response headers.
    pub latency: Duration,
    /// Address of the connection's peer.
    pub peer: std::net::SocketAddr,
    /// The client's address (the peer's, or one a trusted proxy reported).
    pub client: std::net::IpAddr,
    /// Negotiated HTTP version.
    pub version: &'a str,
}

/// Writes one access-log line.
pub fn access(line: &AccessLog<'_>) {
    tracing::info!(
        target: "rampart::access",
        request_id = line.request_id,
        listener = line.listener,
        route = line.route,
        method = line.method,
        path = line.path,
        status = line.status,
        outcome = line.outcome,
        latency_ms = line.latency.as_secs_f64() * 1000.0,
        peer = %line.peer,
        client = %line.client,
        version = line.version,
        "request"
    );
}
