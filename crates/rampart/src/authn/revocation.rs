//! Revocation: a denylist of access tokens (`jti`), subjects (`sub`) and
//! clients (`client_id`), each entry with an expiry, checked on every
//! authenticated request, whether its token verdict came from the cache or
//! not.
//!
//! Threat answered: a stolen or leaked token (or a compromised customer or
//! partner) that stays valid until its `exp`. An operator revokes it
//! (`POST /admin/revocations`, `rampart revoke`) and the very next request
//! that carries it is refused with 401 `invalid_token`; the precise cause
//! (`authn.revoked_jti`, `authn.revoked_sub`, `authn.revoked_client_id`)
//! goes to the log only.
//!
//! Where entries live (`[revocation] store`):
//! - `memory` (default): this process's [`RevocationList`], bounded
//!   ([`MAX_REVOCATIONS`]; adding to a full list is refused, never silently
//!   forgetting an entry), expired entries dropped. It outlives reloads.
//! - `redis`: one key per entry on the `[redis]` server with a Redis expiry,
//!   all under one hash tag so the check is one `MGET` of the principal's
//!   1–3 keys: every gateway sharing the server sees a revocation (and an
//!   unrevoke) on the next request. Redis decides; entries are also kept in
//!   the local list of the gateway that received them, for outages.
//!
//! How it fails: closed. With `store = "redis"`, if Redis cannot answer
//! within its timeout (or is marked down), `[redis] on_failure = "deny"`
//! refuses the request with 503 (`overloaded`, cause
//! `authn.revocation_unavailable`); `"local"` and `"allow"` fall back to
//! the local list only, which then misses revocations made through other
//! gateways (and may keep one lifted through another gateway) until Redis
//! answers again.
//! Entries match whatever issuer vouched for the token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::{AuthnError, Principal};
use crate::clock::SharedClock;
use crate::config::ConfigProblem;
use crate::rate_limit::config::{FailurePolicy, StoreKind};
use crate::rate_limit::redis::{RedisStore, StoreError};

/// Most entries held in memory at once.
pub const MAX_REVOCATIONS: usize = 100_000;

/// Longest revocation accepted.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest value accepted (a `jti`, `sub` or `client_id`).
pub const MAX_VALUE_LEN: usize = 512;

/// Most entries listed from Redis.
const MAX_LISTED: usize = 10_000;

/// `[revocation]`, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// `memory` (default: this gateway only) or `redis` (every gateway on
    /// the `[redis]` server sees a revocation on its next request).
    #[serde(default)]
    pub store: StoreKind,
}

/// `[revocation]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationPolicy {
    /// Where entries live.
    pub store: StoreKind,
}

impl RevocationPolicy {
    /// Validates `[revocation]`; `has_redis`: the policy has `[redis]`.
    pub fn from_config(c: &RevocationConfig, has_redis: bool) -> Result<Self, Vec<ConfigProblem>> {
        if c.store == StoreKind::Redis && !has_redis {
            return Err(vec![ConfigProblem::error(
                "revocation.store",
                "`redis` needs a [redis] section with the server's url",
            )]);
        }
        Ok(Self { store: c.store })
    }
}

/// What an entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// One token, by its `jti`.
    Jti,
    /// Every token of a subject (`sub`).
    Sub,
    /// Every token of a client (`client_id`, or `azp`).
    ClientId,
}

impl RevocationKind {
    /// Every kind, in the order a principal is checked.
    pub const ALL: [Self; 3] = [Self::Jti, Self::Sub, Self::ClientId];

    /// `jti`, `sub` or `client_id`: the name in the admin API and in Redis
    /// keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Sub => "sub",
            Self::ClientId => "client_id",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn index(self) -> usize {
        match self {
            Self::Jti => 0,
            Self::Sub => 1,
            Self::ClientId => 2,
        }
    }

    /// The principal's value for this kind.
    fn of(self, p: &Principal) -> Option<&str> {
        match self {
            Self::Jti => p.token_id(),
            Self::Sub => p.subject(),
            Self::ClientId => p.client_id(),
        }
    }
}

impl std::fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What it names.
    pub kind: RevocationKind,
    /// The `jti`, `sub` or `client_id`.
    pub value: String,
    /// When it ends (wall clock).
    pub expires_at: SystemTime,
    /// Why (free text from the operator; never shown to clients).
    pub reason: String,
}

/// Why a revocation could not be added, lifted or listed.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The local list is full.
    #[error("the revocation list is full ({MAX_REVOCATIONS} entries)")]
    Full,
    /// The value or TTL is not acceptable.
    #[error("{0}")]
    Invalid(&'static str),
    /// Redis could not be asked or written. A new revocation then holds on
    /// this gateway only; an unrevoke or a listing did nothing.
    #[error("the shared revocation store could not be reached: {0}")]
    Store(#[source] StoreError),
}

#[derive(Debug)]
struct Entry {
    until: Duration,
    until_wall: SystemTime,
    reason: String,
}

/// This process's entries: bounded, expired ones dropped, kept across
/// reloads.
#[derive(Debug, Default)]
pub struct RevocationList {
    maps: RwLock<[HashMap<String, Entry>; 3]>,
    /// Entries held (expired ones included until dropped): an empty list
    /// costs a request one atomic load.
    len: AtomicUsize,
}

impl RevocationList {
    /// Revokes `value` of `kind` until `now + ttl` (replacing an earlier
    /// entry for it). When the list is full, expired entries are dropped to
    /// make room; if none has expired, the revocation is refused.
    pub fn revoke(
        &self,
        kind: RevocationKind,
        value: &str,
        ttl: Duration,
        now: Duration,
        wall: SystemTime,
        reason: &str,
    ) -> Result<Revocation, RevocationError> {
        check_value(value)?;
        let mut maps = self.maps.write().map_err(|_| RevocationError::Full)?;
        let full = |maps: &[HashMap<String, Entry>; 3]| {
            maps.iter().map(HashMap::len).sum::<usize>() >= MAX_REVOCATIONS
                && !maps[kind.index()].contains_key(value)
        };
        if full(&maps) {
            // Only when full: expired entries make room.
            for m in maps.iter_mut() {
                m.retain(|_, e| e.until > now);
            }
            if full(&maps) {
                self.len
                    .store(maps.iter().map(HashMap::len).sum(), Ordering::Release);
                return Err(RevocationError::Full);
            }
        }
        let map = &mut maps[kind.index()];
        let reason: String = reason.chars().take(200).collect();
        map.insert(
            value.to_owned(),
            Entry {
                until: now + ttl,
                until_wall: wall + ttl,
                reason: reason.clone(),
            },
        );
        self.len
            .store(maps.iter().map(HashMap::len).sum(), Ordering::Release);
        Ok(Revocation {
            kind,
            value: value.to_owned(),
            expires_at: wall + ttl,
            reason,
        })
    }

    /// Lifts the entry for `value` of `kind`; whether there was one.
    pub fn unrevoke(&self, kind: RevocationKind, value: &str) -> bool {
        let Ok(mut maps) = self.maps.write() else {
            return false;
        };
        let removed = maps[kind.index()].remove(value).is_some();
        self.len
            .store(maps.iter().map(HashMap::len).sum(), Ordering::Release);
        removed
    }

    /// The first kind (`jti`, then `sub`, then `client_id`) under which
    /// `principal` is revoked at `now`. A poisoned list counts as revoking
    /// everyone (fail closed).
    pub fn check(&self, principal: &Principal, now: Duration) -> Option<RevocationKind> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let Ok(maps) = self.maps.read() else {
            return Some(RevocationKind::Jti);
        };
        RevocationKind::ALL.into_iter().find(|k| {
            k.of(principal)
                .and_then(|v| maps[k.index()].get(v))
                .is_some_and(|e| e.until > now)
        })
    }

    /// The entries in force at `now`.
    pub fn list(&self, now: Duration) -> Vec<Revocation> {
        let Ok(maps) = self.maps.read() else {
            return Vec::new();
        };
        RevocationKind::ALL
            .into_iter()
            .flat_map(|k| {
                maps[k.index()]
                    .iter()
                    .filter(|(_, e)| e.until > now)
                    .map(move |(v, e)| Revocation {
                        kind: k,
                        value: v.clone(),
                        expires_at: e.until_wall,
                        reason: e.reason.clone(),
                    })
            })
            .collect()
    }

    /// Entries held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check_value(value: &str) -> Result<(), RevocationError> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(RevocationError::Invalid("the value must be 1 to 512 bytes long"));
    }
    Ok(())
}

/// What one Redis key holds.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Record {
    kind: String,
    value: String,
    reason: String,
    /// Unix milliseconds.
    expires_ms: u64,
}

/// The revocation check of one policy snapshot: the process's list and,
/// with `store = "redis"`, the shared store.
#[derive(Debug, Clone)]
pub struct Revocations {
    list: Arc<RevocationList>,
    redis: Option<Arc<RedisStore>>,
    clock: SharedClock,
}

impl Revocations {
    /// Validates `[revocation]`; `redis` is the policy's `[redis]` store
    /// (if valid) and `has_redis` whether the policy has the section.
    pub fn from_config(
        c: &RevocationConfig,
        list: Arc<RevocationList>,
        redis: Option<&Arc<RedisStore>>,
        has_redis: bool,
        clock: SharedClock,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let policy = RevocationPolicy::from_config(c, has_redis)?;
        Ok(Self {
            list,
            redis: match policy.store {
                StoreKind::Redis => redis.cloned(),
                StoreKind::Memory => None,
            },
            clock,
        })
    }

    /// The process's list only.
    pub fn memory(list: Arc<RevocationList>, clock: SharedClock) -> Self {
        Self {
            list,
            redis: None,
            clock,
        }
    }

    /// Whether entries are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Refuses a revoked principal: `Revoked(kind)`, or
    /// `RevocationUnavailable` when Redis cannot answer and `on_failure`
    /// is `deny`.
    pub async fn check(&self, principal: &Principal) -> Result<(), AuthnError> {
        let local = || match self.list.check(principal, self.clock.monotonic()) {
            Some(kind) => Err(AuthnError::Revoked(kind)),
            None => Ok(()),
        };
        let Some(redis) = &self.redis else {
            return local();
        };
        let mut kinds = Vec::with_capacity(3);
        let mut keys = Vec::with_capacity(3);
        for k in RevocationKind::ALL {
            if let Some(v) = k.of(principal) {
                kinds.push(k);
                keys.push(redis.revocation_key(k.as_str(), v));
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        match redis.mget("revocation", &keys).await {
            Ok(found) => match kinds.iter().zip(found).find(|(_, v)| v.is_some()) {
                Some((k, _)) => Err(AuthnError::Revoked(*k)),
                None => Ok(()),
            },
            Err(_) => match redis.policy().on_failure {
                FailurePolicy::Deny => Err(AuthnError::RevocationUnavailable),
                FailurePolicy::Local | FailurePolicy::Allow => local(),
            },
        }
    }

    /// Revokes `value` of `kind` for `ttl`: here, and on Redis when shared.
    /// The local entry holds even if Redis fails (the error says so).
    pub async fn revoke(
        &self,
        kind: RevocationKind,
        value: &str,
        ttl: Duration,
        reason: &str,
    ) -> Result<Revocation, RevocationError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(RevocationError::Invalid(
                "the ttl must be more than 0 and at most 366 days",
            ));
        }
        let r = self
            .list
            .revoke(kind, value, ttl, self.clock.monotonic(), self.clock.now(), reason)?;
        if let Some(redis) = &self.redis {
            let record = Record {
                kind: kind.as_str().to_owned(),
                value: r.value.clone(),
                reason: r.reason.clone(),
                expires_ms: unix_ms(r.expires_at),
            };
            let json = serde_json::to_string(&record).map_err(|_| RevocationError::Invalid("unencodable"))?;
            redis
                .set_px(
                    "revocation",
                    &redis.revocation_key(kind.as_str(), value),
                    &json,
                    ttl,
                )
                .await
                .map_err(RevocationError::Store)?;
        }
        Ok(r)
    }

    /// Lifts an entry everywhere; whether there was one. When shared and
    /// Redis cannot answer, nothing changes.
    pub async fn unrevoke(&self, kind: RevocationKind, value: &str) -> Result<bool, RevocationError> {
        check_value(value)?;
        let mut removed = false;
        if let Some(redis) = &self.redis {
            removed = redis
                .del("revocation", &redis.revocation_key(kind.as_str(), value))
                .await
                .map_err(RevocationError::Store)?;
        }
        Ok(self.list.unrevoke(kind, value) || removed)
    }

    /// The entries in force: Redis's when shared (at most 10 000), else
    /// this process's.
    pub async fn list(&self) -> Result<Vec<Revocation>, RevocationError> {
        let Some(redis) = &self.redis else {
            return Ok(self.list.list(self.clock.monotonic()));
        };
        let raw = redis
            .scan_values("revocation", &redis.revocation_key_pattern(), MAX_LISTED)
            .await
            .map_err(RevocationError::Store)?;
        let now = unix_ms(self.clock.now());
        let mut out: Vec<Revocation> = raw
            .iter()
            .filter_map(|s| serde_json::from_str::<Record>(s).ok())
            .filter(|r| r.expires_ms > now)
            .filter_map(|r| {
                Some(Revocation {
                    kind: RevocationKind::parse(&r.kind)?,
                    value: r.value,
                    expires_at: UNIX_EPOCH + Duration::from_millis(r.expires_ms),
                    reason: r.reason,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.kind.index(), &a.value).cmp(&(b.kind.index(), &b.value)));
        Ok(out)
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::{Clock, FakeClock};
    use serde_json::json;

    fn principal(claims: serde_json::Value) -> Principal {
        let serde_json::Value::Object(map) = claims else {
            unreachable!()
        };
        Principal::from_claims(Arc::from("idp"), map, 0)
    }

    fn alice() -> Principal {
        principal(json!({"sub": "alice", "client_id": "fintech-1", "jti": "t-1"}))
    }

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn each_kind_revokes_and_jti_is_reported_first() {
        let list = RevocationList::default();
        let t0 = Duration::from_secs(10);
        let wall = SystemTime::UNIX_EPOCH;
        assert_eq!(list.check(&alice(), t0), None);
        list.revoke(
            RevocationKind::ClientId,
            "fintech-1",
            H,
            t0,
            wall,
            "partner breach",
        )
        .unwrap();
        assert_eq!(list.check(&alice(), t0), Some(RevocationKind::ClientId));
        list.revoke(RevocationKind::Sub, "alice", H, t0, wall, "")
            .unwrap();
        assert_eq!(list.check(&alice(), t0), Some(RevocationKind::Sub));
        list.revoke(RevocationKind::Jti, "t-1", H, t0, wall, "").unwrap();
        assert_eq!(list.check(&alice(), t0), Some(RevocationKind::Jti));
        // Someone else is untouched; a value of one kind does not match
        // another kind.
        let bob = principal(json!({"sub": "bob", "jti": "alice"}));
        assert_eq!(list.check(&bob, t0), None);
        assert_eq!(list.list(t0).len(), 3);
        assert!(list.unrevoke(RevocationKind::Jti, "t-1"));
        assert!(!list.unrevoke(RevocationKind::Jti, "t-1"));
        assert_eq!(list.check(&alice(), t0), Some(RevocationKind::Sub));
    }

    #[tokio::test]
    async fn entries_expire_with_the_clock() {
        let clock = FakeClock::at_unix(1_700_000_000);
        let r = Revocations::memory(Arc::default(), clock.clone());
        let e = r
            .revoke(
                RevocationKind::Sub,
                "alice",
                Duration::from_secs(60),
                "stolen phone",
            )
            .await
            .unwrap();
        assert_eq!(e.expires_at, UNIX_EPOCH + Duration::from_secs(1_700_000_060));
        assert_eq!(
            r.check(&alice()).await,
            Err(AuthnError::Revoked(RevocationKind::Sub))
        );
        clock.advance(Duration::from_secs(59));
        assert!(r.check(&alice()).await.is_err());
        clock.advance(Duration::from_secs(1));
        assert_eq!(r.check(&alice()).await, Ok(()));
        assert!(r.list().await.unwrap().is_empty());
        assert_eq!(clock.monotonic(), Duration::from_secs(60));
    }

    #[test]
    fn the_list_is_bounded_and_expired_entries_make_room() {
        let list = RevocationList::default();
        let t0 = Duration::ZERO;
        let wall = SystemTime::UNIX_EPOCH;
        for i in 0..MAX_REVOCATIONS {
            list.revoke(RevocationKind::Jti, &format!("t-{i}"), H, t0, wall, "")
                .unwrap();
        }
        assert!(matches!(
            list.revoke(RevocationKind::Sub, "one-more", H, t0, wall, ""),
            Err(RevocationError::Full)
        ));
        // Renewing an entry already held is not growth.
        assert!(list
            .revoke(RevocationKind::Jti, "t-7", H * 2, t0, wall, "")
            .is_ok());
        // Once the first ones expire, there is room again, and the expired
        // ones are gone.
        assert!(list
            .revoke(RevocationKind::Sub, "one-more", H, H, wall, "")
            .is_ok());
        assert_eq!(list.len(), 2);
        assert_eq!(list.list(H).len(), 2);
    }

    #[tokio::test]
    async fn bad_values_and_ttls_are_refused() {
        let r = Revocations::memory(Arc::default(), FakeClock::at_unix(0));
        for (v, ttl) in [
            ("", H),
            (&*"x".repeat(MAX_VALUE_LEN + 1), H),
            ("ok", Duration::ZERO),
            ("ok", MAX_TTL + Duration::from_secs(1)),
        ] {
            assert!(matches!(
                r.revoke(RevocationKind::Jti, v, ttl, "").await,
                Err(RevocationError::Invalid(_))
            ));
        }
        assert!(r.list.is_empty());
    }

    #[test]
    fn redis_store_needs_a_redis_section() {
        let c = RevocationConfig {
            store: StoreKind::Redis,
        };
        let p = RevocationPolicy::from_config(&c, false).unwrap_err();
        assert_eq!(p[0].path, "revocation.store");
        assert!(RevocationPolicy::from_config(&c, true).is_ok());
    }
}
