//! Lints: valid choices that weaken security, reported as warnings.
//!
//! `rampart check` prints them; `serve` logs them at start and on reload.

use std::net::IpAddr;

use super::{ConfigProblem, GatewayConfig};
use crate::route::config::{AuthnChoice, UpstreamErrors};

/// Warnings about a parsed policy.
pub fn lint(cfg: &GatewayConfig) -> Vec<ConfigProblem> {
    let mut w = Vec::new();
    if cfg.dangerous.allow_plain_http {
        w.push(ConfigProblem::warning(
            "dangerous.allow_plain_http",
            "plain-HTTP listeners are allowed: credentials and banking data may cross the network unencrypted",
        ));
    }
    for (i, l) in cfg.listeners.iter().enumerate() {
        if l.tls.is_none() {
            w.push(ConfigProblem::warning(
                format!("listeners[{i}]"),
                "listener without TLS",
            ));
        }
    }
    if cfg.response.hsts.is_empty() {
        w.push(ConfigProblem::warning("response.hsts", "HSTS is off"));
    }
    const MANAGED: &[&str] = &[
        "strict-transport-security",
        "x-content-type-options",
        "cache-control",
        "content-security-policy",
    ];
    for k in cfg.response.add_headers.keys() {
        let k = k.to_ascii_lowercase();
        if MANAGED.contains(&k.as_str()) {
            w.push(ConfigProblem::warning(
                format!("response.add_headers.{k}"),
                "replaces a security header the gateway sets; make sure the new value is at least as strict",
            ));
        }
    }
    for (i, t) in cfg.ip_filter.trusted_proxies.iter().enumerate() {
        if t.ends_with("/0") {
            w.push(ConfigProblem::warning(
                format!("ip_filter.trusted_proxies[{i}]"),
                "trusts every peer: any client can choose its address with X-Forwarded-For",
            ));
        }
    }
    if !cfg.admin.bind.ip().is_loopback() {
        w.push(ConfigProblem::warning(
            "admin.bind",
            "the admin listener is reachable from other hosts; keep it on loopback or a management network",
        ));
    }
    if cfg.admin.token_file.is_none()
        && cfg.admin.token_env.is_none()
        && cfg.admin.tokens.is_empty()
        && cfg.admin.clients.is_empty()
        && cfg.mfa.is_none()
    {
        w.push(ConfigProblem::warning(
            "admin",
            "no admin token, client certificate or admin users ([mfa]): the admin API refuses everyone \
             but health and readiness checks (SIGHUP still reloads)",
        ));
    }
    if !cfg.admin.metrics_auth {
        w.push(ConfigProblem::warning(
            "admin.metrics_auth",
            "anyone who reaches the admin port can read /metrics (route ids, traffic, refusal causes)",
        ));
    }
    if !cfg.admin.bind.ip().is_loopback() && cfg.admin.tls.is_none() {
        w.push(ConfigProblem::warning(
            "admin.tls",
            "the admin listener is off loopback without TLS: tokens and passwords cross the network in the clear",
        ));
    }
    let authenticates = cfg
        .routes
        .iter()
        .any(|r| !matches!(&r.authn, Some(AuthnChoice::One(s)) if s == "none"));
    if !cfg.brute_force.enabled && authenticates {
        w.push(ConfigProblem::warning(
            "brute_force.enabled",
            "authentication failures are not limited: credentials can be guessed at network speed",
        ));
    }
    for (i, r) in cfg.routes.iter().enumerate() {
        if matches!(&r.authn, Some(AuthnChoice::One(s)) if s == "none") {
            w.push(ConfigProblem::warning(
                format!("routes[{i}].authn"),
                format!("route `{}` is open to unauthenticated clients", r.id),
            ));
        }
        if r.upstream_errors == UpstreamErrors::Pass {
            w.push(ConfigProblem::warning(
                format!("routes[{i}].upstream_errors"),
                "upstream 5xx bodies reach clients unfiltered (stack traces, internal names)",
            ));
        }
    }
    for (i, u) in cfg.upstreams.iter().enumerate() {
        for (j, t) in u.targets.iter().enumerate() {
            if let Some(rest) = t.strip_prefix("http://") {
                let host = rest.split(['/', '?']).next().unwrap_or("");
                let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let loopback =
                    host == "localhost" || host.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
                if !loopback {
                    w.push(ConfigProblem::warning(
                        format!("upstreams[{i}].targets[{j}]"),
                        "plain HTTP to a non-loopback upstream: traffic behind the gateway is unencrypted",
                    ));
                }
            }
        }
    }
    w
}
