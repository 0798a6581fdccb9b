//! API keys (issue 3, item 7): long-lived credentials for machine clients
//! (partners, batch jobs) that cannot do OAuth.
//!
//! A key is `rk_`, a 12-character public key id (the lookup handle), `_`,
//! and 40 characters of secret (200 random bits from aws-lc-rs), all in
//! lowercase base32: recognisable by secret scanners, and safe to
//! double-click. It is printed once, by `rampart keys create` or `rotate`;
//! the store keeps only HMAC-SHA256 of the whole key under the pepper
//! (`[api_keys] pepper_file`), never the key. [`ApiKeys::authenticate`]
//! reads the configured header, looks the key id up (in a short cache, then
//! the [`store`]) and compares the HMAC in constant time; revocation,
//! expiry and the end of a rotation overlap are checked on every request.
//! Last-use times are noted in memory and written by
//! [`ApiKeys::flush_last_used`] (at most once a minute per key).
//!
//! Threat answered: stolen or guessed keys (200-bit secrets; a leaked
//! database holds only peppered hashes), a timing oracle on key ids or
//! secrets (a malformed or unknown key costs the same HMAC work and a
//! constant-time comparison, and malformed keys never reach the store),
//! keys that live forever (expiry, rotation with an overlap, immediate
//! revocation, seen by every node within `cache_ttl`). How it fails: closed.
//! Any doubt, including an unreachable store, is an [`AuthnError`]; the
//! client is told only `invalid_token`. A lookup waits at most
//! [`LOOKUP_TIMEOUT`]; after a failed one the store counts as down for
//! [`STORE_RETRY_AFTER`], and uncached keys are refused without waiting.

pub mod config;
pub mod error;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use aws_lc_rs::hmac;
use http::HeaderMap;

pub use config::{ApiKeysConfig, ApiKeysPolicy, StoreLocation};
pub use error::ApiKeysError;
pub use store::{KeyRecord, KeyState, KeyStore, PgStore, SqliteStore};

use super::{AuthnError, Principal};
use crate::clock::SharedClock;
use crate::secret::Secret;

/// Every key starts with this.
pub const PREFIX: &str = "rk_";
/// Characters in a key id.
pub const ID_LEN: usize = 12;
/// Characters of secret (5 bits each: 200 bits).
pub const SECRET_LEN: usize = 40;
// At least 128 bits of secret (issue 3, item 7).
const _: () = assert!(SECRET_LEN * 5 >= 128);
/// Length of a whole key.
pub const KEY_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN;
/// The `Principal::issuer` of a principal authenticated by API key.
pub const ISSUER: &str = "api_key";
/// Last-use times are written at most this often per key.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);
/// Longest `--expires`.
pub const MAX_LIFETIME: Duration = Duration::from_secs(5 * 366 * 24 * 3600);
/// How long a rotated key keeps working when no overlap is given (the CLI
/// and the admin API).
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Longest `--overlap`.
pub const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest a request waits for the store to look a key up.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed lookup, requests whose key is not cached are refused at
/// once, without asking the store, for this long.
pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// RFC 4648 base32, lowercase.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Verified keys kept in the cache at most (per shard).
const CACHE_SHARD_CAP: usize = 4096;
const SHARDS: usize = 16;

/// A key that was just made: the only time the whole key exists.
#[derive(Debug)]
pub struct NewKey {
    /// The public id.
    pub key_id: String,
    /// The key itself, to hand to the client once.
    pub key: Secret<String>,
    /// Its record as stored.
    pub record: KeyRecord,
}

/// A key split into its id and the rest; `None` if it is not a key.
fn parse_key(value: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(value).ok()?;
    let rest = s.strip_prefix(PREFIX)?;
    if s.len() != KEY_LEN || rest.as_bytes().get(ID_LEN) != Some(&b'_') {
        return None;
    }
    let (id, secret) = (&rest[..ID_LEN], &rest[ID_LEN + 1..]);
    let ok = |p: &str| p.bytes().all(|b| ALPHABET.contains(&b));
    (ok(id) && ok(secret)).then_some(id)
}

/// `n` random characters of [`ALPHABET`] (each byte's low 5 bits: uniform).
fn random_chars(n: usize) -> Result<String, ApiKeysError> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ApiKeysError::Random)?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect())
}

/// Checks a client name: 1 to 128 printable characters.
pub fn check_client(client: &str) -> Result<(), ApiKeysError> {
    if client.is_empty() || client.chars().count() > 128 || client.chars().any(char::is_control) {
        return Err(ApiKeysError::InvalidInput(
            "--client must be 1 to 128 printable characters".into(),
        ));
    }
    Ok(())
}

/// Splits and checks a space-separated scope list (RFC 6749 §3.3 tokens);
/// at least one, duplicates dropped, order kept.
pub fn parse_scopes(scopes: &str) -> Result<Vec<String>, ApiKeysError> {
    let mut out: Vec<String> = Vec::new();
    for s in scopes.split_ascii_whitespace() {
        let valid = s.len() <= 128
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            return Err(ApiKeysError::InvalidInput(format!(
                "invalid scope `{}`: printable ASCII without spaces, quotes or backslashes",
                s.escape_debug()
            )));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    if out.is_empty() {
        return Err(ApiKeysError::InvalidInput(
            "--scopes needs at least one scope, e.g. \"accounts:read\"".into(),
        ));
    }
    Ok(out)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A verified key, trusted until `fetched + cache_ttl`.
#[derive(Debug)]
struct Entry {
    record: KeyRecord,
    principal: Arc<Principal>,
    /// Monotonic time of the store read.
    fetched: Duration,
    /// Last use noted for writing (Unix seconds).
    noted: AtomicI64,
}

/// The runtime: the store, the pepper, the cache of verified keys and the
/// last-use times waiting to be written.
pub struct ApiKeys {
    header: http::HeaderName,
    pepper: hmac::Key,
    cache_ttl: Duration,
    store: Arc<dyn KeyStore>,
    clock: SharedClock,
    cache: Vec<Mutex<HashMap<String, Arc<Entry>>>>,
    /// Monotonic nanoseconds until which the store counts as down.
    down_until: AtomicU64,
    used: Mutex<HashMap<String, i64>>,
    /// HMAC of nothing in particular: what malformed and unknown keys are
    /// compared with, so that they cost what a known key costs.
    decoy: [u8; 32],
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("header", &self.header)
            .field("cache_ttl", &self.cache_ttl)
            .field("store", &self.store.location())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// The runtime for a validated policy, on the store it names (nothing
    /// is connected until first use, so no runtime is needed here, e.g. in
    /// `Gateway::build`; the first store call must run on Tokio).
    pub fn new(policy: &ApiKeysPolicy, clock: SharedClock) -> Result<Self, ApiKeysError> {
        let store: Arc<dyn KeyStore> = match &policy.store {
            StoreLocation::Sqlite(path) => Arc::new(SqliteStore::open(path)),
            StoreLocation::Postgres(url) => Arc::new(PgStore::open(
                url.expose(),
                policy.store.describe(),
                store::DEFAULT_TABLE,
            )?),
        };
        Ok(Self::with_store(policy, store, clock))
    }

    /// The runtime on a given store.
    pub fn with_store(policy: &ApiKeysPolicy, store: Arc<dyn KeyStore>, clock: SharedClock) -> Self {
        let pepper = hmac::Key::new(hmac::HMAC_SHA256, policy.pepper.expose());
        let mut decoy = [0u8; 32];
        decoy.copy_from_slice(hmac::sign(&pepper, b"rampart api-key decoy").as_ref());
        Self {
            header: policy.header.clone(),
            pepper,
            cache_ttl: policy.cache_ttl,
            store,
            clock,
            cache: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            used: Mutex::new(HashMap::new()),
            down_until: AtomicU64::new(0),
            decoy,
        }
    }

    /// The store (for the CLI and tests).
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// The header keys are read from.
    pub fn header(&self) -> &http::HeaderName {
        &self.header
    }

    fn now(&self) -> i64 {
        self.clock.now().duration_since(UNIX_EPOCH).map(secs).unwrap_or(0)
    }

    fn mac(&self, key: &[u8]) -> hmac::Tag {
        hmac::sign(&self.pepper, key)
    }

    fn shard(&self, key_id: &str) -> Option<&Mutex<HashMap<String, Arc<Entry>>>> {
        let first = key_id.bytes().next().unwrap_or(0);
        self.cache.get(usize::from(first) % SHARDS)
    }

    fn cached(&self, key_id: &str) -> Option<Arc<Entry>> {
        let shard = self.shard(key_id)?.lock().ok()?;
        let entry = shard.get(key_id)?;
        let age = self.clock.monotonic().saturating_sub(entry.fetched);
        (age < self.cache_ttl).then(|| entry.clone())
    }

    fn remember(&self, entry: Arc<Entry>) {
        let Some(shard) = self.shard(&entry.record.key_id) else {
            return;
        };
        if let Ok(mut shard) = shard.lock() {
            if shard.len() >= CACHE_SHARD_CAP && !shard.contains_key(&entry.record.key_id) {
                let now = self.clock.monotonic();
                shard.retain(|_, e| now.saturating_sub(e.fetched) < self.cache_ttl);
                if shard.len() >= CACHE_SHARD_CAP {
                    shard.clear();
                }
            }
            shard.insert(entry.record.key_id.clone(), entry);
        }
    }

    fn forget(&self, key_id: &str) {
        if let Some(Ok(mut shard)) = self.shard(key_id).map(Mutex::lock) {
            shard.remove(key_id);
        }
    }

    /// Authenticates one request by the API key in the configured header.
    ///
    /// No header: [`AuthnError::MissingCredentials`] (so that a route
    /// accepting several methods can try the next). More than one:
    /// [`AuthnError::ApiKeyMultiple`]. Otherwise the key must be
    /// well-formed, known, match its stored HMAC, and be neither revoked,
    /// expired nor rotated out. A malformed key is refused without asking
    /// the store, after the same HMAC work as a real one.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, AuthnError> {
        let mut values = headers.get_all(&self.header).iter();
        let value = values.next().ok_or(AuthnError::MissingCredentials)?;
        if values.next().is_some() {
            return Err(AuthnError::ApiKeyMultiple);
        }
        let presented = value.as_bytes();
        let Some(key_id) = parse_key(presented) else {
            self.decoy_check();
            return Err(AuthnError::ApiKeyMalformed);
        };
        let entry = match self.cached(key_id) {
            Some(e) => e,
            None => match self.lookup(key_id).await {
                Ok(Some(record)) => {
                    let entry = Arc::new(Entry {
                        principal: Arc::new(Principal::from_api_key(
                            &record.key_id,
                            &record.client,
                            record.scopes.clone(),
                            record.expires_at,
                        )),
                        record,
                        fetched: self.clock.monotonic(),
                        noted: AtomicI64::new(i64::MIN),
                    });
                    self.remember(entry.clone());
                    entry
                }
                Ok(None) => {
                    self.decoy_check();
                    return Err(AuthnError::ApiKeyUnknown);
                }
                Err(e) => {
                    if let Some(e) = e {
                        tracing::warn!(error = %e, "API-key store unavailable: refusing uncached keys");
                    }
                    return Err(AuthnError::ApiKeyStoreUnavailable);
                }
            },
        };
        let tag = self.mac(presented);
        let matches = Secret::new(entry.record.hmac.as_slice()).ct_eq(tag.as_ref());
        if !matches {
            return Err(AuthnError::ApiKeyMismatch);
        }
        let now = self.now();
        match entry.record.state(now) {
            KeyState::Active | KeyState::Rotating => {}
            KeyState::Revoked => return Err(AuthnError::ApiKeyRevoked),
            KeyState::Expired => return Err(AuthnError::ApiKeyExpired),
            KeyState::Rotated => return Err(AuthnError::ApiKeyRotated),
        }
        let noted = entry.noted.load(Ordering::Relaxed);
        if now.saturating_sub(noted) >= secs(LAST_USED_EVERY) {
            entry.noted.store(now, Ordering::Relaxed);
            if let Ok(mut used) = self.used.lock() {
                used.insert(entry.record.key_id.clone(), now);
            }
        }
        Ok(entry.principal.clone())
    }

    /// Reads one key from the store, within [`LOOKUP_TIMEOUT`]. While the
    /// store is marked down, `Err(None)` at once; a failure marks it down
    /// for [`STORE_RETRY_AFTER`] and is `Err(Some(e))`.
    async fn lookup(&self, key_id: &str) -> Result<Option<KeyRecord>, Option<ApiKeysError>> {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if nanos(self.clock.monotonic()) < self.down_until.load(Ordering::Relaxed) {
            return Err(None);
        }
        let result = match tokio::time::timeout(LOOKUP_TIMEOUT, self.store.get(key_id)).await {
            Ok(r) => r,
            Err(_) => Err(ApiKeysError::StoreUnavailable {
                location: self.store.location().to_string(),
                reason: format!("no answer within {}ms", LOOKUP_TIMEOUT.as_millis()),
            }),
        };
        result.map_err(|e| {
            let until = self.clock.monotonic().saturating_add(STORE_RETRY_AFTER);
            self.down_until.store(nanos(until), Ordering::Relaxed);
            Some(e)
        })
    }

    /// The work a real key costs (one HMAC, one constant-time comparison)
    /// spent on nothing.
    fn decoy_check(&self) {
        let tag = self.mac(&[b'x'; KEY_LEN]);
        let _ = Secret::new(self.decoy.as_slice()).ct_eq(tag.as_ref());
    }

    /// Writes the last-use times noted since the last flush (one batch).
    /// Call it every [`LAST_USED_EVERY`] (see [`ApiKeys::spawn_flusher`]).
    pub async fn flush_last_used(&self) -> Result<(), ApiKeysError> {
        let batch: Vec<(String, i64)> = match self.used.lock() {
            Ok(mut used) => used.drain().collect(),
            Err(_) => return Ok(()),
        };
        let result = self.store.record_last_used(&batch).await;
        if result.is_err() {
            // Keep them for the next flush (newer notes win).
            if let Ok(mut used) = self.used.lock() {
                for (id, at) in batch {
                    used.entry(id).or_insert(at);
                }
            }
        }
        result
    }

    /// Spawns the task that flushes last-use times every
    /// [`LAST_USED_EVERY`], until `self` is dropped elsewhere.
    pub fn spawn_flusher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LAST_USED_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(keys) = weak.upgrade() else { return };
                if let Err(e) = keys.flush_last_used().await {
                    tracing::warn!(error = %e, "cannot record API-key last use");
                }
            }
        })
    }

    fn make(
        &self,
        client: &str,
        scopes: Vec<String>,
        expires_at: Option<i64>,
    ) -> Result<NewKey, ApiKeysError> {
        let key_id = random_chars(ID_LEN)?;
        let key = format!("{PREFIX}{key_id}_{}", random_chars(SECRET_LEN)?);
        let record = KeyRecord {
            key_id: key_id.clone(),
            client: client.to_string(),
            scopes,
            hmac: self.mac(key.as_bytes()).as_ref().to_vec(),
            created_at: self.now(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
            replaced_by: None,
            rotation_ends_at: None,
        };
        Ok(NewKey {
            key_id,
            key: Secret::new(key),
            record,
        })
    }

    fn expiry(&self, expires_in: Option<Duration>) -> Result<Option<i64>, ApiKeysError> {
        match expires_in {
            None => Ok(None),
            Some(d) if d.is_zero() || d > MAX_LIFETIME => Err(ApiKeysError::InvalidInput(
                "--expires must be more than 0 and at most 5 years".into(),
            )),
            Some(d) => Ok(Some(self.now().saturating_add(secs(d)))),
        }
    }

    /// Makes and stores a key for `client` with `scopes`, expiring after
    /// `expires_in` (never if none). The returned key is not kept anywhere.
    pub async fn create(
        &self,
        client: &str,
        scopes: Vec<String>,
        expires_in: Option<Duration>,
    ) -> Result<NewKey, ApiKeysError> {
        check_client(client)?;
        if scopes.is_empty() {
            return Err(ApiKeysError::InvalidInput("at least one scope is needed".into()));
        }
        let expires_at = self.expiry(expires_in)?;
        let new = self.make(client, scopes, expires_at)?;
        self.store.insert(&new.record).await?;
        Ok(new)
    }

    /// Every key (never the keys themselves: records hold only HMACs).
    pub async fn list(&self) -> Result<Vec<KeyRecord>, ApiKeysError> {
        self.store.list().await
    }

    /// Replaces `key_id` by a new key for the same client and scopes; the
    /// old key stays valid for `overlap` more (never past its own expiry).
    /// The new key expires after `expires_in`, or, if none is given and
    /// the old key had a lifetime, after that same lifetime.
    pub async fn rotate(
        &self,
        key_id: &str,
        overlap: Duration,
        expires_in: Option<Duration>,
    ) -> Result<NewKey, ApiKeysError> {
        if overlap > MAX_OVERLAP {
            return Err(ApiKeysError::InvalidInput(
                "--overlap must be at most 30 days".into(),
            ));
        }
        let old = self
            .store
            .get(key_id)
            .await?
            .ok_or_else(|| ApiKeysError::UnknownKey(key_id.to_string()))?;
        let now = self.now();
        let state = old.state(now);
        if state != KeyState::Active {
            return Err(ApiKeysError::NotActive {
                id: key_id.to_string(),
                state: state.as_str(),
            });
        }
        let expires_at = match (expires_in, old.expires_at) {
            (Some(d), _) => self.expiry(Some(d))?,
            (None, Some(e)) => Some(now.saturating_add(e.saturating_sub(old.created_at).max(1))),
            (None, None) => None,
        };
        let new = self.make(&old.client, old.scopes.clone(), expires_at)?;
        let overlap_ends = now.saturating_add(secs(overlap));
        if !self.store.rotate(key_id, &new.record, overlap_ends).await? {
            // Revoked or rotated by someone else meanwhile.
            return Err(ApiKeysError::NotActive {
                id: key_id.to_string(),
                state: "changed by another process",
            });
        }
        self.forget(key_id);
        Ok(new)
    }

    /// Revokes `key_id` now. `Ok(false)` if it was already revoked.
    pub async fn revoke(&self, key_id: &str) -> Result<bool, ApiKeysError> {
        let revoked = self.store.revoke(key_id, self.now()).await?;
        self.forget(key_id);
        if revoked {
            return Ok(true);
        }
        match self.store.get(key_id).await? {
            Some(_) => Ok(false),
            None => Err(ApiKeysError::UnknownKey(key_id.to_string())),
        }
    }
}
