//! `[[upstreams]]`: the bank's services behind the gateway.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One named upstream service, as written in the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Name that routes refer to.
    pub name: String,
    /// Base URLs, e.g. `["https://core-1.bank.internal:8443"]`, used round
    /// robin. A path in the URL is prefixed to every forwarded path.
    pub targets: Vec<String>,
    /// Time allowed to open a connection. Default 2s.
    #[serde(
        default = "d_connect",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub connect_timeout: Duration,
    /// Time allowed for the upstream to send response headers, and the
    /// longest pause allowed inside a response body. Default 30s.
    #[serde(
        default = "d_request",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub request_timeout: Duration,
    /// Extra attempts when a connection fails (on another target when there
    /// is one), for
    /// idempotent methods without a body only. Default 1, at most 3.
    #[serde(default = "d_retries")]
    pub retries: u32,
    /// Send the host the client asked for (as checked by the router) instead
    /// of the target's. Default false.
    #[serde(default)]
    pub preserve_host: bool,
    /// `auto` (default: ALPN for https, HTTP/1.1 for http), `http1` or `http2`.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Requests in flight to this upstream at most; more get 503. Default:
    /// no ceiling.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Idle pooled connections per target at most. Default 64.
    #[serde(default = "d_pool")]
    pub pool_max_idle: usize,
    /// TLS toward the upstream.
    #[serde(default)]
    pub tls: UpstreamTlsConfig,
    /// Passive health checking.
    #[serde(default)]
    pub health: HealthConfig,
}

fn d_connect() -> Duration {
    Duration::from_secs(2)
}
fn d_request() -> Duration {
    Duration::from_secs(30)
}
fn d_retries() -> u32 {
    1
}
fn d_pool() -> usize {
    64
}

/// HTTP version toward the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// ALPN chooses over TLS; HTTP/1.1 over plain TCP.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (prior knowledge over plain TCP).
    Http2,
}

/// `upstreams.tls`: how upstream certificates are verified. Always verified.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of CAs to trust instead of the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS to the upstream.
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// `upstreams.health`: a target that fails `max_failures` times in a row is
/// skipped for `cooldown`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Consecutive failures before a target is skipped. Default 3.
    pub max_failures: u32,
    /// How long a failed target is skipped. Default 10s.
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub cooldown: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            max_failures: 3,
            cooldown: Duration::from_secs(10),
        }
    }
}
