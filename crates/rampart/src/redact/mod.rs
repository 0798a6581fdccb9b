//! Redaction: what of a sensitive value may be shown, and where.
//!
//! Threat answered: card numbers, account numbers, credentials and other
//! personal data leaking into places that do not need them in full (a
//! partner app with a basic scope, logs, error details, the audit trail).
//! How it fails: a value that is not recognised as what the caller says it
//! is is masked entirely rather than shown; a detector errs toward masking;
//! nothing here panics on any input.
//!
//! - [`mask`]: validators (Luhn, IBAN mod-97) and fixed-shape masks that keep
//!   only what a human needs to recognise a value (`DE89 **** **** **** 3000`).
//! - [`detect`]: detectors over free text (card numbers, IBANs, e-mail
//!   addresses, phone numbers, JWTs, bearer tokens, API keys, passwords,
//!   cookies, secrets in query strings), applied to the access log, error
//!   details and the audit trail.

pub mod detect;
pub mod mask;

pub use detect::{redact, redact_query, redact_url_part, REDACTED};
pub use mask::{iban_valid, luhn_valid, mask_iban, mask_pan, MaskStyle};

/// At most the first `max` bytes of `s`, cut on a character boundary (a
/// client's text bounded before it is scanned or kept).
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
