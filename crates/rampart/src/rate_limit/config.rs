//! `[[routes.rate_limit]]`: limits on a route.

use std::time::Duration;

use serde::Deserialize;

/// One limit on a route, as written. A route may have several (a burst
/// limit and a daily quota, say); a request must pass all of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Name shown in the `RateLimit-Policy` and `RateLimit` headers.
    /// Default `"default"`, or `"limit-N"` for the Nth limit after the first.
    pub name: Option<String>,
    /// `token_bucket` (default) | `fixed_window` | `sliding_window_log` |
    /// `sliding_window_counter` | `gcra`.
    #[serde(default)]
    pub algorithm: AlgorithmKind,
    /// Requests allowed per `per`.
    pub limit: u32,
    /// The period, e.g. `"1m"`, `"1s"`, `"24h"`.
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub per: Duration,
    /// Most requests at once (token bucket and GCRA); default `limit`.
    #[serde(default)]
    pub burst: u32,
    /// What a counter is kept per: `client_ip` (default), `route` (one
    /// counter for everyone), or `header:<name>` (the value of a request
    /// header; requests without it share one counter).
    #[serde(default = "default_key")]
    pub key: String,
}

fn default_key() -> String {
    "client_ip".into()
}

/// `routes[].idempotency`: `Idempotency-Key` handling, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// How long a finished response is kept for replay. Default 24h.
    #[serde(
        default = "default_ttl",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub ttl: Duration,
    /// Largest request (and stored response) body in bytes. Default 1 MiB;
    /// a larger request gets 413.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
}

fn default_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_max_body() -> usize {
    1024 * 1024
}

/// The algorithms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmKind {
    /// Token bucket.
    #[default]
    TokenBucket,
    /// Fixed window.
    FixedWindow,
    /// Sliding-window log (exact).
    SlidingWindowLog,
    /// Sliding-window counter (weighted).
    SlidingWindowCounter,
    /// GCRA.
    Gcra,
}
