//! Admin passwords: the policy they must meet, and their hashes.
//!
//! Policy (NIST SP 800-63B §5.1.1.2 in spirit): at least 12 characters (at
//! most 256), not containing the user name, and not a commonly used
//! password: the 10 000 most common passwords of the list shipped with the
//! binary (`common-passwords.txt`: zxcvbn's frequency list, MIT licence)
//! are refused, compared case-insensitively, and so is a common password
//! padded with digits and symbols (`Password2026!`, `!!qwertyuiop123`).
//!
//! Hashes are Argon2id (m = 19 MiB, t = 2, p = 1: the OWASP baseline) in
//! PHC string form, with a 16-byte salt from aws-lc-rs; verification reads
//! the parameters from the hash, so they can be raised later without
//! invalidating anyone. Threat answered: guessed passwords, and a copy of
//! the user store yielding passwords. How it fails: a refused password is
//! [`PasswordProblem`], with a reason an operator can act on; never the
//! password itself.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// The common passwords, one per line, lower-case, most common first.
const COMMON: &str = include_str!("common-passwords.txt");

/// Shortest password, in characters.
pub const MIN_LEN: usize = 12;
/// Longest password, in characters (hashing cost is bounded).
pub const MAX_LEN: usize = 256;

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    /// Too short.
    #[error("at least {MIN_LEN} characters are needed")]
    TooShort,
    /// Too long.
    #[error("at most {MAX_LEN} characters")]
    TooLong,
    /// It contains the user name.
    #[error("it must not contain the user name")]
    ContainsUserName,
    /// A common password, perhaps padded.
    #[error("it is (or is built on) a commonly used password")]
    Common,
    /// One or two characters repeated.
    #[error("it repeats too few different characters")]
    TooSimple,
}

fn is_common(word: &str) -> bool {
    !word.is_empty() && COMMON.lines().any(|l| l == word)
}

/// Checks `password` for `user` against the policy.
pub fn check(user: &str, password: &str) -> Result<(), PasswordProblem> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(PasswordProblem::TooShort);
    }
    if n > MAX_LEN {
        return Err(PasswordProblem::TooLong);
    }
    let lower = password.to_lowercase();
    let name = user.to_lowercase();
    if name.chars().count() >= 3 && lower.contains(&name) {
        return Err(PasswordProblem::ContainsUserName);
    }
    let mut distinct: Vec<char> = lower.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() <= 3 {
        return Err(PasswordProblem::TooSimple);
    }
    if is_common(&lower) {
        return Err(PasswordProblem::Common);
    }
    // A common word padded with digits and symbols at either end.
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if core.chars().count() >= 4 && core.len() < lower.len() && is_common(core) {
        return Err(PasswordProblem::Common);
    }
    Ok(())
}

/// The Argon2id PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| "no randomness for a salt".to_owned())?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash: {e}"))
}

/// Whether `password` matches the PHC string `phc` (constant time in the
/// comparison; the cost is Argon2's, whatever the outcome).
pub fn verify(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A valid hash of no one's password, to verify against when the user does
/// not exist (so timing does not tell which names do).
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password that nobody has").unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_cases() {
        for (pw, want) in [
            ("short1!A", Err(PasswordProblem::TooShort)),
            ("elevenchars", Err(PasswordProblem::TooShort)),
            ("qwertyuiop123", Err(PasswordProblem::Common)), // in the list
            ("QWERTYUIOP123", Err(PasswordProblem::Common)), // any case
            ("1qaz2wsx3edc", Err(PasswordProblem::Common)),
            ("Password2026!", Err(PasswordProblem::Common)), // padded
            ("!!!sunshine!!!", Err(PasswordProblem::Common)),
            ("x-alice-2026-long", Err(PasswordProblem::ContainsUserName)),
            ("MyALICEpass-2026", Err(PasswordProblem::ContainsUserName)),
            ("aaaaaaaaaaaaaaaa", Err(PasswordProblem::TooSimple)),
            ("abababababababab", Err(PasswordProblem::TooSimple)),
            ("correct horse battery staple", Ok(())),
            ("Tr4vel-by-Night-Tr@in", Ok(())),
            ("ünïcödé-pässwörd", Ok(())),
        ] {
            assert_eq!(check("alice", pw), want, "{pw}");
        }
        assert_eq!(check("alice", &"x".repeat(300)), Err(PasswordProblem::TooLong));
        // A short user name is not a substring test.
        assert_eq!(check("al", "pals-of-the-valley"), Ok(()));
        assert_eq!(COMMON.lines().count(), 10_000);
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapl", &h));
        assert_ne!(hash("correct horse battery staple").unwrap(), h, "salted");
        assert!(!verify("x", "not a hash"));
        assert!(!verify("decoy", decoy()));
    }
}
