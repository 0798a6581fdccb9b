#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::FakeClock;

fn upstream(text: &str, clock: Arc<FakeClock>) -> Upstream {
    let loaded = LoadedConfig::from_text(Path::new("p.toml"), text.into()).unwrap();
    Upstream::from_config(0, &loaded.config.upstreams[0], &loaded, clock).unwrap()
}

#[test]
fn targets_are_validated() {
    assert!(parse_target("https://core.bank.internal:8443").is_ok());
    assert_eq!(parse_target("https://core/api/").unwrap().prefix, "/api");
    for bad in [
        "ftp://core",
        "core:8443",
        "https://user:pw@core",
        "https://core?x=1",
        "not a url",
    ] {
        assert!(parse_target(bad).is_err(), "{bad}");
    }
}

#[test]
fn target_uri_joins_prefix_path_and_query() {
    let t = parse_target("http://127.0.0.1:9000/api").unwrap();
    assert_eq!(
        t.uri("/v1/accounts", Some("page=2")).unwrap().to_string(),
        "http://127.0.0.1:9000/api/v1/accounts?page=2"
    );
    let t = parse_target("http://127.0.0.1:9000").unwrap();
    assert_eq!(
        t.uri("/v1", None).unwrap().to_string(),
        "http://127.0.0.1:9000/v1"
    );
}

#[tokio::test]
async fn a_failing_target_is_skipped_for_the_cooldown_then_tried_again() {
    let clock = FakeClock::at_unix(1_700_000_000);
    let u = upstream(
        "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n[upstreams.health]\nmax_failures = 2\ncooldown = \"10s\"\n",
        clock.clone(),
    );
    u.mark(0, false);
    assert!(!u.is_down(0), "one failure is not enough");
    u.mark(0, false);
    assert!(u.is_down(0));
    // While down, every pick is the healthy target.
    for _ in 0..5 {
        assert_eq!(u.pick(None), 1);
    }
    clock.advance(Duration::from_secs(9));
    assert!(u.is_down(0));
    clock.advance(Duration::from_secs(2));
    assert!(!u.is_down(0));
    let picks: Vec<_> = (0..4).map(|_| u.pick(None)).collect();
    assert!(picks.contains(&0) && picks.contains(&1), "{picks:?}");
    // A success resets the failure count.
    u.mark(1, false);
    u.mark(1, true);
    u.mark(1, false);
    assert!(!u.is_down(1));
}

#[test]
fn a_retry_avoids_the_target_that_just_failed() {
    let clock = FakeClock::at_unix(1_700_000_000);
    let u = upstream(
        "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\", \"http://127.0.0.1:3\"]\n",
        clock,
    );
    for _ in 0..6 {
        assert_ne!(u.pick(Some(1)), 1);
    }
    // With one target there is nowhere else to go.
    let single = upstream(
        "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:1\"]\n",
        FakeClock::at_unix(0),
    );
    assert_eq!(single.pick(Some(0)), 0);
}

#[test]
fn when_every_target_is_down_round_robin_continues() {
    let clock = FakeClock::at_unix(1_700_000_000);
    let u = upstream(
        "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n[upstreams.health]\nmax_failures = 1\n",
        clock,
    );
    u.mark(0, false);
    u.mark(1, false);
    let picks: Vec<_> = (0..4).map(|_| u.pick(None)).collect();
    assert!(picks.contains(&0) && picks.contains(&1), "{picks:?}");
}

use crate::exchange::test_exchange as exchange;

#[test]
fn forwarding_headers_describe_what_the_gateway_saw() {
    let mut ex = exchange("[2001:db8::7]:50000", true);
    ex.host = Some("api.bank.example".into());
    let mut h = http::HeaderMap::new();
    h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
    h.insert(header::FORWARDED, HeaderValue::from_static("for=10.0.0.1"));
    h.insert(header::HOST, HeaderValue::from_static("api.bank.example"));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-hop"));
    h.insert("x-hop", HeaderValue::from_static("1"));
    h.insert("x-original-url", HeaderValue::from_static("/internal/admin"));
    h.insert("x-http-method-override", HeaderValue::from_static("DELETE"));
    h.insert("true-client-ip", HeaderValue::from_static("10.0.0.1"));
    prepare_headers(
        &mut h,
        &ex,
        ex.principal.as_deref(),
        &HeaderName::from_static("x-request-id"),
        false,
        &Default::default(),
        "u",
    )
    .unwrap();
    assert_eq!(h["x-forwarded-for"], "2001:db8::7");
    assert_eq!(
        h[header::FORWARDED],
        "for=\"[2001:db8::7]\";proto=https;host=\"api.bank.example\""
    );
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "api.bank.example");
    assert!(
        h.get(header::HOST).is_none(),
        "Host is the target's unless preserve_host"
    );
    assert!(h.get("x-hop").is_none() && h.get(header::CONNECTION).is_none());
    for denied in ["x-original-url", "x-http-method-override", "true-client-ip"] {
        assert!(h.get(denied).is_none(), "{denied} forwarded");
    }
    assert_eq!(h["x-request-id"], ex.request_id.as_str());

    // preserve_host sends the checked host, not whatever Host said.
    let mut ex = exchange("192.0.2.9:1234", false);
    ex.host = Some("api.bank.example:8443".into());
    let mut h = http::HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("other.example"));
    prepare_headers(
        &mut h,
        &ex,
        ex.principal.as_deref(),
        &HeaderName::from_static("x-request-id"),
        true,
        &Default::default(),
        "u",
    )
    .unwrap();
    assert_eq!(h[header::HOST], "api.bank.example:8443");
    assert_eq!(
        h[header::FORWARDED],
        "for=192.0.2.9;proto=http;host=\"api.bank.example:8443\""
    );
}

#[test]
fn http2_cookies_are_joined_for_the_upstream() {
    let mut ex = exchange("192.0.2.9:1234", true);
    ex.version = http::Version::HTTP_2;
    let mut h = http::HeaderMap::new();
    h.append(header::COOKIE, HeaderValue::from_static("a=1"));
    h.append(header::COOKIE, HeaderValue::from_static("b=2"));
    prepare_headers(
        &mut h,
        &ex,
        ex.principal.as_deref(),
        &HeaderName::from_static("x-request-id"),
        false,
        &Default::default(),
        "u",
    )
    .unwrap();
    assert_eq!(h.get_all(header::COOKIE).iter().collect::<Vec<_>>(), ["a=1; b=2"]);
}

#[test]
fn only_safe_methods_are_idempotent() {
    for m in [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
    ] {
        assert!(is_idempotent(&m));
    }
    for m in [Method::POST, Method::PATCH, Method::CONNECT] {
        assert!(!is_idempotent(&m));
    }
}

#[test]
fn configuration_problems_are_all_reported() {
    let text = "[[upstreams]]\nname = \"\"\ntargets = []\nretries = 9\nconnect_timeout = \"0s\"\n[upstreams.tls]\nclient_cert = \"c.pem\"\n";
    let loaded = LoadedConfig::from_text(Path::new("p.toml"), text.into()).unwrap();
    let p =
        Upstream::from_config(0, &loaded.config.upstreams[0], &loaded, FakeClock::at_unix(0)).unwrap_err();
    let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "upstreams[0].name",
        "upstreams[0].targets",
        "upstreams[0].retries",
        "upstreams[0].connect_timeout",
        "upstreams[0].tls",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
}
