//! `[[issuers]]` and `[dpop]`: who may issue tokens the gateway accepts, and
//! how DPoP proofs are checked; validated once into [`IssuerPolicy`] and
//! [`DpopPolicy`].
//!
//! Threat answered: a policy that quietly weakens token checks. Secure
//! defaults (FAPI 2.0 algorithms, audiences required, HTTPS key sources),
//! opt-in for RS256, and HS256 only with a dangerous, long secret. How it
//! fails: every problem is a [`ConfigProblem`] with its key path; nothing is
//! half-applied.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer};

use crate::config::ConfigProblem;
use crate::secret::Secret;

/// One `[[issuers]]` entry, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Name routes use to refer to it (`authn = ["jwt:bank-idp"]`).
    pub name: String,
    /// The issuer identifier; tokens must carry exactly this `iss`.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// JWKS over HTTPS.
    pub jwks_url: Option<String>,
    /// JWKS from a file (re-read on refresh).
    pub jwks_file: Option<PathBuf>,
    /// Find `jwks_uri` by OIDC discovery (`{issuer}/.well-known/openid-configuration`).
    #[serde(default)]
    pub discovery: bool,
    /// CA bundle (PEM) for `jwks_url`/discovery, instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Allowed `alg` values. Default `["PS256", "ES256", "EdDSA"]` (FAPI 2.0);
    /// `RS256` (and PS384, PS512, ES384, RS384, RS512) must be listed to be
    /// accepted; `HS256` needs `dangerous_hs256_secret`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Shared secret for HS256 (at least 32 bytes). Dangerous: anyone who
    /// can verify can also mint. Flagged by `rampart check`.
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub dangerous_hs256_secret: Option<Secret<String>>,
    /// Require header `typ` `at+jwt` (RFC 9068).
    #[serde(default)]
    pub require_typ_at_jwt: bool,
    /// How far in the future `iat` and `nbf` may be (clock skew). Default 10s.
    #[serde(
        default = "default_leeway",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub leeway: Duration,
    /// Claims that must be present (besides `iss`, `aud`, `exp`, always required).
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Refuse plain bearer tokens: only DPoP- or certificate-bound ones (FAPI 2.0).
    #[serde(default)]
    pub require_sender_constrained: bool,
    /// How often the JWKS is refreshed. Default 5m.
    #[serde(
        default = "default_refresh",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub jwks_refresh: Duration,
    /// Least time between two fetches, whatever triggers them (unknown `kid`
    /// floods). Default 30s.
    #[serde(
        default = "default_refresh_floor",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub jwks_min_refresh: Duration,
    /// RFC 7662 introspection endpoint (`https://` only), for opaque tokens
    /// on routes with `authn = ["introspect:<name>"]`.
    pub introspection_url: Option<String>,
    /// Client id the gateway authenticates with at the introspection
    /// endpoint (HTTP Basic, `client_secret_basic`).
    pub introspection_client_id: Option<String>,
    /// File holding the client secret (trailing newline ignored); read at
    /// every (re)load.
    pub introspection_client_secret_file: Option<PathBuf>,
    /// How long an introspection result is reused: the revocation latency.
    /// Default 30s; never beyond the token's `exp`; inactive results are
    /// kept at most 10s.
    #[serde(
        default = "default_introspection_ttl",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub introspection_cache_ttl: Duration,
    /// Longest wait for the introspection endpoint (connect, TLS, answer).
    /// Default 2s.
    #[serde(
        default = "default_introspection_timeout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub introspection_timeout: Duration,
}

fn default_introspection_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_introspection_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_algorithms() -> Vec<String> {
    vec!["PS256".into(), "ES256".into(), "EdDSA".into()]
}

fn default_leeway() -> Duration {
    Duration::from_secs(10)
}

fn default_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_refresh_floor() -> Duration {
    Duration::from_secs(30)
}

fn deserialize_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret<String>>, D::Error> {
    Ok(Some(Secret::new(String::deserialize(d)?)))
}

/// `[dpop]`: DPoP proof checks, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpopConfig {
    /// How old a proof's `iat` may be. Default 60s; also the replay-cache TTL.
    #[serde(
        default = "default_iat_window",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub iat_window: Duration,
    /// How far in the future a proof's `iat` may be (clock skew). Default 5s.
    #[serde(
        default = "default_iat_leeway",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub iat_leeway: Duration,
    /// Require server-provided nonces (`DPoP-Nonce`, RFC 9449 §9). Default false.
    #[serde(default)]
    pub nonce: bool,
    /// How long one server nonce stays current. Default 5m; the previous one
    /// is accepted for as long again.
    #[serde(
        default = "default_nonce_lifetime",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub nonce_lifetime: Duration,
    /// Allowed proof algorithms. Default `["PS256", "ES256", "EdDSA"]`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Most proofs remembered by the in-memory replay cache. Default 1,000,000.
    #[serde(default = "default_replay_capacity")]
    pub replay_cache_capacity: usize,
    /// Where used proofs are remembered: `memory` (default: this gateway)
    /// or `redis` (every gateway on the `[redis]` server).
    #[serde(default)]
    pub replay_store: crate::rate_limit::config::StoreKind,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            iat_window: default_iat_window(),
            iat_leeway: default_iat_leeway(),
            nonce: false,
            nonce_lifetime: default_nonce_lifetime(),
            algorithms: default_algorithms(),
            replay_cache_capacity: default_replay_capacity(),
            replay_store: Default::default(),
        }
    }
}

fn default_iat_window() -> Duration {
    Duration::from_secs(60)
}

fn default_iat_leeway() -> Duration {
    Duration::from_secs(5)
}

fn default_nonce_lifetime() -> Duration {
    Duration::from_secs(300)
}

fn default_replay_capacity() -> usize {
    1_000_000
}

/// Where an issuer's verification keys come from, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySourcePolicy {
    /// A JWKS document over HTTPS.
    Url {
        /// The `https://` URL.
        url: String,
        /// Custom CA bundle, else the system roots.
        ca_file: Option<PathBuf>,
    },
    /// A JWKS file.
    File(PathBuf),
    /// OIDC discovery from the issuer.
    Discovery {
        /// Custom CA bundle, else the system roots.
        ca_file: Option<PathBuf>,
    },
    /// No JWKS: HS256 with the shared secret only.
    None,
}

/// RFC 7662 introspection of an issuer's opaque tokens, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionPolicy {
    /// The `https://` endpoint.
    pub url: String,
    /// Client id for HTTP Basic authentication.
    pub client_id: String,
    /// File with the client secret.
    pub client_secret_file: PathBuf,
    /// Reuse of a result (capped by the token's `exp`).
    pub cache_ttl: Duration,
    /// Total time allowed for one call.
    pub timeout: Duration,
    /// Custom CA bundle, else the system roots (the issuer's `ca_file`).
    pub ca_file: Option<PathBuf>,
}

/// An issuer, validated: every field is usable as is.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerPolicy {
    /// Name routes refer to.
    pub name: String,
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted audiences (at least one).
    pub audiences: Vec<String>,
    /// Where keys come from.
    pub keys: KeySourcePolicy,
    /// Allowed algorithms (never `none`; HS256 only with `hs256_secret`).
    pub algorithms: Vec<Algorithm>,
    /// The HS256 secret, at least 32 bytes.
    pub hs256_secret: Option<Secret<Vec<u8>>>,
    /// Require `typ` `at+jwt`.
    pub require_typ_at_jwt: bool,
    /// Skew allowed on `iat`/`nbf`.
    pub leeway: Duration,
    /// Claims that must be present.
    pub required_claims: Vec<String>,
    /// Refuse plain bearer tokens.
    pub require_sender_constrained: bool,
    /// JWKS refresh period.
    pub refresh: Duration,
    /// Least time between two JWKS fetches.
    pub refresh_floor: Duration,
    /// Introspection of opaque tokens, if configured.
    pub introspection: Option<IntrospectionPolicy>,
}

/// Algorithms a policy may name, with whether they need the opt-in.
const KNOWN_ASYMMETRIC: &[&str] = &[
    "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512",
];

/// Parses an asymmetric algorithm name a policy may list.
pub(crate) fn asymmetric_alg(name: &str) -> Option<Algorithm> {
    if KNOWN_ASYMMETRIC.contains(&name) {
        name.parse().ok()
    } else {
        None
    }
}

impl IssuerPolicy {
    /// Validates one `[[issuers]]` entry found at key path `path`
    /// (e.g. `issuers[0]`).
    pub fn from_config(c: &IssuerConfig, path: &str) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let at = |k: &str| format!("{path}.{k}");

        if c.name.is_empty()
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            problems.push(ConfigProblem::error(
                at("name"),
                "issuer name must be non-empty: letters, digits, `-`, `_`, `.`",
            ));
        }
        if !c.issuer.starts_with("https://") || c.issuer.len() <= "https://".len() {
            problems.push(ConfigProblem::error(
                at("issuer"),
                "issuer must be an https:// URL (RFC 8414 / OIDC issuer identifier)",
            ));
        }
        if c.audiences.is_empty() || c.audiences.iter().any(String::is_empty) {
            problems.push(ConfigProblem::error(
                at("audiences"),
                "at least one non-empty audience is required; tokens for other services must be refused",
            ));
        }

        let mut algorithms = Vec::new();
        let mut hs256 = false;
        for (i, name) in c.algorithms.iter().enumerate() {
            match name.as_str() {
                "HS256" => hs256 = true,
                "none" | "None" | "NONE" => problems.push(ConfigProblem::error(
                    format!("{path}.algorithms[{i}]"),
                    "`none` is never accepted",
                )),
                "HS384" | "HS512" => problems.push(ConfigProblem::error(
                    format!("{path}.algorithms[{i}]"),
                    "only HS256 is supported among symmetric algorithms (with dangerous_hs256_secret)",
                )),
                other => match asymmetric_alg(other) {
                    Some(a) => {
                        if !algorithms.contains(&a) {
                            algorithms.push(a);
                        }
                    }
                    None => problems.push(ConfigProblem::error(
                        format!("{path}.algorithms[{i}]"),
                        format!(
                            "unknown algorithm `{other}`; expected one of PS256, ES256, EdDSA, RS256, PS384, PS512, ES384, RS384, RS512, HS256"
                        ),
                    )),
                },
            }
        }
        if c.algorithms.is_empty() {
            problems.push(ConfigProblem::error(
                at("algorithms"),
                "at least one algorithm is required",
            ));
        }
        let hs256_secret = match (&c.dangerous_hs256_secret, hs256) {
            (Some(s), true) if s.expose().len() >= 32 => {
                algorithms.push(Algorithm::HS256);
                Some(Secret::new(s.expose().as_bytes().to_vec()))
            }
            (Some(_), true) => {
                problems.push(ConfigProblem::error(
                    at("dangerous_hs256_secret"),
                    "the HS256 secret must be at least 32 bytes (256 bits)",
                ));
                None
            }
            (None, true) => {
                problems.push(ConfigProblem::error(
                    at("algorithms"),
                    "HS256 needs dangerous_hs256_secret (at least 32 bytes)",
                ));
                None
            }
            (Some(_), false) => {
                problems.push(ConfigProblem::error(
                    at("dangerous_hs256_secret"),
                    "a secret is given but HS256 is not in algorithms",
                ));
                None
            }
            (None, false) => None,
        };
        let asymmetric = algorithms.iter().any(|a| *a != Algorithm::HS256);

        let sources =
            usize::from(c.jwks_url.is_some()) + usize::from(c.jwks_file.is_some()) + usize::from(c.discovery);
        let keys = match (&c.jwks_url, &c.jwks_file, c.discovery) {
            _ if sources > 1 => {
                problems.push(ConfigProblem::error(
                    path,
                    "give only one of jwks_url, jwks_file, discovery = true",
                ));
                KeySourcePolicy::None
            }
            (Some(url), _, _) => {
                if !url.starts_with("https://") {
                    problems.push(ConfigProblem::error(at("jwks_url"), "jwks_url must be https://"));
                }
                KeySourcePolicy::Url {
                    url: url.clone(),
                    ca_file: c.ca_file.clone(),
                }
            }
            (_, Some(file), _) => KeySourcePolicy::File(file.clone()),
            (_, _, true) => KeySourcePolicy::Discovery {
                ca_file: c.ca_file.clone(),
            },
            _ => {
                if asymmetric && c.introspection_url.is_none() {
                    problems.push(ConfigProblem::error(
                        path,
                        "a key source is required: jwks_url, jwks_file, discovery = true \
                         (or introspection_url for opaque tokens only)",
                    ));
                }
                KeySourcePolicy::None
            }
        };
        if c.ca_file.is_some()
            && c.introspection_url.is_none()
            && !matches!(
                keys,
                KeySourcePolicy::Url { .. } | KeySourcePolicy::Discovery { .. }
            )
        {
            problems.push(ConfigProblem::error(
                at("ca_file"),
                "ca_file is only used with jwks_url, discovery or introspection_url",
            ));
        }
        let introspection = introspection_policy(c, path, &mut problems);

        if c.leeway > Duration::from_secs(300) {
            problems.push(ConfigProblem::error(
                at("leeway"),
                "leeway above 5m is not accepted",
            ));
        }
        if c.jwks_min_refresh < Duration::from_secs(1) {
            problems.push(ConfigProblem::error(
                at("jwks_min_refresh"),
                "jwks_min_refresh must be at least 1s",
            ));
        }
        if c.jwks_refresh < c.jwks_min_refresh {
            problems.push(ConfigProblem::error(
                at("jwks_refresh"),
                "jwks_refresh must not be shorter than jwks_min_refresh",
            ));
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            name: c.name.clone(),
            issuer: c.issuer.clone(),
            audiences: c.audiences.clone(),
            keys,
            algorithms,
            hs256_secret,
            require_typ_at_jwt: c.require_typ_at_jwt,
            leeway: c.leeway,
            required_claims: c.required_claims.clone(),
            require_sender_constrained: c.require_sender_constrained,
            refresh: c.jwks_refresh,
            refresh_floor: c.jwks_min_refresh,
            introspection,
        })
    }

    /// Warnings for `rampart check`: valid but weaker choices.
    pub fn lint(&self, path: &str) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.hs256_secret.is_some() {
            out.push(ConfigProblem::warning(
                format!("{path}.dangerous_hs256_secret"),
                "HS256 is enabled: whoever can verify these tokens can also mint them",
            ));
        }
        if self
            .algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512))
        {
            out.push(ConfigProblem::warning(
                format!("{path}.algorithms"),
                "RSASSA-PKCS1-v1_5 (RS*) is outside the FAPI 2.0 profile; prefer PS256, ES256 or EdDSA",
            ));
        }
        out
    }
}

/// Validates the `introspection_*` keys of one issuer.
fn introspection_policy(
    c: &IssuerConfig,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<IntrospectionPolicy> {
    let at = |k: &str| format!("{path}.{k}");
    let Some(url) = &c.introspection_url else {
        for (set, key) in [
            (c.introspection_client_id.is_some(), "introspection_client_id"),
            (
                c.introspection_client_secret_file.is_some(),
                "introspection_client_secret_file",
            ),
        ] {
            if set {
                problems.push(ConfigProblem::error(at(key), "only used with introspection_url"));
            }
        }
        return None;
    };
    let before = problems.len();
    if !url.starts_with("https://") || url.len() <= "https://".len() {
        problems.push(ConfigProblem::error(
            at("introspection_url"),
            "introspection_url must be https://: the token and the client secret travel in it",
        ));
    }
    let client_id = match &c.introspection_client_id {
        Some(id) if !id.is_empty() && !id.contains(':') => id.clone(),
        Some(_) => {
            problems.push(ConfigProblem::error(
                at("introspection_client_id"),
                "must be non-empty and without `:`",
            ));
            String::new()
        }
        None => {
            problems.push(ConfigProblem::error(
                at("introspection_client_id"),
                "introspection needs client authentication: give introspection_client_id \
                 and introspection_client_secret_file",
            ));
            String::new()
        }
    };
    let Some(secret) = &c.introspection_client_secret_file else {
        problems.push(ConfigProblem::error(
            at("introspection_client_secret_file"),
            "introspection needs client authentication: give the file holding the client secret",
        ));
        return None;
    };
    if c.introspection_cache_ttl > Duration::from_secs(300) {
        problems.push(ConfigProblem::error(
            at("introspection_cache_ttl"),
            "above 5m a revoked token stays usable too long",
        ));
    }
    if c.introspection_timeout < Duration::from_millis(100)
        || c.introspection_timeout > Duration::from_secs(30)
    {
        problems.push(ConfigProblem::error(
            at("introspection_timeout"),
            "introspection_timeout must be between 100ms and 30s",
        ));
    }
    (problems.len() == before).then(|| IntrospectionPolicy {
        url: url.clone(),
        client_id,
        client_secret_file: secret.clone(),
        cache_ttl: c.introspection_cache_ttl,
        timeout: c.introspection_timeout,
        ca_file: c.ca_file.clone(),
    })
}

/// DPoP checks, validated.
#[derive(Debug, Clone)]
pub struct DpopPolicy {
    /// Oldest accepted `iat`, and the replay-cache TTL.
    pub iat_window: Duration,
    /// Newest accepted `iat` ahead of now.
    pub iat_leeway: Duration,
    /// Require server nonces.
    pub nonce: bool,
    /// Lifetime of one server nonce.
    pub nonce_lifetime: Duration,
    /// Allowed proof algorithms (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Capacity of the in-memory replay cache.
    pub replay_cache_capacity: usize,
}

impl DpopPolicy {
    /// Validates `[dpop]` found at `path`.
    pub fn from_config(c: &DpopConfig, path: &str) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut algorithms = Vec::new();
        for (i, name) in c.algorithms.iter().enumerate() {
            match asymmetric_alg(name) {
                Some(a) => algorithms.push(a),
                None => problems.push(ConfigProblem::error(
                    format!("{path}.algorithms[{i}]"),
                    format!(
                        "`{name}` is not an asymmetric JWS algorithm; DPoP proofs need one (RFC 9449 §4.2)"
                    ),
                )),
            }
        }
        if c.algorithms.is_empty() {
            problems.push(ConfigProblem::error(
                format!("{path}.algorithms"),
                "at least one algorithm is required",
            ));
        }
        if c.iat_window < Duration::from_secs(1) || c.iat_window > Duration::from_secs(600) {
            problems.push(ConfigProblem::error(
                format!("{path}.iat_window"),
                "iat_window must be between 1s and 10m",
            ));
        }
        if c.iat_leeway > Duration::from_secs(60) {
            problems.push(ConfigProblem::error(
                format!("{path}.iat_leeway"),
                "iat_leeway above 1m is not accepted",
            ));
        }
        if c.nonce_lifetime < Duration::from_secs(1) {
            problems.push(ConfigProblem::error(
                format!("{path}.nonce_lifetime"),
                "nonce_lifetime must be at least 1s",
            ));
        }
        if c.replay_cache_capacity == 0 {
            problems.push(ConfigProblem::error(
                format!("{path}.replay_cache_capacity"),
                "replay_cache_capacity must be positive",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            iat_window: c.iat_window,
            iat_leeway: c.iat_leeway,
            nonce: c.nonce,
            nonce_lifetime: c.nonce_lifetime,
            algorithms,
            replay_cache_capacity: c.replay_cache_capacity,
        })
    }

    /// The `algs` parameter of a `DPoP` challenge, e.g. `"PS256 ES256 EdDSA"`.
    pub fn algs_param(&self) -> String {
        self.algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Default for DpopPolicy {
    fn default() -> Self {
        Self {
            iat_window: default_iat_window(),
            iat_leeway: default_iat_leeway(),
            nonce: false,
            nonce_lifetime: default_nonce_lifetime(),
            algorithms: vec![Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA],
            replay_cache_capacity: default_replay_capacity(),
        }
    }
}
