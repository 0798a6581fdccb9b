//! Why authorization refused a request: the precise cause (for logs and the
//! audit trail) and the class a client is told.
//!
//! The client learns the class only (`forbidden`, `insufficient-scope`,
//! `step-up-required`, …): never which rule failed, which account it
//! concerned or what an entitlement service answered.

use std::time::Duration;

/// A refusal by authorization.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthzError {
    /// The route needs a principal and there is none (an authenticated
    /// route always has one; this guards against a policy mistake).
    #[error("no principal")]
    NoPrincipal,
    /// A scope of `scopes` is not granted.
    #[error("scope `{0}` not granted")]
    MissingScope(String),
    /// None of `any_scopes` is granted.
    #[error("none of the scopes {0:?} granted")]
    NoneOfScopes(Vec<String>),
    /// None of `roles` is held.
    #[error("none of the roles {0:?} held")]
    MissingRole(Vec<String>),
    /// The client id is not in `clients`.
    #[error("client `{0}` not allowed")]
    ClientNotAllowed(String),
    /// An object-level rule was false.
    #[error("rule {index} (`{rule}`) is false")]
    RuleFalse {
        /// Index in `rules`.
        index: usize,
        /// The rule as written.
        rule: String,
    },
    /// An object-level rule could not be evaluated (a missing field, a
    /// wrong type): refused, as if false.
    #[error("rule {index} (`{rule}`) failed: {error}")]
    RuleError {
        /// Index in `rules` (or the condition's place).
        index: usize,
        /// The expression as written.
        rule: String,
        /// The evaluation error.
        error: String,
    },
    /// A query parameter or header used by a rule appears more than once
    /// (case-insensitively), or is not valid UTF-8: the gateway and the
    /// backend could read different values.
    #[error("ambiguous or undecodable {0}")]
    AmbiguousParameter(String),
    /// An entitlement source could not answer: refused (fails closed).
    #[error("entitlement source `{name}` unavailable: {detail}")]
    EntitlementUnavailable {
        /// The source's name.
        name: String,
        /// What went wrong.
        detail: String,
    },
    /// RFC 9470: the authentication is not strong or recent enough.
    #[error("step-up needed (acr {acr:?}, auth age {age:?})")]
    StepUp {
        /// The acceptable `acr` values (empty: any).
        acr_values: Vec<String>,
        /// The longest acceptable time since authentication.
        max_age: Option<Duration>,
        /// The token's `acr`.
        acr: Option<String>,
        /// Seconds since `auth_time`, if known.
        age: Option<i64>,
    },
    /// RFC 9396: no authorization detail of the token covers the request.
    #[error("not covered by authorization_details: {0}")]
    AuthorizationDetails(String),
    /// Views are listed and none applies to the caller's scopes.
    #[error("no response view for the caller's scopes")]
    NoView,
    /// Transaction confirmation: no code sent.
    #[error("confirmation code missing")]
    ConfirmationMissing,
    /// Transaction confirmation: the code is wrong, replayed, or the caller
    /// has no enrolment.
    #[error("confirmation failed: {0}")]
    ConfirmationFailed(String),
    /// Transaction confirmation: too many failures; locked for this long.
    #[error("confirmation locked for {0:?}")]
    ConfirmationLocked(Duration),
    /// The one-time-code store could not answer: refused.
    #[error("confirmation store unavailable: {0}")]
    ConfirmationUnavailable(String),
}

/// What a client is told of an [`AuthzError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzClass {
    /// 403, RFC 6750 `insufficient_scope`.
    InsufficientScope,
    /// 403.
    Forbidden,
    /// 400: a parameter the policy reads is ambiguous.
    AmbiguousParameter,
    /// 503: a source the decision needs is down.
    Unavailable,
    /// 401, RFC 9470 `insufficient_user_authentication`.
    StepUp,
    /// 403, RFC 9396.
    AuthorizationDetails,
    /// 403: a confirmation code is needed.
    ConfirmationRequired,
    /// 403: the confirmation code was not accepted.
    ConfirmationFailed,
    /// 429: confirmation locked out for a while.
    ConfirmationLocked,
}

impl AuthzError {
    /// The class a client is told.
    pub fn class(&self) -> AuthzClass {
        match self {
            Self::MissingScope(_) | Self::NoneOfScopes(_) => AuthzClass::InsufficientScope,
            Self::NoPrincipal
            | Self::MissingRole(_)
            | Self::ClientNotAllowed(_)
            | Self::RuleFalse { .. }
            | Self::RuleError { .. }
            | Self::NoView => AuthzClass::Forbidden,
            Self::AmbiguousParameter(_) => AuthzClass::AmbiguousParameter,
            Self::EntitlementUnavailable { .. } | Self::ConfirmationUnavailable(_) => AuthzClass::Unavailable,
            Self::StepUp { .. } => AuthzClass::StepUp,
            Self::AuthorizationDetails(_) => AuthzClass::AuthorizationDetails,
            Self::ConfirmationMissing => AuthzClass::ConfirmationRequired,
            Self::ConfirmationFailed(_) => AuthzClass::ConfirmationFailed,
            Self::ConfirmationLocked(_) => AuthzClass::ConfirmationLocked,
        }
    }

    /// A short stable name of the cause, for metrics (bounded cardinality).
    pub fn cause(&self) -> &'static str {
        match self {
            Self::NoPrincipal => "no-principal",
            Self::MissingScope(_) | Self::NoneOfScopes(_) => "scope",
            Self::MissingRole(_) => "role",
            Self::ClientNotAllowed(_) => "client",
            Self::RuleFalse { .. } => "rule-false",
            Self::RuleError { .. } => "rule-error",
            Self::AmbiguousParameter(_) => "ambiguous-parameter",
            Self::EntitlementUnavailable { .. } => "entitlements-unavailable",
            Self::StepUp { .. } => "step-up",
            Self::AuthorizationDetails(_) => "authorization-details",
            Self::NoView => "no-view",
            Self::ConfirmationMissing => "confirmation-missing",
            Self::ConfirmationFailed(_) => "confirmation-failed",
            Self::ConfirmationLocked(_) => "confirmation-locked",
            Self::ConfirmationUnavailable(_) => "confirmation-unavailable",
        }
    }
}

/// A refusal as the pipeline carries it: the cause, and the scheme the
/// caller's token came with (challenges are sent in that scheme).
#[derive(Debug, Clone)]
pub struct AuthzRefusal {
    /// The precise cause (never shown to the client).
    pub error: AuthzError,
    /// `Bearer` or `DPoP`.
    pub scheme: &'static str,
}

impl AuthzRefusal {
    /// The `WWW-Authenticate` challenge for this refusal, if its class has
    /// one: RFC 6750 `insufficient_scope` (with the scope needed) and RFC
    /// 9470 `insufficient_user_authentication`.
    pub fn challenge(&self) -> Option<http::HeaderValue> {
        match &self.error {
            AuthzError::MissingScope(s) => scope_challenge(self.scheme, std::slice::from_ref(s)),
            AuthzError::NoneOfScopes(list) => scope_challenge(self.scheme, list),
            AuthzError::StepUp {
                acr_values, max_age, ..
            } => super::step_up::challenge(self.scheme, acr_values, *max_age),
            _ => None,
        }
    }

    /// Seconds a client should wait, for the classes that say so.
    pub fn retry_after(&self) -> Option<u64> {
        match &self.error {
            AuthzError::ConfirmationLocked(d) => Some(d.as_secs().max(1)),
            AuthzError::EntitlementUnavailable { .. } | AuthzError::ConfirmationUnavailable(_) => Some(1),
            _ => None,
        }
    }
}

fn scope_challenge(scheme: &str, scopes: &[String]) -> Option<http::HeaderValue> {
    // Scope tokens are validated at load as header-safe; a value that is
    // not (from a future code path) drops the attribute, not the challenge.
    let scope = scopes.join(" ");
    let with = format!("{scheme} error=\"insufficient_scope\", scope=\"{scope}\"");
    http::HeaderValue::from_str(&with)
        .ok()
        .or_else(|| http::HeaderValue::from_str(&format!("{scheme} error=\"insufficient_scope\"")).ok())
}
