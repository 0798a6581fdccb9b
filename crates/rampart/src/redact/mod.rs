//! Redaction: what of a sensitive value may be shown, and where.
//!
//! Threat answered: card numbers, account numbers and other personal data
//! leaking into places that do not need them in full (a partner app with a
//! basic scope, logs, the audit trail). How it fails: a value that is not
//! recognised as what the caller says it is is masked entirely rather than
//! shown; nothing here panics on any input.
//!
//! - [`mask`]: validators (Luhn, IBAN mod-97) and fixed-shape masks that keep
//!   only what a human needs to recognise a value (`DE89 **** **** **** 3000`).

pub mod mask;

pub use mask::{iban_valid, luhn_valid, mask_iban, mask_pan, MaskStyle};
