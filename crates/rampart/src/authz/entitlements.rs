//! `[[entitlements]]`: what a principal is entitled to (the accounts a
//! customer owns, the merchants a partner may act for), from a table in the
//! policy or an HTTPS entitlement service, for rules to read as
//! `entitlements.NAME`.
//!
//! Threat answered: object-level authorization that trusts only what the
//! token says, where the bank's own record of ownership is elsewhere. The
//! service is called over verified TLS ([`HttpsClient`]: system roots or a
//! configured CA, no redirects, bounded body) with a timeout, and answers
//! are cached per key for `cache_ttl` (bounded in entries). How it fails:
//! closed. A timeout, a status other than 200/404 or a malformed answer is
//! [`AuthzError::EntitlementUnavailable`] and the request is refused (503);
//! a failure is never cached, so the next request asks again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::config::{EntitlementConfig, EntitlementKey};
use super::error::AuthzError;
use crate::authn::fetch::HttpsClient;
use crate::authn::Principal;
use crate::config::{ConfigProblem, LoadedConfig};

/// Most cached answers per source; past it, expired answers are dropped,
/// and if that is not enough, all of them.
pub const MAX_CACHED: usize = 10_000;

/// Longest `cache_ttl`.
pub const MAX_TTL: Duration = Duration::from_secs(600);

/// One source.
#[derive(Debug)]
pub struct Source {
    name: String,
    key: EntitlementKey,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Static(std::collections::BTreeMap<String, Value>),
    Http(Box<HttpSource>),
}

#[derive(Debug)]
struct HttpSource {
    url: String,
    pointer: String,
    client: HttpsClient,
    ttl: Duration,
    /// key → (fetched at, monotonic; value).
    cache: Mutex<HashMap<String, (Duration, Value)>>,
}

/// Every declared source.
#[derive(Debug, Default)]
pub struct Entitlements {
    sources: Vec<Source>,
}

impl Entitlements {
    /// Validates `[[entitlements]]`.
    pub fn from_config(
        cfgs: &[EntitlementConfig],
        loaded: &LoadedConfig,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut sources = Vec::new();
        for (i, c) in cfgs.iter().enumerate() {
            let at = |k: &str| format!("entitlements[{i}].{k}");
            let valid_name = !c.name.is_empty()
                && c.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !c.name.as_bytes()[0].is_ascii_digit();
            if !valid_name {
                problems.push(ConfigProblem::error(
                    at("name"),
                    "must be an identifier (letters, digits, `_`; not starting with a digit)",
                ));
            } else if cfgs[..i].iter().any(|o| o.name == c.name) {
                problems.push(ConfigProblem::error(
                    at("name"),
                    format!("duplicate entitlement source `{}`", c.name),
                ));
            }
            if !c.pointer.is_empty() && !c.pointer.starts_with('/') {
                problems.push(ConfigProblem::error(
                    at("pointer"),
                    "must be a JSON pointer (`/accounts`), or empty for the whole answer",
                ));
            }
            let kind = match (&c.table, &c.url) {
                (Some(_), Some(_)) | (None, None) => {
                    problems.push(ConfigProblem::error(
                        at("url"),
                        "set exactly one of `static` (a table) and `url` (a service)",
                    ));
                    continue;
                }
                (Some(t), None) => Kind::Static(t.clone()),
                (None, Some(url)) => {
                    if !url.starts_with("https://") {
                        problems.push(ConfigProblem::error(at("url"), "must be an https:// URL"));
                        continue;
                    }
                    if !url.contains("{key}") {
                        problems.push(ConfigProblem::error(
                            at("url"),
                            "must contain `{key}`, replaced by the principal's key",
                        ));
                        continue;
                    }
                    if c.cache_ttl > MAX_TTL {
                        problems.push(ConfigProblem::error(at("cache_ttl"), "must be at most 10m"));
                    }
                    if c.timeout.is_zero() {
                        problems.push(ConfigProblem::error(at("timeout"), "must be more than 0"));
                    }
                    let ca = c.ca_file.as_ref().map(|p| loaded.resolve(p));
                    match HttpsClient::new(ca.as_deref()) {
                        Ok(client) => Kind::Http(Box::new(HttpSource {
                            url: url.clone(),
                            pointer: c.pointer.clone(),
                            client: client.with_timeout(c.timeout),
                            ttl: c.cache_ttl,
                            cache: Mutex::default(),
                        })),
                        Err(e) => {
                            problems.push(ConfigProblem::error(at("ca_file"), e));
                            continue;
                        }
                    }
                }
            };
            sources.push(Source {
                name: c.name.clone(),
                key: c.key,
                kind,
            });
        }
        if problems.is_empty() {
            Ok(Self { sources })
        } else {
            Err(problems)
        }
    }

    /// The names of the sources.
    pub fn names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name.clone()).collect()
    }

    /// The source named `name`.
    pub fn get(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }
}

impl Source {
    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What `p` is entitled to; `now` is monotonic (cache ages).
    pub async fn resolve(&self, p: &Principal, now: Duration) -> Result<Value, AuthzError> {
        let key = match self.key {
            EntitlementKey::Subject => p.subject(),
            EntitlementKey::ClientId => p.client_id(),
        };
        let Some(key) = key else {
            // No key, no entitlement.
            return Ok(Value::Array(Vec::new()));
        };
        match &self.kind {
            Kind::Static(t) => Ok(t.get(key).cloned().unwrap_or_else(|| Value::Array(Vec::new()))),
            Kind::Http(h) => h.resolve(&self.name, key, now).await,
        }
    }
}

impl HttpSource {
    async fn resolve(&self, name: &str, key: &str, now: Duration) -> Result<Value, AuthzError> {
        if let Some((at, v)) = self.cache.lock().ok().and_then(|c| c.get(key).cloned()) {
            if now.saturating_sub(at) < self.ttl {
                return Ok(v);
            }
        }
        let unavailable = |detail: String| AuthzError::EntitlementUnavailable {
            name: name.to_owned(),
            detail,
        };
        let encoded =
            percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string();
        let url = self.url.replace("{key}", &encoded);
        let answer = self
            .client
            .get_json_or_absent(&url)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let value = match answer {
            None => Value::Array(Vec::new()),
            Some(bytes) => {
                let doc: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| unavailable(format!("answer is not JSON: {e}")))?;
                if self.pointer.is_empty() {
                    doc
                } else {
                    doc.pointer(&self.pointer)
                        .cloned()
                        .ok_or_else(|| unavailable(format!("answer has no `{}`", self.pointer)))?
                }
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= MAX_CACHED {
                let ttl = self.ttl;
                c.retain(|_, (at, _)| now.saturating_sub(*at) < ttl);
                if c.len() >= MAX_CACHED {
                    c.clear();
                }
            }
            c.insert(key.to_owned(), (now, value.clone()));
        }
        Ok(value)
    }
}
