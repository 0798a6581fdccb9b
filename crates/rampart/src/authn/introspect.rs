//! RFC 7662 token introspection for opaque access tokens: the gateway asks
//! the authorization server whether a token is active, as an authenticated
//! client (HTTP Basic, `client_secret_basic`), and turns the answer's `sub`,
//! `client_id`, `scope`, `exp`, `cnf`, `iss`, `aud` into a [`Principal`].
//!
//! Threat answered: opaque tokens accepted without asking their issuer,
//! revoked tokens kept usable for long, and the introspection endpoint
//! turned against the gateway or the authorization server. Only `https://`
//! with verified TLS; the answer must say `"active": true`, and its `iss`,
//! `aud`, `exp`, `nbf` and `iat` (when present) are checked like a JWT's.
//! Results are cached by SHA-256 of the token (never the token itself) for
//! `introspection_cache_ttl` (default 30s: the revocation latency) and never
//! past the token's `exp`; refusals (inactive, expired, wrong audience) are
//! cached for at most [`REFUSAL_TTL`], so a replayed bad token does not
//! become a flood toward the authorization server. The cache is bounded;
//! at most [`MAX_CONCURRENT_CALLS`] calls are in flight.
//!
//! How it fails: closed. An endpoint that is down, slow (past
//! `introspection_timeout`, default 2s), answers non-200 or something that
//! is not a JSON object yields [`AuthnError::IntrospectionUnavailable`],
//! which the client sees as 401 `invalid_token` (like an issuer whose keys
//! never loaded); operators see the cause
//! `authn.introspection_unavailable`. Such failures are not cached; cached
//! results keep working during an outage until their TTL ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::config::{IntrospectionPolicy, IssuerPolicy};
use super::error::AuthnError;
use super::fetch::HttpsClient;
use super::jwt::{numeric_date, unix_now, MAX_TOKEN_BYTES};
use super::principal::Principal;
use super::sha256;
use crate::clock::SharedClock;
use crate::config::ConfigProblem;
use crate::secret::Secret;

/// Longest time a refusal (inactive, expired, wrong audience…) is reused.
pub const REFUSAL_TTL: Duration = Duration::from_secs(10);

/// Default capacity of the result cache.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// Most introspection calls in flight at once, per issuer; more wait
/// (within the timeout).
pub const MAX_CONCURRENT_CALLS: usize = 64;

/// `application/x-www-form-urlencoded` keeps `*-._` and alphanumerics.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// A cached result.
#[derive(Debug, Clone)]
enum Verdict {
    Active(Arc<Principal>),
    Refused(AuthnError),
}

const CACHE_SHARDS: usize = 16;

type Shard = Mutex<HashMap<[u8; 32], (Verdict, i64)>>;

/// Introspection results by SHA-256 of the token, each with the Unix time
/// it may be reused until. Bounded: a full shard drops stale entries, then
/// the one ending soonest.
#[derive(Debug)]
pub struct IntrospectionCache {
    shards: Vec<Shard>,
    per_shard: usize,
}

impl IntrospectionCache {
    /// A cache of at most about `capacity` results (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..CACHE_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(CACHE_SHARDS),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> Option<&Shard> {
        self.shards.get(usize::from(key[0]) % CACHE_SHARDS)
    }

    fn get(&self, key: &[u8; 32], now: i64) -> Option<Verdict> {
        let mut map = self.shard(key)?.lock().ok()?;
        match map.get(key) {
            Some((v, until)) if now < *until => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&self, key: [u8; 32], verdict: Verdict, until: i64, now: i64) {
        if self.per_shard == 0 || until <= now {
            return;
        }
        let Some(Ok(mut map)) = self.shard(&key).map(|m| m.lock()) else {
            return;
        };
        if map.len() >= self.per_shard {
            map.retain(|_, (_, u)| now < *u);
        }
        if map.len() >= self.per_shard {
            let soonest = map.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| *k);
            if let Some(k) = soonest {
                map.remove(&k);
            }
        }
        map.insert(key, (verdict, until));
    }

    /// Number of cached results.
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

/// Asks one issuer's introspection endpoint about opaque tokens.
#[derive(Debug)]
pub struct Introspector {
    issuer_name: Arc<str>,
    issuer: String,
    audiences: Vec<String>,
    required_claims: Vec<String>,
    leeway: i64,
    url: String,
    authorization: Secret<HeaderValue>,
    client: HttpsClient,
    ttl: i64,
    timeout: Duration,
    cache: IntrospectionCache,
    calls: tokio::sync::Semaphore,
    clock: SharedClock,
}

impl Introspector {
    /// Builds the introspector of `issuer` (whose `introspection` is `p`):
    /// reads the client secret file now, so `rampart check` reports a
    /// missing one. `path` is the issuer's key path (`issuers[0]`).
    pub fn from_policy(
        issuer: &IssuerPolicy,
        p: &IntrospectionPolicy,
        clock: SharedClock,
        path: &str,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let at = |k: &str| format!("{path}.{k}");
        let secret = std::fs::read_to_string(&p.client_secret_file).map_err(|e| {
            vec![ConfigProblem::error(
                at("introspection_client_secret_file"),
                format!("cannot read {}: {e}", p.client_secret_file.display()),
            )]
        })?;
        let secret = Secret::new(secret.trim_end_matches(['\r', '\n']).to_owned());
        if secret.expose().is_empty() {
            return Err(vec![ConfigProblem::error(
                at("introspection_client_secret_file"),
                format!("{} is empty", p.client_secret_file.display()),
            )]);
        }
        // RFC 6749 §2.3.1: both parts form-encoded, then HTTP Basic.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            utf8_percent_encode(&p.client_id, FORM),
            utf8_percent_encode(secret.expose(), FORM)
        ));
        let mut authorization = HeaderValue::from_str(&format!("Basic {basic}")).map_err(|_| {
            vec![ConfigProblem::error(
                at("introspection_client_id"),
                "cannot form an Authorization header",
            )]
        })?;
        authorization.set_sensitive(true);
        let client = HttpsClient::new(p.ca_file.as_deref())
            .map_err(|e| vec![ConfigProblem::error(at("ca_file"), e)])?
            .with_timeout(p.timeout);
        Ok(Self {
            issuer_name: Arc::from(issuer.name.as_str()),
            issuer: issuer.issuer.clone(),
            audiences: issuer.audiences.clone(),
            required_claims: issuer.required_claims.clone(),
            leeway: i64::try_from(issuer.leeway.as_secs()).unwrap_or(i64::MAX),
            url: p.url.clone(),
            authorization: Secret::new(authorization),
            client,
            ttl: i64::try_from(p.cache_ttl.as_secs()).unwrap_or(i64::MAX),
            timeout: p.timeout,
            cache: IntrospectionCache::new(DEFAULT_CACHE_CAPACITY),
            calls: tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS),
            clock,
        })
    }

    /// The result cache.
    pub fn cache(&self) -> &IntrospectionCache {
        &self.cache
    }

    /// Whether the token is active, and for whom. Cached results are
    /// reused within their TTL.
    pub async fn introspect(&self, token: &str) -> Result<Arc<Principal>, AuthnError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthnError::Malformed("token too long"));
        }
        let hash = sha256(token.as_bytes());
        let now = unix_now(&*self.clock);
        match self.cache.get(&hash, now) {
            Some(Verdict::Active(p)) => return Ok(p),
            Some(Verdict::Refused(e)) => return Err(e),
            None => {}
        }
        let claims = self.call(token).await?;
        // The answer may have taken a while: judge it at the current time.
        let now = unix_now(&*self.clock);
        let refusal_ttl = i64::try_from(REFUSAL_TTL.as_secs()).unwrap_or(0).min(self.ttl);
        match self.judge(claims, now) {
            Ok((principal, exp)) => {
                let until = now.saturating_add(self.ttl);
                let until = exp.map_or(until, |e| until.min(e));
                self.cache
                    .insert(hash, Verdict::Active(principal.clone()), until, now);
                Ok(principal)
            }
            Err(e) => {
                self.cache.insert(
                    hash,
                    Verdict::Refused(e.clone()),
                    now.saturating_add(refusal_ttl),
                    now,
                );
                Err(e)
            }
        }
    }

    /// One POST to the endpoint; the answer's JSON object.
    async fn call(&self, token: &str) -> Result<Map<String, Value>, AuthnError> {
        let form = format!(
            "token={}&token_type_hint=access_token",
            utf8_percent_encode(token, FORM)
        );
        let call = async {
            let _permit = self
                .calls
                .acquire()
                .await
                .map_err(|_| AuthnError::IntrospectionUnavailable("closed".into()))?;
            self.client
                .post_form(&self.url, self.authorization.expose(), form)
                .await
                .map_err(|e| AuthnError::IntrospectionUnavailable(e.to_string()))
        };
        let body = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| AuthnError::IntrospectionUnavailable("timed out".into()))??;
        match serde_json::from_slice(&body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(AuthnError::IntrospectionUnavailable(
                "answer is not a JSON object".into(),
            )),
        }
    }

    /// Checks an answer: `active`, then the claims it carries. Returns the
    /// principal and the token's `exp`, if given.
    fn judge(
        &self,
        mut claims: Map<String, Value>,
        now: i64,
    ) -> Result<(Arc<Principal>, Option<i64>), AuthnError> {
        match claims.remove("active") {
            Some(Value::Bool(true)) => {}
            _ => return Err(AuthnError::Inactive),
        }
        if let Some(iss) = claims.get("iss") {
            if iss.as_str() != Some(self.issuer.as_str()) {
                return Err(AuthnError::WrongIssuer);
            }
        }
        let aud_ok = match claims.get("aud") {
            None => true,
            Some(Value::String(a)) => self.audiences.iter().any(|x| x == a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.audiences.iter().any(|x| x == a)),
            Some(_) => false,
        };
        if !aud_ok {
            return Err(AuthnError::WrongAudience);
        }
        let exp = match claims.get("exp") {
            None => None,
            Some(v) => Some(numeric_date(v).ok_or_else(|| AuthnError::Claim("exp".into()))?),
        };
        if exp.is_some_and(|e| now >= e) {
            return Err(AuthnError::Expired);
        }
        for (name, err) in [
            ("nbf", AuthnError::NotYetValid),
            ("iat", AuthnError::IssuedInFuture),
        ] {
            if let Some(v) = claims.get(name) {
                let t = numeric_date(v).ok_or_else(|| AuthnError::Claim(name.into()))?;
                if t > now.saturating_add(self.leeway) {
                    return Err(err);
                }
            }
        }
        if claims.get("cnf").is_some_and(|c| !c.is_object()) {
            return Err(AuthnError::Claim("cnf".into()));
        }
        for name in &self.required_claims {
            if claims.get(name).is_none_or(Value::is_null) {
                return Err(AuthnError::Claim(name.clone()));
            }
        }
        let expires_at = exp.unwrap_or_else(|| now.saturating_add(self.ttl));
        let principal = Principal::from_claims(Arc::clone(&self.issuer_name), claims, expires_at);
        Ok((Arc::new(principal), exp))
    }
}

#[cfg(test)]
#[path = "introspect_tests.rs"]
mod tests;
