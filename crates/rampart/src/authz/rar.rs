//! RFC 9396 rich authorization requests, at the resource server: a payment
//! must fall within what the customer consented to, as the token's
//! `authorization_details` records it.
//!
//! With `[routes.authz.authorization_details]`, a request is allowed only if
//! at least one detail of the configured `type` covers it: every configured
//! match holds between a request-body field and the detail's field. For
//! `payment_initiation` the default matches are those of RFC 9396 §2.1's
//! example: `instructedAmount.amount` at most the consented amount,
//! `instructedAmount.currency` equal, `creditorAccount.iban` the same IBAN.
//!
//! Threat answered: a token obtained for one payment (123.50 EUR to one
//! creditor) being used for another, larger one or to another account. How
//! it fails: closed. A missing field on either side, a non-numeric amount,
//! a token without details: refused (403), with the reason in the log.
//! Amounts are compared exactly as decimals (no floating point).

use std::cmp::Ordering;

use serde_json::Value;

use super::config::{Compare, RarConfig, RarMatchConfig};
use super::error::AuthzError;
use crate::authn::Principal;
use crate::config::ConfigProblem;
use crate::redact::mask;

/// A validated `[routes.authz.authorization_details]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RarPolicy {
    detail_type: String,
    matches: Vec<RarMatchConfig>,
}

/// The default matches for `payment_initiation`.
fn payment_defaults() -> Vec<RarMatchConfig> {
    let m = |p: &str, compare| RarMatchConfig {
        request: p.to_owned(),
        detail: p.to_owned(),
        compare,
    };
    vec![
        m("/instructedAmount/amount", Compare::AtMost),
        m("/instructedAmount/currency", Compare::Equal),
        m("/creditorAccount/iban", Compare::Iban),
    ]
}

impl RarPolicy {
    /// Validates the section at key path `at`.
    pub fn from_config(at: &str, cfg: &RarConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if cfg.detail_type.trim().is_empty() {
            problems.push(ConfigProblem::error(format!("{at}.type"), "must not be empty"));
        }
        let matches = if cfg.matches.is_empty() {
            if cfg.detail_type != "payment_initiation" {
                problems.push(ConfigProblem::error(
                    format!("{at}.match"),
                    format!(
                        "list the fields to compare for type `{}` (defaults exist only for payment_initiation)",
                        cfg.detail_type
                    ),
                ));
            }
            payment_defaults()
        } else {
            cfg.matches.clone()
        };
        for (j, m) in cfg.matches.iter().enumerate() {
            for (k, p) in [("request", &m.request), ("detail", &m.detail)] {
                if !p.starts_with('/') {
                    problems.push(ConfigProblem::error(
                        format!("{at}.match[{j}].{k}"),
                        "must be a JSON pointer such as `/instructedAmount/amount`",
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(Self {
                detail_type: cfg.detail_type.clone(),
                matches,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether the principal's authorization details cover `body`.
    pub fn check(&self, p: &Principal, body: Option<&Value>) -> Result<(), AuthzError> {
        let fail = |why: String| Err(AuthzError::AuthorizationDetails(why));
        let Some(body) = body else {
            return fail("the request has no JSON body".into());
        };
        let details = match p.extra().get("authorization_details") {
            Some(Value::Array(a)) => a,
            Some(_) => return fail("authorization_details is not an array".into()),
            None => return fail("the token has no authorization_details".into()),
        };
        let mut last = format!("no detail of type `{}`", self.detail_type);
        for (i, d) in details.iter().enumerate() {
            if d.get("type").and_then(Value::as_str) != Some(self.detail_type.as_str()) {
                continue;
            }
            match self.covers(body, d) {
                Ok(()) => return Ok(()),
                Err(why) => last = format!("detail {i}: {why}"),
            }
        }
        fail(last)
    }

    fn covers(&self, body: &Value, detail: &Value) -> Result<(), String> {
        for m in &self.matches {
            let req = body
                .pointer(&m.request)
                .ok_or_else(|| format!("request has no `{}`", m.request))?;
            let det = detail
                .pointer(&m.detail)
                .ok_or_else(|| format!("detail has no `{}`", m.detail))?;
            let ok = match m.compare {
                Compare::Equal => req == det,
                Compare::Iban => match (req.as_str(), det.as_str()) {
                    (Some(a), Some(b)) => normal_iban(a) == normal_iban(b) && mask::iban_valid(a),
                    _ => false,
                },
                Compare::AtMost => match (Decimal::of(req), Decimal::of(det)) {
                    (Some(a), Some(b)) => a.cmp(&b) != Ordering::Greater,
                    _ => return Err(format!("`{}` is not a decimal amount on both sides", m.request)),
                },
            };
            if !ok {
                return Err(format!("`{}` not within `{}`", m.request, m.detail));
            }
        }
        Ok(())
    }
}

fn normal_iban(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A non-negative decimal number, compared exactly: digits of the integer
/// part (no leading zeros) and of the fraction (no trailing zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    int: String,
    frac: String,
}

impl Decimal {
    /// A JSON number or a decimal string (`"123.50"`, `123.5`). Negative
    /// numbers, exponents, signs and anything else are not amounts.
    pub fn of(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Self::parse(s),
            // serde_json prints integers exactly, and floats in their
            // shortest round-trip form, which may use an exponent (refused).
            Value::Number(n) => Self::parse(&n.to_string()),
            _ => None,
        }
    }

    /// `DIGITS[.DIGITS]`, at most 40 characters.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 40 {
            return None;
        }
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (s.contains('.') && frac.is_empty())
        {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        Some(Self {
            int: int.to_owned(),
            frac: frac.to_owned(),
        })
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
