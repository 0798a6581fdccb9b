//! `[ip_filter]` and `routes.ip_filter`: who may connect, and from where.

use serde::Deserialize;

/// Gateway-wide IP settings, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpFilterConfig {
    /// CIDRs whose connections are closed before the TLS handshake, on
    /// every listener (e.g. `["203.0.113.0/24", "2001:db8:bad::/48"]`).
    pub deny: Vec<String>,
    /// CIDRs of proxies in front of the gateway (load balancers, WAFs).
    /// Only from these peers are `X-Forwarded-For` and `Forwarded` read to
    /// find the client's address; from anyone else they are ignored.
    pub trusted_proxies: Vec<String>,
}

/// Per-route CIDR lists, as written: `ip_filter = { allow = [...], deny = [...] }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteIpFilterConfig {
    /// If not empty, only clients in these CIDRs may use the route.
    pub allow: Vec<String>,
    /// Clients in these CIDRs may not use the route (checked after `allow`).
    pub deny: Vec<String>,
}
