//! Who is calling, once authentication succeeded.
//!
//! Threat answered: an identity forged elsewhere in the code. A
//! [`Principal`] has only private fields and a constructor visible inside
//! `authn`, so no other module (authz, upstream, a plugin) can make or alter
//! one; they can only read it. How it fails: it cannot; building one is the
//! last step of a successful verification.

use std::sync::Arc;

use serde_json::{Map, Value};

/// The token's confirmation (`cnf`) claim: what the token is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// RFC 9449 `jkt`: thumbprint of the DPoP key.
    pub jkt: Option<String>,
    /// RFC 8705 `x5t#S256`: thumbprint of the client certificate.
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// Whether the token is sender-constrained at all.
    pub fn is_bound(&self) -> bool {
        self.jkt.is_some() || self.x5t_s256.is_some()
    }
}

/// The client certificate that identified the caller (`mtls`), alone or
/// alongside a token (`mtls+jwt:<issuer>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    /// The certificate field `[mtls] principal_from` names (e.g. its CN).
    pub subject: String,
    /// The client id of the `[[mtls.clients]]` entry it matched.
    pub client_id: String,
    /// RFC 8705 `x5t#S256` of the certificate.
    pub x5t_s256: String,
}

/// An authenticated caller. Readable everywhere, constructible only in
/// `authn`.
#[derive(Debug, Clone)]
pub struct Principal {
    issuer: Arc<str>,
    subject: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    roles: Vec<String>,
    acr: Option<String>,
    amr: Vec<String>,
    auth_time: Option<i64>,
    cnf: Confirmation,
    token_id: Option<String>,
    expires_at: i64,
    extra: Map<String, Value>,
    certificate: Option<CertificateIdentity>,
}

/// Claims taken out of `extra` because they have their own field or are
/// checked by verification.
const REGISTERED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "azp",
    "scope",
    "scp",
    "roles",
    "acr",
    "amr",
    "auth_time",
    "cnf",
];

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

impl Principal {
    /// Builds a principal from verified claims. `expires_at` is the checked
    /// `exp`.
    pub(in crate::authn) fn from_claims(
        issuer: Arc<str>,
        mut claims: Map<String, Value>,
        expires_at: i64,
    ) -> Self {
        let s = |c: &Map<String, Value>, k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
        let scopes = match claims.get("scope") {
            Some(v) => strings(Some(v)),
            None => strings(claims.get("scp")),
        };
        let cnf = match claims.get("cnf").and_then(Value::as_object) {
            Some(c) => Confirmation {
                jkt: s(c, "jkt"),
                x5t_s256: s(c, "x5t#S256"),
            },
            None => Confirmation::default(),
        };
        let principal_parts = (
            s(&claims, "sub"),
            s(&claims, "client_id").or_else(|| s(&claims, "azp")),
            strings(claims.get("roles")),
            s(&claims, "acr"),
            strings(claims.get("amr")),
            claims.get("auth_time").and_then(Value::as_i64),
            s(&claims, "jti"),
        );
        claims.retain(|k, _| !REGISTERED.contains(&k.as_str()));
        let (subject, client_id, roles, acr, amr, auth_time, token_id) = principal_parts;
        Self {
            issuer,
            subject,
            client_id,
            scopes,
            roles,
            acr,
            amr,
            auth_time,
            cnf,
            token_id,
            expires_at,
            extra: claims,
            certificate: None,
        }
    }

    /// Builds the principal of a verified API key: `issuer` is
    /// [`api_keys::ISSUER`](super::api_keys::ISSUER), subject and client id
    /// are the key's client name, `token_id` is the key id (for revocation
    /// lists and the audit trail), and `expires_at` the key's expiry
    /// (`i64::MAX` if it has none).
    pub(in crate::authn) fn from_api_key(
        key_id: &str,
        client: &str,
        scopes: Vec<String>,
        expires_at: Option<i64>,
    ) -> Self {
        Self {
            issuer: Arc::from(super::api_keys::ISSUER),
            subject: Some(client.to_owned()),
            client_id: Some(client.to_owned()),
            scopes,
            roles: Vec::new(),
            acr: None,
            amr: Vec::new(),
            auth_time: None,
            cnf: Confirmation::default(),
            token_id: Some(key_id.to_owned()),
            expires_at: expires_at.unwrap_or(i64::MAX),
            extra: Map::new(),
            certificate: None,
        }
    }

    /// A principal identified by its client certificate alone: issuer
    /// `mtls`, subject and client id from the certificate's mapping.
    pub(in crate::authn) fn from_certificate(
        identity: CertificateIdentity,
        scopes: Vec<String>,
        expires_at: i64,
    ) -> Self {
        Self {
            issuer: Arc::from("mtls"),
            subject: Some(identity.subject.clone()),
            client_id: Some(identity.client_id.clone()),
            scopes,
            roles: Vec::new(),
            acr: None,
            amr: vec!["mtls".to_owned()],
            auth_time: None,
            cnf: Confirmation::default(),
            token_id: None,
            expires_at,
            extra: Map::new(),
            certificate: Some(identity),
        }
    }

    /// This principal, with the client certificate that also identified
    /// the caller recorded.
    pub(in crate::authn) fn with_certificate(mut self, identity: Option<CertificateIdentity>) -> Self {
        self.certificate = identity;
        self
    }

    /// Name of the configured issuer that vouched for this principal.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    /// `client_id` (or `azp`).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }
    /// Scopes from `scope` (space-separated) or `scp` (array or string).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
    /// `roles`.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
    /// `acr`.
    pub fn acr(&self) -> Option<&str> {
        self.acr.as_deref()
    }
    /// `amr`.
    pub fn amr(&self) -> &[String] {
        &self.amr
    }
    /// `auth_time` (Unix seconds).
    pub fn auth_time(&self) -> Option<i64> {
        self.auth_time
    }
    /// `cnf`: what the token is bound to.
    pub fn cnf(&self) -> &Confirmation {
        &self.cnf
    }
    /// `jti`, for revocation checks.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }
    /// `exp` (Unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
    /// Every other claim, for later phases.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    /// The client certificate that identified the caller, if any.
    pub fn certificate(&self) -> Option<&CertificateIdentity> {
        self.certificate.as_ref()
    }
}

#[cfg(test)]
impl Principal {
    /// A principal from claims, for unit tests of the phases after authn
    /// (test builds only: production code cannot make one outside authn).
    pub(crate) fn for_tests(issuer: &str, claims: Value) -> Self {
        let Value::Object(m) = claims else {
            return Self::from_claims(Arc::from(issuer), Map::new(), i64::MAX);
        };
        let exp = m.get("exp").and_then(Value::as_i64).unwrap_or(i64::MAX);
        Self::from_claims(Arc::from(issuer), m, exp)
    }
}
