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
    /// counter for everyone), `header:<name>` (the value of a request
    /// header; requests without it share one counter), or, on
    /// authenticated routes, `subject`, `client_id` or `principal` (the
    /// subject, else the client id); an unauthenticated request is then
    /// counted per client address.
    #[serde(default = "default_key")]
    pub key: String,
    /// Where the counters live: `memory` (default; this node only) or
    /// `redis` (shared by every gateway on the `[redis]` server).
    #[serde(default)]
    pub store: StoreKind,
    /// Apply this limit only to principals of this class (partner tier):
    /// those whose token claim `tier_claim` equals it. Default: everyone.
    pub tier: Option<String>,
    /// The claim holding a principal's class; default `tier`.
    #[serde(default = "default_tier_claim")]
    pub tier_claim: String,
}

fn default_tier_claim() -> String {
    "tier".into()
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
    /// Where records live: `memory` (default) or `redis` (a retry that
    /// lands on another gateway is still answered from the record).
    #[serde(default)]
    pub store: StoreKind,
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

/// Where a limit's counters (or idempotency records) live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// In this process.
    #[default]
    Memory,
    /// On the `[redis]` server, shared by every gateway that uses it.
    Redis,
}

/// `[redis]`: the store shared by the gateways of a cluster, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`. The password, if any, is never
    /// logged.
    pub url: String,
    /// Longest wait for one Redis call (connect or command); default 50ms.
    /// Past it the call counts as failed and `on_failure` decides.
    #[serde(
        default = "default_redis_timeout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub timeout: Duration,
    /// What a limit on Redis does while Redis is unreachable or slow:
    /// `local` (default: count in this node's memory instead), `deny` (503
    /// with `Retry-After`) or `allow` (skip the limit).
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Prefix of every key Rampart writes; default `rampart`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Share dynamic bans through Redis, so a ban on one gateway holds on
    /// all of them within a second. Default false.
    #[serde(default)]
    pub share_bans: bool,
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(50)
}

fn default_key_prefix() -> String {
    "rampart".into()
}

/// What a limit on Redis does while Redis cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Refuse with 503 and `Retry-After` (fail closed).
    Deny,
    /// Skip the limit (fail open).
    Allow,
    /// Count in this node's memory until Redis is back.
    #[default]
    Local,
}
