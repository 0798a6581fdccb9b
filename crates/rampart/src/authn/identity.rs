//! Identity forwarding (`[identity]`): how an upstream learns who is
//! calling, once authentication succeeded.
//!
//! Two forms, either or both:
//! - **headers** (default on): the [`Principal`]'s subject, client id,
//!   scopes and issuer name in configured headers (default
//!   `x-authenticated-subject`, `-client-id`, `-scopes`, `-issuer`);
//! - **a short-lived gateway-signed JWT** (`jwt_header`, off by default):
//!   `typ` `JWT`, the key's `kid`, claims `iss`, `aud` (default: the
//!   upstream's name), `iat`, `exp` (= `iat` + `jwt_ttl`, at most 5 minutes),
//!   a random `jti`, `sub`, `client_id`, `scope`, `acr`, `amr`,
//!   `auth_time`, `cnf` as verified, and the request id as `txn`. Signed per
//!   request with `jwt_key_file` (ES256, EdDSA or PS256); the upstream
//!   verifies it with the public JWKS (`rampart identity jwks`, or
//!   `GET /admin/identity/jwks` on the admin listener).
//!
//! Threat answered: identity spoofing toward upstreams. A client's own copy
//! of every identity header the policy names (configured or default, and
//! the JWT header) is removed before forwarding, whatever the route, so only
//! the gateway asserts identity; with the JWT an upstream need not even
//! trust the network path, and a token captured there is useless to other
//! upstreams (`aud`) and within minutes (`exp`). Nothing is asserted on a
//! route with `authn = "none"`: the headers are only stripped.
//!
//! How it fails: a policy with an invalid or colliding header name, an
//! unreadable or unsupported key, or a TTL over 5 minutes is refused by
//! [`IdentityPolicy::from_config`] (so by `rampart check`). Signing that
//! fails at request time (the system RNG or the crypto library failing) is
//! an [`IdentityError`]: the request is not forwarded (502), never sent on
//! without the identity the upstream expects.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::sign::{random_id, SignError, SigningKey};
use super::Principal;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{ConfigProblem, LoadedConfig};

/// Default header for the subject.
pub const SUBJECT_HEADER: &str = "x-authenticated-subject";
/// Default header for the client id.
pub const CLIENT_ID_HEADER: &str = "x-authenticated-client-id";
/// Default header for the scopes (space-separated).
pub const SCOPES_HEADER: &str = "x-authenticated-scopes";
/// Default header for the name of the issuer that vouched.
pub const ISSUER_HEADER: &str = "x-authenticated-issuer";
/// Longest `jwt_ttl` accepted.
pub const MAX_TTL: Duration = Duration::from_secs(5 * 60);
/// Default `jwt_ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Default `jwt_issuer`.
pub const DEFAULT_ISSUER: &str = "rampart";

/// Names an identity header may not take: hop-by-hop and framing headers,
/// credentials, and the forwarding headers the gateway sets itself.
const FORBIDDEN: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "expect",
    "authorization",
    "cookie",
    "dpop",
    "x-api-key",
    "x-fapi-interaction-id",
    "x-request-id",
];

/// `[identity]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Send the principal in headers. Default true.
    #[serde(default = "yes")]
    pub headers: bool,
    /// Header for `sub`. Default `x-authenticated-subject`.
    #[serde(default = "default_subject")]
    pub subject_header: String,
    /// Header for the client id. Default `x-authenticated-client-id`.
    #[serde(default = "default_client_id")]
    pub client_id_header: String,
    /// Header for the scopes. Default `x-authenticated-scopes`.
    #[serde(default = "default_scopes")]
    pub scopes_header: String,
    /// Header for the issuer's name. Default `x-authenticated-issuer`.
    #[serde(default = "default_issuer_header")]
    pub issuer_header: String,
    /// Header carrying the gateway-signed identity JWT, e.g.
    /// `x-rampart-identity`. Unset: no JWT.
    pub jwt_header: Option<String>,
    /// The private signing key: a private JWK (EC P-256, Ed25519) or a
    /// PKCS#8 PEM, as written by `rampart keys gen`.
    pub jwt_key_file: Option<PathBuf>,
    /// `ES256`, `EdDSA` or `PS256`. Default: the JWK's own; for a PEM, the
    /// first of ES256, EdDSA, PS256 the key fits.
    pub jwt_alg: Option<String>,
    /// Lifetime of each JWT. Default 60s, at most 5m.
    #[serde(
        default = "default_ttl",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub jwt_ttl: Duration,
    /// `aud`. Default: the name of the upstream the request goes to.
    pub jwt_audience: Option<String>,
    /// `iss`. Default `rampart`.
    #[serde(default = "default_issuer")]
    pub jwt_issuer: String,
}

fn yes() -> bool {
    true
}
fn default_subject() -> String {
    SUBJECT_HEADER.into()
}
fn default_client_id() -> String {
    CLIENT_ID_HEADER.into()
}
fn default_scopes() -> String {
    SCOPES_HEADER.into()
}
fn default_issuer_header() -> String {
    ISSUER_HEADER.into()
}
fn default_ttl() -> Duration {
    DEFAULT_TTL
}
fn default_issuer() -> String {
    DEFAULT_ISSUER.into()
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            headers: true,
            subject_header: default_subject(),
            client_id_header: default_client_id(),
            scopes_header: default_scopes(),
            issuer_header: default_issuer_header(),
            jwt_header: None,
            jwt_key_file: None,
            jwt_alg: None,
            jwt_ttl: DEFAULT_TTL,
            jwt_audience: None,
            jwt_issuer: default_issuer(),
        }
    }
}

/// The identity headers' names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    /// Subject.
    pub subject: HeaderName,
    /// Client id.
    pub client_id: HeaderName,
    /// Scopes.
    pub scopes: HeaderName,
    /// Issuer name.
    pub issuer: HeaderName,
}

/// The identity JWT's settings.
#[derive(Debug)]
pub struct JwtPolicy {
    /// The header carrying it.
    pub header: HeaderName,
    /// The signing key.
    pub key: SigningKey,
    /// Lifetime.
    pub ttl: Duration,
    /// `aud` (else the upstream's name).
    pub audience: Option<String>,
    /// `iss`.
    pub issuer: String,
}

/// `[identity]`, validated, with its key loaded.
#[derive(Debug)]
pub struct IdentityPolicy {
    /// Whether the principal goes in headers.
    pub headers: bool,
    /// The headers' names (stripped from client requests even when
    /// `headers` is false).
    pub names: HeaderNames,
    /// The JWT, if configured.
    pub jwt: Option<JwtPolicy>,
}

fn header_name(
    path: &str,
    value: &str,
    reserved: &[&str],
    problems: &mut Vec<ConfigProblem>,
) -> Option<HeaderName> {
    let Ok(name) = HeaderName::from_bytes(value.as_bytes()) else {
        problems.push(ConfigProblem::error(
            path,
            format!("`{value}` is not a valid header name"),
        ));
        return None;
    };
    if FORBIDDEN.contains(&name.as_str())
        || reserved.contains(&name.as_str())
        || crate::upstream::DENY_REQUEST_HEADERS.contains(&name.as_str())
    {
        problems.push(ConfigProblem::error(
            path,
            format!(
                "`{value}` is a header the gateway handles itself (hop-by-hop, forwarding, credential or request id); choose another name"
            ),
        ));
        return None;
    }
    Some(name)
}

fn parse_alg(s: &str) -> Option<Algorithm> {
    match s {
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "PS256" => Some(Algorithm::PS256),
        _ => None,
    }
}

/// Loads the identity signing key: a private JWK, or a PKCS#8 PEM tried as
/// `alg` (or ES256, EdDSA, then PS256).
pub fn load_key(text: &str, alg: Option<Algorithm>) -> Result<SigningKey, SignError> {
    let pem = text.trim_start().starts_with("-----BEGIN");
    let key = match (pem, alg) {
        (true, None) => {
            let mut last = SignError::Crypto("not a key".into());
            let mut found = None;
            for a in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256] {
                match SigningKey::load(text, Some(a)) {
                    Ok(k) => {
                        found = Some(k);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            found.ok_or(last)?
        }
        _ => SigningKey::load(text, alg)?,
    };
    match alg {
        Some(a) if a != key.alg() => Err(SignError::Crypto(format!(
            "the key is a {:?} key, not {a:?}",
            key.alg()
        ))),
        _ if !matches!(key.alg(), Algorithm::ES256 | Algorithm::EdDSA | Algorithm::PS256) => {
            Err(SignError::Unsupported(key.alg()))
        }
        _ => Ok(key),
    }
}

impl IdentityPolicy {
    /// Validates `[identity]` and reads its key file. `request_id_header`
    /// is the policy's `[response] request_id_header` (an identity header
    /// may not take it either).
    pub fn from_config(
        cfg: &IdentityConfig,
        loaded: &LoadedConfig,
        request_id_header: &str,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let rid = request_id_header.to_ascii_lowercase();
        let reserved = [rid.as_str()];
        let fields = [
            ("identity.subject_header", cfg.subject_header.as_str()),
            ("identity.client_id_header", cfg.client_id_header.as_str()),
            ("identity.scopes_header", cfg.scopes_header.as_str()),
            ("identity.issuer_header", cfg.issuer_header.as_str()),
        ];
        let mut names: Vec<Option<HeaderName>> = fields
            .iter()
            .map(|(path, v)| header_name(path, v, &reserved, &mut problems))
            .collect();
        let jwt_header = cfg
            .jwt_header
            .as_deref()
            .map(|v| header_name("identity.jwt_header", v, &reserved, &mut problems));
        if let Some(h) = &jwt_header {
            names.push(h.clone());
        }
        let paths = [
            "subject_header",
            "client_id_header",
            "scopes_header",
            "issuer_header",
            "jwt_header",
        ];
        for (i, n) in names.iter().enumerate() {
            let Some(n) = n else { continue };
            if names[..i].iter().flatten().any(|o| o == n) {
                problems.push(ConfigProblem::error(
                    format!("identity.{}", paths.get(i).copied().unwrap_or("jwt_header")),
                    format!("`{n}` is already used by another identity header"),
                ));
            }
        }

        let jwt = match (jwt_header, &cfg.jwt_key_file) {
            (None, None) => None,
            (Some(_), None) => {
                problems.push(ConfigProblem::error(
                    "identity.jwt_header",
                    "needs jwt_key_file (the private key that signs the identity JWT)",
                ));
                None
            }
            (None, Some(_)) => {
                problems.push(ConfigProblem::error(
                    "identity.jwt_key_file",
                    "needs jwt_header (the header that carries the identity JWT)",
                ));
                None
            }
            (Some(header), Some(file)) => {
                if cfg.jwt_ttl < Duration::from_secs(1) || cfg.jwt_ttl > MAX_TTL {
                    problems.push(ConfigProblem::error(
                        "identity.jwt_ttl",
                        format!(
                            "must be between 1s and 5m (an identity JWT is short-lived), not {}",
                            humantime::format_duration(cfg.jwt_ttl)
                        ),
                    ));
                }
                if cfg.jwt_issuer.trim().is_empty() {
                    problems.push(ConfigProblem::error("identity.jwt_issuer", "must not be empty"));
                }
                if cfg.jwt_audience.as_deref().is_some_and(|a| a.trim().is_empty()) {
                    problems.push(ConfigProblem::error(
                        "identity.jwt_audience",
                        "must not be empty (leave it out to use the upstream's name)",
                    ));
                }
                let alg = match cfg.jwt_alg.as_deref() {
                    None => Ok(None),
                    Some(s) => parse_alg(s).map(Some).ok_or_else(|| {
                        problems.push(ConfigProblem::error(
                            "identity.jwt_alg",
                            format!("`{s}` is not one of ES256, EdDSA, PS256"),
                        ))
                    }),
                };
                let path = loaded.resolve(file);
                let key = match (alg, std::fs::read_to_string(&path)) {
                    (Err(()), _) => None,
                    (Ok(_), Err(e)) => {
                        problems.push(ConfigProblem::error(
                            "identity.jwt_key_file",
                            format!("cannot read `{}`: {e}", path.display()),
                        ));
                        None
                    }
                    (Ok(alg), Ok(text)) => match load_key(&text, alg) {
                        Ok(k) => Some(k),
                        Err(e) => {
                            problems.push(ConfigProblem::error(
                                "identity.jwt_key_file",
                                format!("`{}` is not a usable signing key: {e}", path.display()),
                            ));
                            None
                        }
                    },
                };
                match (header, key) {
                    (Some(header), Some(key)) => Some(JwtPolicy {
                        header,
                        key,
                        ttl: cfg.jwt_ttl,
                        audience: cfg.jwt_audience.clone(),
                        issuer: cfg.jwt_issuer.clone(),
                    }),
                    _ => None,
                }
            }
        };

        if problems
            .iter()
            .any(|p| p.severity == crate::config::Severity::Error)
        {
            return Err(problems);
        }
        let mut it = names.into_iter().flatten();
        let (Some(subject), Some(client_id), Some(scopes), Some(issuer)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(problems);
        };
        Ok(Self {
            headers: cfg.headers,
            names: HeaderNames {
                subject,
                client_id,
                scopes,
                issuer,
            },
            jwt,
        })
    }

    /// Warnings about a valid `[identity]` (options without effect).
    pub fn lint(cfg: &IdentityConfig) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if cfg.jwt_header.is_none() && cfg.jwt_key_file.is_none() {
            for (k, set) in [
                ("jwt_alg", cfg.jwt_alg.is_some()),
                ("jwt_audience", cfg.jwt_audience.is_some()),
                ("jwt_ttl", cfg.jwt_ttl != DEFAULT_TTL),
                ("jwt_issuer", cfg.jwt_issuer != DEFAULT_ISSUER),
            ] {
                if set {
                    out.push(ConfigProblem::warning(
                        format!("identity.{k}"),
                        "has no effect without jwt_header and jwt_key_file",
                    ));
                }
            }
        }
        out
    }
}

/// Why an identity could not be asserted for one request.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Signing the identity JWT failed.
    #[error("identity JWT: {0}")]
    Sign(#[from] SignError),
    /// No random `jti` could be drawn.
    #[error("identity JWT: the system RNG failed")]
    Random,
}

/// Identity forwarding for one snapshot: strips client copies, then
/// asserts the principal.
#[derive(Debug)]
pub struct Identity {
    policy: IdentityPolicy,
    clock: SharedClock,
}

impl Default for Identity {
    /// Headers with the default names, no JWT, the system clock.
    fn default() -> Self {
        Self {
            policy: IdentityPolicy {
                headers: true,
                names: HeaderNames {
                    subject: HeaderName::from_static(SUBJECT_HEADER),
                    client_id: HeaderName::from_static(CLIENT_ID_HEADER),
                    scopes: HeaderName::from_static(SCOPES_HEADER),
                    issuer: HeaderName::from_static(ISSUER_HEADER),
                },
                jwt: None,
            },
            clock: SystemClock::shared(),
        }
    }
}

const DEFAULT_NAMES: [&str; 4] = [SUBJECT_HEADER, CLIENT_ID_HEADER, SCOPES_HEADER, ISSUER_HEADER];

impl Identity {
    /// Identity forwarding by `policy`, reading time from `clock`.
    pub fn new(policy: IdentityPolicy, clock: SharedClock) -> Self {
        Self { policy, clock }
    }

    /// The validated policy.
    pub fn policy(&self) -> &IdentityPolicy {
        &self.policy
    }

    /// Whether a client's copy of `name` must be removed: every identity
    /// header this policy names, the defaults too, and the JWT header.
    pub fn is_reserved(&self, name: &HeaderName) -> bool {
        let n = &self.policy.names;
        DEFAULT_NAMES.contains(&name.as_str())
            || *name == n.subject
            || *name == n.client_id
            || *name == n.scopes
            || *name == n.issuer
            || self.policy.jwt.as_ref().is_some_and(|j| j.header == *name)
    }

    /// The public JWKS an upstream verifies the identity JWT with, if one
    /// is configured.
    pub fn jwks(&self) -> Option<Value> {
        self.policy.jwt.as_ref().map(|j| j.key.jwks())
    }

    /// Sets the identity headers (and the JWT) for a request authorised
    /// for `principal` (the permit's), toward upstream `upstream`; the JWT
    /// carries `request_id` as `txn`. Client copies must have been removed
    /// already ([`Identity::is_reserved`]). Without a principal (`authn =
    /// "none"`), nothing is added.
    pub fn assert(
        &self,
        h: &mut HeaderMap,
        principal: Option<&Principal>,
        request_id: &str,
        upstream: &str,
    ) -> Result<(), IdentityError> {
        let Some(p) = principal else { return Ok(()) };
        if self.policy.headers {
            let n = &self.policy.names;
            let scopes = p.scopes().join(" ");
            for (name, value) in [
                (&n.subject, p.subject()),
                (&n.client_id, p.client_id()),
                (&n.scopes, Some(scopes.as_str()).filter(|s| !s.is_empty())),
                (&n.issuer, Some(p.issuer())),
            ] {
                if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                    h.insert(name.clone(), v);
                }
            }
        }
        if let Some(jwt) = &self.policy.jwt {
            let now = self
                .clock
                .now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let token = self.sign(jwt, p, request_id, upstream, now)?;
            let v = HeaderValue::from_str(&token).map_err(|e| SignError::Crypto(e.to_string()))?;
            h.insert(jwt.header.clone(), v);
        }
        Ok(())
    }

    /// The identity JWT's claims for `p`, issued at `now` (Unix seconds).
    pub fn claims(
        jwt: &JwtPolicy,
        p: &Principal,
        request_id: &str,
        upstream: &str,
        now: i64,
    ) -> Result<Value, IdentityError> {
        let jti = random_id();
        if jti.is_empty() {
            return Err(IdentityError::Random);
        }
        let ttl = i64::try_from(jwt.ttl.as_secs()).unwrap_or(300);
        let mut c = Map::new();
        c.insert("iss".into(), json!(jwt.issuer));
        c.insert("aud".into(), json!(jwt.audience.as_deref().unwrap_or(upstream)));
        c.insert("iat".into(), json!(now));
        c.insert("exp".into(), json!(now.saturating_add(ttl)));
        c.insert("jti".into(), json!(jti));
        if let Some(s) = p.subject() {
            c.insert("sub".into(), json!(s));
        }
        if let Some(s) = p.client_id() {
            c.insert("client_id".into(), json!(s));
        }
        if !p.scopes().is_empty() {
            c.insert("scope".into(), json!(p.scopes().join(" ")));
        }
        if let Some(s) = p.acr() {
            c.insert("acr".into(), json!(s));
        }
        if !p.amr().is_empty() {
            c.insert("amr".into(), json!(p.amr()));
        }
        if let Some(t) = p.auth_time() {
            c.insert("auth_time".into(), json!(t));
        }
        let cnf = p.cnf();
        if cnf.is_bound() {
            let mut m = Map::new();
            if let Some(j) = &cnf.jkt {
                m.insert("jkt".into(), json!(j));
            }
            if let Some(x) = &cnf.x5t_s256 {
                m.insert("x5t#S256".into(), json!(x));
            }
            c.insert("cnf".into(), Value::Object(m));
        }
        c.insert("txn".into(), json!(request_id));
        Ok(Value::Object(c))
    }

    fn sign(
        &self,
        jwt: &JwtPolicy,
        p: &Principal,
        request_id: &str,
        upstream: &str,
        now: i64,
    ) -> Result<String, IdentityError> {
        let claims = Self::claims(jwt, p, request_id, upstream, now)?;
        let mut header = Map::new();
        header.insert("typ".into(), json!("JWT"));
        header.insert("kid".into(), json!(jwt.key.kid()));
        Ok(jwt.key.sign(header, &claims)?)
    }
}

/// Shared by every upstream of a snapshot.
pub type SharedIdentity = Arc<Identity>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use jsonwebtoken::Algorithm;
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::authn::jwks::KeySet;
    use crate::clock::FakeClock;

    const NOW: u64 = 1_700_000_000;

    /// A policy file in a temporary directory with `files` beside it.
    fn loaded(dir: &Path, identity: &str, files: &[(&str, &str)]) -> LoadedConfig {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let text = format!("[identity]\n{identity}");
        LoadedConfig::from_text(&dir.join("rampart.toml"), text).unwrap()
    }

    fn build(identity: &str, files: &[(&str, &str)]) -> Result<IdentityPolicy, Vec<ConfigProblem>> {
        let dir = tempfile::tempdir().unwrap();
        let l = loaded(dir.path(), identity, files);
        IdentityPolicy::from_config(&l.config.identity, &l, "x-request-id")
    }

    fn problem_paths(r: Result<IdentityPolicy, Vec<ConfigProblem>>) -> Vec<(String, String)> {
        r.unwrap_err().into_iter().map(|p| (p.path, p.message)).collect()
    }

    fn principal() -> Principal {
        let claims = json!({
            "iss": "https://idp.bank.test", "sub": "customer-a", "client_id": "fintech-42",
            "scope": "accounts:read payments:write", "acr": "urn:bank:loa:3", "amr": ["pwd", "otp"],
            "auth_time": NOW as i64 - 30, "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
            "jti": "original-token-id", "exp": NOW as i64 + 300, "custom": "kept-out",
        });
        let Value::Object(m) = claims else { unreachable!() };
        Principal::from_claims(Arc::from("bank-idp"), m, NOW as i64 + 300)
    }

    /// Splits a compact JWS, checks its signature against `jwks` and returns
    /// (header, claims).
    fn verified(token: &str, jwks: &Value, alg: Algorithm) -> (Value, Value) {
        let keys = KeySet::from_json(jwks.to_string().as_bytes()).unwrap();
        let mut parts = token.split('.');
        let (h, c, s) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let header: Value = serde_json::from_slice(&crate::authn::b64url_decode(h).unwrap()).unwrap();
        let claims: Value = serde_json::from_slice(&crate::authn::b64url_decode(c).unwrap()).unwrap();
        let key = keys.find(header["kid"].as_str(), alg).expect("a key for the kid");
        assert!(key.verify(alg, format!("{h}.{c}").as_bytes(), s), "signature");
        // A tampered payload does not verify.
        let forged = crate::authn::b64url(claims.to_string().replace("customer-a", "customer-b").as_bytes());
        assert!(!key.verify(alg, format!("{h}.{forged}").as_bytes(), s));
        (header, claims)
    }

    #[test]
    fn defaults_are_the_historical_headers_and_no_jwt() {
        let p = build("", &[]).unwrap();
        assert!(p.headers && p.jwt.is_none());
        assert_eq!(p.names.subject, SUBJECT_HEADER);
        assert_eq!(p.names.client_id, CLIENT_ID_HEADER);
        assert_eq!(p.names.scopes, SCOPES_HEADER);
        assert_eq!(p.names.issuer, ISSUER_HEADER);
        let i = Identity::new(p, FakeClock::at_unix(NOW));
        assert!(i.jwks().is_none());
        assert!(IdentityPolicy::lint(&IdentityConfig::default()).is_empty());
    }

    #[test]
    fn configured_names_and_the_defaults_are_all_reserved() {
        let p = build(
            "headers = false\nsubject_header = \"X-User\"\nclient_id_header = \"x-client\"\nscopes_header = \"x-scopes\"\nissuer_header = \"x-idp\"\n",
            &[],
        )
        .unwrap();
        assert!(!p.headers);
        let i = Identity::new(p, FakeClock::at_unix(NOW));
        for n in [
            "x-user",
            "x-client",
            "x-scopes",
            "x-idp",
            SUBJECT_HEADER,
            CLIENT_ID_HEADER,
            SCOPES_HEADER,
            ISSUER_HEADER,
        ] {
            assert!(
                i.is_reserved(&HeaderName::from_bytes(n.as_bytes()).unwrap()),
                "{n}"
            );
        }
        assert!(!i.is_reserved(&HeaderName::from_static("x-other")));
    }

    #[test]
    fn bad_colliding_and_duplicate_header_names_are_refused() {
        for (line, path) in [
            ("subject_header = \"x user\"", "identity.subject_header"),
            ("subject_header = \"\"", "identity.subject_header"),
            (
                "client_id_header = \"authorization\"",
                "identity.client_id_header",
            ),
            ("scopes_header = \"X-Forwarded-For\"", "identity.scopes_header"),
            ("issuer_header = \"connection\"", "identity.issuer_header"),
            ("issuer_header = \"transfer-encoding\"", "identity.issuer_header"),
            ("subject_header = \"host\"", "identity.subject_header"),
            ("subject_header = \"x-request-id\"", "identity.subject_header"),
            ("subject_header = \"dpop\"", "identity.subject_header"),
            ("subject_header = \"x-original-url\"", "identity.subject_header"),
            (
                "client_id_header = \"x-authenticated-subject\"",
                "identity.client_id_header",
            ),
            (
                "jwt_header = \"x-authenticated-scopes\"\njwt_key_file = \"k.json\"",
                "identity.jwt_header",
            ),
        ] {
            let got = problem_paths(build(line, &[]));
            assert!(got.iter().any(|(p, _)| p == path), "{line}: {got:?}");
        }
        // The request id header the policy configures is taken too.
        let dir = tempfile::tempdir().unwrap();
        let l = loaded(dir.path(), "subject_header = \"x-correlation-id\"\n", &[]);
        assert!(IdentityPolicy::from_config(&l.config.identity, &l, "X-Correlation-Id").is_err());
    }

    #[test]
    fn jwt_settings_are_checked() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwk = Value::Object(key.private_jwk().unwrap()).to_string();
        let files = [
            ("k.json", jwk.as_str()),
            (
                "junk.pem",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
        ];
        let jwt = "jwt_header = \"x-rampart-identity\"\njwt_key_file = \"k.json\"\n";
        assert!(build(jwt, &files).unwrap().jwt.is_some());
        for (extra, path, needle) in [
            ("jwt_ttl = \"6m\"", "identity.jwt_ttl", "5m"),
            ("jwt_ttl = \"0s\"", "identity.jwt_ttl", "1s"),
            ("jwt_alg = \"HS256\"", "identity.jwt_alg", "HS256"),
            ("jwt_alg = \"EdDSA\"", "identity.jwt_key_file", "not EdDSA"),
            ("jwt_issuer = \"\"", "identity.jwt_issuer", "empty"),
            ("jwt_audience = \" \"", "identity.jwt_audience", "empty"),
        ] {
            let got = problem_paths(build(&format!("{jwt}{extra}\n"), &files));
            assert!(
                got.iter().any(|(p, m)| p == path && m.contains(needle)),
                "{extra}: {got:?}"
            );
        }
        for (text, path, needle) in [
            (
                "jwt_header = \"x-id\"\njwt_key_file = \"missing.json\"",
                "identity.jwt_key_file",
                "cannot read",
            ),
            (
                "jwt_header = \"x-id\"\njwt_key_file = \"junk.pem\"",
                "identity.jwt_key_file",
                "not a usable",
            ),
            ("jwt_header = \"x-id\"", "identity.jwt_header", "jwt_key_file"),
            ("jwt_key_file = \"k.json\"", "identity.jwt_key_file", "jwt_header"),
        ] {
            let got = problem_paths(build(text, &files));
            assert!(
                got.iter().any(|(p, m)| p == path && m.contains(needle)),
                "{text}: {got:?}"
            );
        }
        // A public JWK is not a signing key.
        let public = Value::Object(key.public_jwk()).to_string();
        assert!(build(
            "jwt_header = \"x-id\"\njwt_key_file = \"pub.json\"",
            &[("pub.json", &public)]
        )
        .is_err());
        // JWT options without a JWT are warned about, not refused.
        let l = loaded(tempfile::tempdir().unwrap().path(), "jwt_ttl = \"30s\"\n", &[]);
        let warnings = IdentityPolicy::lint(&l.config.identity);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].path, "identity.jwt_ttl");
    }

    #[test]
    fn the_identity_jwt_verifies_with_the_public_jwks_and_carries_the_principal() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256] {
            let key = SigningKey::generate(alg).unwrap();
            // ES256 as a private JWK, the others as PKCS#8 PEM (alg detected).
            let (file, text) = match alg {
                Algorithm::ES256 => ("k.json", Value::Object(key.private_jwk().unwrap()).to_string()),
                _ => ("k.pem", key.to_pkcs8_pem().unwrap()),
            };
            let cfg = format!(
                "jwt_header = \"x-rampart-identity\"\njwt_key_file = \"{file}\"\njwt_ttl = \"90s\"\n"
            );
            let policy = build(&cfg, &[(file, &text)]).unwrap();
            let clock = FakeClock::at_unix(NOW);
            let identity = Identity::new(policy, clock);
            let jwks = identity.jwks().unwrap();
            assert!(jwks.to_string().contains(key.kid()), "{alg:?}");
            assert!(!jwks.to_string().contains("\"d\""), "private member in the JWKS");

            let mut ex = crate::exchange::test_exchange("192.0.2.1:5000", true);
            ex.principal = Some(Arc::new(principal()));
            let mut h = HeaderMap::new();
            identity
                .assert(&mut h, ex.principal.as_deref(), &ex.request_id, "core-banking")
                .unwrap();
            assert_eq!(h[SUBJECT_HEADER], "customer-a");
            assert_eq!(h[CLIENT_ID_HEADER], "fintech-42");
            assert_eq!(h[SCOPES_HEADER], "accounts:read payments:write");
            assert_eq!(h[ISSUER_HEADER], "bank-idp");
            let token = h["x-rampart-identity"].to_str().unwrap();
            let (header, claims) = verified(token, &jwks, alg);
            assert_eq!(header["typ"], "JWT");
            assert_eq!(header["alg"], format!("{alg:?}"));
            assert_eq!(header["kid"], key.kid());
            let now = NOW as i64;
            let expected = json!({
                "iss": "rampart", "aud": "core-banking", "iat": now, "exp": now + 90,
                "sub": "customer-a", "client_id": "fintech-42",
                "scope": "accounts:read payments:write", "acr": "urn:bank:loa:3",
                "amr": ["pwd", "otp"], "auth_time": now - 30,
                "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
                "txn": ex.request_id,
            });
            let mut got: Map<String, Value> = claims.as_object().unwrap().clone();
            let jti = got.remove("jti").unwrap();
            assert_eq!(jti.as_str().unwrap().len(), 22, "128 random bits");
            assert_ne!(jti, "original-token-id");
            assert_eq!(Value::Object(got), expected, "{alg:?}");

            // Each request gets its own token.
            let mut h2 = HeaderMap::new();
            identity
                .assert(&mut h2, ex.principal.as_deref(), &ex.request_id, "core-banking")
                .unwrap();
            assert_ne!(h2["x-rampart-identity"], h["x-rampart-identity"]);
        }
    }

    #[test]
    fn audience_issuer_and_headers_off_are_honoured() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let cfg = "headers = false\njwt_header = \"x-id\"\njwt_key_file = \"k.pem\"\njwt_alg = \"EdDSA\"\njwt_audience = \"payments-svc\"\njwt_issuer = \"https://gw.bank.test\"\n";
        let identity = Identity::new(build(cfg, &[("k.pem", &pem)]).unwrap(), FakeClock::at_unix(NOW));
        let mut ex = crate::exchange::test_exchange("192.0.2.1:5000", true);
        ex.principal = Some(Arc::new(principal()));
        let mut h = HeaderMap::new();
        identity
            .assert(&mut h, ex.principal.as_deref(), &ex.request_id, "core-banking")
            .unwrap();
        assert!(h.get(SUBJECT_HEADER).is_none() && h.get(ISSUER_HEADER).is_none());
        let (_, claims) = verified(
            h["x-id"].to_str().unwrap(),
            &identity.jwks().unwrap(),
            Algorithm::EdDSA,
        );
        assert_eq!(claims["aud"], "payments-svc");
        assert_eq!(claims["iss"], "https://gw.bank.test");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
    }

    #[test]
    fn nothing_is_asserted_without_a_principal() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwk = Value::Object(key.private_jwk().unwrap()).to_string();
        let cfg = "jwt_header = \"x-id\"\njwt_key_file = \"k.json\"\n";
        let identity = Identity::new(build(cfg, &[("k.json", &jwk)]).unwrap(), FakeClock::at_unix(NOW));
        let ex = crate::exchange::test_exchange("192.0.2.1:5000", true);
        let mut h = HeaderMap::new();
        identity
            .assert(&mut h, ex.principal.as_deref(), &ex.request_id, "core-banking")
            .unwrap();
        assert!(h.is_empty(), "{h:?}");
    }
}
