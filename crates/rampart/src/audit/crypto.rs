//! The audit trail's cryptography, all from aws-lc-rs (the project's one
//! crypto provider): AES-256-GCM for segment frames and for wrapping their
//! data keys, Ed25519 for checkpoints and the signed head, SHA-256 for the
//! chain ([`super::record::sha256`]).
//!
//! - [`KeyProvider`]: where master keys come from. [`StaticKeys`] reads them
//!   from files or environment variables; a KMS can implement the same three
//!   methods (wrap under the current key, unwrap under a named key). Each
//!   segment has its own random data key, wrapped by the master key current
//!   when the segment was opened; rotating the master key (a new first
//!   entry in `[[audit.master_keys]]`) changes what new segments use and
//!   never rewrites old ones, which stay readable while their key is listed.
//! - [`Signer`] / [`TrustedKeys`]: the Ed25519 key that signs, and the
//!   public keys `verify` trusts (the signer's, plus retired ones), by key id.
//!
//! Threat answered: reading the trail from a stolen disk (encryption), and
//! forging or rewriting it without the signing key (signatures). How it
//! fails: every failure is a [`CryptoError`] naming the key id or file, never
//! key material; a frame that does not authenticate is reported, not
//! skipped.

use std::collections::BTreeMap;
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::Engine as _;

use super::record::{hex, sha256};
use crate::secret::Secret;

/// A cryptographic failure (no key material in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// No master key with this id is configured.
    #[error(
        "no master key with id `{0}` is configured (a retired key must stay listed to read old segments)"
    )]
    UnknownKey(String),
    /// A wrapped data key or a frame did not authenticate.
    #[error("authentication failed (wrong key, or the bytes were changed)")]
    Authentication,
    /// The random generator failed.
    #[error("the random generator failed")]
    Random,
    /// A key could not be read or is malformed.
    #[error("{0}")]
    BadKey(String),
}

/// Where master keys come from. Implemented by [`StaticKeys`]; a KMS client
/// implements the same contract.
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// The id of the key new segments are wrapped with.
    fn current_id(&self) -> &str;
    /// Wraps `data_key` under the current key (bound to `aad`): its id and
    /// the wrapped bytes.
    fn wrap(&self, data_key: &[u8; 32], aad: &[u8]) -> Result<(String, Vec<u8>), CryptoError>;
    /// Unwraps a data key wrapped under key `id` with `aad`.
    fn unwrap(&self, id: &str, wrapped: &[u8], aad: &[u8]) -> Result<Secret<[u8; 32]>, CryptoError>;
}

/// Master keys held in memory (read from files or environment variables);
/// the first is current.
pub struct StaticKeys {
    keys: Vec<(String, Secret<[u8; 32]>)>,
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("StaticKeys").field("ids", &ids).finish()
    }
}

impl StaticKeys {
    /// Keys by id, the current one first. At least one.
    pub fn new(keys: Vec<(String, Secret<[u8; 32]>)>) -> Result<Self, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::BadKey("at least one master key is needed".into()));
        }
        Ok(Self { keys })
    }

    fn key(&self, id: &str) -> Result<&Secret<[u8; 32]>, CryptoError> {
        self.keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, s)| s)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))
    }
}

impl KeyProvider for StaticKeys {
    fn current_id(&self) -> &str {
        self.keys.first().map(|(id, _)| id.as_str()).unwrap_or("")
    }

    fn wrap(&self, data_key: &[u8; 32], aad: &[u8]) -> Result<(String, Vec<u8>), CryptoError> {
        let id = self.current_id().to_string();
        let key = aead_key(self.key(&id)?.expose())?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut out = data_key.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut out)
            .map_err(|_| CryptoError::Authentication)?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&out);
        Ok((id, wrapped))
    }

    fn unwrap(&self, id: &str, wrapped: &[u8], aad: &[u8]) -> Result<Secret<[u8; 32]>, CryptoError> {
        let key = aead_key(self.key(id)?.expose())?;
        if wrapped.len() != NONCE_LEN + 32 + 16 {
            return Err(CryptoError::Authentication);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut buf = wrapped[NONCE_LEN..].to_vec();
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Authentication)?;
        let mut dk = [0u8; 32];
        if plain.len() != 32 {
            return Err(CryptoError::Authentication);
        }
        dk.copy_from_slice(plain);
        Ok(Secret::new(dk))
    }
}

fn aead_key(bytes: &[u8; 32]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::BadKey("not an AES-256 key".into()))
}

/// A fresh random 256-bit key.
pub fn random_key() -> Result<[u8; 32], CryptoError> {
    let mut k = [0u8; 32];
    aws_lc_rs::rand::fill(&mut k).map_err(|_| CryptoError::Random)?;
    Ok(k)
}

/// The AEAD of one segment: AES-256-GCM under the segment's data key. The
/// nonce is the frame's index (unique: one key per segment); the additional
/// data binds the segment number and the index, so frames cannot be moved
/// within a segment or between segments without failing to open.
pub struct FrameCipher {
    key: LessSafeKey,
    segment: u64,
}

impl std::fmt::Debug for FrameCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCipher")
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}

impl FrameCipher {
    /// The cipher of segment `segment` with data key `dk`.
    pub fn new(dk: &Secret<[u8; 32]>, segment: u64) -> Result<Self, CryptoError> {
        Ok(Self {
            key: aead_key(dk.expose())?,
            segment,
        })
    }

    fn nonce_aad(&self, index: u64) -> ([u8; NONCE_LEN], [u8; 16]) {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[4..].copy_from_slice(&index.to_be_bytes());
        let mut aad = [0u8; 16];
        aad[..8].copy_from_slice(&self.segment.to_be_bytes());
        aad[8..].copy_from_slice(&index.to_be_bytes());
        (nonce, aad)
    }

    /// Encrypts frame `index`, the bytes of `buf` from `from` on, in place
    /// (the tag is appended): frames are sealed where the write buffer
    /// holds them, without a copy.
    pub fn seal_tail(&self, index: u64, buf: &mut Vec<u8>, from: usize) -> Result<(), CryptoError> {
        let (nonce, aad) = self.nonce_aad(index);
        let tail = buf.get_mut(from..).ok_or(CryptoError::Authentication)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), tail)
            .map_err(|_| CryptoError::Authentication)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts frame `index`; the plaintext is left at the start of `buf`
    /// (which is shortened to it).
    pub fn open(&self, index: u64, buf: &mut Vec<u8>) -> Result<(), CryptoError> {
        let (nonce, aad) = self.nonce_aad(index);
        let n = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoError::Authentication)?
            .len();
        buf.truncate(n);
        Ok(())
    }
}

/// Parses a master key: 32 bytes as base64 (`head -c 32 /dev/urandom |
/// base64`), 64 hex digits, or 32 raw bytes. Whitespace around is ignored.
pub fn parse_master_key(raw: &[u8]) -> Result<Secret<[u8; 32]>, CryptoError> {
    let bad = || {
        CryptoError::BadKey(
            "a master key is 32 bytes: base64 (`head -c 32 /dev/urandom | base64`), 64 hex digits, or raw"
                .into(),
        )
    };
    let mut key = [0u8; 32];
    if let Ok(text) = std::str::from_utf8(raw) {
        let text = text.trim();
        if let Some(h) = super::record::parse_hash(text) {
            return Ok(Secret::new(h));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text));
        if let Ok(d) = decoded {
            if d.len() == 32 {
                key.copy_from_slice(&d);
                return Ok(Secret::new(key));
            }
        }
    }
    if raw.len() == 32 {
        key.copy_from_slice(raw);
        return Ok(Secret::new(key));
    }
    Err(bad())
}

/// The id of an Ed25519 public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public: &[u8]) -> String {
    hex(&sha256(public)[..8])
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The Ed25519 key that signs checkpoints and the head.
pub struct Signer {
    pair: Ed25519KeyPair,
    id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// From a PKCS#8 PEM file (`openssl genpkey -algorithm ed25519`, or
    /// `rampart audit keygen`).
    pub fn from_pem_file(path: &Path) -> Result<Self, CryptoError> {
        use rustls_pki_types::pem::PemObject;
        let text = std::fs::read(path)
            .map_err(|e| CryptoError::BadKey(format!("cannot read {}: {e}", path.display())))?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&text)
            .map_err(|_| CryptoError::BadKey(format!("{}: not a PKCS#8 PEM private key", path.display())))?;
        Self::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|_| CryptoError::BadKey(format!("{}: not an Ed25519 private key", path.display())))
    }

    /// From PKCS#8 DER (v1 or v2).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        let pair =
            Ed25519KeyPair::from_pkcs8(der).map_err(|_| CryptoError::BadKey("not an Ed25519 key".into()))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, id })
    }

    /// The key id checkpoints name.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The raw public key (32 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }
}

/// The public keys `verify` trusts, by key id.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, Vec<u8>>,
}

impl TrustedKeys {
    /// Trusts a raw Ed25519 public key.
    pub fn add(&mut self, public: Vec<u8>) {
        self.keys.insert(key_id(&public), public);
    }

    /// Trusts the public key in a PEM file: an Ed25519 SubjectPublicKeyInfo
    /// (`openssl pkey -pubout`) or a private key (its public half).
    pub fn add_pem_file(&mut self, path: &Path) -> Result<(), CryptoError> {
        use rustls_pki_types::pem::PemObject;
        let text = std::fs::read(path)
            .map_err(|e| CryptoError::BadKey(format!("cannot read {}: {e}", path.display())))?;
        if let Ok(spki) = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(&text) {
            let der = spki.as_ref();
            if der.len() == 44 && der[..12] == ED25519_SPKI_PREFIX {
                self.add(der[12..].to_vec());
                return Ok(());
            }
            return Err(CryptoError::BadKey(format!(
                "{}: not an Ed25519 public key",
                path.display()
            )));
        }
        let signer = Signer::from_pem_file(path)?;
        self.add(signer.public_key());
        Ok(())
    }

    /// Key ids trusted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether `signature` (base64url) by key `id` over `msg` is valid.
    /// `Err` names why not.
    pub fn verify(&self, id: &str, msg: &[u8], signature: &str) -> Result<(), String> {
        let Some(public) = self.keys.get(id) else {
            return Err(format!("signed by key `{id}`, which is not trusted"));
        };
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "the signature is not base64url".to_string())?;
        UnparsedPublicKey::new(&ED25519, public)
            .verify(msg, &sig)
            .map_err(|_| format!("the signature by key `{id}` does not verify"))
    }
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// PEM text of `der` under `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A new Ed25519 signing key: (PKCS#8 PEM private key, SPKI PEM public key,
/// key id).
pub fn generate_signing_key() -> Result<(String, String, String), CryptoError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| CryptoError::Random)?;
    let signer = Signer::from_pkcs8(doc.as_ref())?;
    let mut spki = ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(&signer.public_key());
    Ok((
        pem("PRIVATE KEY", doc.as_ref()),
        pem("PUBLIC KEY", &spki),
        signer.key_id().to_string(),
    ))
}
