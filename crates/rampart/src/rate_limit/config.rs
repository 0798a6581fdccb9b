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
