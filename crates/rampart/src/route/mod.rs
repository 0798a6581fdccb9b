//! Routing: which declared endpoint a request is for, or a refusal.
//!
//! Threat answered: requests reaching what the policy did not declare
//! (OWASP API9, improper inventory) and path tricks that make one route's
//! checks apply to another's backend (`..`, `%2e%2e`, `%2F`, `//`). The path
//! is normalised once ([`path::normalize`]); the router matches the
//! normalised form and the upstream receives exactly that form. Unknown
//! endpoints get 404, a known path with a wrong method 405, a malformed path
//! 400, an over-long target 414.

pub mod config;
pub mod path;
pub mod table;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};

use self::config::{AuthnChoice, RouteConfig, UpstreamErrors};
use self::table::{RouteMiss, RouteSpec, RouteTable, RouteTableError};
use crate::config::ConfigProblem;
use crate::exchange::Exchange;
use crate::reject::Reject;

pub use crate::authn::gate::RouteAuthn as AuthnPolicy;

/// One validated route.
#[derive(Debug)]
pub struct RoutePolicy {
    /// Route id.
    pub id: Arc<str>,
    /// Index of its upstream in the gateway's upstream list.
    pub upstream: usize,
    /// How it authenticates.
    pub authn: AuthnPolicy,
    /// How it authorises.
    pub authz: crate::authz::RouteAuthz,
    /// Largest request body read when the gateway must look inside.
    pub max_body: usize,
    /// Send `Authorization` and `DPoP` on to the upstream (default: the
    /// gateway consumes them and forwards the identity instead).
    pub forward_credentials: bool,
    /// Handling of upstream 5xx bodies.
    pub upstream_errors: UpstreamErrors,
    /// Time allowed for the upstream's response headers, if overridden.
    pub timeout: Option<Duration>,
    /// Client address lists.
    pub ip: crate::ip_filter::RouteIpPolicy,
    /// Rate limits.
    pub limits: crate::rate_limit::RouteLimits,
    /// In-flight ceiling.
    pub gate: Option<Arc<crate::rate_limit::concurrency::Gate>>,
    /// `Idempotency-Key` handling.
    pub idempotency: Option<crate::rate_limit::config::IdempotencyConfig>,
    /// Validation (set by `Gateway::build` after the table is built).
    pub validate: Option<Arc<crate::validate::RouteValidation>>,
}

/// The compiled routing table and the routes it points to.
#[derive(Debug)]
pub struct Router {
    table: RouteTable,
    routes: Vec<RoutePolicy>,
}

// === impl Router ===

impl Router {
    /// Validates `[[routes]]`; `upstream_index` maps an upstream name to its
    /// index.
    pub fn from_config(
        routes: &[RouteConfig],
        upstream_index: impl Fn(&str) -> Option<usize>,
        traffic: &crate::rate_limit::TrafficPolicy,
        authn_policy: &crate::authn::gate::Authn,
        authz_policy: &crate::authz::Authz,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut specs = Vec::with_capacity(routes.len());
        let mut policies = Vec::with_capacity(routes.len());
        let mut ids = std::collections::HashSet::new();
        for (i, r) in routes.iter().enumerate() {
            let at = |k: &str| format!("routes[{i}].{k}");
            if r.id.trim().is_empty() {
                problems.push(ConfigProblem::error(at("id"), "must not be empty"));
            } else if !ids.insert(r.id.as_str()) {
                problems.push(ConfigProblem::error(
                    at("id"),
                    format!("duplicate route id `{}`", r.id),
                ));
            }
            let mut methods = Vec::new();
            for (j, m) in r.methods.iter().enumerate() {
                match Method::from_bytes(m.as_bytes()) {
                    Ok(m) if m.as_str().bytes().all(|b| b.is_ascii_uppercase()) => methods.push(m),
                    _ => problems.push(ConfigProblem::error(
                        format!("routes[{i}].methods[{j}]"),
                        format!("`{m}` is not an HTTP method (write it in capitals, e.g. \"GET\")"),
                    )),
                }
            }
            if let Some(idem) = &r.idempotency {
                if idem.ttl.is_zero() {
                    problems.push(ConfigProblem::error(at("idempotency.ttl"), "must be more than 0"));
                }
                if idem.store == crate::rate_limit::config::StoreKind::Redis && !traffic.redis_configured {
                    problems.push(ConfigProblem::error(
                        at("idempotency.store"),
                        "`redis` needs a [redis] section with the server's url",
                    ));
                }
                if idem.max_body == 0 {
                    problems.push(ConfigProblem::error(
                        at("idempotency.max_body"),
                        "must be at least 1",
                    ));
                }
            }
            if r.max_in_flight == Some(0) {
                problems.push(ConfigProblem::error(at("max_in_flight"), "must be at least 1"));
            }
            if r.timeout.is_some_and(|t| t.is_zero()) {
                problems.push(ConfigProblem::error(at("timeout"), "must be more than 0"));
            }
            let ip = crate::ip_filter::RouteIpPolicy::from_config(i, &r.ip_filter)
                .map_err(|p| problems.extend(p))
                .ok();
            let limits = crate::rate_limit::RouteLimits::from_config(i, &r.id, &r.rate_limit, traffic)
                .map_err(|p| problems.extend(p))
                .ok();
            let upstream = upstream_index(&r.upstream);
            if upstream.is_none() {
                problems.push(ConfigProblem::error(
                    at("upstream"),
                    format!("no upstream named `{}` in [[upstreams]]", r.upstream),
                ));
            }
            let authn = match &r.authn {
                None => {
                    problems.push(ConfigProblem::error(
                        at("authn"),
                        "required: list the accepted authentication methods, or write \
                         authn = \"none\" to expose this route without authentication",
                    ));
                    None
                }
                Some(AuthnChoice::One(s)) => authn_policy
                    .route_policy(
                        &at("authn"),
                        std::slice::from_ref(s),
                        s == "none",
                        r.sender_constrained,
                    )
                    .map_err(|p| problems.extend(p))
                    .ok(),
                Some(AuthnChoice::Any(list)) => authn_policy
                    .route_policy(&at("authn"), list, false, r.sender_constrained)
                    .map_err(|p| problems.extend(p))
                    .ok(),
            };
            let params: Vec<String> = table::PathTemplate::parse(&r.path)
                .map(|t| {
                    t.segments()
                        .iter()
                        .filter_map(|s| match s {
                            table::TemplateSegment::Param(name) => Some(name.to_string()),
                            table::TemplateSegment::Literal(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let open = matches!(&r.authn, Some(AuthnChoice::One(s)) if s == "none");
            let authz = crate::authz::RouteAuthz::from_config(
                &at("authz"),
                r.authz.as_ref(),
                open || r.authn.is_none(),
                &params,
                authz_policy,
            )
            .map_err(|p| problems.extend(p))
            .ok();
            if r.max_body == 0 {
                problems.push(ConfigProblem::error(at("max_body"), "must be at least 1"));
            }
            specs.push(RouteSpec {
                host: r.host.clone(),
                path: r.path.clone(),
                methods,
            });
            if let (Some(upstream), Some(authn), Some(authz), Some(ip), Some(limits)) =
                (upstream, authn, authz, ip, limits)
            {
                policies.push(RoutePolicy {
                    id: Arc::from(r.id.as_str()),
                    upstream,
                    authn,
                    authz,
                    max_body: r.max_body,
                    forward_credentials: r.forward_credentials,
                    upstream_errors: r.upstream_errors,
                    timeout: r.timeout,
                    ip,
                    limits,
                    gate: r.max_in_flight.map(crate::rate_limit::concurrency::Gate::new),
                    idempotency: r.idempotency.clone(),
                    validate: None,
                });
            }
        }
        let table = match RouteTable::build(&specs) {
            Ok(t) => Some(t),
            Err(errs) => {
                for (i, e) in errs {
                    let (key, message) = match e {
                        // Unparseable methods were reported above already.
                        RouteTableError::NoMethods
                            if routes.get(i).is_some_and(|r| !r.methods.is_empty()) =>
                        {
                            continue
                        }
                        RouteTableError::NoMethods => {
                            ("methods", "must list at least one method".to_string())
                        }
                        RouteTableError::BadHost(h) => {
                            ("host", format!("`{h}` is not a host name (no port, no wildcard)"))
                        }
                        RouteTableError::Conflict { with } => (
                            "path",
                            format!(
                                "same host, path shape and a shared method as route `{}` (routes[{with}]): \
                                 requests could not tell them apart",
                                routes.get(with).map(|r| r.id.as_str()).unwrap_or("?")
                            ),
                        ),
                        e @ RouteTableError::Template(_) => ("path", e.to_string()),
                    };
                    problems.push(ConfigProblem::error(format!("routes[{i}].{key}"), message));
                }
                None
            }
        };
        match table {
            Some(table) if problems.is_empty() => Ok(Self {
                table,
                routes: policies,
            }),
            _ => Err(problems),
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The routes, in policy order (for attaching what is built after the
    /// table, such as validation).
    pub fn routes_mut(&mut self) -> &mut [RoutePolicy] {
        &mut self.routes
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the route for a request, recording the normalised path, the
    /// route id and the path parameters in `ex`.
    pub fn resolve<B: http_body::Body>(
        &self,
        req: &Request<B>,
        ex: &mut Exchange,
    ) -> Result<&RoutePolicy, Reject> {
        let uri = req.uri();
        let target_len = uri.path_and_query().map(|pq| pq.as_str().len()).unwrap_or(0);
        if target_len > ex.conn.max_uri_length {
            return Err(Reject::UriTooLong);
        }
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > ex.conn.max_header_bytes {
            return Err(Reject::HeadersTooLarge);
        }
        let path = path::normalize(uri.path()).map_err(Reject::BadPath)?;
        let host = effective_host(req)?;
        let found = self.table.resolve(host, &path, req.method());
        ex.path = Some(path);
        ex.host = host.map(str::to_owned);
        match found {
            Ok(m) => {
                let route = self.routes.get(m.index).ok_or(Reject::NoRoute)?;
                ex.route_id = Some(route.id.clone());
                ex.params = m.params;
                if matches!(*req.method(), Method::GET | Method::HEAD | Method::TRACE)
                    && !http_body::Body::is_end_stream(req.body())
                {
                    return Err(Reject::BodyNotAllowed);
                }
                Ok(route)
            }
            Err(RouteMiss::NotFound) => Err(Reject::NoRoute),
            Err(RouteMiss::MethodNotAllowed { allow }) => Err(Reject::MethodNotAllowed { allow }),
        }
    }
}

/// The one host a request is for. The request target's authority (absolute
/// form, or HTTP/2 `:authority`) and the `Host` header must agree when both
/// are present, and `Host` may appear once: otherwise the router and the
/// backend could each believe a different host (RFC 9112 §3.2).
fn effective_host<B>(req: &Request<B>) -> Result<Option<&str>, Reject> {
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let header = match (hosts.next(), hosts.next()) {
        (None, _) => None,
        (Some(h), None) => Some(h.to_str().map_err(|_| Reject::BadHost)?),
        (Some(_), Some(_)) => return Err(Reject::BadHost),
    };
    let authority = req.uri().authority().map(|a| a.as_str());
    let host = match (authority, header) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => return Err(Reject::BadHost),
        (Some(a), _) => Some(a),
        (None, h) => h,
    };
    if let Some(h) = host {
        let ok = !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
        if !ok {
            return Err(Reject::BadHost);
        }
    }
    Ok(host)
}
