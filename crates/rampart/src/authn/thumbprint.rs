//! Key and certificate thumbprints that bind a token to its sender:
//! RFC 7638 JWK thumbprints (DPoP `cnf.jkt`) and RFC 8705 `x5t#S256`
//! (certificate-bound tokens).
//!
//! Threat answered: a stolen access token replayed by someone who does not
//! hold the key it was bound to. How it fails: a JWK missing a required
//! member has no thumbprint (an error, never a guess); comparisons are
//! constant-time.

use serde_json::{Map, Value};

use super::{b64url, sha256};

/// Why a JWK has no thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbprintError {
    /// `kty` missing or not RSA, EC or OKP.
    #[error("unsupported or missing kty")]
    UnsupportedKty,
    /// A member the RFC 7638 canonical form needs is missing or not a string.
    #[error("missing member {0}")]
    Missing(&'static str),
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url-encoded.
///
/// Only the required members, in lexicographic order, without whitespace:
/// RSA `{"e","kty","n"}`, EC `{"crv","kty","x","y"}`, OKP `{"crv","kty","x"}`.
/// Other members (`kid`, `alg`, `use`, private parts) do not change it.
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Result<String, ThumbprintError> {
    let get = |k: &'static str| -> Result<&str, ThumbprintError> {
        jwk.get(k)
            .and_then(Value::as_str)
            .ok_or(ThumbprintError::Missing(k))
    };
    // serde_json's string serialisation is the JSON escaping RFC 7638 asks for.
    let q = |s: &str| Value::String(s.to_owned()).to_string();
    let canonical = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, q(get("e")?), q(get("n")?)),
        Some("EC") => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            q(get("crv")?),
            q(get("x")?),
            q(get("y")?)
        ),
        Some("OKP") => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, q(get("crv")?), q(get("x")?)),
        _ => return Err(ThumbprintError::UnsupportedKty),
    };
    Ok(b64url(&sha256(canonical.as_bytes())))
}

/// RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER certificate.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    b64url(&sha256(cert_der))
}

/// Whether a token's `cnf.x5t#S256` names this client certificate
/// (constant-time comparison).
pub fn certificate_matches(cnf_x5t_s256: &str, cert_der: &[u8]) -> bool {
    ct_eq(cnf_x5t_s256.as_bytes(), x5t_s256(cert_der).as_bytes())
}

/// Constant-time equality of two byte strings (lengths are not hidden).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}
