//! `[[listeners]]`: where clients connect, with which TLS and which limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One data-plane listener, as written in the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// A name for logs and metrics, unique among listeners.
    pub name: String,
    /// Address and port, e.g. `"0.0.0.0:8443"`; port 0 lets the OS choose.
    pub bind: SocketAddr,
    /// TLS settings. Required unless `[dangerous] allow_plain_http = true`.
    pub tls: Option<ListenerTlsConfig>,
    /// Connection limits; every one has a safe default.
    #[serde(default)]
    pub limits: ListenerLimitsConfig,
}

/// `listeners.tls`: server certificate and client certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// PEM file with the server certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the server's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// Whether clients present certificates: `none` (default), `optional`
    /// or `required`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// PEM bundle of the CAs that issue client certificates. Required unless
    /// `client_auth = "none"`.
    pub client_ca: Option<PathBuf>,
}

/// Client certificate policy of a listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for; if one is sent it must verify.
    Optional,
    /// A verified certificate is required to complete the handshake.
    Required,
}

/// `listeners.limits`: protection against slow, greedy or numerous clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerLimitsConfig {
    /// Time allowed for the TLS handshake. Default 10s.
    #[serde(with = "dur")]
    pub tls_handshake_timeout: Duration,
    /// Time allowed to send a request's headers (slow-loris defence).
    /// Default 10s.
    #[serde(with = "dur")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    /// Default 60s.
    #[serde(with = "dur")]
    pub idle_timeout: Duration,
    /// Largest total size of the request's header fields (names and values)
    /// in bytes; larger gets 431. Between 8192 and 1048576. Default 32768.
    pub max_header_bytes: usize,
    /// Longest request target (path and query) in bytes; longer gets 414.
    /// Between 256 and 65536. Default 8192.
    pub max_uri_length: usize,
    /// Open connections at most; further connections are closed at once.
    /// Default 10000.
    pub max_connections: usize,
    /// HTTP/2 streams in flight per connection. Default 100.
    pub max_concurrent_streams: u32,
    /// Open connections from one peer address at most; further ones are
    /// closed at once. Default: no cap (set it when clients do not share
    /// addresses through a NAT or proxy).
    pub max_connections_per_client: Option<usize>,
}

mod dur {
    pub use crate::config::duration::deserialize;
}

impl Default for ListenerLimitsConfig {
    fn default() -> Self {
        Self {
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 32 * 1024,
            max_uri_length: 8192,
            max_connections: 10_000,
            max_concurrent_streams: 100,
            max_connections_per_client: None,
        }
    }
}
