//! `[[routes]]`: every endpoint the gateway exposes, and what guards it.

use std::time::Duration;

use serde::Deserialize;

/// One route, as written in the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Stable identifier, used in logs, metrics and audit records.
    pub id: String,
    /// Host to match (port ignored, case-insensitive); absent matches any.
    pub host: Option<String>,
    /// Path template, e.g. `/v1/accounts/{account_id}/transactions`.
    pub path: String,
    /// Methods allowed, e.g. `["GET"]`. Others get 405.
    pub methods: Vec<String>,
    /// Name of an `[[upstreams]]` entry.
    pub upstream: String,
    /// Accepted authentication methods. Required: a route is never open by
    /// omission. `"none"` exposes it without authentication.
    pub authn: Option<AuthnChoice>,
    /// What an authenticated caller must have and be: `"authenticated"`,
    /// or `[routes.authz]` with scopes, roles, rules and more. Required
    /// on a route that authenticates; not allowed with `authn = "none"`.
    pub authz: Option<crate::authz::AuthzChoice>,
    /// Largest request body the gateway reads when it must look inside
    /// (authorization rules on the body, authorization details); larger
    /// gets 413. Default 1 MiB.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// What clients see of an upstream 5xx: `scrub` (default) replaces the
    /// body by a generic problem; `pass` forwards it.
    #[serde(default)]
    pub upstream_errors: UpstreamErrors,
    /// `[[routes.rate_limit]]`: limits a request must all pass.
    #[serde(default)]
    pub rate_limit: Vec<crate::rate_limit::config::RateLimitConfig>,
    /// Require and honour `Idempotency-Key` (money-moving routes).
    pub idempotency: Option<crate::rate_limit::config::IdempotencyConfig>,
    /// Requests in flight on this route at most; more get 503.
    pub max_in_flight: Option<usize>,
    /// Who may use the route, by client address.
    #[serde(default)]
    pub ip_filter: crate::ip_filter::config::RouteIpFilterConfig,
    /// Refuse plain bearer tokens: DPoP-bound or certificate-bound only
    /// (FAPI 2.0). Default false (the issuer may also require it).
    #[serde(default)]
    pub sender_constrained: bool,
    /// Pass `Authorization` and `DPoP` to the upstream. Default false: the
    /// upstream gets `x-authenticated-*` identity headers instead.
    #[serde(default)]
    pub forward_credentials: bool,
    /// Overrides the upstream's `request_timeout` for this route.
    #[serde(default, deserialize_with = "crate::config::duration::deserialize_opt")]
    pub timeout: Option<Duration>,
    /// `[routes.validate]`: OpenAPI validation, structure limits, injection
    /// detection, response guarding and message signatures.
    #[serde(default)]
    pub validate: Option<crate::validate::config::RouteValidateConfig>,
}

fn default_max_body() -> usize {
    1024 * 1024
}

/// `authn = "none"` or `authn = ["method", …]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AuthnChoice {
    /// One method, or `"none"`.
    One(String),
    /// Any of several methods.
    Any(Vec<String>),
}

/// Handling of upstream 5xx bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamErrors {
    /// Replace the body of an upstream 5xx by a generic problem document.
    #[default]
    Scrub,
    /// Forward upstream 5xx bodies as they are.
    Pass,
}
