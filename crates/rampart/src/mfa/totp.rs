//! RFC 6238 time-based one-time passwords (TOTP, over RFC 4226 HOTP),
//! RFC 4648 base32 for secrets, and `otpauth://` URIs for authenticator
//! apps.
//!
//! Threat answered: a stolen password or session being enough for a
//! high-value operation; a code is proof of the enrolled device, now.
//! HMAC runs on aws-lc-rs (the project's one crypto provider); codes are
//! compared in constant time. How it fails: a malformed code simply does
//! not match; nothing here panics on any input.

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

/// The time step (RFC 6238 §4: X = 30 seconds).
pub const STEP: u64 = 30;

/// Steps accepted on either side of now (clock drift, typing time).
pub const DRIFT: u64 = 1;

/// The HMAC a secret is used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1 (RFC 6238's default; what most authenticator apps use).
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA-256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA-512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// As written in `otpauth://` URIs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Parses `SHA1`, `SHA256` or `SHA512` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" | "SHA-1" => Some(Self::Sha1),
            "SHA256" | "SHA-256" => Some(Self::Sha256),
            "SHA512" | "SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The secret length RFC 6238's examples use (the HMAC's output size).
    pub fn secret_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// The HOTP value (RFC 4226 §5.3) of `counter`, with `digits` digits.
pub fn hotp(alg: Algorithm, secret: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(alg.hmac(), secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation: the low nibble of the last byte is an offset.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = match mac.get(offset..offset + 4) {
        Some(b) => u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]),
        None => 0,
    };
    let modulus = 10u64.pow(digits.min(9));
    format!("{:0width$}", u64::from(word) % modulus, width = digits as usize)
}

/// The TOTP step of Unix time `unix`.
pub fn step_of(unix: u64) -> u64 {
    unix / STEP
}

/// The code for Unix time `unix`.
pub fn totp(alg: Algorithm, secret: &[u8], unix: u64, digits: u32) -> String {
    hotp(alg, secret, step_of(unix), digits)
}

/// The step within ±[`DRIFT`] of `unix` whose code is `code`, if any.
/// Every candidate is computed and compared in constant time, so timing
/// tells nothing about which step (or digit) matched.
pub fn matching_step(alg: Algorithm, secret: &[u8], code: &str, unix: u64, digits: u32) -> Option<u64> {
    if code.len() != digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix);
    let mut found = None;
    for step in now.saturating_sub(DRIFT)..=now + DRIFT {
        let expected = hotp(alg, secret, step, digits);
        if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes()).is_ok() {
            found = Some(step);
        }
    }
    found
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, without padding (as `otpauth://` URIs carry secrets).
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            let idx = ((n >> (35 - 5 * i)) & 0x1f) as usize;
            out.push(char::from(B32[idx]));
        }
    }
    out
}

/// Decodes base32 (any case; spaces, hyphens and `=` padding ignored);
/// `None` for any other character or an impossible length.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut bits: u64 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            b' ' | b'-' | b'=' => continue,
            _ => return None,
        };
        bits = (bits << 5) | u64::from(v);
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    // Leftover bits must be padding zeros of a whole number of characters.
    (nbits < 5 && bits == 0).then_some(out)
}

/// The `otpauth://totp/` URI of Google Authenticator's key-URI format,
/// which authenticator apps scan from a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8], alg: Algorithm, digits: u32) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={digits}&period={STEP}",
        enc(issuer),
        enc(account),
        base32_encode(secret),
        enc(issuer),
        alg.as_str(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds and every (time, code) pair, for all
    /// three hashes.
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            assert_eq!(totp(Algorithm::Sha1, sha1, t, 8), c1, "SHA1 {t}");
            assert_eq!(totp(Algorithm::Sha256, sha256, t, 8), c256, "SHA256 {t}");
            assert_eq!(totp(Algorithm::Sha512, sha512, t, 8), c512, "SHA512 {t}");
        }
    }

    /// RFC 4226 Appendix D: HOTP values of the first ten counters.
    #[test]
    fn rfc_4226_appendix_d_vectors() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
            "520489",
        ];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, b"12345678901234567890", i as u64, 6), *w);
        }
    }

    #[test]
    fn drift_of_one_step_either_way_and_no_more() {
        let s = b"12345678901234567890";
        let t = 1_800_000_015;
        let now = step_of(t);
        for (d, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let step = (now as i64 + d) as u64;
            let code = hotp(Algorithm::Sha1, s, step, 6);
            let m = matching_step(Algorithm::Sha1, s, &code, t, 6);
            assert_eq!(m.is_some(), ok, "drift {d}");
            if ok {
                assert_eq!(m, Some(step));
            }
        }
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６", " 123456"] {
            assert_eq!(matching_step(Algorithm::Sha1, s, bad, t, 6), None, "{bad}");
        }
    }

    #[test]
    fn base32_rfc_4648_vectors_round_trip() {
        for (raw, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(raw.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), raw.as_bytes());
        }
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw 6ytb-oi").unwrap(), b"foobar");
        assert!(base32_decode("MZXW6YTBO1").is_none(), "1 is not base32");
        assert!(base32_decode("MZXW6YTBOJ").is_none(), "non-zero padding bits");
    }

    #[test]
    fn otpauth_uris_carry_the_parameters() {
        let u = otpauth_uri(
            "Demo Bank",
            "cust-001",
            b"12345678901234567890",
            Algorithm::Sha256,
            6,
        );
        assert_eq!(
            u,
            "otpauth://totp/Demo%20Bank:cust%2D001?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Demo%20Bank&algorithm=SHA256&digits=6&period=30"
        );
    }
}
