//! Brute-force protection: repeated authentication failures lead to a
//! temporary ban.
//!
//! Threat answered: guessing credentials (token forgery attempts, API-key
//! guessing, credential stuffing) at the speed of the network. Each refused
//! authentication is counted in a sliding window (the exact sliding-window
//! log of [`rate_limit`](crate::rate_limit)) per client address and, when
//! the request carries an `X-API-Key` of the form `rk_<id>_<secret>`, per
//! key id (`rk_<id>`). When a counter reaches `max_failures` within
//! `window`:
//! - the client address is banned for `ban` through
//!   [`Limits::ban`](crate::rate_limit::Limits::ban), with reason
//!   `brute-force`: listed on `GET /admin/bans`, shared with every gateway
//!   under `[redis] share_bans`, and enforced like any ban: a banned peer's
//!   connections are closed before TLS; a client behind a trusted proxy
//!   (and a request on a connection opened before the ban) gets 429
//!   `rate-limited` with `Retry-After` = the time the ban has left and
//!   `RateLimit` headers naming `brute-force` ([`BruteForce::refusal`]);
//!   other bans keep their 403;
//! - the key id is refused with 401 `invalid_token` for `ban`, whatever
//!   else the request carries.
//!
//! What counts: every refusal except "no credentials at all" and the
//! refusals that are not the client's doing or are normal protocol flow:
//! issuer keys or a store unavailable, `use_dpop_nonce`, and a request
//! refused because its key id is already banned. A trusted proxy's own
//! address is never banned (that would ban everyone behind it); its
//! clients are, by their forwarded address.
//!
//! How it fails: counters live in memory (bounded: 100 000 keys, the least
//! recently used evicted first, which can only delay a ban) or, with
//! `store = "redis"`, on the `[redis]` server (one script call per failure,
//! never per success); a Redis that cannot answer falls back to counting in
//! memory. Banned key ids are kept in memory (10 000 at most; expired ones
//! dropped) and, with `store = "redis"`, on Redis, checked only for
//! requests that carry an `X-API-Key`; without Redis, the local list
//! decides.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use serde::Deserialize;

use super::AuthnError;
use crate::clock::SharedClock;
use crate::config::ConfigProblem;
use crate::ip_filter::bans::Ban;
use crate::metrics::{AuthnBanLabels, Metrics};
use crate::rate_limit::algorithm::sliding_window_log::{self, SlidingWindowLog};
use crate::rate_limit::algorithm::{Decision, Rate};
use crate::rate_limit::config::{AlgorithmKind, StoreKind};
use crate::rate_limit::memory::MemoryStore;
use crate::rate_limit::redis::RedisStore;
use crate::rate_limit::{Limits, RateLimited};
use crate::reject::Reject;

/// The reason recorded with a brute-force ban (on `/admin/bans`, and in
/// Redis when bans are shared).
pub const REASON: &str = "brute-force";

/// The header whose key id is counted.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Most failure counters held in memory.
const MAX_COUNTERS: usize = 100_000;

/// Most banned key ids held in memory.
const MAX_KEY_BANS: usize = 10_000;

/// Longest key id counted (longer values are not `rk_` keys).
const MAX_KEY_ID: usize = 64;

/// `[brute_force]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForceConfig {
    /// Count failures and ban. Default true (it only acts on routes that
    /// authenticate).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Failures within `window` that trigger a ban (the last one bans).
    /// Default 10.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// The sliding window. Default 1m.
    #[serde(
        default = "default_window",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub window: Duration,
    /// How long a ban lasts. Default 15m.
    #[serde(
        default = "default_ban",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub ban: Duration,
    /// Where counters and key-id bans live: `memory` (default) or `redis`
    /// (every gateway on the `[redis]` server counts together). Address bans
    /// are shared by `[redis] share_bans`.
    #[serde(default)]
    pub store: StoreKind,
}

fn yes() -> bool {
    true
}

fn default_max_failures() -> u32 {
    10
}

fn default_window() -> Duration {
    Duration::from_secs(60)
}

fn default_ban() -> Duration {
    Duration::from_secs(15 * 60)
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: default_max_failures(),
            window: default_window(),
            ban: default_ban(),
            store: StoreKind::Memory,
        }
    }
}

/// `[brute_force]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BruteForcePolicy {
    /// Whether failures are counted at all.
    pub enabled: bool,
    /// `max_failures` per `window`.
    pub rate: Rate,
    /// Ban length.
    pub ban: Duration,
    /// Where counters live.
    pub store: StoreKind,
}

impl BruteForcePolicy {
    /// Validates `[brute_force]`; `has_redis`: the policy has `[redis]`.
    pub fn from_config(c: &BruteForceConfig, has_redis: bool) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if c.max_failures == 0 || c.max_failures > 1000 {
            problems.push(ConfigProblem::error(
                "brute_force.max_failures",
                "must be between 1 and 1000",
            ));
        }
        if c.window.is_zero() || c.window > Duration::from_secs(24 * 3600) {
            problems.push(ConfigProblem::error(
                "brute_force.window",
                "must be more than 0 and at most 24h",
            ));
        }
        if c.ban.is_zero() || c.ban > Duration::from_secs(30 * 24 * 3600) {
            problems.push(ConfigProblem::error(
                "brute_force.ban",
                "must be more than 0 and at most 30 days",
            ));
        }
        if c.store == StoreKind::Redis && !has_redis {
            problems.push(ConfigProblem::error(
                "brute_force.store",
                "`redis` needs a [redis] section with the server's url",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            enabled: c.enabled,
            rate: Rate {
                limit: c.max_failures,
                per: c.window,
                burst: 0,
            },
            ban: c.ban,
            store: c.store,
        })
    }
}

/// What outlives reloads: the in-memory counters and banned key ids.
pub struct BruteForceState {
    counters: MemoryStore<Box<str>, sliding_window_log::State>,
    key_bans: Mutex<HashMap<Box<str>, Duration>>,
}

impl Default for BruteForceState {
    fn default() -> Self {
        Self {
            counters: MemoryStore::new(MAX_COUNTERS, 16),
            key_bans: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for BruteForceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BruteForceState")
            .field("counters", &self.counters.len())
            .finish()
    }
}

/// Brute-force protection for one policy snapshot.
#[derive(Debug)]
pub struct BruteForce {
    policy: BruteForcePolicy,
    state: Arc<BruteForceState>,
    /// The `[redis]` store: bans go through it (when shared), and counters
    /// when `store = "redis"`.
    redis: Option<Arc<RedisStore>>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    /// `RateLimit-Policy` for a banned client's 429.
    policy_header: HeaderValue,
    /// The header API keys arrive in.
    key_header: http::HeaderName,
}

/// Whether a refusal counts as a failed attempt.
pub fn counts(error: &AuthnError) -> bool {
    !matches!(
        error,
        AuthnError::MissingCredentials
            | AuthnError::KeysUnavailable
            | AuthnError::ReplayCacheUnavailable
            | AuthnError::RevocationUnavailable
            | AuthnError::DpopNonce
            | AuthnError::ApiKeyBanned
    )
}

/// The key id of an API-key header (`X-API-Key` unless `[api_keys] header`
/// names another) holding `rk_<id>_<secret>`: `rk_<id>`, the value up to
/// its second `_`. `None` for any other shape.
pub fn key_id<'a>(headers: &'a HeaderMap, header: &http::HeaderName) -> Option<&'a str> {
    let v = headers.get(header)?.to_str().ok()?;
    let first = v.find('_')?;
    let second = first + 1 + v.get(first + 1..)?.find('_')?;
    let id = v.get(..second)?;
    let valid = first > 0
        && second > first + 1
        && id.len() <= MAX_KEY_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    valid.then_some(id)
}

impl BruteForce {
    /// Counts key ids from `header` (the `[api_keys] header`) instead of
    /// `X-API-Key`.
    pub fn with_key_header(mut self, header: http::HeaderName) -> Self {
        self.key_header = header;
        self
    }

    /// Validates `[brute_force]`. `redis` is the policy's `[redis]` store
    /// (if valid), `has_redis` whether the policy has the section.
    pub fn from_config(
        c: &BruteForceConfig,
        state: Arc<BruteForceState>,
        redis: Option<&Arc<RedisStore>>,
        has_redis: bool,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let policy = BruteForcePolicy::from_config(c, has_redis)?;
        let policy_header = HeaderValue::from_str(&format!(
            "\"{REASON}\";q={};w={}",
            policy.rate.limit,
            policy.rate.per.as_secs().max(1)
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("\"brute-force\""));
        Ok(Self {
            policy,
            state,
            redis: redis.cloned(),
            clock,
            metrics,
            policy_header,
            key_header: http::HeaderName::from_static(API_KEY_HEADER),
        })
    }

    /// The validated policy.
    pub fn policy(&self) -> &BruteForcePolicy {
        &self.policy
    }

    /// The refusal for a client under `ban` at `now`: for a brute-force
    /// ban, 429 with `Retry-After` = the time it has left; for any other,
    /// 403.
    pub fn refusal(&self, ban: &Ban, client: IpAddr, now: Duration) -> Reject {
        if ban.reason != REASON {
            return Reject::IpDenied(crate::ip_filter::IpFilterError::Banned(client));
        }
        let left = ban.until.saturating_sub(now);
        let state = format!("\"{REASON}\";r=0;t={}", crate::rate_limit::retry_after_secs(left));
        Reject::RateLimited(RateLimited {
            retry_after: left,
            headers: (
                self.policy_header.clone(),
                HeaderValue::from_str(&state).unwrap_or_else(|_| self.policy_header.clone()),
            ),
            limit: REASON.to_owned(),
        })
    }

    /// Whether the request's API-key id is banned (here, or on Redis with
    /// `store = "redis"`; if Redis cannot answer, here only).
    pub async fn key_banned(&self, headers: &HeaderMap) -> bool {
        if !self.policy.enabled {
            return false;
        }
        let Some(id) = key_id(headers, &self.key_header) else {
            return false;
        };
        let now = self.clock.monotonic();
        let local = self
            .state
            .key_bans
            .lock()
            .map(|m| m.get(id).is_some_and(|until| *until > now))
            .unwrap_or(false);
        if local {
            return true;
        }
        match (self.policy.store, &self.redis) {
            (StoreKind::Redis, Some(r)) => r
                .mget("brute_force", &[r.flag_key("api-key-ban", id)])
                .await
                .map(|v| v.first().is_some_and(Option::is_some))
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Counts one refused authentication from `client` (`None`: the
    /// address is a trusted proxy's own, never banned) and bans what
    /// reached the threshold.
    pub async fn failed(
        &self,
        limits: &Limits,
        client: Option<IpAddr>,
        headers: &HeaderMap,
        error: &AuthnError,
    ) {
        if !self.policy.enabled || !counts(error) {
            return;
        }
        if let Some(ip) = client.map(crate::ip_filter::canonical) {
            let now = self.clock.monotonic();
            if self.tripped("client_ip", &ip.to_string()).await && !limits.bans.is_banned(ip, now) {
                let banned = limits
                    .ban(
                        self.redis.as_deref(),
                        ipnet::IpNet::from(ip),
                        self.policy.ban,
                        now,
                        self.clock.now(),
                        REASON,
                    )
                    .await;
                match banned {
                    // A ban that did not reach Redis still holds here.
                    Ok(_) | Err(crate::rate_limit::BanFailure::Shared(_)) => {
                        self.count_ban("client_ip");
                        tracing::warn!(target: "rampart::brute_force", client = %ip, ban_s = self.policy.ban.as_secs(), "address banned after repeated authentication failures");
                    }
                    Err(e) => {
                        tracing::warn!(target: "rampart::brute_force", client = %ip, error = %e, "brute-force ban refused")
                    }
                }
            }
        }
        if let Some(id) = key_id(headers, &self.key_header) {
            if self.tripped("api_key", id).await {
                self.ban_key(id).await;
                self.count_ban("api_key");
                tracing::warn!(target: "rampart::brute_force", key_id = id, ban_s = self.policy.ban.as_secs(), "API key id banned after repeated authentication failures");
            }
        }
    }

    fn count_ban(&self, kind: &'static str) {
        self.metrics
            .authn_bans
            .get_or_create(&AuthnBanLabels { kind })
            .inc();
    }

    /// Counts one failure for `value`; whether that reached the threshold.
    async fn tripped(&self, what: &'static str, value: &str) -> bool {
        let local = || {
            let key: Box<str> = format!("{what}:{value}").into();
            self.state
                .counters
                .decide(&SlidingWindowLog, &self.policy.rate, &key, self.clock.monotonic())
        };
        let decision = match (self.policy.store, &self.redis) {
            (StoreKind::Redis, Some(r)) => {
                let key = r.counter_key(AlgorithmKind::SlidingWindowLog, REASON, what, value);
                match r
                    .decide(AlgorithmKind::SlidingWindowLog, &self.policy.rate, &key)
                    .await
                {
                    Ok(d) => d,
                    Err(_) => local(),
                }
            }
            _ => local(),
        };
        // The failure that fills the window bans; any later one in the
        // same window (a ban that ended early, or a race) bans again.
        matches!(
            decision,
            Decision::Allow { remaining: 0, .. } | Decision::Deny { .. }
        )
    }

    async fn ban_key(&self, id: &str) {
        let now = self.clock.monotonic();
        if let Ok(mut m) = self.state.key_bans.lock() {
            m.retain(|_, until| *until > now);
            if m.len() < MAX_KEY_BANS || m.contains_key(id) {
                m.insert(id.into(), now + self.policy.ban);
            }
        }
        if let (StoreKind::Redis, Some(r)) = (self.policy.store, &self.redis) {
            // Failure is logged by the store; the local ban holds.
            let _ = r
                .set_px(
                    "brute_force",
                    &r.flag_key("api-key-ban", id),
                    "1",
                    self.policy.ban,
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::{Clock, FakeClock};

    fn headers(key: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(k) = key {
            h.insert(API_KEY_HEADER, HeaderValue::from_str(k).unwrap());
        }
        h
    }

    fn guard(c: BruteForceConfig, clock: Arc<FakeClock>) -> BruteForce {
        BruteForce::from_config(&c, Arc::default(), None, false, clock, Metrics::new()).unwrap()
    }

    fn config(max_failures: u32, window: u64, ban: u64) -> BruteForceConfig {
        BruteForceConfig {
            max_failures,
            window: Duration::from_secs(window),
            ban: Duration::from_secs(ban),
            ..BruteForceConfig::default()
        }
    }

    #[test]
    fn key_ids_are_the_prefix_up_to_the_second_underscore() {
        assert_eq!(
            key_id(
                &headers(Some("rk_ab12_secretpart")),
                &http::HeaderName::from_static(API_KEY_HEADER)
            ),
            Some("rk_ab12")
        );
        assert_eq!(
            key_id(
                &headers(Some("rk_ab12_sec_ret")),
                &http::HeaderName::from_static(API_KEY_HEADER)
            ),
            Some("rk_ab12")
        );
        for other in ["rk_nosecond", "_x_y", "rk__y", "plainkey", "rk_a b_c"] {
            assert_eq!(
                key_id(
                    &headers(Some(other)),
                    &http::HeaderName::from_static(API_KEY_HEADER)
                ),
                None,
                "{other}"
            );
        }
        let long = format!("rk_{}_x", "a".repeat(80));
        assert_eq!(
            key_id(
                &headers(Some(&long)),
                &http::HeaderName::from_static(API_KEY_HEADER)
            ),
            None
        );
        assert_eq!(
            key_id(&headers(None), &http::HeaderName::from_static(API_KEY_HEADER)),
            None
        );
    }

    #[test]
    fn missing_credentials_and_infrastructure_failures_do_not_count() {
        assert!(counts(&AuthnError::BadSignature));
        assert!(counts(&AuthnError::Expired));
        assert!(counts(&AuthnError::Revoked(
            super::super::revocation::RevocationKind::Jti
        )));
        for e in [
            AuthnError::MissingCredentials,
            AuthnError::KeysUnavailable,
            AuthnError::RevocationUnavailable,
            AuthnError::DpopNonce,
            AuthnError::ApiKeyBanned,
        ] {
            assert!(!counts(&e), "{e}");
        }
    }

    #[tokio::test]
    async fn the_nth_failure_in_the_window_bans_the_address_for_the_ban_time() {
        let clock = FakeClock::at_unix(1_700_000_000);
        let bf = guard(config(3, 60, 900), clock.clone());
        let limits = Limits::new();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let h = headers(None);
        for _ in 0..2 {
            bf.failed(&limits, Some(ip), &h, &AuthnError::BadSignature).await;
            clock.advance(Duration::from_secs(10));
        }
        // Requests without credentials are not attempts.
        bf.failed(&limits, Some(ip), &h, &AuthnError::MissingCredentials)
            .await;
        assert!(!limits.bans.is_banned(ip, clock.monotonic()));
        bf.failed(&limits, Some(ip), &h, &AuthnError::BadSignature).await;
        let now = clock.monotonic();
        let ban = limits.bans.list(now).pop().unwrap();
        assert_eq!(ban.reason, REASON);
        assert_eq!(ban.net.to_string(), "203.0.113.9/32");
        assert_eq!(ban.until, now + Duration::from_secs(900));
        // The refusal is a 429 with the time left.
        clock.advance(Duration::from_secs(300));
        let Reject::RateLimited(r) = bf.refusal(&ban, ip, clock.monotonic()) else {
            panic!("not a 429")
        };
        assert_eq!(r.retry_after, Duration::from_secs(600));
        assert_eq!(r.headers.0, "\"brute-force\";q=3;w=60");
        assert_eq!(r.headers.1, "\"brute-force\";r=0;t=600");
        // A ban of another kind keeps its 403.
        let mut other = ban.clone();
        other.reason = "manual".into();
        assert!(matches!(
            bf.refusal(&other, ip, clock.monotonic()),
            Reject::IpDenied(_)
        ));
        clock.advance(Duration::from_secs(600));
        assert!(!limits.bans.is_banned(ip, clock.monotonic()));
    }

    #[tokio::test]
    async fn failures_spread_wider_than_the_window_never_ban() {
        let clock = FakeClock::at_unix(0);
        let bf = guard(config(3, 60, 900), clock.clone());
        let limits = Limits::new();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..10 {
            bf.failed(&limits, Some(ip), &headers(None), &AuthnError::Expired)
                .await;
            clock.advance(Duration::from_secs(31));
        }
        assert!(limits.bans.list(clock.monotonic()).is_empty());
    }

    #[tokio::test]
    async fn a_key_id_is_banned_from_many_addresses_and_a_proxy_never_is() {
        let clock = FakeClock::at_unix(0);
        let bf = guard(config(2, 60, 120), clock.clone());
        let limits = Limits::new();
        let h = headers(Some("rk_partner7_guess1"));
        assert!(!bf.key_banned(&h).await);
        bf.failed(&limits, None, &h, &AuthnError::BadSignature).await;
        bf.failed(&limits, None, &h, &AuthnError::BadSignature).await;
        // Another secret under the same id is refused too; other ids are not.
        assert!(bf.key_banned(&headers(Some("rk_partner7_other"))).await);
        assert!(!bf.key_banned(&headers(Some("rk_partner8_other"))).await);
        // `None`: the trusted proxy's own address, not banned.
        assert!(limits.bans.list(clock.monotonic()).is_empty());
        clock.advance(Duration::from_secs(120));
        assert!(!bf.key_banned(&h).await);
    }

    #[tokio::test]
    async fn disabled_counts_nothing() {
        let clock = FakeClock::at_unix(0);
        let bf = guard(
            BruteForceConfig {
                enabled: false,
                ..config(1, 60, 60)
            },
            clock.clone(),
        );
        let limits = Limits::new();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        bf.failed(&limits, Some(ip), &headers(None), &AuthnError::BadSignature)
            .await;
        assert!(limits.bans.list(clock.monotonic()).is_empty());
    }

    #[test]
    fn thresholds_are_validated() {
        let bad = BruteForceConfig {
            max_failures: 0,
            window: Duration::ZERO,
            ban: Duration::ZERO,
            store: StoreKind::Redis,
            enabled: true,
        };
        let p = BruteForcePolicy::from_config(&bad, false).unwrap_err();
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "brute_force.max_failures",
                "brute_force.window",
                "brute_force.ban",
                "brute_force.store"
            ]
        );
    }
}
