//! RFC 9470 step-up authentication: a route, or a request that meets a
//! condition (a large amount, later a risk score), needs a stronger or more
//! recent authentication than the token shows.
//!
//! The refusal is 401 with the challenge exactly as RFC 9470 §3 writes it:
//!
//! ```text
//! WWW-Authenticate: Bearer error="insufficient_user_authentication",
//!   error_description="A different authentication level is required",
//!   acr_values="urn:bank:acr:sca"
//! ```
//!
//! (`max_age="300"` for a too-old authentication), so the client can ask
//! the authorization server for a new token with those `acr_values` /
//! `max_age` and try again.
//!
//! Threat answered: a session's weak or stale authentication being enough
//! for a high-value operation (PSD2 strong customer authentication). How
//! it fails: closed. A token without `acr` (when `acr_values` is set) or
//! without `auth_time` (when `max_age` is set) needs the step-up; a
//! condition that cannot be evaluated is treated as met.

use std::time::Duration;

use http::HeaderValue;

use super::error::AuthzError;
use super::rules::Expression;
use crate::authn::Principal;

/// One validated step-up requirement.
#[derive(Debug)]
pub struct StepUp {
    /// The condition under which it applies (`None`: always).
    pub when: Option<Expression>,
    /// Acceptable `acr` values (empty: any).
    pub acr_values: Vec<String>,
    /// Longest time since `auth_time`.
    pub max_age: Option<Duration>,
}

impl StepUp {
    /// Whether `p`'s authentication meets this requirement at `now` (Unix
    /// seconds).
    pub fn check(&self, p: &Principal, now: i64) -> Result<(), AuthzError> {
        let acr_ok =
            self.acr_values.is_empty() || p.acr().is_some_and(|a| self.acr_values.iter().any(|v| v == a));
        let age = p.auth_time().map(|t| now.saturating_sub(t));
        let age_ok = match self.max_age {
            None => true,
            Some(max) => {
                age.is_some_and(|a| a >= -10 && a <= i64::try_from(max.as_secs()).unwrap_or(i64::MAX))
            }
        };
        if acr_ok && age_ok {
            return Ok(());
        }
        Err(AuthzError::StepUp {
            acr_values: if acr_ok {
                Vec::new()
            } else {
                self.acr_values.clone()
            },
            max_age: if age_ok { None } else { self.max_age },
            acr: p.acr().map(str::to_owned),
            age,
        })
    }
}

/// The RFC 9470 challenge for a step-up refusal, in `scheme` (`Bearer`,
/// or `DPoP` for a DPoP-bound token).
pub fn challenge(scheme: &str, acr_values: &[String], max_age: Option<Duration>) -> Option<HeaderValue> {
    let description = if acr_values.is_empty() {
        "More recent authentication is required"
    } else {
        "A different authentication level is required"
    };
    let mut v =
        format!("{scheme} error=\"insufficient_user_authentication\", error_description=\"{description}\"");
    if !acr_values.is_empty() {
        v.push_str(&format!(", acr_values=\"{}\"", acr_values.join(" ")));
    }
    if let Some(m) = max_age {
        v.push_str(&format!(", max_age=\"{}\"", m.as_secs()));
    }
    HeaderValue::from_str(&v).ok()
}
