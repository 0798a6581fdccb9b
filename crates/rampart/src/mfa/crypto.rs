//! Sealing secrets at rest: AES-256-GCM under a key from a file or the
//! environment, with a key id stored beside every ciphertext so that keys
//! can be rotated (old keys open, only the current one seals).
//!
//! Threat answered: a copy of the database (a backup, a replica, a stolen
//! disk) yielding TOTP seeds. Each secret has its own random 96-bit nonce;
//! the additional data binds it to its purpose and owner, so a sealed
//! secret moved to another user's record does not open. How it fails: a
//! missing key, a wrong key or a tampered record is [`SealError`]; key
//! material is held in [`Secret`] and never printed.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Key length in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// A sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ct: String,
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Sealed under a key this policy does not have.
    #[error("sealed under key `{0}`, which the policy does not list (old_keys)")]
    UnknownKey(String),
    /// The ciphertext does not open: a wrong key, or a tampered record.
    #[error("the sealed secret does not open (wrong key or tampered record)")]
    Tampered,
    /// The random generator failed.
    #[error("no randomness for a nonce")]
    Random,
}

/// The current key and the old ones.
pub struct KeyRing {
    current: (String, Secret<Vec<u8>>),
    old: Vec<(String, Secret<Vec<u8>>)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.0)
            .field("old", &self.old.iter().map(|(id, _)| id).collect::<Vec<_>>())
            .finish()
    }
}

/// Decodes a key written as base64 (whitespace around it ignored).
pub fn decode_key(text: &str) -> Result<Secret<Vec<u8>>, String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| "not base64 (make one with: head -c 32 /dev/urandom | base64)".to_owned())?;
    if bytes.len() != KEY_LEN {
        return Err(format!(
            "must be {KEY_LEN} bytes (base64 of them), not {}",
            bytes.len()
        ));
    }
    Ok(Secret::new(bytes))
}

impl KeyRing {
    /// A ring sealing with `current` and opening with it and `old`.
    pub fn new(current: (String, Secret<Vec<u8>>), old: Vec<(String, Secret<Vec<u8>>)>) -> Self {
        Self { current, old }
    }

    /// The current key's id.
    pub fn current_id(&self) -> &str {
        &self.current.0
    }

    fn key(bytes: &[u8]) -> Result<LessSafeKey, SealError> {
        UnboundKey::new(&AES_256_GCM, bytes)
            .map(LessSafeKey::new)
            .map_err(|_| SealError::Tampered)
    }

    fn aad(purpose: &str, owner: &str) -> Vec<u8> {
        let mut aad = b"rampart-seal\0".to_vec();
        aad.extend_from_slice(purpose.as_bytes());
        aad.push(0);
        aad.extend_from_slice(owner.as_bytes());
        aad
    }

    /// Seals `plain` for `purpose` (e.g. `totp`) and `owner` (the user).
    pub fn seal(&self, purpose: &str, owner: &str, plain: &[u8]) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let key = Self::key(self.current.1.expose())?;
        let mut buf = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(Self::aad(purpose, owner)),
            &mut buf,
        )
        .map_err(|_| SealError::Tampered)?;
        Ok(Sealed {
            key_id: self.current.0.clone(),
            nonce: STANDARD.encode(nonce),
            ct: STANDARD.encode(&buf),
        })
    }

    /// Opens a sealed secret of `purpose` and `owner`.
    pub fn open(&self, purpose: &str, owner: &str, sealed: &Sealed) -> Result<Secret<Vec<u8>>, SealError> {
        let bytes = if sealed.key_id == self.current.0 {
            &self.current.1
        } else {
            self.old
                .iter()
                .find(|(id, _)| *id == sealed.key_id)
                .map(|(_, k)| k)
                .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?
        };
        let nonce: [u8; NONCE_LEN] = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Tampered)?;
        let mut buf = STANDARD.decode(&sealed.ct).map_err(|_| SealError::Tampered)?;
        let key = Self::key(bytes.expose())?;
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(purpose, owner)),
                &mut buf,
            )
            .map_err(|_| SealError::Tampered)?;
        Ok(Secret::new(plain.to_vec()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(b: u8) -> Secret<Vec<u8>> {
        Secret::new(vec![b; KEY_LEN])
    }

    #[test]
    fn seal_open_rotate_and_tamper() {
        let k1 = KeyRing::new(("k1".into(), key(1)), vec![]);
        let s = k1.seal("totp", "alice", b"seed-bytes").unwrap();
        assert_eq!(s.key_id, "k1");
        assert!(!s.ct.contains("seed"));
        assert_eq!(k1.open("totp", "alice", &s).unwrap().expose(), b"seed-bytes");
        // Bound to its owner and purpose.
        assert_eq!(k1.open("totp", "bob", &s), Err(SealError::Tampered));
        assert_eq!(k1.open("admin", "alice", &s), Err(SealError::Tampered));
        // Nonces are fresh.
        assert_ne!(k1.seal("totp", "alice", b"seed-bytes").unwrap().nonce, s.nonce);
        // Rotation: k2 seals, k1 still opens what it sealed.
        let k2 = KeyRing::new(("k2".into(), key(2)), vec![("k1".into(), key(1))]);
        assert_eq!(k2.open("totp", "alice", &s).unwrap().expose(), b"seed-bytes");
        assert_eq!(k2.seal("totp", "alice", b"x").unwrap().key_id, "k2");
        // Without k1, it does not open, and says why.
        let only2 = KeyRing::new(("k2".into(), key(2)), vec![]);
        assert_eq!(
            only2.open("totp", "alice", &s),
            Err(SealError::UnknownKey("k1".into()))
        );
        // A wrong key under the right id, or a flipped byte: tampered.
        let wrong = KeyRing::new(("k1".into(), key(9)), vec![]);
        assert_eq!(wrong.open("totp", "alice", &s), Err(SealError::Tampered));
        let mut ct = STANDARD.decode(&s.ct).unwrap();
        ct[0] ^= 1;
        let flipped = Sealed {
            ct: STANDARD.encode(ct),
            ..s.clone()
        };
        assert_eq!(k1.open("totp", "alice", &flipped), Err(SealError::Tampered));
        assert!(!format!("{k2:?}").contains("\\u{2}"));
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(decode_key(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(decode_key(&format!(" {}\n", STANDARD.encode([7u8; 32]))).is_ok());
        assert!(decode_key(&STANDARD.encode([7u8; 16]))
            .unwrap_err()
            .contains("32 bytes"));
        assert!(decode_key("not base64!").unwrap_err().contains("base64"));
    }
}
