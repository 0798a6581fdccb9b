//! IP filtering: a gateway-wide deny list enforced before TLS, the client's
//! address behind trusted proxies, and per-route allow and deny lists.
//!
//! Threats answered: known-bad networks costing a TLS handshake each
//! (dropped at accept); internal-only routes reached from outside (per-route
//! allow lists, OWASP API5/API9); spoofed `X-Forwarded-For` (the header is
//! read only when the peer is a configured trusted proxy, and then from the
//! right, skipping trusted hops, so a client cannot prepend an address of
//! its choosing). How it fails: closed (a malformed forwarding header from
//! a trusted proxy leaves the proxy's own address as the client's, which
//! the route lists then judge).
//!
//! Dynamic bans with TTLs live in [`bans`]; Redis-shared bans come with the
//! Redis store.

pub mod bans;
pub mod config;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

use self::config::{IpFilterConfig, RouteIpFilterConfig};
use crate::config::ConfigProblem;

/// A set of CIDRs.
#[derive(Debug, Clone, Default)]
pub struct CidrSet(Vec<IpNet>);

impl CidrSet {
    /// Parses CIDRs (a bare address means a single host); `path` names the
    /// list in problems.
    pub fn parse(list: &[String], path: &str) -> Result<Self, Vec<ConfigProblem>> {
        let mut nets = Vec::new();
        let mut problems = Vec::new();
        for (i, s) in list.iter().enumerate() {
            match parse_net(s) {
                Some(n) => nets.push(n),
                None => problems.push(ConfigProblem::error(
                    format!("{path}[{i}]"),
                    format!("`{s}` is not an IP address or CIDR (e.g. \"10.0.0.0/8\", \"2001:db8::/32\")"),
                )),
            }
        }
        if problems.is_empty() {
            Ok(Self(nets))
        } else {
            Err(problems)
        }
    }

    /// Whether `ip` is in the set. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A network written as a CIDR, or a bare address meaning one host.
pub fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .ok()
        .map(|n| n.trunc())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The validated gateway-wide IP policy.
#[derive(Debug, Clone, Default)]
pub struct IpFilter {
    deny: CidrSet,
    trusted: CidrSet,
}

/// A route's validated lists.
#[derive(Debug, Clone, Default)]
pub struct RouteIpPolicy {
    allow: CidrSet,
    deny: CidrSet,
}

/// Why a client was refused by address. Detail for logs only.
#[derive(Debug, thiserror::Error)]
pub enum IpFilterError {
    /// Not in the route's allow list.
    #[error("client {0} not in the route's allow list")]
    NotAllowed(IpAddr),
    /// In the route's deny list.
    #[error("client {0} in the route's deny list")]
    Denied(IpAddr),
    /// Banned (admin API, CLI, later brute-force protection).
    #[error("client {0} is banned")]
    Banned(IpAddr),
}

// === impl IpFilter ===

impl IpFilter {
    /// Validates `[ip_filter]`.
    pub fn from_config(cfg: &IpFilterConfig) -> Result<Self, Vec<ConfigProblem>> {
        let deny = CidrSet::parse(&cfg.deny, "ip_filter.deny");
        let trusted = CidrSet::parse(&cfg.trusted_proxies, "ip_filter.trusted_proxies");
        match (deny, trusted) {
            (Ok(deny), Ok(trusted)) => Ok(Self { deny, trusted }),
            (d, t) => Err(d.err().into_iter().chain(t.err()).flatten().collect()),
        }
    }

    /// Whether a connection from `peer` is dropped before TLS.
    pub fn denies_connection(&self, peer: IpAddr) -> bool {
        self.deny.contains(peer)
    }

    /// Whether `peer` is a trusted proxy.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted.contains(peer)
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy,
    /// in which case the rightmost address in `X-Forwarded-For` that is not
    /// itself a trusted proxy (or `Forwarded`'s `for=` when there is no
    /// `X-Forwarded-For`). Unparseable entries stop the walk.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        let xff = headers.get_all("x-forwarded-for");
        let mut any_xff = false;
        for v in xff.iter() {
            any_xff = true;
            let Ok(v) = v.to_str() else { return peer };
            for part in v.split(',') {
                match parse_node(part.trim()) {
                    Some(ip) => hops.push(ip),
                    None => return peer,
                }
            }
        }
        if !any_xff {
            for v in headers.get_all(http::header::FORWARDED).iter() {
                let Ok(v) = v.to_str() else { return peer };
                for element in v.split(',') {
                    let node = element
                        .split(';')
                        .filter_map(|p| p.trim().split_once('='))
                        .find(|(k, _)| k.eq_ignore_ascii_case("for"))
                        .map(|(_, v)| v.trim().trim_matches('"'));
                    match node.and_then(parse_node) {
                        Some(ip) => hops.push(ip),
                        None => return peer,
                    }
                }
            }
        }
        let mut client = peer;
        for ip in hops.iter().rev() {
            client = *ip;
            if !self.is_trusted(*ip) {
                break;
            }
        }
        canonical(client)
    }
}

/// An address as written in `X-Forwarded-For` or a `Forwarded` node:
/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    s.rsplit_once(':').and_then(|(ip, port)| {
        port.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| ip.parse().ok())
            .flatten()
    })
}

// === impl RouteIpPolicy ===

impl RouteIpPolicy {
    /// Validates a route's `ip_filter` (route index `i`).
    pub fn from_config(i: usize, cfg: &RouteIpFilterConfig) -> Result<Self, Vec<ConfigProblem>> {
        let allow = CidrSet::parse(&cfg.allow, &format!("routes[{i}].ip_filter.allow"));
        let deny = CidrSet::parse(&cfg.deny, &format!("routes[{i}].ip_filter.deny"));
        match (allow, deny) {
            (Ok(allow), Ok(deny)) => Ok(Self { allow, deny }),
            (a, d) => Err(a.err().into_iter().chain(d.err()).flatten().collect()),
        }
    }

    /// Admits or refuses a client address.
    pub fn check(&self, client: IpAddr) -> Result<(), IpFilterError> {
        if !self.allow.is_empty() && !self.allow.contains(client) {
            return Err(IpFilterError::NotAllowed(client));
        }
        if self.deny.contains(client) {
            return Err(IpFilterError::Denied(client));
        }
        Ok(())
    }
}
