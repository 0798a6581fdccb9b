//! Rate limits end to end: 429 with Retry-After and the IETF RateLimit
//! headers, counters per key, counters that survive a reload.

use http::Method;
use rampart_testkit::{admin_request, Client, Harness, ADMIN_TOKEN};

use crate::ROUTES;

/// ROUTES with a limit on `accounts-list`.
fn limited(limit: &str) -> String {
    ROUTES.replacen(
        "id = \"accounts-list\"\npath = \"/v1/accounts\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\n",
        &format!(
            "id = \"accounts-list\"\npath = \"/v1/accounts\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\n\n[[routes.rate_limit]]\n{limit}\n"
        ),
        1,
    )
}

#[tokio::test]
async fn a_client_over_its_limit_gets_429_with_retry_after_and_ratelimit_headers() {
    let h = Harness::start(&limited("limit = 3\nper = \"1m\"")).await;
    let c = h.client();
    for left in [2, 1, 0] {
        let r = c.get("/v1/accounts").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-policy"), Some("\"default\";q=3;w=60"));
        let state = r.header("ratelimit").unwrap();
        assert!(state.starts_with(&format!("\"default\";r={left};t=")), "{state}");
    }
    let r = c.get("/v1/accounts").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["type"], "https://rampart.dev/problems/rate-limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-policy"), Some("\"default\";q=3;w=60"));
    assert!(r.header("ratelimit").unwrap().starts_with("\"default\";r=0;t="));
    assert_eq!(h.upstream.count(), 3, "the refused request reached the upstream");
    // Another client address has its own counter; unlimited routes are free.
    let other = Client::from_address(&h.pki.ca_cert_pem, h.addr(), "127.0.0.2".parse().unwrap());
    assert_eq!(other.get("/v1/accounts").await.status, 200);
    let r = c.get("/v1/accounts/acc-1").await;
    assert_eq!(r.status, 200);
    assert!(r.header("ratelimit").is_none());
    let m = h.metrics().await;
    assert!(m.contains(r#"rampart_requests_total{route="accounts-list",method="GET",status="429",outcome="rate-limited"} 1"#), "{m}");
}

#[tokio::test]
async fn counters_can_be_kept_per_header_value() {
    let h = Harness::start(&limited(
        "algorithm = \"fixed_window\"\nlimit = 1\nper = \"1h\"\nkey = \"header:x-partner-id\"",
    ))
    .await;
    let c = h.client();
    let get = |id: &'static str| {
        let c = c.clone();
        async move {
            c.send(Method::GET, "/v1/accounts", &[("x-partner-id", id)], "")
                .await
                .status
        }
    };
    assert_eq!(get("fintech-a").await, 200);
    assert_eq!(get("fintech-a").await, 429);
    assert_eq!(get("fintech-b").await, 200);
}

#[tokio::test]
async fn a_reload_keeps_the_counters() {
    let h = Harness::start(&limited(
        "algorithm = \"sliding_window_log\"\nlimit = 2\nper = \"1m\"",
    ))
    .await;
    let c = h.client();
    assert_eq!(c.get("/v1/accounts").await.status, 200);
    assert_eq!(c.get("/v1/accounts").await.status, 200);
    assert_eq!(c.get("/v1/accounts").await.status, 429);
    let r = admin_request(Method::POST, &h.admin_url("/admin/reload"), Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        c.get("/v1/accounts").await.status,
        429,
        "a reload must not reset limits"
    );
}

#[tokio::test]
async fn a_route_at_its_in_flight_ceiling_sheds_with_503() {
    let routes = ROUTES.replace("timeout = \"500ms\"", "timeout = \"5s\"\nmax_in_flight = 1");
    assert_ne!(routes, ROUTES);
    let h = Harness::start(&routes).await;
    let c = h.client();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.get("/delay/600").await.status })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = c.get("/delay/1").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["type"], "https://rampart.dev/problems/overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Other routes are not affected; once the slow one is done, the route
    // admits again.
    assert_eq!(c.get("/v1/accounts").await.status, 200);
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(c.get("/delay/1").await.status, 200);
}

#[tokio::test]
async fn the_gateway_wide_ceiling_sheds_load() {
    let routes = format!(
        "{}\n[concurrency]\nmax_in_flight = 1\n",
        ROUTES.replace("timeout = \"500ms\"", "timeout = \"5s\"")
    );
    let h = Harness::start(&routes).await;
    let c = h.client();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.get("/delay/600").await.status })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(c.get("/v1/accounts").await.status, 503);
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(c.get("/v1/accounts").await.status, 200);
}

/// `max_in_flight` on an upstream counts every route to it, and only
/// them: with one request waiting on `backend`, another route to
/// `backend` is shed too, while a route to another upstream is not.
#[tokio::test]
async fn an_upstream_at_its_in_flight_ceiling_sheds_with_503() {
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let base = rampart_testkit::base_policy(&upstream.url());
    let policy = format!(
        "{}max_in_flight = 1\n\n[[upstreams]]\nname = \"other\"\ntargets = [\"{}\"]\n\n{}",
        base,
        upstream.url(),
        ROUTES
            .replace("timeout = \"500ms\"", "timeout = \"5s\"")
            .replacen(
                "path = \"/v1/accounts\"\nmethods = [\"GET\"]\nupstream = \"backend\"",
                "path = \"/v1/accounts\"\nmethods = [\"GET\"]\nupstream = \"other\"",
                1
            )
    );
    assert!(base.ends_with("request_timeout = \"5s\"\n"), "{base}");
    assert!(policy.contains("upstream = \"other\""));
    let h = Harness::start_with(upstream, &policy).await;
    let c = h.client();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.get("/delay/1500").await.status })
    };
    // The slow request holds the upstream's one place once it is there.
    crate::redis::wait_until("the slow request reached the upstream", || {
        h.upstream.count() == 1
    })
    .await;
    for path in ["/delay/1", "/status/200"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 503, "{path}");
        assert_eq!(r.json()["type"], "https://rampart.dev/problems/overloaded");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert_eq!(h.upstream.count(), 1, "a shed request reached the upstream");
    // Another upstream (the same server, its own ceiling: none) is free.
    assert_eq!(c.get("/v1/accounts").await.status, 200);
    assert_eq!(slow.await.unwrap(), 200);
    // Once the slow one is done, the upstream admits again.
    assert_eq!(c.get("/status/200").await.status, 200);
}

/// Top-level `[[rate_limit]]` limits count a client across every route,
/// before each route's own limits.
#[tokio::test]
async fn global_limits_count_across_routes() {
    let h = Harness::start(&format!(
        "{}\n[[rate_limit]]\nname = \"per-client\"\nalgorithm = \"sliding_window_counter\"\nlimit = 3\nper = \"1h\"\n",
        limited("name = \"burst\"\nlimit = 10\nper = \"1m\"")
    ))
    .await;
    let c = h.client();
    let r = c.get("/v1/accounts").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"per-client\";q=3;w=3600, \"burst\";q=10;w=60")
    );
    assert!(r.header("ratelimit").unwrap().starts_with("\"per-client\";r=2;"));
    assert_eq!(c.get("/v1/accounts/acc-1").await.status, 200);
    assert_eq!(c.get("/status/200").await.status, 200);
    let r = c.get("/v1/accounts/acc-2").await;
    assert_eq!(r.status, 429);
    assert!(r.header("ratelimit").unwrap().starts_with("\"per-client\";r=0;"));
    // Another client has its own global counter.
    let other = Client::from_address(&h.pki.ca_cert_pem, h.addr(), "127.0.0.2".parse().unwrap());
    assert_eq!(other.get("/v1/accounts/acc-2").await.status, 200);
}
