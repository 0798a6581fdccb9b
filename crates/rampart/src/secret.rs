//! A wrapper for secrets that cannot be printed by accident.
//!
//! Threat: credentials leaking into logs, panics, error bodies or debug
//! output (invariant 3). `Secret<T>` prints `[redacted]` for both `Debug` and
//! `Display`; the value is reached only through [`Secret::expose`], which is
//! easy to grep for. Comparison is constant-time ([`Secret::ct_eq`]).

use std::fmt;

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself. Every call site is a place that handles a
    /// credential: keep them few.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: AsRef<[u8]>> Secret<T> {
    /// Constant-time equality with a candidate (invariant 4). Lengths are not
    /// hidden; contents are.
    pub fn ct_eq(&self, candidate: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_ref(), candidate).is_ok()
    }
}

/// Constant-time, so comparing policies cannot time a secret.
impl<T: AsRef<[u8]>> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other.0.as_ref())
    }
}

impl<T: AsRef<[u8]>> Eq for Secret<T> {}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new(String::from("hunter2-very-secret"));
        assert_eq!(format!("{s:?} {s} {s:#?}"), "[redacted] [redacted] [redacted]");
    }

    #[test]
    fn constant_time_equality() {
        let s = Secret::new(b"token-a".to_vec());
        assert!(s.ct_eq(b"token-a"));
        assert!(!s.ct_eq(b"token-b"));
        assert!(!s.ct_eq(b"token-"));
        assert!(!s.ct_eq(b""));
    }
}
