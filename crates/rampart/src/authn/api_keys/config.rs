//! `[api_keys]`: where API keys are stored, which header carries them, the
//! pepper they are hashed with and how long a verified key is trusted;
//! validated once into [`ApiKeysPolicy`].
//!
//! Threat answered: a policy that stores keys where they can be read, hashes
//! them with a guessable key, or trusts a revoked key for minutes. The pepper
//! must be a file of at least 32 bytes; `cache_ttl` (the revocation latency)
//! is capped at 5 minutes. How it fails: every problem is a
//! [`ConfigProblem`] with its key path (`api_keys.pepper_file`); the pepper's
//! content is never quoted, nor a store password.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use crate::config::{ConfigProblem, LoadedConfig};
use crate::secret::Secret;

/// The default store: a SQLite file next to the policy.
pub const DEFAULT_STORE: &str = "sqlite://rampart-keys.db";
/// The default header.
pub const DEFAULT_HEADER: &str = "X-API-Key";
/// Shortest pepper, in bytes.
pub const MIN_PEPPER_BYTES: usize = 32;
/// Longest `cache_ttl`.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(300);

/// `[api_keys]`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// Where keys live: `sqlite://PATH` (relative to the policy's
    /// directory; default `sqlite://rampart-keys.db`) or
    /// `postgres://user[:password]@host[:port]/db` (a cluster shares it).
    #[serde(default = "default_store")]
    pub store: String,
    /// The request header that carries the key. Default `X-API-Key`.
    #[serde(default = "default_header")]
    pub header: String,
    /// A file holding at least 32 bytes of secret (e.g.
    /// `head -c 32 /dev/urandom | base64 > pepper`): the HMAC key keys are
    /// hashed with. Required. Changing it invalidates every key.
    pub pepper_file: Option<PathBuf>,
    /// How long a verified key is trusted before the store is asked again:
    /// the longest a revocation takes to be seen. Default 10s, at most 5m.
    #[serde(
        default = "default_cache_ttl",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub cache_ttl: Duration,
}

impl Default for ApiKeysConfig {
    fn default() -> Self {
        Self {
            store: default_store(),
            header: default_header(),
            pepper_file: None,
            cache_ttl: default_cache_ttl(),
        }
    }
}

fn default_store() -> String {
    DEFAULT_STORE.into()
}

fn default_header() -> String {
    DEFAULT_HEADER.into()
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(10)
}

pub use crate::store::StoreLocation;

/// `[api_keys]`, validated.
#[derive(Debug, Clone)]
pub struct ApiKeysPolicy {
    /// Where keys live.
    pub store: StoreLocation,
    /// The header carrying the key.
    pub header: HeaderName,
    /// The HMAC key (the pepper file's content, trailing whitespace removed).
    pub pepper: Secret<Vec<u8>>,
    /// Revocation latency.
    pub cache_ttl: Duration,
}

impl ApiKeysPolicy {
    /// Validates `[api_keys]` and reads the pepper file.
    pub fn from_config(c: &ApiKeysConfig, loaded: &LoadedConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let store = StoreLocation::parse(&c.store, |p| loaded.resolve(p))
            .map_err(|why| problems.push(ConfigProblem::error("api_keys.store", why)))
            .ok();
        let header = match HeaderName::from_str(&c.header) {
            Ok(h) if !FORBIDDEN_HEADERS.contains(&h.as_str()) => Some(h),
            Ok(_) => {
                problems.push(ConfigProblem::error(
                    "api_keys.header",
                    format!("`{}` is used by HTTP itself; choose e.g. X-API-Key", c.header),
                ));
                None
            }
            Err(_) => {
                problems.push(ConfigProblem::error("api_keys.header", "not a valid header name"));
                None
            }
        };
        let pepper = match &c.pepper_file {
            None => {
                problems.push(ConfigProblem::error(
                    "api_keys.pepper_file",
                    format!(
                        "required: a file with at least {MIN_PEPPER_BYTES} bytes of secret \
                         (e.g. `head -c 32 /dev/urandom | base64 > api-keys.pepper`)"
                    ),
                ));
                None
            }
            Some(f) => {
                let path = loaded.resolve(f);
                match std::fs::read(&path) {
                    Ok(mut bytes) => {
                        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
                            bytes.pop();
                        }
                        if bytes.len() < MIN_PEPPER_BYTES {
                            problems.push(ConfigProblem::error(
                                "api_keys.pepper_file",
                                format!(
                                    "{} holds {} byte(s); at least {MIN_PEPPER_BYTES} are needed",
                                    path.display(),
                                    bytes.len()
                                ),
                            ));
                            None
                        } else {
                            Some(Secret::new(bytes))
                        }
                    }
                    Err(e) => {
                        problems.push(ConfigProblem::error(
                            "api_keys.pepper_file",
                            format!("cannot read {}: {e}", path.display()),
                        ));
                        None
                    }
                }
            }
        };
        if c.cache_ttl > MAX_CACHE_TTL {
            problems.push(ConfigProblem::error(
                "api_keys.cache_ttl",
                "at most 5m: it is how long a revoked key keeps working",
            ));
        }
        match (store, header, pepper) {
            (Some(store), Some(header), Some(pepper)) if problems.is_empty() => Ok(Self {
                store,
                header,
                pepper,
                cache_ttl: c.cache_ttl,
            }),
            _ => Err(problems),
        }
    }
}

/// Headers that carry something else and cannot hold an API key.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "cookie",
    "dpop",
    // Bearer and DPoP tokens come in it (RFC 6750, RFC 9449); a bare key
    // there would be read as a malformed token.
    "authorization",
];
