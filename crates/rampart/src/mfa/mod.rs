//! Second factors verified by the gateway: RFC 6238 TOTP codes, for
//! transaction confirmation on routes (`[routes.authz.confirm]`) and for
//! people signing in to the admin plane.
//!
//! - [`totp`]: RFC 6238/4226 codes, base32, `otpauth://` URIs.
//! - [`crypto`]: [`KeyRing`], AES-256-GCM sealing of secrets at rest with a
//!   key id (rotation without rewriting: old keys open, the current seals;
//!   `rampart mfa rekey` reseals).
//! - [`Mfa`]: enrolments in the [`RecordStore`](crate::store::RecordStore)
//!   (`rampart mfa enrol|list|reset`), and [`Mfa::check`]: a code is
//!   accepted once (a replay cache in memory or on Redis), within ±1 step
//!   of now; failures in a row lock the factor out, each lockout twice as
//!   long as the last.
//!
//! Threat answered: a stolen session or token moving money without the
//! customer's device, codes replayed from a shoulder-surf or a log, codes
//! guessed online. How it fails: closed. An unreadable store, a key that
//! does not open a secret, a replay cache that cannot answer: refused
//! ([`MfaError`]), and every attempt is counted and logged (user, outcome;
//! never the code).

pub mod config;
pub mod crypto;
pub mod totp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::config::MfaConfig;
pub use self::crypto::{KeyRing, SealError, Sealed};
use self::totp::Algorithm;
use crate::authn::dpop::{MemoryReplayCache, ReplayCache};
use crate::clock::SharedClock;
use crate::config::{ConfigProblem, LoadedConfig};
use crate::secret::Secret;
use crate::store::{RecordStore, StoreError, StoreLocation};

/// The record kind of customers' enrolments in the store.
pub const KIND: &str = "totp";

/// Most users tracked for lockouts; past it, entries without a lockout in
/// force are dropped.
pub const MAX_TRACKED: usize = 100_000;

/// Why a code was not accepted, or a factor could not be managed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    /// The user has no enrolment.
    #[error("no enrolment for this user")]
    NotEnrolled,
    /// The code matches no step within the drift.
    #[error("wrong code")]
    WrongCode,
    /// The code was accepted before.
    #[error("code already used")]
    Replayed,
    /// Too many failures; locked for this long.
    #[error("locked for {0:?}")]
    Locked(Duration),
    /// The user already has an enrolment (reset it first).
    #[error("already enrolled (rampart mfa reset first)")]
    AlreadyEnrolled,
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sealed secret does not open.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A stored record is not what this version writes.
    #[error("stored record unreadable: {0}")]
    Corrupt(String),
    /// The replay cache could not answer (Redis down, `on_failure = "deny"`).
    #[error("replay cache unavailable: {0}")]
    ReplayUnavailable(String),
    /// Bad input (a user id, digits).
    #[error("{0}")]
    InvalidInput(String),
}

impl MfaError {
    /// Whether this is the system failing rather than the code being wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Store(_) | Self::Seal(_) | Self::Corrupt(_) | Self::ReplayUnavailable(_)
        )
    }
}

/// One enrolled factor as stored: the sealed secret and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factor {
    /// The HMAC.
    pub algorithm: Algorithm,
    /// Code length (6 or 8).
    pub digits: u32,
    /// The sealed seed.
    pub secret: Sealed,
    /// Unix seconds.
    pub created_at: i64,
}

/// A new enrolment: the seed (shown once) and its `otpauth://` URI.
#[derive(Debug)]
pub struct Enrolment {
    /// The seed, base32, for manual entry.
    pub secret_base32: Secret<String>,
    /// The `otpauth://totp/…` URI (QR code content).
    pub uri: Secret<String>,
    /// What was stored.
    pub factor: Factor,
}

/// `[mfa]`, validated.
#[derive(Debug)]
pub struct MfaPolicy {
    /// Where enrolments live.
    pub store: StoreLocation,
    /// Sealing keys.
    pub keys: KeyRing,
    /// Issuer label for authenticator apps.
    pub issuer: String,
    /// Where used codes are remembered.
    pub replay_store: crate::rate_limit::config::StoreKind,
    /// Failures before a lockout.
    pub max_failures: u32,
    /// First lockout.
    pub lockout: Duration,
    /// Longest lockout.
    pub max_lockout: Duration,
}

fn read_key(
    at: &str,
    file: Option<&std::path::Path>,
    env: Option<&str>,
    loaded: &LoadedConfig,
) -> Result<Secret<Vec<u8>>, ConfigProblem> {
    let (key, text) = match (file, env) {
        (Some(_), Some(_)) => {
            return Err(ConfigProblem::error(
                format!("{at}_env"),
                "set the key's file or its environment variable, not both",
            ))
        }
        (None, None) => return Err(ConfigProblem::error(
            format!("{at}_file"),
            "required: a file holding the sealing key (32 bytes, base64), or the _env variable naming one",
        )),
        (Some(f), None) => {
            let path = loaded.resolve(f);
            match std::fs::read_to_string(&path) {
                Ok(t) => (format!("{at}_file"), t),
                Err(e) => {
                    return Err(ConfigProblem::error(
                        format!("{at}_file"),
                        format!("cannot read {}: {e}", path.display()),
                    ))
                }
            }
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(t) => (format!("{at}_env"), t),
            Err(_) => {
                return Err(ConfigProblem::error(
                    format!("{at}_env"),
                    format!("environment variable `{var}` is not set"),
                ))
            }
        },
    };
    crypto::decode_key(&text).map_err(|e| ConfigProblem::error(key, format!("the key {e}")))
}

impl MfaPolicy {
    /// Validates `[mfa]` and reads its keys. `redis_configured` says whether
    /// a `[redis]` section exists (for `replay_store = "redis"`).
    pub fn from_config(
        cfg: &MfaConfig,
        loaded: &LoadedConfig,
        redis_configured: bool,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let store = StoreLocation::parse(&cfg.store, |p| loaded.resolve(p))
            .map_err(|e| problems.push(ConfigProblem::error("mfa.store", e)))
            .ok();
        let current = read_key("mfa.key", cfg.key_file.as_deref(), cfg.key_env.as_deref(), loaded)
            .map_err(|p| problems.push(p))
            .ok();
        let valid_id = |id: &str| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !valid_id(&cfg.key_id) {
            problems.push(ConfigProblem::error(
                "mfa.key_id",
                "letters, digits, `-`, `_` and `.`, at most 64",
            ));
        }
        let mut old = Vec::new();
        for (i, k) in cfg.old_keys.iter().enumerate() {
            if !valid_id(&k.id) || k.id == cfg.key_id || cfg.old_keys[..i].iter().any(|o| o.id == k.id) {
                problems.push(ConfigProblem::error(
                    format!("mfa.old_keys[{i}].id"),
                    "must be a valid id, unique, and not the current key_id",
                ));
            }
            match read_key(
                &format!("mfa.old_keys[{i}].key"),
                k.file.as_deref(),
                k.env.as_deref(),
                loaded,
            ) {
                Ok(s) => old.push((k.id.clone(), s)),
                Err(mut p) => {
                    p.path = p.path.replace(".key_file", ".file").replace(".key_env", ".env");
                    problems.push(p)
                }
            }
        }
        if cfg.max_failures == 0 {
            problems.push(ConfigProblem::error("mfa.max_failures", "must be at least 1"));
        }
        if cfg.lockout.is_zero() || cfg.max_lockout < cfg.lockout {
            problems.push(ConfigProblem::error(
                "mfa.lockout",
                "must be more than 0 and at most max_lockout",
            ));
        }
        if cfg.issuer.trim().is_empty() || cfg.issuer.contains(':') {
            problems.push(ConfigProblem::error(
                "mfa.issuer",
                "must not be empty nor contain `:`",
            ));
        }
        if cfg.replay_store == crate::rate_limit::config::StoreKind::Redis && !redis_configured {
            problems.push(ConfigProblem::error(
                "mfa.replay_store",
                "`redis` needs a [redis] section with the server's url",
            ));
        }
        match (store, current) {
            (Some(store), Some(current)) if problems.is_empty() => Ok(Self {
                store,
                keys: KeyRing::new((cfg.key_id.clone(), current), old),
                issuer: cfg.issuer.clone(),
                replay_store: cfg.replay_store,
                max_failures: cfg.max_failures,
                lockout: cfg.lockout,
                max_lockout: cfg.max_lockout,
            }),
            _ => Err(problems),
        }
    }
}

/// Failures and lockouts of one factor.
#[derive(Debug, Clone, Copy, Default)]
struct Lock {
    failures: u32,
    lockouts: u32,
    /// Monotonic end of the lockout in force.
    until: Option<Duration>,
}

/// State that outlives reloads: lockouts and the memory replay cache.
#[derive(Debug)]
pub struct MfaState {
    locks: Mutex<HashMap<String, Lock>>,
    replay: Arc<MemoryReplayCache>,
}

impl MfaState {
    /// Fresh state.
    pub fn new(clock: SharedClock) -> Arc<Self> {
        Arc::new(Self {
            locks: Mutex::default(),
            replay: Arc::new(MemoryReplayCache::new(MAX_TRACKED, clock)),
        })
    }
}

/// Second factors: the store, the keys, the replay cache and lockouts.
#[derive(Debug)]
pub struct Mfa {
    policy: MfaPolicy,
    store: RecordStore,
    state: Arc<MfaState>,
    replay: Arc<dyn ReplayCache>,
    clock: SharedClock,
}

/// How long a used code is remembered: every step it could match in.
const REPLAY_TTL: Duration = Duration::from_secs((2 * totp::DRIFT + 1) * totp::STEP + totp::STEP);

fn valid_user(user: &str) -> Result<(), MfaError> {
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err(MfaError::InvalidInput(
            "a user id is 1 to 256 characters, without control characters".into(),
        ));
    }
    Ok(())
}

impl Mfa {
    /// Second factors under `policy`, with process state `state`; codes
    /// are remembered on `redis` when given (the policy's `replay_store`).
    pub fn new(
        policy: MfaPolicy,
        state: Arc<MfaState>,
        redis: Option<Arc<crate::rate_limit::redis::RedisStore>>,
        clock: SharedClock,
    ) -> Self {
        let replay: Arc<dyn ReplayCache> = match (policy.replay_store, redis) {
            (crate::rate_limit::config::StoreKind::Redis, Some(r)) => {
                Arc::new(crate::authn::dpop::RedisReplayCache::new(r, state.replay.clone()))
            }
            _ => state.replay.clone(),
        };
        let store = RecordStore::new(policy.store.clone());
        Self {
            policy,
            store,
            state,
            replay,
            clock,
        }
    }

    /// The store (admin users live there too).
    pub fn store(&self) -> &RecordStore {
        &self.store
    }

    /// The sealing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.policy.keys
    }

    /// The issuer label.
    pub fn issuer(&self) -> &str {
        &self.policy.issuer
    }

    fn unix(&self) -> i64 {
        self.clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    /// A new factor for `owner` (a fresh random seed, sealed for
    /// `purpose`), with its URI for an authenticator app labelled `account`.
    pub fn new_factor(
        &self,
        purpose: &str,
        owner: &str,
        account: &str,
        alg: Algorithm,
        digits: u32,
    ) -> Result<Enrolment, MfaError> {
        if digits != 6 && digits != 8 {
            return Err(MfaError::InvalidInput("digits must be 6 or 8".into()));
        }
        let mut seed = vec![0u8; alg.secret_len()];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| MfaError::Seal(SealError::Random))?;
        let secret = self.policy.keys.seal(purpose, owner, &seed)?;
        let factor = Factor {
            algorithm: alg,
            digits,
            secret,
            created_at: self.unix(),
        };
        Ok(Enrolment {
            secret_base32: Secret::new(totp::base32_encode(&seed)),
            uri: Secret::new(totp::otpauth_uri(
                &self.policy.issuer,
                account,
                &seed,
                alg,
                digits,
            )),
            factor,
        })
    }

    /// Enrols a customer (`rampart mfa enrol`); refused if enrolled.
    pub async fn enrol(&self, user: &str, alg: Algorithm, digits: u32) -> Result<Enrolment, MfaError> {
        valid_user(user)?;
        let e = self.new_factor(KIND, user, user, alg, digits)?;
        let record = serde_json::to_string(&e.factor).map_err(|e| MfaError::Corrupt(e.to_string()))?;
        if !self.store.insert_new(KIND, user, &record, self.unix()).await? {
            return Err(MfaError::AlreadyEnrolled);
        }
        Ok(e)
    }

    /// Every customer enrolment.
    pub async fn list(&self) -> Result<Vec<(String, Factor)>, MfaError> {
        self.store
            .list(KIND)
            .await?
            .into_iter()
            .map(|(id, r)| {
                serde_json::from_str(&r)
                    .map(|f| (id, f))
                    .map_err(|e| MfaError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Removes a customer's enrolment (and its lockout); false if none.
    pub async fn reset(&self, user: &str) -> Result<bool, MfaError> {
        valid_user(user)?;
        if let Ok(mut locks) = self.state.locks.lock() {
            locks.remove(&format!("{KIND}:{user}"));
        }
        Ok(self.store.delete(KIND, user).await?)
    }

    /// Reseals every customer enrolment under the current key; the number
    /// resealed.
    pub async fn rekey(&self) -> Result<usize, MfaError> {
        let mut n = 0;
        for (user, mut f) in self.list().await? {
            if f.secret.key_id == self.policy.keys.current_id() {
                continue;
            }
            let seed = self.policy.keys.open(KIND, &user, &f.secret)?;
            f.secret = self.policy.keys.seal(KIND, &user, seed.expose())?;
            let record = serde_json::to_string(&f).map_err(|e| MfaError::Corrupt(e.to_string()))?;
            self.store.put(KIND, &user, &record, self.unix()).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Checks a customer's confirmation code.
    pub async fn confirm(&self, user: &str, code: &str) -> Result<(), MfaError> {
        valid_user(user)?;
        let key = format!("{KIND}:{user}");
        if let Some(left) = self.locked_for(&key) {
            return Err(MfaError::Locked(left));
        }
        let factor = match self.store.get(KIND, user).await? {
            Some(r) => serde_json::from_str::<Factor>(&r).map_err(|e| MfaError::Corrupt(e.to_string()))?,
            None => return Err(self.failed(&key, MfaError::NotEnrolled)),
        };
        self.check(KIND, user, &key, &factor, code).await
    }

    /// Checks `code` against `factor` (sealed for `purpose` and `owner`);
    /// failures and lockouts are counted under `key`.
    pub async fn check(
        &self,
        purpose: &str,
        owner: &str,
        key: &str,
        factor: &Factor,
        code: &str,
    ) -> Result<(), MfaError> {
        if let Some(left) = self.locked_for(key) {
            return Err(MfaError::Locked(left));
        }
        let seed = self.policy.keys.open(purpose, owner, &factor.secret)?;
        let unix = u64::try_from(self.unix()).unwrap_or(0);
        let Some(step) =
            totp::matching_step(factor.algorithm, seed.expose(), code.trim(), unix, factor.digits)
        else {
            return Err(self.failed(key, MfaError::WrongCode));
        };
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("totp\0{key}\0{step}").as_bytes(),
        );
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        match self.replay.check_and_insert(id, REPLAY_TTL).await {
            Ok(true) => {}
            Ok(false) => return Err(self.failed(key, MfaError::Replayed)),
            Err(e) => return Err(MfaError::ReplayUnavailable(e)),
        }
        if let Ok(mut locks) = self.state.locks.lock() {
            locks.remove(key);
        }
        Ok(())
    }

    /// The time left of a lockout in force on `key`.
    pub fn locked_for(&self, key: &str) -> Option<Duration> {
        let now = self.clock.monotonic();
        let locks = self.state.locks.lock().ok()?;
        let until = locks.get(key)?.until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure on `key` (a wrong code, or a wrong password before
    /// the code); past `max_failures` in a row, a lockout (doubling each
    /// time, at most `max_lockout`). Returns `e`.
    pub fn failed(&self, key: &str, e: MfaError) -> MfaError {
        let now = self.clock.monotonic();
        let Ok(mut locks) = self.state.locks.lock() else {
            return e;
        };
        if locks.len() >= MAX_TRACKED && !locks.contains_key(key) {
            locks.retain(|_, l| l.until.is_some_and(|u| u > now));
        }
        let lock = locks.entry(key.to_owned()).or_default();
        lock.failures += 1;
        if lock.failures >= self.policy.max_failures {
            let factor = 1u32.checked_shl(lock.lockouts.min(20)).unwrap_or(u32::MAX);
            let span = self
                .policy
                .lockout
                .saturating_mul(factor)
                .min(self.policy.max_lockout);
            lock.until = Some(now + span);
            lock.lockouts += 1;
            lock.failures = 0;
            tracing::warn!(factor = %key, lockout_secs = span.as_secs(), "one-time code locked out after repeated failures");
        }
        e
    }
}

#[cfg(test)]
mod tests;
