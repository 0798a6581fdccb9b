//! Authorization (OWASP API1, API3, API5; FAPI 2.0; PSD2 SCA): what an
//! authenticated caller may do. The end of it is a [`Permit`], which only
//! this module can construct and which forwarding requires: a request that
//! was not authorised cannot reach an upstream, because the code would not
//! compile.
//!
//! What a route can require (`[routes.authz]`, see [`config`]), checked in
//! this order:
//! 1. **Function level**: `clients`, `scopes` (all), `any_scopes`, `roles`.
//! 2. **Views** ([`views`]): if the route lists views, one must apply to
//!    the caller's scopes; it is applied to the response later.
//! 3. **Object level** ([`rules`]): CEL expressions binding path, query,
//!    header and body values to the principal or to [`entitlements`].
//! 4. **Rich authorization requests** ([`rar`], RFC 9396).
//! 5. **Step-up** ([`step_up`], RFC 9470).
//! 6. **Transaction confirmation** (RFC 6238 TOTP; [`crate::mfa`]): last,
//!    so that a code is consumed only by a request that is otherwise
//!    allowed.
//!
//! Threat answered: a valid caller doing what they should not (another
//! customer's account, an operator's function, a bigger payment than
//! consented, a high-value operation on a weak login). How it fails:
//! closed. Any doubt (an expression that errors, a missing field, an
//! entitlement service that does not answer) refuses; the client learns the
//! class of refusal only ([`AuthzError::class`]).

pub mod config;
pub mod entitlements;
pub mod error;
pub mod rar;
pub mod rules;
pub mod step_up;
#[cfg(test)]
mod tests;
pub mod views;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use self::config::{AuthzChoice, AuthzConfig, EntitlementConfig};
pub use self::entitlements::Entitlements;
pub use self::error::{AuthzClass, AuthzError, AuthzRefusal};
use self::rar::RarPolicy;
use self::rules::{Expression, Fields, Input, Uses};
use self::step_up::StepUp;
use self::views::View;
use crate::authn::Principal;
use crate::config::{ConfigProblem, LoadedConfig};

/// The proof that a request was authorised: required by
/// [`Upstream::forward`](crate::upstream::Upstream::forward). Only
/// [`Authz::authorize`] makes one.
#[derive(Debug)]
pub struct Permit {
    principal: Option<Arc<Principal>>,
    view: Option<usize>,
    confirmed: bool,
}

impl Permit {
    /// Who was authorised (`None` on an `authn = "none"` route).
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// The route's response view that applies, by index.
    pub fn view(&self) -> Option<usize> {
        self.view
    }

    /// Whether a one-time code confirmed this request (transaction
    /// confirmation), for the audit record.
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }
}

/// The authorization part of a policy snapshot: the CEL environment and
/// the entitlement sources.
pub struct Authz {
    env: Arc<cel::Env>,
    entitlements: Entitlements,
    mfa: Option<Arc<crate::mfa::Mfa>>,
    /// Whether the policy has an `[mfa]` section (valid or not: routes are
    /// checked against it either way).
    mfa_declared: bool,
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz")
            .field("entitlements", &self.entitlements)
            .finish_non_exhaustive()
    }
}

impl Authz {
    /// Validates `[[entitlements]]`; `mfa` verifies confirmation codes.
    pub fn from_config(
        cfg: &crate::config::GatewayConfig,
        loaded: &LoadedConfig,
        mfa: Option<Arc<crate::mfa::Mfa>>,
    ) -> Result<Self, Vec<ConfigProblem>> {
        Ok(Self {
            env: rules::env(),
            entitlements: Entitlements::from_config(&cfg.entitlements, loaded)?,
            mfa,
            mfa_declared: cfg.mfa.is_some(),
        })
    }

    /// An empty one (no sources), to check routes against when
    /// `[[entitlements]]` itself is invalid.
    pub fn empty() -> Self {
        Self {
            env: rules::env(),
            entitlements: Entitlements::default(),
            mfa: None,
            mfa_declared: false,
        }
    }

    /// Decides one request. `now` is Unix seconds, `mono` monotonic time
    /// (entitlement cache ages).
    pub async fn authorize(
        &self,
        route: &RouteAuthz,
        principal: Option<&Arc<Principal>>,
        input: &Input<'_>,
        mono: Duration,
    ) -> Result<Permit, AuthzError> {
        let req = match &route.kind {
            RouteKind::Open => {
                return Ok(Permit {
                    principal: None,
                    view: None,
                    confirmed: false,
                })
            }
            RouteKind::Authenticated => {
                let principal = principal.ok_or(AuthzError::NoPrincipal)?;
                return Ok(Permit {
                    principal: Some(principal.clone()),
                    view: None,
                    confirmed: false,
                });
            }
            RouteKind::Require(req) => req,
        };
        let arc = principal.ok_or(AuthzError::NoPrincipal)?;
        let p: &Principal = arc;
        // 1. Function level.
        if !req.clients.is_empty() {
            let client = p.client_id().unwrap_or("");
            if !req.clients.iter().any(|c| c == client) {
                return Err(AuthzError::ClientNotAllowed(client.to_owned()));
            }
        }
        if let Some(missing) = req.scopes.iter().find(|s| !p.has_scope(s)) {
            return Err(AuthzError::MissingScope(missing.clone()));
        }
        if !req.any_scopes.is_empty() && !req.any_scopes.iter().any(|s| p.has_scope(s)) {
            return Err(AuthzError::NoneOfScopes(req.any_scopes.clone()));
        }
        if !req.roles.is_empty() && !req.roles.iter().any(|r| p.roles().contains(r)) {
            return Err(AuthzError::MissingRole(req.roles.clone()));
        }
        // 2. Views.
        let view = if req.views.is_empty() {
            None
        } else {
            let i = req
                .views
                .iter()
                .position(|v| v.applies(|s| p.has_scope(s)))
                .ok_or(AuthzError::NoView)?;
            // A full view changes nothing: the response streams through.
            (!req.views[i].is_full()).then_some(i)
        };
        // 3–6 may need the expression context.
        let ctx = if !req.has_expressions {
            None
        } else {
            let mut resolved = BTreeMap::new();
            if let Fields::Some(names) = &req.uses.entitlements {
                for name in names {
                    if let Some(src) = self.entitlements.get(name) {
                        resolved.insert(name.clone(), src.resolve(p, mono).await?);
                    }
                }
            }
            Some(rules::context(&self.env, input, &req.uses, &resolved)?)
        };
        // A condition that cannot be evaluated counts as met: the stronger
        // requirement applies.
        let holds = |w: &Option<Expression>| match (w, &ctx) {
            (Some(w), Some(ctx)) => w.eval(ctx).unwrap_or(true),
            _ => true,
        };
        if let Some(ctx) = &ctx {
            for (index, rule) in req.rules.iter().enumerate() {
                match rule.eval(ctx) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(AuthzError::RuleFalse {
                            index,
                            rule: rule.source().to_owned(),
                        })
                    }
                    Err(error) => {
                        return Err(AuthzError::RuleError {
                            index,
                            rule: rule.source().to_owned(),
                            error,
                        })
                    }
                }
            }
        }
        if let Some(rar) = &req.rar {
            rar.check(p, input.body)?;
        }
        for s in &req.step_up {
            if holds(&s.when) {
                s.check(p, input.now)?;
            }
        }
        let mut confirmed = false;
        if let Some(c) = &req.confirm {
            if holds(&c.when) {
                self.confirm(c, p, input.headers).await?;
                confirmed = true;
            }
        }
        Ok(Permit {
            principal: Some(arc.clone()),
            view,
            confirmed,
        })
    }
}

impl Authz {
    /// Transaction confirmation: the code in the configured header must be
    /// the caller's current one-time code, not used before.
    async fn confirm(&self, c: &Confirm, p: &Principal, headers: &http::HeaderMap) -> Result<(), AuthzError> {
        let mut values = headers.get_all(&c.header).iter();
        let code = match (values.next(), values.next()) {
            (None, _) => return Err(AuthzError::ConfirmationMissing),
            (Some(v), None) => v.to_str().unwrap_or(""),
            (Some(_), Some(_)) => {
                return Err(AuthzError::ConfirmationFailed(
                    "the code header is repeated".into(),
                ))
            }
        };
        let user = p
            .subject()
            .ok_or_else(|| AuthzError::ConfirmationFailed("the principal has no subject".into()))?;
        let mfa = self
            .mfa
            .as_ref()
            .ok_or_else(|| AuthzError::ConfirmationUnavailable("no [mfa]".into()))?;
        let outcome = mfa.confirm(user, code).await;
        let label = match &outcome {
            Ok(()) => "accepted",
            Err(crate::mfa::MfaError::Locked(_)) => "locked",
            Err(e) if e.is_unavailable() => "unavailable",
            Err(crate::mfa::MfaError::Replayed) => "replayed",
            Err(crate::mfa::MfaError::NotEnrolled) => "not-enrolled",
            Err(_) => "wrong-code",
        };
        // Every attempt is recorded: who, and how it went (never the code).
        tracing::info!(subject = %user, outcome = label, "transaction confirmation");
        match outcome {
            Ok(()) => Ok(()),
            Err(crate::mfa::MfaError::Locked(d)) => Err(AuthzError::ConfirmationLocked(d)),
            Err(e) if e.is_unavailable() => Err(AuthzError::ConfirmationUnavailable(e.to_string())),
            Err(e) => Err(AuthzError::ConfirmationFailed(e.to_string())),
        }
    }
}

/// `[routes.authz.confirm]`, validated.
#[derive(Debug)]
struct Confirm {
    header: http::HeaderName,
    when: Option<Expression>,
}

/// How one route authorises.
#[derive(Debug)]
pub struct RouteAuthz {
    kind: RouteKind,
}

#[derive(Debug)]
enum RouteKind {
    /// `authn = "none"`.
    Open,
    /// `authz = "authenticated"`.
    Authenticated,
    /// `[routes.authz]`.
    Require(Box<Requirements>),
}

#[derive(Debug)]
struct Requirements {
    scopes: Vec<String>,
    any_scopes: Vec<String>,
    roles: Vec<String>,
    clients: Vec<String>,
    rules: Vec<Expression>,
    rar: Option<RarPolicy>,
    step_up: Vec<StepUp>,
    views: Vec<View>,
    confirm: Option<Confirm>,
    /// What the expressions read, together.
    uses: Uses,
    /// Whether there is any expression (rule or condition) to evaluate.
    has_expressions: bool,
}

impl RouteAuthz {
    /// Validates a route's `authz` at key path `at` (`routes[3].authz`).
    /// `open` is true for `authn = "none"`; `params` are the path
    /// template's parameters.
    pub fn from_config(
        at: &str,
        choice: Option<&AuthzChoice>,
        open: bool,
        params: &[String],
        authz: &Authz,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let cfg = match (choice, open) {
            (None, true) => {
                return Ok(Self {
                    kind: RouteKind::Open,
                })
            }
            (Some(_), true) => {
                return Err(vec![ConfigProblem::error(
                    at,
                    "authorization needs an authenticated caller; this route has authn = \"none\"",
                )])
            }
            (None, false) => {
                return Err(vec![ConfigProblem::error(
                    at,
                    "required on a route that authenticates: say what it authorises \
                     ([routes.authz] with scopes, roles or rules), or write \
                     authz = \"authenticated\" to let any authenticated caller in",
                )])
            }
            (Some(AuthzChoice::Named(n)), false) if n == "authenticated" => {
                return Ok(Self {
                    kind: RouteKind::Authenticated,
                })
            }
            (Some(AuthzChoice::Named(n)), false) => {
                return Err(vec![ConfigProblem::error(
                    at,
                    format!(
                        "`{n}` is not a choice: write authz = \"authenticated\" or a [routes.authz] table"
                    ),
                )])
            }
            (Some(AuthzChoice::Rules(cfg)), false) => cfg,
        };
        let mut problems = Vec::new();
        let names = authz.entitlements.names();
        let mut compile = |key: String, src: &str| match Expression::compile(&authz.env, src, params, &names)
        {
            Ok(e) => Some(e),
            Err(msg) => {
                problems.push(ConfigProblem::error(key, msg));
                None
            }
        };
        let rules: Vec<Expression> = cfg
            .rules
            .iter()
            .enumerate()
            .filter_map(|(j, s)| compile(format!("{at}.rules[{j}]"), s))
            .collect();
        let confirm_when = cfg
            .confirm
            .as_ref()
            .and_then(|c| c.when.as_ref())
            .and_then(|w| compile(format!("{at}.confirm.when"), w));
        let mut step_up = Vec::new();
        for (j, s) in cfg.step_up.iter().enumerate() {
            let when = s
                .when
                .as_ref()
                .and_then(|w| compile(format!("{at}.step_up[{j}].when"), w));
            step_up.push((j, when, s));
        }
        let step_up: Vec<StepUp> = step_up
            .into_iter()
            .filter_map(|(j, when, s)| {
                if s.acr_values.is_empty() && s.max_age.is_none() {
                    problems.push(ConfigProblem::error(
                        format!("{at}.step_up[{j}]"),
                        "set acr_values, max_age or both",
                    ));
                    return None;
                }
                if let Some(bad) = s.acr_values.iter().find(|v| {
                    v.is_empty()
                        || v.contains(|c: char| c == '"' || c == '\\' || c.is_whitespace() || c.is_control())
                }) {
                    problems.push(ConfigProblem::error(
                        format!("{at}.step_up[{j}].acr_values"),
                        format!("`{bad}` cannot be sent in a challenge (no spaces, quotes or backslashes)"),
                    ));
                    return None;
                }
                Some(StepUp {
                    when,
                    acr_values: s.acr_values.clone(),
                    max_age: s.max_age,
                })
            })
            .collect();
        let confirm = match &cfg.confirm {
            None => None,
            Some(c) => {
                let when = confirm_when;
                match http::HeaderName::from_bytes(c.header.to_ascii_lowercase().as_bytes()) {
                    _ if !authz.mfa_declared => {
                        problems.push(ConfigProblem::error(
                            format!("{at}.confirm"),
                            "needs an [mfa] section (the store of enrolments and the key that seals them)",
                        ));
                        None
                    }
                    Ok(header) if header != http::header::AUTHORIZATION => Some(Confirm { header, when }),
                    _ => {
                        problems.push(ConfigProblem::error(
                            format!("{at}.confirm.header"),
                            "not a usable header name",
                        ));
                        None
                    }
                }
            }
        };
        let rar = match &cfg.authorization_details {
            None => None,
            Some(r) => RarPolicy::from_config(&format!("{at}.authorization_details"), r)
                .map_err(|p| problems.extend(p))
                .ok(),
        };
        let mut views = Vec::new();
        for (j, v) in cfg.views.iter().enumerate() {
            match View::from_config(&format!("{at}.views[{j}]"), v) {
                Ok(v) => views.push(v),
                Err(p) => problems.extend(p),
            }
        }
        for (key, list) in [
            ("scopes", &cfg.scopes),
            ("any_scopes", &cfg.any_scopes),
            ("roles", &cfg.roles),
            ("clients", &cfg.clients),
        ] {
            if list.iter().any(|s| s.trim().is_empty()) {
                problems.push(ConfigProblem::error(
                    format!("{at}.{key}"),
                    "must not hold an empty name",
                ));
            }
        }
        let nothing = cfg.scopes.is_empty()
            && cfg.any_scopes.is_empty()
            && cfg.roles.is_empty()
            && cfg.clients.is_empty()
            && cfg.rules.is_empty()
            && cfg.step_up.is_empty()
            && cfg.authorization_details.is_none()
            && cfg.views.is_empty()
            && cfg.confirm.is_none();
        if nothing {
            problems.push(ConfigProblem::error(
                at,
                "an empty [routes.authz] requires nothing; write authz = \"authenticated\" if that is meant",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let has_expressions = !rules.is_empty()
            || step_up.iter().any(|s| s.when.is_some())
            || confirm.as_ref().is_some_and(|c| c.when.is_some());
        let mut uses = Uses::default();
        for e in rules
            .iter()
            .chain(step_up.iter().filter_map(|s| s.when.as_ref()))
            .chain(confirm.iter().filter_map(|c| c.when.as_ref()))
        {
            uses.merge(e.uses());
        }
        Ok(Self {
            kind: RouteKind::Require(Box::new(Requirements {
                scopes: cfg.scopes.clone(),
                any_scopes: cfg.any_scopes.clone(),
                roles: cfg.roles.clone(),
                clients: cfg.clients.clone(),
                rules,
                rar,
                step_up,
                views,
                confirm,
                uses,
                has_expressions,
            })),
        })
    }

    /// Whether deciding needs the request's JSON body (a rule, condition or
    /// authorization-details check reads it).
    pub fn needs_body(&self) -> bool {
        match &self.kind {
            RouteKind::Require(r) => r.rar.is_some() || r.uses.reads("body"),
            _ => false,
        }
    }

    /// The response view at `index` (from [`Permit::view`]).
    pub fn view(&self, index: usize) -> Option<&View> {
        match &self.kind {
            RouteKind::Require(r) => r.views.get(index),
            _ => None,
        }
    }

    /// The header that carries a confirmation code, if the route asks for
    /// one (it is removed before forwarding).
    pub fn confirm_header(&self) -> Option<&http::HeaderName> {
        match &self.kind {
            RouteKind::Require(r) => r.confirm.as_ref().map(|c| &c.header),
            _ => None,
        }
    }

    /// Whether the route has response views.
    pub fn has_views(&self) -> bool {
        matches!(&self.kind, RouteKind::Require(r) if !r.views.is_empty())
    }
}
