//! RFC 9421 HTTP Message Signatures and RFC 9530 `Content-Digest`.
//!
//! Requests: `Signature-Input` and `Signature` from configured clients are
//! verified against their public keys (a JWKS per client; the key's `kid`
//! is the signature's `keyid`). An accepted signature covers what the
//! route requires (by default `@method`, `@target-uri`, `@authority`,
//! `content-digest` and `authorization`, the last two when the request has
//! them), was `created` within the window (and is not past `expires`),
//! carries a `nonce` never seen before (memory or Redis replay cache, as
//! DPoP's), and a covered `Content-Digest` matches the body's bytes.
//! Algorithms: `ed25519`, `ecdsa-p256-sha256`, `rsa-pss-sha512`, all with
//! aws-lc-rs.
//!
//! Responses: the gateway signs `@status`, `content-type` and
//! `content-digest` (computed here) with its Ed25519 or P-256 key, so a
//! client detects a response changed on the way.
//!
//! Threat answered: tampering with a request or response in transit or by
//! an intermediary (FAPI 2.0 message signing), and replay of a captured
//! signed request. How it fails: closed. A missing, malformed, expired,
//! replayed or unverifiable signature is refused (401 `invalid-signature`,
//! 400 `invalid-digest` for a body that does not match its digest); the
//! detailed cause goes to the log only.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_lc_rs::signature as sig;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use sfv::{BareItem, FieldType as _, Item, ListEntry, Parser};

use crate::authn::dpop::ReplayCache;
use crate::clock::SharedClock;

/// Why a signature was refused (for logs; the client sees the class).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No `Signature-Input`/`Signature` on a route that requires one.
    #[error("no signature")]
    Missing,
    /// The fields do not parse or lack a member.
    #[error("malformed signature fields: {0}")]
    Malformed(String),
    /// `keyid` names no key of an accepted client.
    #[error("unknown keyid")]
    UnknownKey,
    /// The `alg` parameter does not match the key.
    #[error("algorithm does not match the key")]
    WrongAlgorithm,
    /// A component the route requires is not covered.
    #[error("component `{0}` not covered")]
    NotCovered(String),
    /// A covered component is absent from the message, or unsupported.
    #[error("component `{0}` absent or unsupported")]
    BadComponent(String),
    /// `created` too old or in the future, or `expires` passed.
    #[error("outside the validity window")]
    Expired,
    /// A route requires a `nonce` and there is none.
    #[error("no nonce")]
    NoNonce,
    /// The nonce was seen before.
    #[error("nonce replayed")]
    Replayed,
    /// The replay cache cannot answer.
    #[error("nonce store unavailable: {0}")]
    StoreDown(String),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// `Content-Digest` is missing where required, malformed, or does not
    /// match the body.
    #[error("content digest: {0}")]
    Digest(&'static str),
}

/// A public key of a client.
#[derive(Debug, Clone)]
pub enum VerifyKey {
    /// Ed25519 (32 bytes).
    Ed25519(Vec<u8>),
    /// P-256, uncompressed point.
    EcP256(Vec<u8>),
    /// RSA modulus and exponent (big-endian).
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Exponent.
        e: Vec<u8>,
    },
}

impl VerifyKey {
    /// The RFC 9421 algorithm name.
    pub fn alg(&self) -> &'static str {
        match self {
            VerifyKey::Ed25519(_) => "ed25519",
            VerifyKey::EcP256(_) => "ecdsa-p256-sha256",
            VerifyKey::Rsa { .. } => "rsa-pss-sha512",
        }
    }

    /// Whether `signature` over `base` verifies.
    pub fn verify(&self, base: &[u8], signature: &[u8]) -> bool {
        match self {
            VerifyKey::Ed25519(k) => sig::UnparsedPublicKey::new(&sig::ED25519, k)
                .verify(base, signature)
                .is_ok(),
            VerifyKey::EcP256(k) => sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, k)
                .verify(base, signature)
                .is_ok(),
            VerifyKey::Rsa { n, e } => sig::RsaPublicKeyComponents { n, e }
                .verify(&sig::RSA_PSS_2048_8192_SHA512, base, signature)
                .is_ok(),
        }
    }

    /// A key from a public JWK (OKP Ed25519, EC P-256, RSA).
    pub fn from_jwk(jwk: &Value) -> Result<Self, String> {
        let get = |k: &str| -> Result<Vec<u8>, String> {
            let s = jwk
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("JWK member `{k}` missing"))?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|_| format!("JWK member `{k}` is not base64url"))
        };
        match (
            jwk.get("kty").and_then(Value::as_str),
            jwk.get("crv").and_then(Value::as_str),
        ) {
            (Some("OKP"), Some("Ed25519")) => {
                let x = get("x")?;
                if x.len() != 32 {
                    return Err("Ed25519 `x` must be 32 bytes".into());
                }
                Ok(VerifyKey::Ed25519(x))
            }
            (Some("EC"), Some("P-256")) => {
                let (x, y) = (get("x")?, get("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("P-256 `x` and `y` must be 32 bytes".into());
                }
                let mut p = vec![4u8];
                p.extend(x);
                p.extend(y);
                Ok(VerifyKey::EcP256(p))
            }
            (Some("RSA"), _) => {
                let n = get("n")?;
                if n.len() < 256 {
                    return Err("RSA keys must have at least 2048 bits".into());
                }
                Ok(VerifyKey::Rsa { n, e: get("e")? })
            }
            (kty, crv) => Err(format!(
                "unsupported key type {kty:?}/{crv:?} (use Ed25519, P-256 or RSA)"
            )),
        }
    }
}

/// Parses a JWKS into `(kid, key)` pairs.
pub fn keys_from_jwks(text: &str) -> Result<Vec<(String, VerifyKey)>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("a JWKS has a `keys` array")?;
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let kid = k
            .get("kid")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("keys[{i}] has no `kid` (it is the signatures' keyid)"))?;
        if k.get("d").is_some() {
            return Err(format!("keys[{i}] is a private key: publish only public keys"));
        }
        out.push((
            kid.to_owned(),
            VerifyKey::from_jwk(k).map_err(|e| format!("keys[{i}]: {e}"))?,
        ));
    }
    Ok(out)
}

/// The parts of a message a signature base is built from.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Request method (requests).
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Host and optional port, as the request named it.
    pub authority: &'a str,
    /// The request path, as sent.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// Response status (responses).
    pub status: Option<u16>,
    /// Header fields.
    pub headers: &'a HeaderMap,
}

impl<'a> Message<'a> {
    /// A request: `method scheme://authority path?query` with `headers`.
    pub fn request(
        method: &'a str,
        scheme: &'a str,
        authority: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> Self {
        Self {
            method,
            scheme,
            authority,
            path,
            query,
            status: None,
            headers,
        }
    }

    /// A response with `status` and `headers`.
    pub fn response(status: u16, headers: &'a HeaderMap) -> Self {
        Self {
            status: Some(status),
            ..Self::request("", "", "", "", None, headers)
        }
    }
}

/// One covered component, as written in `Signature-Input`.
fn component_value(name: &str, m: &Message<'_>) -> Result<String, SigError> {
    let bad = || SigError::BadComponent(name.to_owned());
    Ok(match name {
        "@method" => m.method.to_owned(),
        "@scheme" => m.scheme.to_ascii_lowercase(),
        "@authority" => m.authority.to_ascii_lowercase(),
        "@path" => m.path.to_owned(),
        "@query" => format!("?{}", m.query.unwrap_or("")),
        "@request-target" => match m.query {
            Some(q) => format!("{}?{q}", m.path),
            None => m.path.to_owned(),
        },
        "@target-uri" => {
            let q = m.query.map(|q| format!("?{q}")).unwrap_or_default();
            format!(
                "{}://{}{}{q}",
                m.scheme.to_ascii_lowercase(),
                m.authority.to_ascii_lowercase(),
                m.path
            )
        }
        "@status" => m.status.ok_or_else(bad)?.to_string(),
        n if n.starts_with('@') => return Err(bad()),
        n => {
            let mut values = m.headers.get_all(n).iter().peekable();
            values.peek().ok_or_else(bad)?;
            let mut out = Vec::new();
            for v in values {
                let s = std::str::from_utf8(v.as_bytes()).map_err(|_| bad())?;
                out.push(s.trim().to_owned());
            }
            out.join(", ")
        }
    })
}

/// The signature base (RFC 9421 §2.5) of `components` over `m`, with the
/// serialised signature parameters `params` (`("@method" …);created=…`).
pub fn signature_base(components: &[String], params: &str, m: &Message<'_>) -> Result<String, SigError> {
    let mut base = String::new();
    for c in components {
        let v = component_value(c, m)?;
        if v.contains(['\n', '\r']) {
            return Err(SigError::BadComponent(c.clone()));
        }
        base.push_str(&format!("\"{c}\": {v}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {params}"));
    Ok(base)
}

/// Serialises the signature parameters of `components` and `params`
/// (RFC 8941 inner list).
pub fn signature_params(components: &[String], params: &[(&str, BareItem)]) -> Result<String, SigError> {
    let mut items = Vec::new();
    for c in components {
        let s = sfv::String::from_string(c.clone()).map_err(|_| SigError::BadComponent(c.clone()))?;
        items.push(Item::new(BareItem::String(s)));
    }
    let mut inner = sfv::InnerList::new(items);
    for (k, v) in params {
        let key = sfv::KeyRef::from_str(k).map_err(|_| SigError::Malformed(format!("bad parameter {k}")))?;
        inner.params.insert(key.to_owned(), v.clone());
    }
    let list: sfv::List = vec![ListEntry::InnerList(inner)];
    list.serialize()
        .ok_or_else(|| SigError::Malformed("empty".into()))
}

/// A string parameter value.
pub fn string_param(s: &str) -> Result<BareItem, SigError> {
    sfv::String::from_string(s.to_owned())
        .map(BareItem::String)
        .map_err(|_| SigError::Malformed("parameter is not a printable ASCII string".into()))
}

/// An integer parameter value.
pub fn int_param(i: i64) -> Result<BareItem, SigError> {
    sfv::Integer::try_from(i)
        .map(BareItem::Integer)
        .map_err(|_| SigError::Malformed("integer out of range".into()))
}

/// `sha-256=:…:` of `body` (RFC 9530).
pub fn content_digest(body: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(d.as_ref())
    )
}

/// Checks a `Content-Digest` field value against `body`: every
/// `sha-256`/`sha-512` member must match; unknown algorithms are ignored,
/// but at least one known one must be present.
pub fn check_content_digest(field: &str, body: &[u8]) -> Result<(), SigError> {
    let dict: sfv::Dictionary = Parser::new(field)
        .parse_dictionary()
        .map_err(|_| SigError::Digest("malformed"))?;
    let mut known = 0;
    for (k, v) in &dict {
        let alg = match k.as_str() {
            "sha-256" => &aws_lc_rs::digest::SHA256,
            "sha-512" => &aws_lc_rs::digest::SHA512,
            _ => continue,
        };
        let ListEntry::Item(item) = v else {
            return Err(SigError::Digest("malformed"));
        };
        let want = item
            .bare_item
            .as_byte_sequence()
            .ok_or(SigError::Digest("malformed"))?;
        let got = aws_lc_rs::digest::digest(alg, body);
        if aws_lc_rs::constant_time::verify_slices_are_equal(got.as_ref(), want).is_err() {
            return Err(SigError::Digest("does not match the body"));
        }
        known += 1;
    }
    if known == 0 {
        return Err(SigError::Digest("no sha-256 or sha-512 member"));
    }
    Ok(())
}

/// A client allowed to sign.
#[derive(Debug)]
pub struct Client {
    /// Name.
    pub name: String,
    /// Keys by `kid`.
    pub keys: Vec<(String, VerifyKey)>,
}

/// The gateway's signature policy (`[signatures]`).
#[derive(Debug)]
pub struct Signatures {
    /// Clients.
    pub clients: Vec<Client>,
    /// Oldest `created` accepted.
    pub max_age: Duration,
    /// Future `created` tolerated.
    pub clock_skew: Duration,
    /// Seen nonces.
    pub nonces: Arc<dyn ReplayCache>,
    /// The response-signing key and its keyid.
    pub response_key: Option<(crate::authn::sign::SigningKey, String)>,
    /// The clock.
    pub clock: SharedClock,
}

/// A route's signature requirements.
#[derive(Debug, Clone)]
pub struct RouteSignature {
    /// Refuse unsigned requests.
    pub required: bool,
    /// Indexes of accepted clients.
    pub clients: Vec<usize>,
    /// Components that must be covered.
    pub components: Vec<String>,
    /// A `nonce` is required.
    pub require_nonce: bool,
    /// Sign responses.
    pub sign_response: bool,
}

/// A verified signature: who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The client.
    pub client: String,
    /// The key id.
    pub keyid: String,
}

fn header_text(h: &HeaderMap, name: &str) -> Result<Option<String>, SigError> {
    let mut parts = Vec::new();
    for v in h.get_all(name) {
        parts.push(
            std::str::from_utf8(v.as_bytes())
                .map_err(|_| SigError::Malformed(format!("{name} is not ASCII")))?
                .to_owned(),
        );
    }
    Ok((!parts.is_empty()).then(|| parts.join(", ")))
}

impl Signatures {
    fn now(&self) -> i64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    /// Verifies the request `m` with `body` under `route`'s policy.
    /// `Ok(None)`: unsigned, and the route does not require a signature.
    pub async fn verify(
        &self,
        route: &RouteSignature,
        m: &Message<'_>,
        body: &[u8],
    ) -> Result<Option<Verified>, SigError> {
        let input = header_text(m.headers, "signature-input")?;
        let signature = header_text(m.headers, "signature")?;
        let (input, signature) = match (input, signature) {
            (None, None) if !route.required => return Ok(None),
            (Some(i), Some(s)) => (i, s),
            (None, None) => return Err(SigError::Missing),
            _ => {
                return Err(SigError::Malformed(
                    "Signature-Input and Signature come together".into(),
                ))
            }
        };
        let inputs: sfv::Dictionary = Parser::new(&input)
            .parse_dictionary()
            .map_err(|e| SigError::Malformed(format!("Signature-Input: {e}")))?;
        let sigs: sfv::Dictionary = Parser::new(&signature)
            .parse_dictionary()
            .map_err(|e| SigError::Malformed(format!("Signature: {e}")))?;
        if inputs.len() > 8 {
            return Err(SigError::Malformed("too many signatures".into()));
        }
        let mut last = SigError::Missing;
        for (label, entry) in &inputs {
            match self.verify_one(route, m, body, entry, sigs.get(label)).await {
                Ok(v) => return Ok(Some(v)),
                // The replay cache failing is not another label's business.
                Err(e @ SigError::StoreDown(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn verify_one(
        &self,
        route: &RouteSignature,
        m: &Message<'_>,
        body: &[u8],
        entry: &ListEntry,
        signature: Option<&ListEntry>,
    ) -> Result<Verified, SigError> {
        let malformed = |s: &str| SigError::Malformed(s.to_owned());
        let ListEntry::InnerList(inner) = entry else {
            return Err(malformed("a Signature-Input member is an inner list"));
        };
        let Some(ListEntry::Item(sig_item)) = signature else {
            return Err(malformed("no Signature for this label"));
        };
        let sig_bytes = sig_item
            .bare_item
            .as_byte_sequence()
            .ok_or_else(|| malformed("a Signature member is a byte sequence"))?;
        let mut components = Vec::new();
        for item in &inner.items {
            let name = item
                .bare_item
                .as_string()
                .ok_or_else(|| malformed("component identifiers are strings"))?
                .as_str()
                .to_owned();
            if !item.params.is_empty() {
                return Err(SigError::BadComponent(name));
            }
            if name != name.to_ascii_lowercase() || components.contains(&name) {
                return Err(SigError::BadComponent(name));
            }
            components.push(name);
        }
        let int =
            |k: &str| -> Option<i64> { inner.params.get(k).and_then(|v| v.as_integer()).map(i64::from) };
        let string = |k: &str| -> Option<String> {
            inner
                .params
                .get(k)
                .and_then(|v| v.as_string())
                .map(|s| s.as_str().to_owned())
        };
        for required in &route.components {
            let applies = match required.as_str() {
                "content-digest" => !body.is_empty() || m.headers.contains_key("content-digest"),
                "@method" | "@target-uri" | "@authority" | "@path" | "@query" | "@scheme"
                | "@request-target" => true,
                header => m.headers.contains_key(header),
            };
            if applies && !components.contains(required) {
                return Err(SigError::NotCovered(required.clone()));
            }
        }
        let created = int("created").ok_or_else(|| malformed("no `created`"))?;
        let now = self.now();
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        let skew = i64::try_from(self.clock_skew.as_secs()).unwrap_or(0);
        if now.saturating_sub(created) > max_age || created.saturating_sub(now) > skew {
            return Err(SigError::Expired);
        }
        if int("expires").is_some_and(|e| e <= now) {
            return Err(SigError::Expired);
        }
        let keyid = string("keyid").ok_or_else(|| malformed("no `keyid`"))?;
        let (client, key) = route
            .clients
            .iter()
            .filter_map(|i| self.clients.get(*i))
            .find_map(|c| c.keys.iter().find(|(kid, _)| *kid == keyid).map(|(_, k)| (c, k)))
            .ok_or(SigError::UnknownKey)?;
        if string("alg").is_some_and(|a| a != key.alg()) {
            return Err(SigError::WrongAlgorithm);
        }
        let nonce = string("nonce");
        if route.require_nonce && nonce.is_none() {
            return Err(SigError::NoNonce);
        }
        let params = {
            let list: sfv::List = vec![ListEntry::InnerList(inner.clone())];
            list.serialize().ok_or_else(|| malformed("empty"))?
        };
        let base = signature_base(&components, &params, m)?;
        if !key.verify(base.as_bytes(), sig_bytes) {
            return Err(SigError::BadSignature);
        }
        if components.iter().any(|c| c == "content-digest")
            || !body.is_empty() && route.components.iter().any(|c| c == "content-digest")
        {
            let field = header_text(m.headers, "content-digest")?.ok_or(SigError::Digest("missing"))?;
            check_content_digest(&field, body)?;
        }
        if let Some(n) = nonce {
            let mut material = Vec::with_capacity(keyid.len() + n.len() + 16);
            material.extend_from_slice(b"rfc9421-nonce\0");
            material.extend_from_slice(keyid.as_bytes());
            material.push(0);
            material.extend_from_slice(n.as_bytes());
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &material);
            let mut key = [0u8; 32];
            key.copy_from_slice(digest.as_ref());
            match self
                .nonces
                .check_and_insert(key, self.max_age + self.clock_skew)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err(SigError::Replayed),
                Err(e) => return Err(SigError::StoreDown(e)),
            }
        }
        Ok(Verified {
            client: client.name.clone(),
            keyid,
        })
    }

    /// Signs a response: adds `Content-Digest` (of `body`), then
    /// `Signature-Input` and `Signature` (label `rampart`) over `@status`,
    /// `content-type` (when present) and `content-digest`.
    pub fn sign_response(&self, status: u16, headers: &mut HeaderMap, body: &Bytes) -> Result<(), String> {
        let Some((key, keyid)) = &self.response_key else {
            return Ok(());
        };
        let digest = HeaderValue::from_str(&content_digest(body)).map_err(|e| e.to_string())?;
        headers.insert("content-digest", digest);
        let mut components = vec!["@status".to_owned()];
        if headers.contains_key(http::header::CONTENT_TYPE) {
            components.push("content-type".into());
        }
        components.push("content-digest".into());
        let value = sign_message(
            key,
            keyid,
            &components,
            self.now(),
            None,
            &Message::response(status, headers),
            "rampart",
        )
        .map_err(|e| e.to_string())?;
        headers.insert(
            "signature-input",
            HeaderValue::from_str(&value.0).map_err(|e| e.to_string())?,
        );
        headers.insert(
            "signature",
            HeaderValue::from_str(&value.1).map_err(|e| e.to_string())?,
        );
        Ok(())
    }
}

/// The RFC 9421 algorithm name of a signing key.
pub fn alg_of(key: &crate::authn::sign::SigningKey) -> Result<&'static str, SigError> {
    match key.alg() {
        jsonwebtoken::Algorithm::EdDSA => Ok("ed25519"),
        jsonwebtoken::Algorithm::ES256 => Ok("ecdsa-p256-sha256"),
        _ => Err(SigError::Malformed(
            "sign with an EdDSA (Ed25519) or ES256 (P-256) key".into(),
        )),
    }
}

/// Signs `m`: returns the `Signature-Input` and `Signature` field values
/// for `label`.
pub fn sign_message(
    key: &crate::authn::sign::SigningKey,
    keyid: &str,
    components: &[String],
    created: i64,
    nonce: Option<&str>,
    m: &Message<'_>,
    label: &str,
) -> Result<(String, String), SigError> {
    let alg = alg_of(key)?;
    let mut params = vec![("created", int_param(created)?), ("keyid", string_param(keyid)?)];
    if let Some(n) = nonce {
        params.push(("nonce", string_param(n)?));
    }
    params.push(("alg", string_param(alg)?));
    let serialized = signature_params(components, &params)?;
    let base = signature_base(components, &serialized, m)?;
    let raw = key
        .sign_bytes(base.as_bytes())
        .map_err(|e| SigError::Malformed(e.to_string()))?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| SigError::Malformed("signature encoding".into()))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    Ok((format!("{label}={serialized}"), format!("{label}=:{b64}:")))
}
