#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};

use super::config::{IpFilterConfig, RouteIpFilterConfig};
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn filter(trusted: &[&str], deny: &[&str]) -> IpFilter {
    IpFilter::from_config(&IpFilterConfig {
        deny: deny.iter().map(|s| s.to_string()).collect(),
        trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
    })
    .unwrap()
}

fn xff(v: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
    h
}

#[test]
fn cidrs_parse_and_every_bad_one_is_reported() {
    let set = CidrSet::parse(
        &["10.0.0.0/8".into(), "192.0.2.7".into(), "2001:db8::/32".into()],
        "x",
    )
    .unwrap();
    assert!(set.contains(ip("10.1.2.3")));
    assert!(set.contains(ip("192.0.2.7")));
    assert!(!set.contains(ip("192.0.2.8")));
    assert!(set.contains(ip("2001:db8::1")));
    // An IPv4-mapped IPv6 peer is judged as IPv4.
    assert!(set.contains(ip("::ffff:10.9.9.9")));
    let bad = CidrSet::parse(
        &["10.0.0.0/33".into(), "ok".into(), "10.0.0.1".into()],
        "routes[0].ip_filter.allow",
    )
    .unwrap_err();
    let paths: Vec<_> = bad.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["routes[0].ip_filter.allow[0]", "routes[0].ip_filter.allow[1]"]
    );
}

#[test]
fn forwarding_headers_count_only_from_trusted_proxies() {
    let f = filter(&["10.0.0.0/8"], &[]);
    // An untrusted peer: its X-Forwarded-For is a claim and is ignored.
    assert_eq!(
        f.client_ip(ip("203.0.113.9"), &xff("198.51.100.1")),
        ip("203.0.113.9")
    );
    // A trusted proxy: the rightmost untrusted address is the client.
    assert_eq!(
        f.client_ip(ip("10.0.0.5"), &xff("198.51.100.1")),
        ip("198.51.100.1")
    );
    // A client that prepends a fake address cannot choose what is read.
    assert_eq!(
        f.client_ip(ip("10.0.0.5"), &xff("1.2.3.4, 198.51.100.1")),
        ip("198.51.100.1")
    );
    // Trusted hops are skipped.
    assert_eq!(
        f.client_ip(ip("10.0.0.5"), &xff("198.51.100.1, 10.0.0.7")),
        ip("198.51.100.1")
    );
    // Garbage stops the walk at the proxy itself.
    assert_eq!(f.client_ip(ip("10.0.0.5"), &xff("not-an-ip")), ip("10.0.0.5"));
    // Ports and brackets are tolerated.
    assert_eq!(
        f.client_ip(ip("10.0.0.5"), &xff("[2001:db8::9]:4711")),
        ip("2001:db8::9")
    );
    assert_eq!(
        f.client_ip(ip("10.0.0.5"), &xff("198.51.100.1:443")),
        ip("198.51.100.1")
    );
    // Forwarded, when there is no X-Forwarded-For.
    let mut h = HeaderMap::new();
    h.insert(
        "forwarded",
        HeaderValue::from_static("for=192.0.2.60;proto=https, for=\"[2001:db8::1]:80\""),
    );
    assert_eq!(f.client_ip(ip("10.0.0.5"), &h), ip("2001:db8::1"));
    // No header from a trusted proxy: the proxy is the client.
    assert_eq!(f.client_ip(ip("10.0.0.5"), &HeaderMap::new()), ip("10.0.0.5"));
}

#[test]
fn route_lists_allow_then_deny() {
    let p = RouteIpPolicy::from_config(
        0,
        &RouteIpFilterConfig {
            allow: vec!["10.0.0.0/8".into()],
            deny: vec!["10.6.6.0/24".into()],
        },
    )
    .unwrap();
    assert!(p.check(ip("10.1.1.1")).is_ok());
    assert!(matches!(
        p.check(ip("192.0.2.1")),
        Err(IpFilterError::NotAllowed(_))
    ));
    assert!(matches!(p.check(ip("10.6.6.6")), Err(IpFilterError::Denied(_))));
    let open = RouteIpPolicy::from_config(0, &RouteIpFilterConfig::default()).unwrap();
    assert!(open.check(ip("192.0.2.1")).is_ok());
}

#[test]
fn the_global_deny_list_is_for_connections() {
    let f = filter(&[], &["203.0.113.0/24"]);
    assert!(f.denies_connection(ip("203.0.113.50")));
    assert!(!f.denies_connection(ip("198.51.100.50")));
}
