//! Rate limiting (OWASP API4): how many requests a key may make on a route.
//!
//! A route lists limits (`[[routes.rate_limit]]`); each names one of five
//! algorithms ([`algorithm`]: pure, clock-injected state machines, each with
//! its promise documented and tested), a rate, and what a counter is kept
//! per (client address, the route, a header). Top-level `[[rate_limit]]`
//! limits apply to every route, before the route's own. Counters live in a
//! bounded, sharded in-memory store ([`memory`]) owned by the running
//! process, so a policy reload keeps them, or, with `store = "redis"`, on
//! the `[redis]` server shared by every gateway ([`redis`]). A request must
//! pass every limit of its route; the first refusal answers 429 with
//! `Retry-After`, and every answer on a limited route carries the IETF
//! `RateLimit-Policy` and `RateLimit` headers.
//!
//! How it fails: a memory shard that cannot be used refuses. A Redis that
//! cannot answer within its timeout gets the `[redis] on_failure` policy
//! (`local`, `deny` with 503, or `allow`) until it answers again. A request
//! that passes one limit and is refused by a later one has still been
//! counted by the first (as in most gateways).
//!
//! Not yet: keys from the principal (subject, client id, API key) and
//! per-tier limits, which need authentication.

pub mod algorithm;
pub mod concurrency;
pub mod config;
pub mod idempotency;
pub mod memory;
pub mod redis;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use self::algorithm::{fixed_window, gcra, sliding_window_counter, sliding_window_log, token_bucket};
use self::algorithm::{Algorithm, Decision, Rate};
use self::config::{AlgorithmKind, FailurePolicy, RateLimitConfig, RedisConfig, StoreKind};
use self::memory::MemoryStore;
use self::redis::{RedisPolicy, RedisStore};
use crate::config::ConfigProblem;
use crate::ip_filter::bans::BanList;
use crate::metrics::Metrics;

/// Per-key state of whichever algorithm the limit uses.
#[derive(Debug, Default)]
pub enum AnyState {
    /// Nothing yet.
    #[default]
    Empty,
    /// Token bucket.
    TokenBucket(token_bucket::State),
    /// Fixed window.
    FixedWindow(fixed_window::State),
    /// Sliding-window log.
    SlidingWindowLog(sliding_window_log::State),
    /// Sliding-window counter.
    SlidingWindowCounter(sliding_window_counter::State),
    /// GCRA.
    Gcra(gcra::State),
}

/// Dispatches to the algorithm a limit names. If a reload changed a limit's
/// algorithm, its keys start afresh.
#[derive(Debug, Clone, Copy)]
pub struct AnyAlgorithm(pub AlgorithmKind);

impl Algorithm for AnyAlgorithm {
    type State = AnyState;

    fn decide(&self, rate: &Rate, state: &mut AnyState, now: Duration) -> Decision {
        use AlgorithmKind as K;
        match (self.0, &mut *state) {
            (K::TokenBucket, AnyState::TokenBucket(s)) => {
                algorithm::token_bucket::TokenBucket.decide(rate, s, now)
            }
            (K::FixedWindow, AnyState::FixedWindow(s)) => {
                algorithm::fixed_window::FixedWindow.decide(rate, s, now)
            }
            (K::SlidingWindowLog, AnyState::SlidingWindowLog(s)) => {
                algorithm::sliding_window_log::SlidingWindowLog.decide(rate, s, now)
            }
            (K::SlidingWindowCounter, AnyState::SlidingWindowCounter(s)) => {
                algorithm::sliding_window_counter::SlidingWindowCounter.decide(rate, s, now)
            }
            (K::Gcra, AnyState::Gcra(s)) => algorithm::gcra::Gcra.decide(rate, s, now),
            (kind, _) => {
                *state = match kind {
                    K::TokenBucket => AnyState::TokenBucket(Default::default()),
                    K::FixedWindow => AnyState::FixedWindow(Default::default()),
                    K::SlidingWindowLog => AnyState::SlidingWindowLog(Default::default()),
                    K::SlidingWindowCounter => AnyState::SlidingWindowCounter(Default::default()),
                    K::Gcra => AnyState::Gcra(Default::default()),
                };
                self.decide(rate, state, now)
            }
        }
    }
}

/// A counter's identity: scope (route id, or `*` for global limits), limit
/// index, key value.
pub type CounterKey = (Arc<str>, u16, KeyValue);

/// What a counter is kept for: a client address (the common case, kept as
/// is: no formatting per request), or a text value (a header, a principal).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    /// A client address.
    Ip(std::net::IpAddr),
    /// Any other value.
    Text(Box<str>),
}

impl std::fmt::Display for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyValue::Ip(ip) => ip.fmt(f),
            KeyValue::Text(t) => f.write_str(t),
        }
    }
}

/// The process's traffic state, which outlives reloads: rate-limit
/// counters, idempotency records, bans, and the Redis connection.
pub struct Limits {
    store: MemoryStore<CounterKey, AnyState>,
    /// `Idempotency-Key` records kept in memory.
    pub idempotency: Arc<idempotency::IdempotencyStore>,
    /// Dynamic bans (this node's copy, when shared through Redis).
    pub bans: Arc<BanList>,
    redis: std::sync::Mutex<Option<Arc<RedisStore>>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("keys", &self.store.len()).finish()
    }
}

impl Limits {
    /// At most one million counters over 64 shards.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            store: MemoryStore::new(1_000_000, 64),
            idempotency: Arc::default(),
            bans: Arc::default(),
            redis: std::sync::Mutex::new(None),
        })
    }

    /// The Redis store for `policy`: the running one if the policy did not
    /// change (a reload keeps its connection), else a new one.
    pub fn redis_for(&self, policy: RedisPolicy, metrics: &Arc<Metrics>) -> Option<Arc<RedisStore>> {
        let mut current = self.redis.lock().ok()?;
        if let Some(store) = current.as_ref().filter(|s| *s.policy() == policy) {
            return Some(store.clone());
        }
        let store = RedisStore::new(policy, metrics.clone()).ok()?;
        *current = Some(store.clone());
        Some(store)
    }

    /// Bans `net` for `ttl` here and, when bans are shared, on every gateway
    /// through `redis`. The local ban holds even if Redis fails (the error
    /// says so).
    pub async fn ban(
        &self,
        redis: Option<&RedisStore>,
        net: ipnet::IpNet,
        ttl: Duration,
        now: Duration,
        wall: std::time::SystemTime,
        reason: &str,
    ) -> Result<crate::ip_filter::bans::Ban, BanFailure> {
        let ban = self
            .bans
            .ban(net, ttl, now, wall, reason)
            .map_err(BanFailure::Local)?;
        if let Some(r) = redis.filter(|r| r.policy().share_bans) {
            r.put_ban(ban.net, ban.until_wall, &ban.reason)
                .await
                .map_err(BanFailure::Shared)?;
        }
        Ok(ban)
    }

    /// Lifts the ban of exactly `net`, everywhere when bans are shared;
    /// whether there was one. When shared and Redis cannot answer, nothing
    /// changes (the next copy from Redis would bring it back).
    pub async fn unban(&self, redis: Option<&RedisStore>, net: ipnet::IpNet) -> Result<bool, BanFailure> {
        let mut removed = false;
        if let Some(r) = redis.filter(|r| r.policy().share_bans) {
            removed = r.delete_ban(net.trunc()).await.map_err(BanFailure::Shared)?;
        }
        Ok(self.bans.unban(net) || removed)
    }
}

/// Why a ban or unban did not take effect everywhere.
#[derive(Debug, thiserror::Error)]
pub enum BanFailure {
    /// The local list refused it.
    #[error(transparent)]
    Local(crate::ip_filter::bans::BanError),
    /// Redis could not be written; a ban holds on this gateway only.
    #[error("the shared ban store could not be written: {0}")]
    Shared(redis::StoreError),
}

/// What a counter is kept per.
#[derive(Debug, Clone)]
enum KeyBy {
    ClientIp,
    Route,
    Header(HeaderName),
    Subject,
    ClientId,
    Principal,
}

#[derive(Debug)]
struct LimitPolicy {
    kind: AlgorithmKind,
    rate: Rate,
    key: KeyBy,
    store: StoreKind,
    /// Route id, or `*` for a global limit.
    scope: Arc<str>,
    /// Index in its list (the memory counter key).
    index: u16,
    /// Only for principals whose `tier_claim` claim is this.
    tier: Option<(String, String)>,
    /// `"name";q=limit;w=seconds`.
    policy: String,
    name: String,
}

/// The traffic settings shared by every route: global limits and the
/// Redis store.
#[derive(Debug, Default)]
pub struct TrafficPolicy {
    global: Vec<Arc<LimitPolicy>>,
    /// Whether the policy has a `[redis]` section (valid or not).
    pub redis_configured: bool,
    /// The `[redis]` store, if the policy has one.
    pub redis: Option<Arc<RedisStore>>,
}

impl TrafficPolicy {
    /// Stands in for a policy that failed validation, so that routes can
    /// still be checked (and report their own problems).
    pub fn invalid(redis_configured: bool) -> Self {
        Self {
            redis_configured,
            ..Self::default()
        }
    }

    /// Validates `[redis]` and the top-level `[[rate_limit]]`.
    pub fn from_config(
        redis: Option<&RedisConfig>,
        global: &[RateLimitConfig],
        limits: &Limits,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let has_redis = redis.is_some();
        let redis = match redis.map(RedisPolicy::from_config) {
            None => None,
            Some(Ok(p)) => limits.redis_for(p, metrics),
            Some(Err(p)) => {
                problems.extend(p);
                None
            }
        };
        let mut traffic = Self {
            global: Vec::new(),
            redis_configured: has_redis,
            redis,
        };
        match parse_limits("rate_limit", "*", global, has_redis) {
            Ok(g) => traffic.global = g.into_iter().map(Arc::new).collect(),
            Err(p) => problems.extend(p),
        }
        if problems.is_empty() {
            Ok(traffic)
        } else {
            Err(problems)
        }
    }
}

/// A route's validated limits (global ones first).
#[derive(Debug, Default)]
pub struct RouteLimits {
    limits: Vec<Arc<LimitPolicy>>,
    policy_header: Option<HeaderValue>,
    redis: Option<Arc<RedisStore>>,
}

/// A refusal: when to come back, and the headers that say why.
#[derive(Debug)]
pub struct RateLimited {
    /// Until a request would be admitted.
    pub retry_after: Duration,
    /// `RateLimit-Policy` and `RateLimit` values.
    pub headers: (HeaderValue, HeaderValue),
    /// Which limit refused (for logs).
    pub limit: String,
}

/// Why a request was not admitted.
#[derive(Debug)]
pub enum AdmitError {
    /// A limit is used up: 429.
    Limited(RateLimited),
    /// A limit's Redis store cannot answer and its policy is `deny`: 503.
    StoreDown,
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Validates a list of limits at `prefix[j]` for `scope`.
fn parse_limits(
    prefix: &str,
    scope: &str,
    cfgs: &[RateLimitConfig],
    has_redis: bool,
) -> Result<Vec<LimitPolicy>, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut limits = Vec::new();
    let scope: Arc<str> = Arc::from(scope);
    for (j, c) in cfgs.iter().enumerate() {
        let at = |k: &str| format!("{prefix}[{j}].{k}");
        if c.limit == 0 {
            problems.push(ConfigProblem::error(at("limit"), "must be at least 1"));
        }
        if c.per.is_zero() {
            problems.push(ConfigProblem::error(at("per"), "must be more than 0"));
        }
        if c.burst > 0 && !matches!(c.algorithm, AlgorithmKind::TokenBucket | AlgorithmKind::Gcra) {
            problems.push(ConfigProblem::error(
                at("burst"),
                "only token_bucket and gcra have a burst",
            ));
        }
        if c.algorithm == AlgorithmKind::SlidingWindowLog && c.limit > 10_000 {
            problems.push(ConfigProblem::error(
                at("limit"),
                "sliding_window_log keeps one timestamp per request: use sliding_window_counter above 10000",
            ));
        }
        if c.store == StoreKind::Redis && !has_redis {
            problems.push(ConfigProblem::error(
                at("store"),
                "`redis` needs a [redis] section with the server's url",
            ));
        }
        let key = match c.key.as_str() {
            "client_ip" => Some(KeyBy::ClientIp),
            "route" => Some(KeyBy::Route),
            "subject" => Some(KeyBy::Subject),
            "client_id" => Some(KeyBy::ClientId),
            "principal" => Some(KeyBy::Principal),
            k => match k
                .strip_prefix("header:")
                .map(|h| HeaderName::from_bytes(h.as_bytes()))
            {
                Some(Ok(h)) => Some(KeyBy::Header(h)),
                _ => {
                    problems.push(ConfigProblem::error(
                        at("key"),
                        format!(
                            "`{k}`: use client_ip, route, header:<name>, subject, client_id or principal"
                        ),
                    ));
                    None
                }
            },
        };
        let name = c.name.clone().unwrap_or_else(|| {
            if j == 0 && &*scope != "*" {
                "default".into()
            } else if &*scope == "*" {
                format!("global-{j}")
            } else {
                format!("limit-{j}")
            }
        });
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || name.is_empty()
        {
            problems.push(ConfigProblem::error(
                at("name"),
                "letters, digits, '-', '_' and '.' only",
            ));
        }
        if let Some(key) = key {
            let policy = format!("\"{name}\";q={};w={}", c.limit, secs_ceil(c.per));
            limits.push(LimitPolicy {
                kind: c.algorithm,
                rate: Rate {
                    limit: c.limit.max(1),
                    per: c.per,
                    burst: c.burst,
                },
                key,
                store: c.store,
                scope: scope.clone(),
                index: u16::try_from(j).unwrap_or(u16::MAX),
                tier: c.tier.clone().map(|t| (c.tier_claim.clone(), t)),
                policy,
                name,
            });
        }
    }
    if problems.is_empty() {
        Ok(limits)
    } else {
        Err(problems)
    }
}

// === impl RouteLimits ===

impl RouteLimits {
    /// Validates `routes[i].rate_limit` for route `id`, after the global
    /// limits of `traffic`.
    pub fn from_config(
        i: usize,
        id: &str,
        cfgs: &[RateLimitConfig],
        traffic: &TrafficPolicy,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let own = parse_limits(
            &format!("routes[{i}].rate_limit"),
            id,
            cfgs,
            traffic.redis_configured,
        )?;
        let limits: Vec<Arc<LimitPolicy>> = traffic
            .global
            .iter()
            .cloned()
            .chain(own.into_iter().map(Arc::new))
            .collect();
        let policy_header = (!limits.is_empty())
            .then(|| {
                limits
                    .iter()
                    .map(|l| l.policy.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .and_then(|v| HeaderValue::from_str(&v).ok());
        Ok(Self {
            limits,
            policy_header,
            redis: traffic.redis.clone(),
        })
    }

    /// Whether the route has limits.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Counts one request against every limit of the route. On success,
    /// the `RateLimit-Policy` and `RateLimit` values for the response.
    pub async fn admit(
        &self,
        store: &Limits,
        metrics: &Metrics,
        client: std::net::IpAddr,
        principal: Option<&crate::authn::Principal>,
        headers: &HeaderMap,
        now: Duration,
    ) -> Result<Option<(HeaderValue, HeaderValue)>, AdmitError> {
        let Some(all) = &self.policy_header else {
            return Ok(None);
        };
        let applies = |l: &LimitPolicy| match &l.tier {
            None => true,
            Some((claim, tier)) => {
                principal
                    .and_then(|p| p.extra().get(claim))
                    .and_then(|v| v.as_str())
                    == Some(tier.as_str())
            }
        };
        // With tier limits, RateLimit-Policy names only those that apply to
        // this caller (built per request); otherwise the prepared value.
        let tiered;
        let policy = if self.limits.iter().any(|l| l.tier.is_some()) {
            let names: Vec<&str> = self
                .limits
                .iter()
                .filter(|l| applies(l))
                .map(|l| l.policy.as_str())
                .collect();
            if names.is_empty() {
                return Ok(None);
            }
            tiered = HeaderValue::try_from(names.join(", ")).unwrap_or_else(|_| all.clone());
            &tiered
        } else {
            all
        };
        // The limit closest to refusing is the one the RateLimit header shows.
        let mut tightest: Option<(u32, Duration, &str)> = None;
        for l in &self.limits {
            if !applies(l) {
                continue;
            }
            let by_principal = |v: Option<&str>| -> KeyValue {
                match v {
                    Some(v) => KeyValue::Text(format!("p:{v}").into()),
                    None => KeyValue::Text(format!("ip:{client}").into()),
                }
            };
            let value: KeyValue = match &l.key {
                KeyBy::ClientIp => KeyValue::Ip(client),
                KeyBy::Route => KeyValue::Text("".into()),
                KeyBy::Header(h) => {
                    KeyValue::Text(headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("").into())
                }
                KeyBy::Subject => by_principal(principal.and_then(|p| p.subject())),
                KeyBy::ClientId => by_principal(principal.and_then(|p| p.client_id())),
                KeyBy::Principal => by_principal(principal.and_then(|p| p.subject().or(p.client_id()))),
            };
            let local = |value: KeyValue| {
                let key = (l.scope.clone(), l.index, value);
                store.store.decide(&AnyAlgorithm(l.kind), &l.rate, &key, now)
            };
            let decision = match (l.store, &self.redis) {
                (StoreKind::Redis, Some(r)) => {
                    let key = r.counter_key(l.kind, &l.scope, &l.name, &value.to_string());
                    match r.decide(l.kind, &l.rate, &key).await {
                        Ok(d) => d,
                        Err(_) => {
                            let on_failure = r.policy().on_failure;
                            let label = match on_failure {
                                FailurePolicy::Deny => "deny",
                                FailurePolicy::Allow => "allow",
                                FailurePolicy::Local => "local",
                            };
                            metrics
                                .rate_limit_fallbacks
                                .get_or_create(&crate::metrics::FallbackLabels { on_failure: label })
                                .inc();
                            match on_failure {
                                FailurePolicy::Deny => return Err(AdmitError::StoreDown),
                                FailurePolicy::Allow => continue,
                                FailurePolicy::Local => local(value),
                            }
                        }
                    }
                }
                _ => local(value),
            };
            match decision {
                Decision::Allow { remaining, reset } => {
                    if tightest.is_none_or(|(r, _, _)| remaining < r) {
                        tightest = Some((remaining, reset, &l.name));
                    }
                }
                Decision::Deny { retry_after, reset } => {
                    let state = format!("\"{}\";r=0;t={}", l.name, secs_ceil(reset.max(retry_after)));
                    return Err(AdmitError::Limited(RateLimited {
                        retry_after,
                        headers: (
                            policy.clone(),
                            HeaderValue::from_str(&state).unwrap_or_else(|_| policy.clone()),
                        ),
                        limit: l.name.clone(),
                    }));
                }
            }
        }
        Ok(tightest.and_then(|(remaining, reset, name)| {
            let state = format!("\"{name}\";r={remaining};t={}", secs_ceil(reset));
            HeaderValue::try_from(state).ok().map(|v| (policy.clone(), v))
        }))
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    secs_ceil(d).max(1)
}
