//! Client certificates as identity (`[mtls]`, route method `"mtls"`): the
//! TLS client certificate, already verified by the listener against its
//! `client_ca`, is mapped to a client by `[[mtls.clients]]` and becomes a
//! [`Principal`]; a CRL file is checked for its serial. Behind a trusted
//! TLS-terminating proxy the certificate may come instead from the RFC 9440
//! `Client-Cert` header ([`Mtls::client_certificate`]).
//!
//! Threat answered: impersonation of a partner by anyone holding some
//! certificate of the CA (only mapped certificates are anyone), by a
//! revoked certificate (the CRL), and by a client writing `Client-Cert`
//! itself (read only from `[ip_filter] trusted_proxies` with
//! `trust_client_cert_header = true`; the header is always stripped before
//! the upstream).
//!
//! How it fails: closed. No certificate on an `mtls` route is 401 without
//! an error code; an unmapped, revoked, expired or unparsable certificate
//! is 401 `invalid_token` (causes `authn.certificate_unknown`,
//! `…_revoked`, `…_invalid`). An unreadable or unparsable CRL file is a
//! policy error (`rampart check` reports it; a reload keeps the running
//! policy).
//!
//! A CRL revokes the serials it lists among certificates whose issuer name
//! equals its own. Not checked here: the CRL's own signature (the file is
//! trusted like the policy that names it, so two CAs with one name share
//! their CRLs), its `nextUpdate` (a stale CRL still revokes) and, for `Client-Cert`, the chain (the trusted
//! proxy verified it; validity dates are checked again here).

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::PathBuf;

use base64::Engine as _;
use http::HeaderMap;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::error::AuthnError;
use super::jwt::unix_now;
use super::principal::{CertificateIdentity, Principal};
use super::thumbprint::{ct_eq, x5t_s256};
use crate::clock::SharedClock;
use crate::config::{ConfigProblem, LoadedConfig};

/// Largest `Client-Cert` header value read (bytes).
pub const MAX_CLIENT_CERT_HEADER: usize = 16 * 1024;

/// Which certificate field names the caller (the principal's subject).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalFrom {
    /// The subject's first common name (default).
    #[default]
    SubjectCn,
    /// The first DNS name of the subject alternative names.
    SanDns,
    /// The first URI of the subject alternative names.
    SanUri,
}

/// `[mtls]`, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsConfig {
    /// The field that becomes the principal's subject. Default `subject_cn`.
    #[serde(default)]
    pub principal_from: PrincipalFrom,
    /// A CRL file (PEM, one or more `X509 CRL` blocks, or DER), relative to
    /// the policy; read at start and every reload.
    pub crl_file: Option<PathBuf>,
    /// Read the certificate from the RFC 9440 `Client-Cert` header when the
    /// TCP peer is one of `[ip_filter] trusted_proxies`. Default false.
    #[serde(default)]
    pub trust_client_cert_header: bool,
    /// Which certificates are which clients.
    #[serde(default)]
    pub clients: Vec<MtlsClientConfig>,
}

/// One `[[mtls.clients]]` entry: exactly one matcher, and who it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsClientConfig {
    /// The subject's common name equals this.
    pub subject_cn: Option<String>,
    /// One of the DNS subject alternative names equals this (any case).
    pub san_dns: Option<String>,
    /// One of the URI subject alternative names equals this.
    pub san_uri: Option<String>,
    /// The certificate's `x5t#S256` (base64url SHA-256 of the DER) is this:
    /// pins one certificate.
    pub x5t_s256: Option<String>,
    /// The client id the upstream receives (`x-authenticated-client-id`).
    pub client_id: String,
    /// Scopes granted to this client when it calls with its certificate alone.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// How an entry recognises its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    SubjectCn(String),
    SanDns(String),
    SanUri(String),
    X5t(String),
}

#[derive(Debug, Clone)]
struct Client {
    matcher: Matcher,
    client_id: String,
    scopes: Vec<String>,
}

/// One CRL: its issuer (raw DER name) and the revoked serials.
#[derive(Debug, Clone)]
struct Crl {
    issuer: Vec<u8>,
    serials: HashSet<Vec<u8>>,
}

/// What a certificate says, read once.
#[derive(Debug)]
struct Fields {
    cn: Option<String>,
    dns: Vec<String>,
    uris: Vec<String>,
    x5t: String,
    not_after: i64,
}

/// `[mtls]`, validated and ready.
#[derive(Debug)]
pub struct Mtls {
    principal_from: PrincipalFrom,
    clients: Vec<Client>,
    crls: Vec<Crl>,
    trust_header: bool,
    clock: SharedClock,
}

impl Mtls {
    /// Validates `[mtls]` and reads its CRL file.
    pub fn from_config(
        c: &MtlsConfig,
        loaded: &LoadedConfig,
        clock: SharedClock,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut clients = Vec::new();
        for (i, e) in c.clients.iter().enumerate() {
            let at = |k: &str| format!("mtls.clients[{i}].{k}");
            let matchers: Vec<Matcher> = [
                e.subject_cn.clone().map(Matcher::SubjectCn),
                e.san_dns.clone().map(Matcher::SanDns),
                e.san_uri.clone().map(Matcher::SanUri),
                e.x5t_s256.clone().map(Matcher::X5t),
            ]
            .into_iter()
            .flatten()
            .collect();
            let [matcher] = matchers.as_slice() else {
                problems.push(ConfigProblem::error(
                    format!("mtls.clients[{i}]"),
                    "give exactly one of subject_cn, san_dns, san_uri, x5t_s256",
                ));
                continue;
            };
            let empty = match matcher {
                Matcher::SubjectCn(s) | Matcher::SanDns(s) | Matcher::SanUri(s) | Matcher::X5t(s) => {
                    s.is_empty()
                }
            };
            if empty {
                problems.push(ConfigProblem::error(
                    format!("mtls.clients[{i}]"),
                    "the matcher is empty",
                ));
            }
            if let Matcher::X5t(t) = matcher {
                if super::b64url_decode(t).is_none_or(|d| d.len() != 32) {
                    problems.push(ConfigProblem::error(
                        at("x5t_s256"),
                        "not a base64url SHA-256 thumbprint (43 characters)",
                    ));
                }
            }
            if e.client_id.is_empty() || e.client_id.bytes().any(|b| b.is_ascii_control()) {
                problems.push(ConfigProblem::error(
                    at("client_id"),
                    "must be non-empty printable text",
                ));
            }
            if clients.iter().any(|o: &Client| o.matcher == *matcher) {
                problems.push(ConfigProblem::error(
                    format!("mtls.clients[{i}]"),
                    "the same certificate matcher is already mapped to a client",
                ));
            }
            clients.push(Client {
                matcher: matcher.clone(),
                client_id: e.client_id.clone(),
                scopes: e.scopes.clone(),
            });
        }
        let crls = match &c.crl_file {
            None => Vec::new(),
            Some(f) => {
                let file = loaded.resolve(f);
                read_crls(&file).unwrap_or_else(|why| {
                    problems.push(ConfigProblem::error("mtls.crl_file", why));
                    Vec::new()
                })
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            principal_from: c.principal_from,
            clients,
            crls,
            trust_header: c.trust_client_cert_header,
            clock,
        })
    }

    /// Warnings for `rampart check`: `[mtls]` settings that cannot take
    /// effect with the rest of the policy.
    pub fn lint(cfg: &crate::config::GatewayConfig) -> Vec<ConfigProblem> {
        let mut w = Vec::new();
        let m = &cfg.mtls;
        if m.trust_client_cert_header && cfg.ip_filter.trusted_proxies.is_empty() {
            w.push(ConfigProblem::warning(
                "mtls.trust_client_cert_header",
                "no [ip_filter] trusted_proxies: Client-Cert is never read",
            ));
        }
        let asks = cfg.listeners.iter().any(|l| {
            l.tls
                .as_ref()
                .is_some_and(|t| t.client_auth != crate::listener::config::ClientAuth::None)
        });
        if !m.clients.is_empty() && !asks && !m.trust_client_cert_header {
            w.push(ConfigProblem::warning(
                "mtls.clients",
                "no listener asks for client certificates (tls.client_auth): `mtls` routes refuse everyone",
            ));
        }
        w
    }

    /// Whether any client is mapped (routes may use `mtls`).
    pub fn has_clients(&self) -> bool {
        !self.clients.is_empty()
    }

    /// The client certificate of a request (DER): from the TLS handshake,
    /// or, when the peer is a trusted proxy and `trust_client_cert_header`
    /// is on, only from its `Client-Cert` header (none if absent: the
    /// proxy's own certificate is never the client's).
    pub fn client_certificate<'a>(
        &self,
        handshake: Option<&'a [u8]>,
        headers: &HeaderMap,
        via_trusted_proxy: bool,
    ) -> Result<Option<Cow<'a, [u8]>>, AuthnError> {
        if !(self.trust_header && via_trusted_proxy) {
            return Ok(handshake.map(Cow::Borrowed));
        }
        client_cert_header(headers).map(|c| c.map(Cow::Owned))
    }

    /// The principal a certificate stands for: valid now, not revoked,
    /// and mapped to a client.
    pub fn identify(&self, der: &[u8]) -> Result<Principal, AuthnError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|_| AuthnError::CertificateInvalid("not an X.509 certificate"))?;
        let now = unix_now(&*self.clock);
        let validity = cert.validity();
        if now < validity.not_before.timestamp() || now >= validity.not_after.timestamp() {
            return Err(AuthnError::CertificateInvalid("outside its validity period"));
        }
        let issuer = cert.issuer().as_raw();
        let serial = cert.raw_serial();
        if self
            .crls
            .iter()
            .any(|crl| crl.issuer == issuer && crl.serials.contains(serial))
        {
            return Err(AuthnError::CertificateRevoked);
        }
        let fields = fields(&cert, der);
        let client = self
            .clients
            .iter()
            .find(|c| matches(&c.matcher, &fields))
            .ok_or(AuthnError::CertificateUnknown)?;
        let subject = match self.principal_from {
            PrincipalFrom::SubjectCn => fields.cn.clone(),
            PrincipalFrom::SanDns => fields.dns.first().cloned(),
            PrincipalFrom::SanUri => fields.uris.first().cloned(),
        }
        .ok_or(AuthnError::CertificateInvalid("no field for principal_from"))?;
        Ok(Principal::from_certificate(
            CertificateIdentity {
                subject,
                client_id: client.client_id.clone(),
                x5t_s256: fields.x5t,
            },
            client.scopes.clone(),
            fields.not_after,
        ))
    }
}

fn matches(m: &Matcher, f: &Fields) -> bool {
    match m {
        Matcher::SubjectCn(cn) => f.cn.as_deref() == Some(cn.as_str()),
        Matcher::SanDns(d) => f.dns.iter().any(|x| x.eq_ignore_ascii_case(d)),
        Matcher::SanUri(u) => f.uris.iter().any(|x| x == u),
        Matcher::X5t(t) => ct_eq(t.as_bytes(), f.x5t.as_bytes()),
    }
}

fn fields(cert: &X509Certificate<'_>, der: &[u8]) -> Fields {
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    let (mut dns, mut uris) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::URI(u) => uris.push((*u).to_owned()),
                _ => {}
            }
        }
    }
    Fields {
        cn,
        dns,
        uris,
        x5t: x5t_s256(der),
        not_after: cert.validity().not_after.timestamp(),
    }
}

/// RFC 9440 §2.2: `Client-Cert: :<base64 DER>:` (an RFC 8941 byte
/// sequence). At most one such header.
fn client_cert_header(headers: &HeaderMap) -> Result<Option<Vec<u8>>, AuthnError> {
    let mut values = headers.get_all("client-cert").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthnError::CertificateInvalid("several Client-Cert headers"));
    }
    if value.len() > MAX_CLIENT_CERT_HEADER {
        return Err(AuthnError::CertificateInvalid("Client-Cert too large"));
    }
    let inner = value
        .to_str()
        .ok()
        .map(str::trim)
        .and_then(|v| v.strip_prefix(':'))
        .and_then(|v| v.strip_suffix(':'))
        .ok_or(AuthnError::CertificateInvalid(
            "Client-Cert is not a byte sequence",
        ))?;
    base64::engine::general_purpose::STANDARD
        .decode(inner)
        .map(Some)
        .map_err(|_| AuthnError::CertificateInvalid("Client-Cert is not base64"))
}

/// Reads a CRL file: PEM blocks, or one DER CRL.
fn read_crls(file: &std::path::Path) -> Result<Vec<Crl>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let ders: Vec<Vec<u8>> = if bytes.starts_with(b"-----") || bytes.windows(5).any(|w| w == b"-----") {
        rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(&bytes)
            .map(|r| r.map(|d| d.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", file.display()))?
    } else {
        vec![bytes]
    };
    if ders.is_empty() {
        return Err(format!("{}: no X509 CRL in the file", file.display()));
    }
    ders.iter()
        .map(|der| {
            let (_, crl) = x509_parser::parse_x509_crl(der)
                .map_err(|e| format!("{}: not a CRL: {e}", file.display()))?;
            Ok(Crl {
                issuer: crl.issuer().as_raw().to_vec(),
                serials: crl
                    .iter_revoked_certificates()
                    .map(|r| r.raw_serial().to_vec())
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "mtls_tests.rs"]
mod tests;
