//! `authz` on a route and `[[entitlements]]`, as the operator writes them.
//!
//! ```toml
//! [[routes]]
//! id = "account-get"
//! path = "/v1/accounts/{account_id}"
//! authn = ["jwt:bank-idp"]
//! [routes.authz]
//! scopes = ["accounts:read"]                            # all of them
//! rules = ["path.account_id in principal.claims.accounts"]  # CEL, each must hold
//! ```
//!
//! A route that authenticates must say what it authorises: a table like the
//! one above, or `authz = "authenticated"` (any authenticated caller, an
//! explicit choice). Validated into [`super::RouteAuthz`] by
//! [`super::RouteAuthz::from_config`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::redact::MaskStyle;

/// `authz = "authenticated"` or `[routes.authz]`.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthzChoice {
    /// A bare word: only `"authenticated"` is valid (checked later, so the
    /// problem names the key).
    Named(String),
    /// Requirements.
    Rules(Box<AuthzConfig>),
}

impl<'de> Deserialize<'de> for AuthzChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AuthzChoice;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"authenticated\" or a table of requirements")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AuthzChoice, E> {
                Ok(AuthzChoice::Named(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AuthzChoice, A::Error> {
                // Through serde's own map deserializer, so unknown keys and
                // wrong types are reported with their names.
                AuthzConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|c| AuthzChoice::Rules(Box::new(c)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[routes.authz]`: what a caller must have and be to use the route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzConfig {
    /// Scopes the token must all grant (OWASP API5, function level).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes of which the token must grant at least one.
    #[serde(default)]
    pub any_scopes: Vec<String>,
    /// Roles (the token's `roles` claim) of which the caller must have at
    /// least one.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Client ids (`client_id`/`azp`, the API key's client, the
    /// certificate's client) allowed; empty: any.
    #[serde(default)]
    pub clients: Vec<String>,
    /// Object-level rules (OWASP API1): CEL expressions over `principal`,
    /// `path`, `query`, `headers`, `body`, `method` and `entitlements`,
    /// each of which must be true.
    #[serde(default)]
    pub rules: Vec<String>,
    /// `[[routes.authz.step_up]]`: RFC 9470 step-up requirements.
    #[serde(default)]
    pub step_up: Vec<StepUpConfig>,
    /// `[routes.authz.authorization_details]`: the request must fall within
    /// the token's RFC 9396 authorization details.
    pub authorization_details: Option<RarConfig>,
    /// `[[routes.authz.views]]`: what of the response each scope may see
    /// (OWASP API3, property level). The first view whose `scope` the
    /// caller has applies; if views are listed and none applies, the
    /// request is refused.
    #[serde(default)]
    pub views: Vec<ViewConfig>,
    /// `[routes.authz.confirm]`: a one-time code (RFC 6238 TOTP) confirming
    /// the transaction, verified by the gateway against the caller's
    /// enrolment (`[mfa]`).
    pub confirm: Option<ConfirmConfig>,
}

/// `[[routes.authz.step_up]]`: when the caller's authentication is not
/// strong or recent enough, 401 with an RFC 9470 challenge.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpConfig {
    /// A CEL condition (same variables as `rules`) under which this
    /// requirement applies, e.g. `double(body.instructedAmount.amount) >
    /// 1000.0`; absent: always.
    pub when: Option<String>,
    /// The token's `acr` must be one of these.
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// The user must have authenticated (`auth_time`) at most this long ago.
    #[serde(default, deserialize_with = "crate::config::duration::deserialize_opt")]
    pub max_age: Option<Duration>,
}

/// `[routes.authz.authorization_details]` (RFC 9396).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RarConfig {
    /// The `type` of authorization detail that covers the request. Default
    /// `payment_initiation`.
    #[serde(default = "default_rar_type", rename = "type")]
    pub detail_type: String,
    /// How request fields relate to the detail's. Default, for
    /// `payment_initiation`: the instructed amount at most the detail's,
    /// the same currency, the same creditor IBAN (the shapes of RFC 9396
    /// §2.1's example, in both the request body and the detail).
    #[serde(default, rename = "match")]
    pub matches: Vec<RarMatchConfig>,
}

fn default_rar_type() -> String {
    "payment_initiation".to_owned()
}

/// One relation between a request field and an authorization-detail field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RarMatchConfig {
    /// JSON pointer into the request body, e.g. `/instructedAmount/amount`.
    pub request: String,
    /// JSON pointer into the authorization detail.
    pub detail: String,
    /// `equal` (same JSON value), `at_most` (request ≤ detail, as decimal
    /// numbers or decimal strings) or `iban` (the same IBAN, ignoring
    /// spaces and case).
    #[serde(default)]
    pub compare: Compare,
}

/// How a request field is compared with the detail's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The same JSON value.
    #[default]
    Equal,
    /// A decimal amount not above the detail's.
    AtMost,
    /// The same IBAN, spaces and case aside.
    Iban,
}

/// `[[routes.authz.views]]`: a view of the response for callers with a
/// scope.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// The scope a caller needs for this view; absent: every caller.
    pub scope: Option<String>,
    /// If set, only these fields are kept (JSON pointers; `*` matches any
    /// array element or object member), with what is under them.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Fields removed.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Fields masked: pointer → `iban`, `pan`, `last4` or `full`.
    #[serde(default)]
    pub mask: BTreeMap<String, MaskStyle>,
}

/// `[routes.authz.confirm]`: transaction confirmation with a one-time code.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmConfig {
    /// The request header carrying the code. Default `X-Confirmation-Code`.
    #[serde(default = "default_confirm_header")]
    pub header: String,
    /// A CEL condition under which a code is needed; absent: always.
    pub when: Option<String>,
}

fn default_confirm_header() -> String {
    "X-Confirmation-Code".to_owned()
}

/// `[[entitlements]]`: a named source of what a principal is entitled to
/// (e.g. the accounts a customer owns), used in rules as
/// `entitlements.NAME`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementConfig {
    /// The name rules use.
    pub name: String,
    /// What selects a principal's entry: `subject` (default) or
    /// `client_id`.
    #[serde(default)]
    pub key: EntitlementKey,
    /// A table in the policy: key → entitlement (any TOML value, usually a
    /// list of ids). A key not listed is entitled to an empty list.
    #[serde(rename = "static")]
    pub table: Option<BTreeMap<String, serde_json::Value>>,
    /// An HTTPS entitlement service: `{key}` in the URL is replaced by the
    /// percent-encoded key. A 404 answer is an empty list; anything but 200
    /// or 404, a timeout or a malformed answer refuses the request (503).
    pub url: Option<String>,
    /// JSON pointer of the entitlement in the service's answer. Default:
    /// the whole answer.
    #[serde(default)]
    pub pointer: String,
    /// CA bundle (PEM) the service's certificate must chain to; default:
    /// the system roots.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for the service. Default 2s.
    #[serde(
        default = "default_entitlement_timeout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub timeout: Duration,
    /// How long an answer is reused: the longest a change of entitlement
    /// takes to be seen. Default 30s, at most 10m.
    #[serde(
        default = "default_entitlement_ttl",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub cache_ttl: Duration,
}

fn default_entitlement_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_entitlement_ttl() -> Duration {
    Duration::from_secs(30)
}

/// What selects a principal's entitlement entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntitlementKey {
    /// The principal's subject.
    #[default]
    Subject,
    /// The principal's client id.
    ClientId,
}
