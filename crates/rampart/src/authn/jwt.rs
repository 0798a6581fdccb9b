//! Bearer JWT verification for one issuer (RFC 7519, RFC 8725, RFC 9068):
//! [`Issuer::verify`] turns a compact JWS access token into a
//! [`Principal`], or says precisely why not.
//!
//! Threats answered (RFC 8725 §2): `alg: none`; algorithm substitution and
//! RS/HS key confusion (the `alg` must be on the issuer's allow-list *and*
//! permitted by the selected key; HMAC only with the configured secret);
//! keys fetched from attacker URLs (`jku`, `x5u`, an embedded `jwk`, and
//! `crit` extensions are refused outright, never followed); cross-JWT
//! confusion (a DPoP proof is not an access token; `typ` `at+jwt` when
//! required); tokens for another audience or issuer; expired and
//! not-yet-valid tokens, read against the gateway's [`Clock`], never
//! `SystemTime::now`.
//!
//! Verified tokens are cached by SHA-256 of the token until their `exp`, in
//! a bounded, sharded map: a replayed valid token costs a hash and a lookup.
//! Revocation and sender-constraint checks are per request and are not
//! cached (see [`super::Authenticator`]).
//!
//! How it fails: closed. Every failure is an [`AuthnError`]; an issuer
//! whose keys cannot be fetched verifies nothing new (cached keys and
//! cached verdicts keep working).
//!
//! [`Clock`]: crate::clock::Clock

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::config::{IssuerPolicy, KeySourcePolicy};
use super::error::AuthnError;
use super::fetch::{DiscoveryFetcher, HttpsClient, UrlFetcher};
use super::jwks::{FileFetcher, JwksFetcher, KeySet, KeySource};
use super::principal::Principal;
use super::{b64url_decode, sha256};
use crate::clock::{Clock, SharedClock};
use crate::config::ConfigProblem;

/// Longest token accepted (bytes); longer is malformed.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Default capacity of the verdict cache.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// A compact JWS split into its parts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compact<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
}

impl<'a> Compact<'a> {
    /// Exactly three non-empty base64url parts.
    pub fn split(token: &'a str) -> Option<Self> {
        let mut it = token.splitn(4, '.');
        let (header, payload, signature) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || header.is_empty() || payload.is_empty() || signature.is_empty() {
            return None;
        }
        let b64 = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !(b64(header) && b64(payload) && b64(signature)) {
            return None;
        }
        Some(Self {
            header,
            payload,
            signature,
            signing_input: &token[..header.len() + 1 + payload.len()],
        })
    }
}

/// A base64url part that must be a JSON object.
pub(crate) fn json_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = b64url_decode(part)?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A NumericDate (RFC 7519 §2): integer or finite non-integer seconds,
/// floored.
pub(crate) fn numeric_date(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f.abs() < 1e15).then(|| f.floor() as i64)
}

/// Wall-clock Unix seconds from a clock.
pub(crate) fn unix_now(clock: &dyn Clock) -> i64 {
    match clock.now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A short, printable rendering of an attacker-chosen `alg` for logs.
fn alg_for_log(s: &str) -> String {
    s.chars()
        .take(16)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '+' || c == '-' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Checks the JOSE header parameters every JWS the gateway reads must pass:
/// no `jku`, `x5u`, `jwk`, `crit`; an `alg` that is not `none`. Returns the
/// `alg` name.
fn header_alg(header: &Map<String, Value>, forbid_jwk: bool) -> Result<&str, AuthnError> {
    for name in ["jku", "x5u", "crit"] {
        if header.contains_key(name) {
            return Err(AuthnError::ForbiddenHeader(match name {
                "jku" => "jku",
                "x5u" => "x5u",
                _ => "crit",
            }));
        }
    }
    if forbid_jwk && header.contains_key("jwk") {
        return Err(AuthnError::ForbiddenHeader("jwk"));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(AuthnError::Malformed("header without alg"))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(AuthnError::AlgNone);
    }
    Ok(alg)
}

/// Same checks for DPoP proofs (an embedded `jwk` is required there).
pub(crate) fn proof_header_alg(header: &Map<String, Value>) -> Result<&str, AuthnError> {
    header_alg(header, false)
}

/// Verified tokens by SHA-256, until their `exp`. Bounded: a full shard
/// drops expired entries, then the entry expiring soonest.
#[derive(Debug)]
pub struct VerdictCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Arc<Principal>>>>,
    per_shard: usize,
}

const CACHE_SHARDS: usize = 16;

impl VerdictCache {
    /// A cache of at most about `capacity` verdicts (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..CACHE_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(CACHE_SHARDS),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> Option<&Mutex<HashMap<[u8; 32], Arc<Principal>>>> {
        self.shards.get(usize::from(key[0]) % CACHE_SHARDS)
    }

    /// The cached principal for this token hash, if still unexpired.
    pub fn get(&self, key: &[u8; 32], now: i64) -> Option<Arc<Principal>> {
        let mut map = self.shard(key)?.lock().ok()?;
        match map.get(key) {
            Some(p) if now < p.expires_at() => Some(Arc::clone(p)),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers a verdict.
    pub fn insert(&self, key: [u8; 32], principal: Arc<Principal>, now: i64) {
        if self.per_shard == 0 {
            return;
        }
        let Some(Ok(mut map)) = self.shard(&key).map(|m| m.lock()) else {
            return;
        };
        if map.len() >= self.per_shard {
            map.retain(|_, p| now < p.expires_at());
        }
        if map.len() >= self.per_shard {
            let soonest = map.iter().min_by_key(|(_, p)| p.expires_at()).map(|(k, _)| *k);
            if let Some(k) = soonest {
                map.remove(&k);
            }
        }
        map.insert(key, principal);
    }

    /// Number of cached verdicts.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|m| m.len()))
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One issuer, ready to verify its tokens.
#[derive(Debug)]
pub struct Issuer {
    name: Arc<str>,
    policy: IssuerPolicy,
    keys: Option<Arc<KeySource>>,
    hmac: Option<DecodingKey>,
    clock: SharedClock,
    cache: VerdictCache,
    introspector: Option<super::introspect::Introspector>,
}

impl Issuer {
    /// Builds an issuer from its policy: reads a `jwks_file` now (so
    /// `rampart check` reports a bad file), prepares the HTTPS client for a
    /// URL or discovery (keys are fetched by [`Issuer::start`]). `path` is
    /// the key path for problems (`issuers[0]`).
    pub fn from_policy(
        policy: IssuerPolicy,
        clock: SharedClock,
        path: &str,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let floor = policy.refresh_floor;
        let interval = policy.refresh;
        let https = |ca: &Option<std::path::PathBuf>| {
            HttpsClient::new(ca.as_deref())
                .map_err(|e| vec![ConfigProblem::error(format!("{path}.ca_file"), e)])
        };
        let keys = match &policy.keys {
            KeySourcePolicy::None => None,
            KeySourcePolicy::File(file) => {
                let bytes = std::fs::read(file).map_err(|e| {
                    vec![ConfigProblem::error(
                        format!("{path}.jwks_file"),
                        format!("cannot read {}: {e}", file.display()),
                    )]
                })?;
                let set = KeySet::from_json(&bytes).map_err(|e| {
                    vec![ConfigProblem::error(
                        format!("{path}.jwks_file"),
                        format!("{}: {e}", file.display()),
                    )]
                })?;
                let fetcher: Arc<dyn JwksFetcher> = Arc::new(FileFetcher(file.clone()));
                Some(Arc::new(KeySource::with_keys(
                    set,
                    fetcher,
                    clock.clone(),
                    floor,
                    interval,
                )))
            }
            KeySourcePolicy::Url { url, ca_file } => {
                let fetcher: Arc<dyn JwksFetcher> = Arc::new(UrlFetcher::new(https(ca_file)?, url.clone()));
                Some(Arc::new(KeySource::new(fetcher, clock.clone(), floor, interval)))
            }
            KeySourcePolicy::Discovery { ca_file } => {
                let fetcher: Arc<dyn JwksFetcher> =
                    Arc::new(DiscoveryFetcher::new(https(ca_file)?, policy.issuer.clone()));
                Some(Arc::new(KeySource::new(fetcher, clock.clone(), floor, interval)))
            }
        };
        let introspector = match &policy.introspection {
            Some(p) => Some(super::introspect::Introspector::from_policy(
                &policy,
                p,
                clock.clone(),
                path,
            )?),
            None => None,
        };
        let mut issuer = Self::with_key_source(policy, keys, clock);
        issuer.introspector = introspector;
        Ok(issuer)
    }

    /// Builds an issuer around an existing key source (tests, or a key
    /// source shared across reloads).
    pub fn with_key_source(policy: IssuerPolicy, keys: Option<Arc<KeySource>>, clock: SharedClock) -> Self {
        let hmac = policy
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose()));
        Self {
            name: Arc::from(policy.name.as_str()),
            policy,
            keys,
            hmac,
            clock,
            cache: VerdictCache::new(DEFAULT_CACHE_CAPACITY),
            introspector: None,
        }
    }

    /// Replaces the verdict cache (e.g. with another capacity).
    pub fn with_cache(mut self, cache: VerdictCache) -> Self {
        self.cache = cache;
        self
    }

    /// Loads the keys once (unless already loaded from a file) and starts
    /// the periodic refresh. Failure is logged: unknown `kid`s retry, at
    /// most once per floor. Needs a Tokio runtime.
    pub async fn start(&self) -> Option<tokio::task::JoinHandle<()>> {
        let keys = self.keys.as_ref()?;
        if keys.keys().is_empty() {
            keys.refresh().await;
        }
        Some(keys.spawn_refresher())
    }

    /// The issuer's name (what routes refer to).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The validated policy.
    pub fn policy(&self) -> &IssuerPolicy {
        &self.policy
    }

    /// The key source, if the issuer has one.
    pub fn key_source(&self) -> Option<&Arc<KeySource>> {
        self.keys.as_ref()
    }

    /// The verdict cache.
    pub fn cache(&self) -> &VerdictCache {
        &self.cache
    }

    /// The RFC 7662 introspector, when `introspection_url` is set.
    pub fn introspector(&self) -> Option<&super::introspect::Introspector> {
        self.introspector.as_ref()
    }

    /// Verifies an access token: signature, header and claims. Cached
    /// verdicts are returned until the token's `exp`.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthnError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthnError::Malformed("token too long"));
        }
        let now = unix_now(&*self.clock);
        let hash = sha256(token.as_bytes());
        if let Some(p) = self.cache.get(&hash, now) {
            return Ok(p);
        }
        let parts = Compact::split(token).ok_or(AuthnError::Malformed("not a compact JWS"))?;
        let header = json_object(parts.header).ok_or(AuthnError::Malformed("header is not a JSON object"))?;
        let alg = self.check_header(&header)?;
        self.check_signature(&header, alg, &parts).await?;
        let claims =
            json_object(parts.payload).ok_or(AuthnError::Malformed("claims are not a JSON object"))?;
        let exp = self.check_claims(&claims, now)?;
        let principal = Arc::new(Principal::from_claims(Arc::clone(&self.name), claims, exp));
        self.cache.insert(hash, Arc::clone(&principal), now);
        Ok(principal)
    }

    fn check_header(&self, header: &Map<String, Value>) -> Result<Algorithm, AuthnError> {
        let name = header_alg(header, true)?;
        let alg: Algorithm = name
            .parse()
            .map_err(|_| AuthnError::AlgNotAllowed(alg_for_log(name)))?;
        if !self.policy.algorithms.contains(&alg) {
            return Err(AuthnError::AlgNotAllowed(alg_for_log(name)));
        }
        match header.get("typ") {
            None if self.policy.require_typ_at_jwt => return Err(AuthnError::WrongTyp),
            None => {}
            Some(Value::String(t)) => {
                let t = t.strip_prefix("application/").unwrap_or(t);
                if t.eq_ignore_ascii_case("dpop+jwt") {
                    return Err(AuthnError::WrongTyp);
                }
                if self.policy.require_typ_at_jwt && !t.eq_ignore_ascii_case("at+jwt") {
                    return Err(AuthnError::WrongTyp);
                }
            }
            Some(_) => return Err(AuthnError::Malformed("typ is not a string")),
        }
        if header.get("kid").is_some_and(|k| !k.is_string()) {
            return Err(AuthnError::Malformed("kid is not a string"));
        }
        Ok(alg)
    }

    async fn check_signature(
        &self,
        header: &Map<String, Value>,
        alg: Algorithm,
        parts: &Compact<'_>,
    ) -> Result<(), AuthnError> {
        if alg == Algorithm::HS256 {
            // Only the configured secret; never a key from the JWKS.
            let key = self
                .hmac
                .as_ref()
                .ok_or(AuthnError::AlgNotAllowed("HS256".into()))?;
            let ok = jsonwebtoken::crypto::verify(parts.signature, parts.signing_input.as_bytes(), key, alg)
                .unwrap_or(false);
            return if ok { Ok(()) } else { Err(AuthnError::BadSignature) };
        }
        let source = self.keys.as_ref().ok_or(AuthnError::KeysUnavailable)?;
        let kid = header.get("kid").and_then(Value::as_str);
        let mut set = source.keys();
        if set.find(kid, alg).is_none() {
            // One refresh per floor, whoever asks; then look again.
            source.refresh_on_unknown_kid().await;
            set = source.keys();
        }
        let key = match set.find(kid, alg) {
            Some(k) => k,
            None if set.is_empty() => return Err(AuthnError::KeysUnavailable),
            None => return Err(AuthnError::UnknownKid),
        };
        if key.verify(alg, parts.signing_input.as_bytes(), parts.signature) {
            Ok(())
        } else {
            Err(AuthnError::BadSignature)
        }
    }

    /// Checks the registered claims; returns `exp`.
    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<i64, AuthnError> {
        let p = &self.policy;
        let leeway = i64::try_from(p.leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.get("iss").and_then(Value::as_str) != Some(p.issuer.as_str()) {
            return Err(AuthnError::WrongIssuer);
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => p.audiences.iter().any(|x| x == a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| p.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !aud_ok {
            return Err(AuthnError::WrongAudience);
        }
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or_else(|| AuthnError::Claim("exp".into()))?;
        // No leeway on expiry: refusing a token a few seconds early is the
        // safe side.
        if now >= exp {
            return Err(AuthnError::Expired);
        }
        if let Some(v) = claims.get("nbf") {
            let nbf = numeric_date(v).ok_or_else(|| AuthnError::Claim("nbf".into()))?;
            if nbf > now.saturating_add(leeway) {
                return Err(AuthnError::NotYetValid);
            }
        }
        if let Some(v) = claims.get("iat") {
            let iat = numeric_date(v).ok_or_else(|| AuthnError::Claim("iat".into()))?;
            if iat > now.saturating_add(leeway) {
                return Err(AuthnError::IssuedInFuture);
            }
        }
        if claims.get("cnf").is_some_and(|c| !c.is_object()) {
            return Err(AuthnError::Claim("cnf".into()));
        }
        for name in &p.required_claims {
            if claims.get(name).is_none_or(Value::is_null) {
                return Err(AuthnError::Claim(name.clone()));
            }
        }
        Ok(exp)
    }
}
