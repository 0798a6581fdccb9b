//! Authentication (OWASP API2, FAPI 2.0 resource-server duties): who is
//! calling. The end of it is a [`Principal`], which only this module can
//! construct.
//!
//! What is here:
//! - [`config`]: `[[issuers]]` and `[dpop]` as written → [`IssuerPolicy`],
//!   [`DpopPolicy`] (validated, secure defaults).
//! - [`jwks`]: JWKS parsing ([`KeySet`]; keys used only with the algorithm
//!   they declare) and [`KeySource`] (refresh on schedule and on unknown
//!   `kid`, floor between fetches, cached keys survive an outage); [`fetch`]:
//!   verified-HTTPS JWKS and OIDC discovery.
//! - [`jwt`]: [`Issuer::verify`], bearer JWT checks, verdict cache.
//! - [`introspect`]: RFC 7662 introspection of opaque tokens (client
//!   authentication, result cache with a stated TTL, fails closed).
//! - [`dpop`]: RFC 9449 proofs, replay cache, server nonces;
//!   [`thumbprint`]: RFC 7638 and RFC 8705 thumbprints.
//! - [`error`]: [`AuthnError`] (precise cause, for logs) and its RFC 6750
//!   class and `WWW-Authenticate` challenge (all the client sees).
//! - [`Authenticator::authenticate`]: one request's `Authorization` (and
//!   `DPoP`) headers → [`Authenticated`], applying the sender-constraint
//!   rules (a DPoP-bound token needs the `DPoP` scheme and a valid proof; a
//!   certificate-bound token needs the matching client certificate; FAPI
//!   issuers refuse plain bearer tokens).
//! - [`sign`]: key generation and token/proof minting for tests and tools.
//! - [`api_keys`]: API keys (`[api_keys]`, `rampart keys create|list|rotate|revoke`):
//!   peppered HMACs in SQLite or PostgreSQL, [`ApiKeys::authenticate`] on a header.
//!
//! Threat answered: impersonation with forged, altered, expired, stolen or
//! replayed credentials. How it fails: closed: any doubt is an
//! [`AuthnError`], and the caller answers 401 (400 for a malformed request)
//! with the generic class only.
//!
//! - [`gate`]: what the pipeline calls: the snapshot's issuers
//!   ([`gate::Authn`]), each route's accepted methods ([`gate::RouteAuthn`]),
//!   refusals with their challenges; state kept across reloads
//!   ([`gate::AuthnState`]).
//! - [`revocation`]: the denylist by `jti`, `sub` or `client_id`, in memory
//!   or on Redis, checked on every authenticated request.
//! - [`brute_force`]: authentication failures counted per client address
//!   and API-key id; past a threshold, a temporary ban.
//!
//! - [`mtls`]: client certificates as identity (`[mtls]`, mapping to
//!   clients, CRL), and the RFC 9440 `Client-Cert` header from trusted
//!   proxies.
//! - [`identity`]: `[identity]`: the principal toward upstreams, in headers
//!   and a short-lived gateway-signed JWT; client copies always stripped.

pub mod api_keys;
pub mod brute_force;
pub mod config;
pub mod dpop;
pub mod error;
pub mod fetch;
pub mod gate;
pub mod identity;
pub mod introspect;
pub mod jwks;
pub mod jwt;
pub mod mtls;
pub mod principal;
pub mod revocation;
pub mod sign;
#[cfg(test)]
mod tests;
pub mod thumbprint;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderMap;

pub use api_keys::{ApiKeys, ApiKeysConfig, ApiKeysError, ApiKeysPolicy};
pub use config::{DpopConfig, DpopPolicy, IssuerConfig, IssuerPolicy};
pub use dpop::{DpopVerifier, ProofRequest};
pub use error::{AuthnError, ErrorClass, Scheme};
pub use jwks::{KeySet, KeySource};
pub use jwt::Issuer;
pub use principal::{CertificateIdentity, Confirmation, Principal};

/// base64url without padding.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url without padding (no `=`, no stray bits).
pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// SHA-256 with aws-lc-rs.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The credential in an `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    /// `Bearer` or `DPoP`.
    pub scheme: Scheme,
    /// The token (syntax-checked as an RFC 6750 `b64token`).
    pub token: &'a str,
}

/// Reads the one `Authorization` header: `Bearer <token>` or
/// `DPoP <token>` (scheme case-insensitive). Tokens are taken from this
/// header only, never from the query string or the body.
pub fn credential(headers: &HeaderMap) -> Result<Credential<'_>, AuthnError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthnError::MissingCredentials)?;
    if values.next().is_some() {
        return Err(AuthnError::MultipleAuthorization);
    }
    let value = value.to_str().map_err(|_| AuthnError::MalformedAuthorization)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthnError::MalformedAuthorization)?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(AuthnError::UnsupportedScheme);
    };
    let token = token.trim_start_matches(' ');
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
    {
        return Err(AuthnError::MalformedAuthorization);
    }
    Ok(Credential { scheme, token })
}

/// What [`Authenticator::authenticate`] needs from the request.
#[derive(Debug, Clone, Copy)]
pub struct AuthnRequest<'a> {
    /// The request headers (`Authorization`, `DPoP`).
    pub headers: &'a HeaderMap,
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The URL the client addressed (`https://host/path`), for DPoP `htu`.
    pub url: &'a str,
    /// DER of the TLS client certificate, if one was presented.
    pub client_cert_der: Option<&'a [u8]>,
    /// The route requires a sender-constrained token (in addition to the
    /// issuer's own setting).
    pub require_sender_constrained: bool,
}

/// How the token was bound to this request's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderBinding {
    /// A plain bearer token.
    None,
    /// DPoP: a valid proof by the key in `cnf.jkt`.
    Dpop,
    /// mTLS: the client certificate in `cnf.x5t#S256`.
    Certificate,
}

/// A successful authentication.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who is calling.
    pub principal: Arc<Principal>,
    /// The scheme the credential came with.
    pub scheme: Scheme,
    /// How the token is bound to the sender.
    pub binding: SenderBinding,
}

/// Per-request authentication: token, proof and binding rules.
#[derive(Debug)]
pub struct Authenticator {
    dpop: DpopVerifier,
}

impl Authenticator {
    /// An authenticator checking DPoP proofs with `dpop`.
    pub fn new(dpop: DpopVerifier) -> Self {
        Self { dpop }
    }

    /// The DPoP verifier (for the `algs` of challenges and nonces).
    pub fn dpop(&self) -> &DpopVerifier {
        &self.dpop
    }

    /// Authenticates one request against `issuer`.
    pub async fn authenticate(
        &self,
        issuer: &Issuer,
        req: &AuthnRequest<'_>,
    ) -> Result<Authenticated, AuthnError> {
        let cred = credential(req.headers)?;
        let principal = issuer.verify(cred.token).await?;
        self.bind(issuer, req, cred, principal).await
    }

    /// Authenticates one request whose opaque token `issuer` introspects
    /// (RFC 7662); the answer's `cnf` binds it exactly as a JWT's would.
    pub async fn authenticate_introspected(
        &self,
        issuer: &Issuer,
        req: &AuthnRequest<'_>,
    ) -> Result<Authenticated, AuthnError> {
        let cred = credential(req.headers)?;
        let introspector = issuer
            .introspector()
            .ok_or(AuthnError::IntrospectionUnavailable("not configured".into()))?;
        let principal = introspector.introspect(cred.token).await?;
        self.bind(issuer, req, cred, principal).await
    }

    /// The sender-constraint rules for a token found valid: DPoP proof or
    /// client certificate per its `cnf`, and the FAPI bearer refusal.
    async fn bind(
        &self,
        issuer: &Issuer,
        req: &AuthnRequest<'_>,
        cred: Credential<'_>,
        principal: Arc<Principal>,
    ) -> Result<Authenticated, AuthnError> {
        let cnf = principal.cnf();
        let mut binding = SenderBinding::None;
        match (cred.scheme, cnf.jkt.as_deref()) {
            (Scheme::Dpop, Some(jkt)) => {
                let mut proofs = req.headers.get_all("dpop").iter();
                let proof = proofs.next().ok_or(AuthnError::DpopMissing)?;
                if proofs.next().is_some() {
                    return Err(AuthnError::DpopMultiple);
                }
                let proof = proof
                    .to_str()
                    .map_err(|_| AuthnError::DpopMalformed("not ASCII"))?;
                let pr = ProofRequest {
                    method: req.method,
                    url: req.url,
                    access_token: cred.token,
                    jkt,
                };
                self.dpop.verify(proof, &pr).await?;
                binding = SenderBinding::Dpop;
            }
            // RFC 9449 §7.1/§7.2: a DPoP-bound token is only accepted with
            // the DPoP scheme, and the DPoP scheme only with a bound token.
            (Scheme::Dpop, None) | (Scheme::Bearer, Some(_)) => return Err(AuthnError::SchemeMismatch),
            (Scheme::Bearer, None) => {}
        }
        if let Some(x5t) = cnf.x5t_s256.as_deref() {
            dpop::check_certificate_binding(x5t, req.client_cert_der)?;
            if binding == SenderBinding::None {
                binding = SenderBinding::Certificate;
            }
        }
        if binding == SenderBinding::None
            && (req.require_sender_constrained || issuer.policy().require_sender_constrained)
        {
            return Err(AuthnError::SenderConstraintRequired);
        }
        Ok(Authenticated {
            principal,
            scheme: cred.scheme,
            binding,
        })
    }
}
