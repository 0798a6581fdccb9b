//! Rate limiting (OWASP API4): how many requests a key may make on a route.
//!
//! A route lists limits (`[[routes.rate_limit]]`); each names one of five
//! algorithms ([`algorithm`]: pure, clock-injected state machines, each with
//! its promise documented and tested), a rate, and what a counter is kept
//! per (client address, the route, a header). Counters live in a bounded,
//! sharded in-memory store ([`memory`]) owned by the running process, so a
//! policy reload keeps them. A request must pass every limit of its route;
//! the first refusal answers 429 with `Retry-After`, and every answer on a
//! limited route carries the IETF `RateLimit-Policy` and `RateLimit`
//! headers.
//!
//! How it fails: closed. A store shard that cannot be used refuses.
//! A request that passes one limit and is refused by a later one has still
//! been counted by the first (as in most gateways).
//!
//! Not yet (the rest of the traffic-control capability): the Redis store and
//! its failure policy, keys from the principal (subject, client id, API key,
//! which need authentication), global and per-tier limits, concurrency
//! limits, quotas, idempotency.

pub mod algorithm;
pub mod concurrency;
pub mod config;
pub mod idempotency;
pub mod memory;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use self::algorithm::{fixed_window, gcra, sliding_window_counter, sliding_window_log, token_bucket};
use self::algorithm::{Algorithm, Decision, Rate};
use self::config::{AlgorithmKind, RateLimitConfig};
use self::memory::MemoryStore;
use crate::config::ConfigProblem;

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
struct AnyAlgorithm(AlgorithmKind);

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

/// A counter's identity: route, limit index, key value.
type CounterKey = (Arc<str>, u16, Box<str>);

/// The process's traffic state, which outlives reloads: rate-limit
/// counters, idempotency records and bans.
pub struct Limits {
    store: MemoryStore<CounterKey, AnyState>,
    /// `Idempotency-Key` records.
    pub idempotency: Arc<idempotency::IdempotencyStore>,
    /// Dynamic bans.
    pub bans: crate::ip_filter::bans::BanList,
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
            bans: Default::default(),
        })
    }
}

/// What a counter is kept per.
#[derive(Debug, Clone)]
enum KeyBy {
    ClientIp,
    Route,
    Header(HeaderName),
}

#[derive(Debug)]
struct LimitPolicy {
    kind: AlgorithmKind,
    rate: Rate,
    key: KeyBy,
    /// `"name";q=limit;w=seconds`.
    policy: String,
    name: String,
}

/// A route's validated limits.
#[derive(Debug, Default)]
pub struct RouteLimits {
    limits: Vec<LimitPolicy>,
    policy_header: Option<HeaderValue>,
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

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

// === impl RouteLimits ===

impl RouteLimits {
    /// Validates `routes[i].rate_limit`.
    pub fn from_config(i: usize, cfgs: &[RateLimitConfig]) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut limits = Vec::new();
        for (j, c) in cfgs.iter().enumerate() {
            let at = |k: &str| format!("routes[{i}].rate_limit[{j}].{k}");
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
            let key = match c.key.as_str() {
                "client_ip" => Some(KeyBy::ClientIp),
                "route" => Some(KeyBy::Route),
                k => match k
                    .strip_prefix("header:")
                    .map(|h| HeaderName::from_bytes(h.as_bytes()))
                {
                    Some(Ok(h)) => Some(KeyBy::Header(h)),
                    _ => {
                        problems.push(ConfigProblem::error(
                            at("key"),
                            format!(
                                "`{k}`: use client_ip, route or header:<name> (subject, client id and API \
                                 key arrive with authentication)"
                            ),
                        ));
                        None
                    }
                },
            };
            let name = c.name.clone().unwrap_or_else(|| {
                if j == 0 {
                    "default".into()
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
                    policy,
                    name,
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
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
        })
    }

    /// Whether the route has limits.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Counts one request against every limit of the route. On success,
    /// the `RateLimit-Policy` and `RateLimit` values for the response.
    pub fn admit(
        &self,
        store: &Limits,
        route: &Arc<str>,
        client: std::net::IpAddr,
        headers: &HeaderMap,
        now: Duration,
    ) -> Result<Option<(HeaderValue, HeaderValue)>, RateLimited> {
        let Some(policy) = &self.policy_header else {
            return Ok(None);
        };
        // The limit closest to refusing is the one the RateLimit header shows.
        let mut tightest: Option<(u32, Duration, &str)> = None;
        for (j, l) in self.limits.iter().enumerate() {
            let value: Box<str> = match &l.key {
                KeyBy::ClientIp => client.to_string().into(),
                KeyBy::Route => "".into(),
                KeyBy::Header(h) => headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("").into(),
            };
            let key = (route.clone(), u16::try_from(j).unwrap_or(u16::MAX), value);
            match store.store.decide(&AnyAlgorithm(l.kind), &l.rate, &key, now) {
                Decision::Allow { remaining, reset } => {
                    if tightest.is_none_or(|(r, _, _)| remaining < r) {
                        tightest = Some((remaining, reset, &l.name));
                    }
                }
                Decision::Deny { retry_after, reset } => {
                    let state = format!("\"{}\";r=0;t={}", l.name, secs_ceil(reset.max(retry_after)));
                    return Err(RateLimited {
                        retry_after,
                        headers: (
                            policy.clone(),
                            HeaderValue::from_str(&state).unwrap_or_else(|_| policy.clone()),
                        ),
                        limit: l.name.clone(),
                    });
                }
            }
        }
        Ok(tightest.and_then(|(remaining, reset, name)| {
            let state = format!("\"{name}\";r={remaining};t={}", secs_ceil(reset));
            HeaderValue::from_str(&state).ok().map(|v| (policy.clone(), v))
        }))
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    secs_ceil(d).max(1)
}
