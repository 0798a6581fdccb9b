//! Signing keys and token minting for developers and tests: generate a key
//! (ES256, EdDSA, PS256, RS256), publish its JWKS, mint access tokens and
//! DPoP proofs. The gateway itself never signs with these on the request
//! path.
//!
//! ECDSA and EdDSA signatures go through `jsonwebtoken`'s signer (on
//! aws-lc-rs); RSA signs with aws-lc-rs directly, because `jsonwebtoken`
//! wants a PKCS#1 RSA key and aws-lc-rs generates and exports PKCS#8 only.
//!
//! Threat answered: none on its own; it exists so tests and demos use real
//! keys and real signatures instead of fixtures nobody can regenerate. How
//! it fails: [`SignError`]; never a panic.

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256,
};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Map, Value};

use super::dpop::access_token_hash;
use super::thumbprint::jwk_thumbprint;
use super::{b64url, b64url_decode};

/// Why a key could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Not one of ES256, EdDSA, PS256, RS256.
    #[error("unsupported algorithm {0:?} (use ES256, EdDSA, PS256 or RS256)")]
    Unsupported(Algorithm),
    /// Key generation, import or signing failed.
    #[error("{0}")]
    Crypto(String),
}

/// 128 random bits, base64url (for `jti`). Empty only if the system RNG
/// fails, which a verifier refuses as a malformed `jti`.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    match aws_lc_rs::rand::fill(&mut b) {
        Ok(()) => b64url(&b),
        Err(_) => String::new(),
    }
}

enum Inner {
    Ec { pkcs8: Vec<u8>, pair: EcdsaKeyPair },
    Ed { pkcs8: Vec<u8>, pair: Ed25519KeyPair },
    Rsa(RsaKeyPair),
}

/// A private signing key with its JOSE algorithm and key id.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    inner: Inner,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn crypto<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> SignError {
    move |e| SignError::Crypto(format!("{what}: {e}"))
}

impl SigningKey {
    /// A fresh key for `alg` (ES256 → P-256, EdDSA → Ed25519, PS256/RS256 →
    /// RSA 2048). Its `kid` is its RFC 7638 thumbprint.
    pub fn generate(alg: Algorithm) -> Result<Self, SignError> {
        let inner = match alg {
            Algorithm::ES256 => {
                let pair =
                    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(crypto("EC key"))?;
                let pkcs8 = pair.to_pkcs8v1().map_err(crypto("EC key"))?.as_ref().to_vec();
                Inner::Ec { pkcs8, pair }
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate().map_err(crypto("Ed25519 key"))?;
                let pkcs8 = pair.to_pkcs8().map_err(crypto("Ed25519 key"))?.as_ref().to_vec();
                Inner::Ed { pkcs8, pair }
            }
            Algorithm::PS256 | Algorithm::RS256 => {
                Inner::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(crypto("RSA key"))?)
            }
            other => return Err(SignError::Unsupported(other)),
        };
        Self::finish(alg, inner)
    }

    fn finish(alg: Algorithm, inner: Inner) -> Result<Self, SignError> {
        let mut key = Self {
            alg,
            kid: String::new(),
            inner,
        };
        key.kid = jwk_thumbprint(&key.public_jwk_members()).map_err(crypto("thumbprint"))?;
        Ok(key)
    }

    /// Imports a private JWK as printed by [`SigningKey::private_jwk`]
    /// (EC P-256 or Ed25519; RSA private JWKs are not supported).
    pub fn from_private_jwk(jwk: &Map<String, Value>) -> Result<Self, SignError> {
        let s = |k: &str| {
            jwk.get(k)
                .and_then(Value::as_str)
                .and_then(b64url_decode)
                .ok_or_else(|| SignError::Crypto(format!("JWK member `{k}` missing or not base64url")))
        };
        let mut key = match (
            jwk.get("kty").and_then(Value::as_str),
            jwk.get("crv").and_then(Value::as_str),
        ) {
            (Some("EC"), Some("P-256")) => {
                let mut point = vec![4u8];
                point.extend(s("x")?);
                point.extend(s("y")?);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &s("d")?,
                    &point,
                )
                .map_err(crypto("EC key"))?;
                let pkcs8 = pair.to_pkcs8v1().map_err(crypto("EC key"))?.as_ref().to_vec();
                Self::finish(Algorithm::ES256, Inner::Ec { pkcs8, pair })?
            }
            (Some("OKP"), Some("Ed25519")) => {
                let pair = Ed25519KeyPair::from_seed_and_public_key(&s("d")?, &s("x")?)
                    .map_err(crypto("Ed25519 key"))?;
                let pkcs8 = pair.to_pkcs8().map_err(crypto("Ed25519 key"))?.as_ref().to_vec();
                Self::finish(Algorithm::EdDSA, Inner::Ed { pkcs8, pair })?
            }
            _ => {
                return Err(SignError::Crypto(
                    "only EC P-256 and OKP Ed25519 private JWKs can be imported".into(),
                ))
            }
        };
        if let Some(kid) = jwk.get("kid").and_then(Value::as_str) {
            key.kid = kid.to_owned();
        }
        Ok(key)
    }

    /// The private key as PKCS#8 PEM (every key type; the only export for
    /// RSA keys).
    pub fn to_pkcs8_pem(&self) -> Result<String, SignError> {
        use aws_lc_rs::encoding::AsDer;
        let der = match &self.inner {
            Inner::Ec { pkcs8, .. } | Inner::Ed { pkcs8, .. } => pkcs8.clone(),
            Inner::Rsa(pair) => {
                let d: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().map_err(crypto("RSA key"))?;
                d.as_ref().to_vec()
            }
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END PRIVATE KEY-----\n");
        Ok(out)
    }

    /// Imports a PKCS#8 PEM private key for `alg` (ES256, EdDSA, PS256, RS256).
    pub fn from_pkcs8_pem(pem: &str, alg: Algorithm) -> Result<Self, SignError> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(crypto("PKCS#8 PEM"))?;
        let der = der.secret_pkcs8_der().to_vec();
        let inner = match alg {
            Algorithm::ES256 => Inner::Ec {
                pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(crypto("EC key"))?,
                pkcs8: der,
            },
            Algorithm::EdDSA => Inner::Ed {
                pair: Ed25519KeyPair::from_pkcs8(&der).map_err(crypto("Ed25519 key"))?,
                pkcs8: der,
            },
            Algorithm::PS256 | Algorithm::RS256 => {
                Inner::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(crypto("RSA key"))?)
            }
            other => return Err(SignError::Unsupported(other)),
        };
        Self::finish(alg, inner)
    }

    /// Loads a key file written by `rampart keys gen`: a private JWK (EC
    /// P-256, Ed25519) or a PKCS#8 PEM (any type; `alg` says which, default
    /// PS256 for RSA).
    pub fn load(text: &str, alg: Option<Algorithm>) -> Result<Self, SignError> {
        if text.trim_start().starts_with("-----BEGIN") {
            return Self::from_pkcs8_pem(text, alg.unwrap_or(Algorithm::PS256));
        }
        let v: Value = serde_json::from_str(text).map_err(crypto("private JWK"))?;
        let jwk = v
            .as_object()
            .ok_or_else(|| SignError::Crypto("private JWK is not a JSON object".into()))?;
        Self::from_private_jwk(jwk)
    }

    /// The JOSE algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id (the thumbprint unless imported with another).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// RFC 7638 thumbprint of the public key (for `cnf.jkt`).
    pub fn thumbprint(&self) -> String {
        jwk_thumbprint(&self.public_jwk_members()).unwrap_or_default()
    }

    fn public_jwk_members(&self) -> Map<String, Value> {
        let v = match &self.inner {
            Inner::Ec { pair, .. } => {
                let point = pair.public_key().as_ref();
                let (x, y) = point
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(32.min(point.len().saturating_sub(1)));
                json!({"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)})
            }
            Inner::Ed { pair, .. } => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(pair.public_key().as_ref())})
            }
            Inner::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64url(public.modulus().big_endian_without_leading_zero()),
                    "e": b64url(public.exponent().big_endian_without_leading_zero()),
                })
            }
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The public JWK with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> Map<String, Value> {
        let mut m = self.public_jwk_members();
        m.insert("kid".into(), Value::String(self.kid.clone()));
        m.insert("alg".into(), Value::String(format!("{:?}", self.alg)));
        m.insert("use".into(), Value::String("sig".into()));
        m
    }

    /// A JWKS holding this key's public JWK.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [Value::Object(self.public_jwk())] })
    }

    /// The private JWK (EC and Ed25519 only: aws-lc-rs does not export RSA
    /// private components).
    pub fn private_jwk(&self) -> Result<Map<String, Value>, SignError> {
        let d = match &self.inner {
            Inner::Ec { pair, .. } => {
                let d = pair.private_key().as_be_bytes().map_err(crypto("EC key"))?;
                b64url(d.as_ref())
            }
            Inner::Ed { pair, .. } => {
                let seed = pair.seed().map_err(crypto("Ed25519 key"))?;
                let d = seed.as_be_bytes().map_err(crypto("Ed25519 key"))?;
                b64url(d.as_ref())
            }
            Inner::Rsa(_) => {
                return Err(SignError::Crypto(
                    "RSA private JWK export is not supported".into(),
                ))
            }
        };
        let mut m = self.public_jwk();
        m.insert("d".into(), Value::String(d));
        Ok(m)
    }

    /// Signs `header` (`alg` is set here) and `claims` into a compact JWS.
    pub fn sign(&self, mut header: Map<String, Value>, claims: &Value) -> Result<String, SignError> {
        header.insert("alg".into(), Value::String(format!("{:?}", self.alg)));
        let input = format!(
            "{}.{}",
            b64url(Value::Object(header).to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self.sign_bytes(input.as_bytes())?;
        Ok(format!("{input}.{sig}"))
    }

    /// Signs raw bytes; returns the base64url signature.
    pub fn sign_bytes(&self, input: &[u8]) -> Result<String, SignError> {
        match &self.inner {
            Inner::Ec { pkcs8, .. } => {
                jsonwebtoken::crypto::sign(input, &EncodingKey::from_ec_der(pkcs8), self.alg)
                    .map_err(crypto("sign"))
            }
            Inner::Ed { pkcs8, .. } => {
                jsonwebtoken::crypto::sign(input, &EncodingKey::from_ed_der(pkcs8), self.alg)
                    .map_err(crypto("sign"))
            }
            Inner::Rsa(pair) => {
                let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match self.alg {
                    Algorithm::PS256 => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &aws_lc_rs::rand::SystemRandom::new(), input, &mut sig)
                    .map_err(crypto("sign"))?;
                Ok(b64url(&sig))
            }
        }
    }

    /// An access token with header `typ` `at+jwt` and this key's `kid`.
    pub fn mint(&self, claims: &Value) -> Result<String, SignError> {
        let mut header = Map::new();
        header.insert("typ".into(), Value::String("at+jwt".into()));
        header.insert("kid".into(), Value::String(self.kid.clone()));
        self.sign(header, claims)
    }

    /// A DPoP proof (RFC 9449 §4.2) for `method` and `url`, bound to
    /// `access_token` by `ath`, issued at `iat` with a random `jti`.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        iat: i64,
        nonce: Option<&str>,
    ) -> Result<String, SignError> {
        let mut claims = json!({"jti": random_id(), "htm": method, "htu": url, "iat": iat});
        if let Some(t) = access_token {
            claims["ath"] = Value::String(access_token_hash(t));
        }
        if let Some(n) = nonce {
            claims["nonce"] = Value::String(n.to_owned());
        }
        let mut header = Map::new();
        header.insert("typ".into(), Value::String("dpop+jwt".into()));
        header.insert("jwk".into(), Value::Object(self.public_jwk_members()));
        self.sign(header, &claims)
    }
}

/// Seconds since the Unix epoch, for minting (tools and the demo; the
/// request path reads time through its `Clock`).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
