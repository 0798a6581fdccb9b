//! An issuer's verification keys: a JWKS parsed into [`KeySet`], held by a
//! [`KeySource`] that refreshes it on a schedule and once on an unknown
//! `kid`.
//!
//! Threats answered: algorithm confusion (a key is only ever used with the
//! algorithm it declares, or, without `alg`, with the algorithms its type and
//! curve allow: an RSA key never verifies HS256, an EC key never RS256);
//! symmetric or private keys slipped into a JWKS (skipped); an attacker
//! flooding unknown `kid`s to make the gateway hammer the IdP (at most one
//! fetch per floor, single-flight); an IdP outage (the cached keys stay).
//!
//! How it fails: a JWKS that does not parse, or has no usable key, is
//! refused as a whole and the previous set is kept.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::b64url_decode;
use crate::clock::SharedClock;

/// Members that only a private JWK has.
pub(crate) const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Largest JWKS document accepted (bytes).
pub const MAX_JWKS_BYTES: usize = 512 * 1024;

/// Why keys could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JWKS (`{"keys": [...]}`), or no usable signing key in it.
    #[error("invalid JWKS: {0}")]
    Invalid(String),
    /// The fetch failed (network, TLS, status, size, timeout, file).
    #[error("fetching the JWKS failed: {0}")]
    Fetch(String),
}

/// Why one JWK was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Contains private members.
    #[error("JWK contains private key members")]
    Private,
    /// Not a verification key, unknown type, curve or alg, or bad members.
    #[error("unusable JWK: {0}")]
    Unusable(&'static str),
}

/// Key type and curve: what decides which algorithms a key may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA (RS*/PS*), modulus of at least 2048 bits.
    Rsa,
    /// EC P-256 (ES256).
    P256,
    /// EC P-384 (ES384).
    P384,
    /// OKP Ed25519 (EdDSA).
    Ed25519,
}

impl KeyKind {
    fn permits(self, alg: Algorithm) -> bool {
        use Algorithm as A;
        match self {
            Self::Rsa => matches!(
                alg,
                A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
            ),
            Self::P256 => alg == A::ES256,
            Self::P384 => alg == A::ES384,
            Self::Ed25519 => alg == A::EdDSA,
        }
    }
}

/// One public verification key.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The `alg` the JWK declares; the key is used with nothing else.
    alg: Option<Algorithm>,
    key: DecodingKey,
    jwk: Map<String, Value>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyingKey {
    /// Parses one public JWK. Refuses private members, `oct` keys, keys
    /// whose `use` is not `sig`, keys whose `key_ops` exclude `verify`, and
    /// a declared `alg` that does not fit the key type and curve.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, KeyError> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(KeyError::Private);
        }
        let s = |k: &str| jwk.get(k).and_then(Value::as_str);
        if let Some(u) = jwk.get("use") {
            if u.as_str() != Some("sig") {
                return Err(KeyError::Unusable("use is not sig"));
            }
        }
        if let Some(ops) = jwk.get("key_ops") {
            let verify = ops
                .as_array()
                .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
            if !verify {
                return Err(KeyError::Unusable("key_ops without verify"));
            }
        }
        let coord = |k: &str, len: usize| -> Result<(), KeyError> {
            match s(k).and_then(b64url_decode) {
                Some(v) if v.len() == len => Ok(()),
                _ => Err(KeyError::Unusable("bad coordinate")),
            }
        };
        let (kind, key) = match (s("kty"), s("crv")) {
            (Some("RSA"), _) => {
                let n = s("n")
                    .and_then(b64url_decode)
                    .ok_or(KeyError::Unusable("bad n"))?;
                let e = s("e")
                    .and_then(b64url_decode)
                    .ok_or(KeyError::Unusable("bad e"))?;
                let n_bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if n_bits < 2048 {
                    return Err(KeyError::Unusable("RSA modulus below 2048 bits"));
                }
                if e.is_empty() {
                    return Err(KeyError::Unusable("bad e"));
                }
                (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
            }
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                let (kind, len) = if crv == "P-256" {
                    (KeyKind::P256, 32)
                } else {
                    (KeyKind::P384, 48)
                };
                coord("x", len)?;
                coord("y", len)?;
                let (Some(x), Some(y)) = (s("x"), s("y")) else {
                    return Err(KeyError::Unusable("bad coordinate"));
                };
                let key = DecodingKey::from_ec_components(x, y)
                    .map_err(|_| KeyError::Unusable("bad coordinate"))?;
                (kind, key)
            }
            (Some("OKP"), Some("Ed25519")) => {
                coord("x", 32)?;
                let x = s("x").ok_or(KeyError::Unusable("bad coordinate"))?;
                let key =
                    DecodingKey::from_ed_components(x).map_err(|_| KeyError::Unusable("bad coordinate"))?;
                (KeyKind::Ed25519, key)
            }
            (Some("oct"), _) => return Err(KeyError::Unusable("symmetric keys are never taken from a JWK")),
            _ => return Err(KeyError::Unusable("unsupported kty or crv")),
        };
        let alg = match jwk.get("alg") {
            None => None,
            Some(a) => {
                let a = a
                    .as_str()
                    .and_then(|a| a.parse::<Algorithm>().ok())
                    .ok_or(KeyError::Unusable("unknown alg"))?;
                if !kind.permits(a) {
                    return Err(KeyError::Unusable("alg does not fit the key type"));
                }
                Some(a)
            }
        };
        let kid = s("kid").map(str::to_owned);
        Ok(Self {
            kid,
            kind,
            alg,
            key,
            jwk: jwk.clone(),
        })
    }

    /// Whether this key may verify a signature made with `alg`: the
    /// declared `alg` exactly, or, without one, what the type and curve
    /// allow.
    pub fn permits(&self, alg: Algorithm) -> bool {
        match self.alg {
            Some(declared) => declared == alg,
            None => self.kind.permits(alg),
        }
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key type and curve.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The JWK this key was parsed from.
    pub fn jwk(&self) -> &Map<String, Value> {
        &self.jwk
    }

    /// Verifies a JWS signature (`sig_b64` is the third compact part) over
    /// `signing_input` (`header.payload`), after checking `alg` is one this
    /// key permits.
    pub fn verify(&self, alg: Algorithm, signing_input: &[u8], sig_b64: &str) -> bool {
        self.permits(alg)
            && !sig_b64.is_empty()
            && jsonwebtoken::crypto::verify(sig_b64, signing_input, &self.key, alg).unwrap_or(false)
    }
}

/// A parsed JWKS: the usable signing keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    /// An empty set (nothing verifies).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a JWKS document. Unusable keys are skipped (logged); a
    /// document without any usable key is an error.
    pub fn from_json(bytes: &[u8]) -> Result<Self, JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::Invalid("document too large".into()));
        }
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| JwksError::Invalid(format!("not JSON: {e}")))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError::Invalid("no `keys` array".into()))?;
        let mut keys = Vec::new();
        for (i, k) in list.iter().enumerate() {
            let Some(obj) = k.as_object() else {
                tracing::warn!(index = i, "JWKS entry is not an object; skipped");
                continue;
            };
            match VerifyingKey::from_jwk(obj) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(e) => tracing::warn!(index = i, error = %e, "JWKS key skipped"),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::Invalid("no usable signing key".into()));
        }
        Ok(Self { keys })
    }

    /// The key for `kid` that permits `alg`. Without a `kid`, the one key
    /// that permits `alg`, if exactly one does. A `kid` is compared as an
    /// opaque string: it is never a path, a query or a URL.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.permits(alg)),
            None => {
                let mut it = self.keys.iter().filter(|k| k.permits(alg));
                let first = it.next()?;
                if it.next().is_some() {
                    None
                } else {
                    Some(first)
                }
            }
        }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A boxed future, for the object-safe fetcher trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that returns the current JWKS document: an HTTPS endpoint, an
/// OIDC discovery chain, a file.
pub trait JwksFetcher: Send + Sync + fmt::Debug + 'static {
    /// Fetches the raw JWKS document.
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, JwksError>>;
}

/// Reads the JWKS from a file.
#[derive(Debug, Clone)]
pub struct FileFetcher(pub PathBuf);

impl JwksFetcher for FileFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, JwksError>> {
        Box::pin(async move {
            let bytes = tokio::fs::read(&self.0)
                .await
                .map_err(|e| JwksError::Fetch(format!("{}: {e}", self.0.display())))?;
            if bytes.len() > MAX_JWKS_BYTES {
                return Err(JwksError::Fetch(format!(
                    "{}: larger than {MAX_JWKS_BYTES} bytes",
                    self.0.display()
                )));
            }
            Ok(bytes)
        })
    }
}

/// The current keys of one issuer and how to refresh them.
pub struct KeySource {
    current: ArcSwap<KeySet>,
    fetcher: Arc<dyn JwksFetcher>,
    clock: SharedClock,
    floor: Duration,
    interval: Duration,
    /// Monotonic time of the last fetch attempt. Held across the fetch, so
    /// concurrent callers wait for the one fetch in flight (single-flight)
    /// and then find the floor not yet passed.
    last_attempt: tokio::sync::Mutex<Option<Duration>>,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySource")
            .field("keys", &self.current.load().len())
            .field("fetcher", &self.fetcher)
            .field("floor", &self.floor)
            .finish()
    }
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Fetched and installed a new set.
    Updated,
    /// Skipped: the last attempt was less than the floor ago.
    TooSoon,
    /// The fetch or parse failed; the cached set is kept.
    Failed(JwksError),
}

impl KeySource {
    /// A source with no keys yet; call [`KeySource::refresh`] to load.
    pub fn new(
        fetcher: Arc<dyn JwksFetcher>,
        clock: SharedClock,
        floor: Duration,
        interval: Duration,
    ) -> Self {
        Self {
            current: ArcSwap::from_pointee(KeySet::empty()),
            fetcher,
            clock,
            floor,
            interval,
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    /// A source pre-loaded with `keys` (e.g. read at policy load), whose
    /// floor starts now.
    pub fn with_keys(
        keys: KeySet,
        fetcher: Arc<dyn JwksFetcher>,
        clock: SharedClock,
        floor: Duration,
        interval: Duration,
    ) -> Self {
        let now = clock.monotonic();
        Self {
            current: ArcSwap::from_pointee(keys),
            fetcher,
            clock,
            floor,
            interval,
            last_attempt: tokio::sync::Mutex::new(Some(now)),
        }
    }

    /// The current key set (cheap: an `Arc` load).
    pub fn keys(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Fetches the JWKS unless the last attempt was less than the floor
    /// ago. Concurrent callers share one fetch. On failure the cached keys
    /// stay in place.
    pub async fn refresh(&self) -> Refresh {
        let mut last = self.last_attempt.lock().await;
        let now = self.clock.monotonic();
        if let Some(at) = *last {
            if now.saturating_sub(at) < self.floor {
                return Refresh::TooSoon;
            }
        }
        *last = Some(now);
        let result = match self.fetcher.fetch().await {
            Ok(bytes) => KeySet::from_json(&bytes),
            Err(e) => Err(e),
        };
        match result {
            Ok(set) => {
                tracing::info!(keys = set.len(), "JWKS refreshed");
                self.current.store(Arc::new(set));
                Refresh::Updated
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the cached keys");
                Refresh::Failed(e)
            }
        }
    }

    /// Called when a token names a `kid` (or needs a key) the current set
    /// lacks: one refresh, subject to the floor. Returns whether the set
    /// changed.
    pub async fn refresh_on_unknown_kid(&self) -> bool {
        self.refresh().await == Refresh::Updated
    }

    /// Refreshes every `interval` until the source is dropped (the task
    /// holds only a weak reference, so a reloaded policy's old sources stop).
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(source) = weak.upgrade() else { break };
                source.refresh().await;
            }
        })
    }
}
