//! DPoP proof validation (RFC 9449 §4.3), written here because no
//! maintained crate does the resource-server side; signatures are checked
//! by `jsonwebtoken` on aws-lc-rs.
//!
//! A proof is a JWS the client signs for each request with a key whose
//! thumbprint the access token carries in `cnf.jkt`. Checked, in order:
//! `typ` `dpop+jwt`; an asymmetric `alg` on the allow-list; an embedded
//! *public* `jwk` (private members refused) that fits `alg`; the signature
//! by that key; `htm` = the request method; `htu` = the request URL without
//! query and fragment (scheme and host compared case-insensitively, default
//! port ignored); `iat` within the window; `ath` = base64url(SHA-256(access
//! token)); `cnf.jkt` = RFC 7638 thumbprint of the proof key; the server
//! nonce when required; and last, `jti` never seen before for this key.
//!
//! Threat answered: a stolen access token (and even a captured proof) used
//! by someone else, for another request, or twice. How it fails: closed; a
//! replay cache that cannot answer refuses the request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::config::DpopPolicy;
use super::error::AuthnError;
use super::jwks::{BoxFuture, KeyError, VerifyingKey, PRIVATE_MEMBERS};
use super::jwt::{json_object, numeric_date, proof_header_alg, unix_now, Compact};
use super::thumbprint::{ct_eq, jwk_thumbprint};
use super::{b64url, sha256};
use crate::clock::SharedClock;

/// Longest proof accepted (bytes).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;

/// Remembers proofs already used. In memory here; a Redis implementation
/// shares it across gateway nodes.
pub trait ReplayCache: Send + Sync + std::fmt::Debug + 'static {
    /// Records `key` for `ttl`; `Ok(true)` if it was new, `Ok(false)` if it
    /// was already there (a replay). `Err` when the store cannot answer.
    fn check_and_insert(&self, key: [u8; 32], ttl: Duration) -> BoxFuture<'_, Result<bool, String>>;
}

/// A bounded, sharded in-memory replay cache; entries expire after their
/// TTL (monotonic clock). When full it drops expired entries first, then
/// the ones expiring soonest (which only shortens protection for the
/// oldest proofs, and is logged).
#[derive(Debug)]
pub struct MemoryReplayCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Duration>>>,
    per_shard: usize,
    clock: SharedClock,
}

const REPLAY_SHARDS: usize = 16;

impl MemoryReplayCache {
    /// At most about `capacity` entries.
    pub fn new(capacity: usize, clock: SharedClock) -> Self {
        Self {
            shards: (0..REPLAY_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(REPLAY_SHARDS).max(1),
            clock,
        }
    }

    fn insert(&self, key: [u8; 32], ttl: Duration) -> Result<bool, String> {
        let now = self.clock.monotonic();
        let shard = self
            .shards
            .get(usize::from(key[0]) % REPLAY_SHARDS)
            .ok_or_else(|| "no shard".to_string())?;
        let mut map = shard
            .lock()
            .map_err(|_| "replay cache lock poisoned".to_string())?;
        if let Some(until) = map.get(&key) {
            if now < *until {
                return Ok(false);
            }
        }
        if map.len() >= self.per_shard {
            map.retain(|_, until| now < *until);
        }
        if map.len() >= self.per_shard {
            tracing::warn!("DPoP replay cache full; evicting the entry expiring soonest");
            if let Some(k) = map.iter().min_by_key(|(_, until)| **until).map(|(k, _)| *k) {
                map.remove(&k);
            }
        }
        map.insert(key, now + ttl);
        Ok(true)
    }
}

impl ReplayCache for MemoryReplayCache {
    fn check_and_insert(&self, key: [u8; 32], ttl: Duration) -> BoxFuture<'_, Result<bool, String>> {
        let r = self.insert(key, ttl);
        Box::pin(async move { r })
    }
}

/// The replay cache of a cluster: proofs recorded in Redis (`SET NX` with
/// the window as expiry), so a proof used on one gateway is a replay on
/// every other. While Redis cannot answer, `[redis] on_failure` decides:
/// `deny` refuses the proof (`invalid_dpop_proof`); `local` and `allow` use
/// this gateway's memory cache (replays across gateways are then possible
/// until Redis is back).
#[derive(Debug)]
pub struct RedisReplayCache {
    store: Arc<crate::rate_limit::redis::RedisStore>,
    local: Arc<MemoryReplayCache>,
}

impl RedisReplayCache {
    /// Over `store`, falling back to `local`.
    pub fn new(store: Arc<crate::rate_limit::redis::RedisStore>, local: Arc<MemoryReplayCache>) -> Self {
        Self { store, local }
    }
}

impl ReplayCache for RedisReplayCache {
    fn check_and_insert(&self, key: [u8; 32], ttl: Duration) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            let rkey = self.store.replay_key(&key);
            match self.store.insert_once(&rkey, ttl).await {
                Ok(new) => {
                    // Kept locally too, for the time Redis may be away.
                    let _ = self.local.insert(key, ttl);
                    Ok(new)
                }
                Err(e) => match self.store.policy().on_failure {
                    crate::rate_limit::config::FailurePolicy::Deny => Err(e.to_string()),
                    _ => self.local.insert(key, ttl),
                },
            }
        })
    }
}

/// Server nonces (RFC 9449 §8/§9): a random value that rotates every
/// `lifetime`; the current and the previous one are accepted.
#[derive(Debug)]
pub struct Nonces {
    lifetime: Duration,
    clock: SharedClock,
    state: Mutex<NonceState>,
}

#[derive(Debug)]
struct NonceState {
    epoch: u64,
    current: String,
    previous: Option<String>,
}

fn random_nonce() -> String {
    let mut b = [0u8; 24];
    // If the system RNG fails, the nonce is empty and never matches
    // (an empty `nonce` claim is refused): fails closed.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return String::new();
    }
    b64url(&b)
}

impl Nonces {
    /// Nonces rotating every `lifetime`.
    pub fn new(lifetime: Duration, clock: SharedClock) -> Self {
        let epoch = Self::epoch_at(clock.monotonic(), lifetime);
        Self {
            lifetime,
            clock,
            state: Mutex::new(NonceState {
                epoch,
                current: random_nonce(),
                previous: None,
            }),
        }
    }

    fn epoch_at(now: Duration, lifetime: Duration) -> u64 {
        u64::try_from(now.as_nanos() / lifetime.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    fn rotate(&self, st: &mut NonceState) {
        let epoch = Self::epoch_at(self.clock.monotonic(), self.lifetime);
        if epoch != st.epoch {
            let prev = std::mem::replace(&mut st.current, random_nonce());
            st.previous = (epoch == st.epoch + 1).then_some(prev);
            st.epoch = epoch;
        }
    }

    /// The nonce to send in `DPoP-Nonce`.
    pub fn current(&self) -> String {
        match self.state.lock() {
            Ok(mut st) => {
                self.rotate(&mut st);
                st.current.clone()
            }
            Err(_) => String::new(),
        }
    }

    /// Whether `nonce` is the current or the previous one.
    pub fn accepts(&self, nonce: &str) -> bool {
        if nonce.is_empty() {
            return false;
        }
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        self.rotate(&mut st);
        ct_eq(st.current.as_bytes(), nonce.as_bytes())
            || st
                .previous
                .as_ref()
                .is_some_and(|p| ct_eq(p.as_bytes(), nonce.as_bytes()))
    }
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// The request URL as the client addressed it: `https://host[:port]/path`
    /// (query and fragment, if any, are ignored).
    pub url: &'a str,
    /// The access token sent with the proof (for `ath`).
    pub access_token: &'a str,
    /// The token's `cnf.jkt`, which the proof key must match.
    pub jkt: &'a str,
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProof {
    /// RFC 7638 thumbprint of the proof key.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
}

/// Validates DPoP proofs under one policy.
#[derive(Debug)]
pub struct DpopVerifier {
    policy: DpopPolicy,
    replay: Arc<dyn ReplayCache>,
    nonces: Option<Nonces>,
    clock: SharedClock,
    algs_param: String,
}

impl DpopVerifier {
    /// A verifier with an in-memory replay cache sized by the policy.
    pub fn new(policy: DpopPolicy, clock: SharedClock) -> Self {
        let replay = Arc::new(MemoryReplayCache::new(
            policy.replay_cache_capacity,
            clock.clone(),
        ));
        Self::with_replay_cache(policy, replay, clock)
    }

    /// A verifier with the given replay cache (e.g. shared, or Redis).
    pub fn with_replay_cache(policy: DpopPolicy, replay: Arc<dyn ReplayCache>, clock: SharedClock) -> Self {
        let nonces = policy
            .nonce
            .then(|| Nonces::new(policy.nonce_lifetime, clock.clone()));
        let algs_param = policy.algs_param();
        Self {
            policy,
            replay,
            nonces,
            clock,
            algs_param,
        }
    }

    /// The `algs` value for `WWW-Authenticate: DPoP`.
    pub fn algs_param(&self) -> &str {
        &self.algs_param
    }

    /// The server nonces, when the policy requires them.
    pub fn nonces(&self) -> Option<&Nonces> {
        self.nonces.as_ref()
    }

    /// Validates `proof` (the `DPoP` header value) for `req`.
    pub async fn verify(&self, proof: &str, req: &ProofRequest<'_>) -> Result<ValidProof, AuthnError> {
        if proof.len() > MAX_PROOF_BYTES {
            return Err(AuthnError::DpopMalformed("proof too long"));
        }
        let parts = Compact::split(proof).ok_or(AuthnError::DpopMalformed("not a compact JWS"))?;
        let header = json_object(parts.header).ok_or(AuthnError::DpopMalformed("header"))?;

        // typ, alg, jwk
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        if !typ.eq_ignore_ascii_case("dpop+jwt") {
            return Err(AuthnError::DpopWrongTyp);
        }
        let alg_name = match proof_header_alg(&header) {
            Ok(a) => a,
            Err(AuthnError::AlgNone) => return Err(AuthnError::DpopAlgNotAllowed("none".into())),
            Err(AuthnError::ForbiddenHeader(_)) => {
                return Err(AuthnError::DpopMalformed("forbidden header parameter"))
            }
            Err(_) => return Err(AuthnError::DpopMalformed("header without alg")),
        };
        let alg: Algorithm = super::config::asymmetric_alg(alg_name)
            .filter(|a| self.policy.algorithms.contains(a))
            .ok_or_else(|| AuthnError::DpopAlgNotAllowed(alg_name.chars().take(16).collect()))?;
        let jwk = header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or(AuthnError::DpopMalformed("no jwk"))?;
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(AuthnError::DpopPrivateKey);
        }
        let key = VerifyingKey::from_jwk(jwk).map_err(|e| match e {
            KeyError::Private => AuthnError::DpopPrivateKey,
            KeyError::Unusable(_) => AuthnError::DpopBadKey,
        })?;
        if !key.permits(alg) {
            return Err(AuthnError::DpopBadKey);
        }
        if !key.verify(alg, parts.signing_input.as_bytes(), parts.signature) {
            return Err(AuthnError::DpopBadSignature);
        }

        // claims
        let claims = json_object(parts.payload).ok_or(AuthnError::DpopMalformed("claims"))?;
        let s = |k: &'static str| claims.get(k).and_then(Value::as_str);
        let jti = s("jti").ok_or(AuthnError::DpopMalformed("jti"))?;
        if jti.is_empty() || jti.len() > MAX_JTI_LEN {
            return Err(AuthnError::DpopMalformed("jti"));
        }
        if s("htm") != Some(req.method) {
            return Err(AuthnError::DpopHtmMismatch);
        }
        let htu = s("htu").ok_or(AuthnError::DpopHtuMismatch)?;
        match (normalize_htu(htu), normalize_htu(req.url)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return Err(AuthnError::DpopHtuMismatch),
        }
        let iat = claims
            .get("iat")
            .and_then(numeric_date)
            .ok_or(AuthnError::DpopMalformed("iat"))?;
        let now = unix_now(&*self.clock);
        let window = i64::try_from(self.policy.iat_window.as_secs()).unwrap_or(i64::MAX);
        let ahead = i64::try_from(self.policy.iat_leeway.as_secs()).unwrap_or(i64::MAX);
        if iat < now.saturating_sub(window) || iat > now.saturating_add(ahead) {
            return Err(AuthnError::DpopIatOutOfWindow);
        }
        let ath = s("ath").ok_or(AuthnError::DpopAthMismatch)?;
        if !ct_eq(ath.as_bytes(), access_token_hash(req.access_token).as_bytes()) {
            return Err(AuthnError::DpopAthMismatch);
        }
        let jkt = jwk_thumbprint(jwk).map_err(|_| AuthnError::DpopBadKey)?;
        if !ct_eq(jkt.as_bytes(), req.jkt.as_bytes()) {
            return Err(AuthnError::DpopCnfMismatch);
        }
        if let Some(nonces) = &self.nonces {
            if !s("nonce").is_some_and(|n| nonces.accepts(n)) {
                return Err(AuthnError::DpopNonce);
            }
        }

        // Last, so that invalid proofs do not fill the cache. Keyed by the
        // key thumbprint and jti, hashed to a fixed size.
        let mut material = Vec::with_capacity(jkt.len() + 1 + jti.len());
        material.extend_from_slice(jkt.as_bytes());
        material.push(0);
        material.extend_from_slice(jti.as_bytes());
        let ttl = self.policy.iat_window + self.policy.iat_leeway + Duration::from_secs(1);
        match self.replay.check_and_insert(sha256(&material), ttl).await {
            Ok(true) => {}
            Ok(false) => return Err(AuthnError::DpopReplayed),
            Err(e) => {
                tracing::warn!(error = %e, "DPoP replay cache unavailable; refusing");
                return Err(AuthnError::ReplayCacheUnavailable);
            }
        }
        Ok(ValidProof {
            jkt,
            jti: jti.to_owned(),
        })
    }
}

/// `ath`: base64url(SHA-256(ASCII access token)) (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    b64url(&sha256(token.as_bytes()))
}

/// The comparable form of an HTTP URL for `htu` (RFC 9449 §4.3 step 9,
/// RFC 3986 §6.2.2–6.2.3): lower-case scheme and host, no default port, no
/// query, no fragment, empty path as `/`. Only `http` and `https`; no
/// user-info. `None` if it is not such a URL.
pub fn normalize_htu(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next()?;
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = match authority.rsplit_once(':') {
        Some((host, port)) if port == default_port && !host.ends_with(':') => host.to_owned(),
        Some((host, "")) => host.to_owned(),
        _ => authority,
    };
    Some(format!("{scheme}://{authority}{path}"))
}

/// The `cnf` check for tokens without DPoP: a certificate-bound token's
/// `x5t#S256` against the client certificate of the connection.
pub fn check_certificate_binding(
    cnf_x5t_s256: &str,
    client_cert_der: Option<&[u8]>,
) -> Result<(), AuthnError> {
    let der = client_cert_der.ok_or(AuthnError::CertificateMissing)?;
    if super::thumbprint::certificate_matches(cnf_x5t_s256, der) {
        Ok(())
    } else {
        Err(AuthnError::CertificateMismatch)
    }
}

/// Members of a proof JWK that are private: exposed for tests and tools.
pub fn has_private_members(jwk: &Map<String, Value>) -> bool {
    PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m))
}
