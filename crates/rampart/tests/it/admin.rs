//! The admin listener: health, readiness, metrics, and token-guarded
//! reload, on its own port only.

use http::Method;
use rampart_testkit::{admin_request, Harness, ADMIN_TOKEN};

use crate::ROUTES;

#[tokio::test]
async fn health_and_readiness() {
    let h = Harness::start(ROUTES).await;
    let r = admin_request(Method::GET, &h.admin_url("/healthz"), None).await;
    assert_eq!(r.status, 200);
    let r = admin_request(Method::GET, &h.admin_url("/readyz"), None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_method_status_and_outcome() {
    let h = Harness::start(ROUTES).await;
    let c = h.client();
    for _ in 0..3 {
        assert_eq!(c.get("/v1/accounts").await.status, 200);
    }
    assert_eq!(c.get("/nope").await.status, 404);
    assert_eq!(c.get("/delay/2000").await.status, 504);
    let m = admin_request(Method::GET, &h.admin_url("/metrics"), None)
        .await
        .text();
    let has = |needle: &str| assert!(m.contains(needle), "missing {needle} in:\n{m}");
    has(r#"rampart_requests_total{route="accounts-list",method="GET",status="200",outcome="forwarded"} 3"#);
    has(r#"rampart_requests_total{route="unmatched",method="GET",status="404",outcome="not-found"} 1"#);
    has(r#"rampart_requests_total{route="delay",method="GET",status="504",outcome="upstream-timeout"} 1"#);
    has(r#"rampart_upstream_errors_total{upstream="backend",kind="timeout"} 1"#);
    has(r#"rampart_request_duration_seconds_count{route="accounts-list"} 3"#);
    has(r#"rampart_connections_total{listener="public"}"#);
    has(r#"rampart_open_connections{listener="public"}"#);
    has("rampart_policy_generation 1");
    assert!(m.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn reload_needs_the_admin_token() {
    let h = Harness::start(ROUTES).await;
    let url = h.admin_url("/admin/reload");
    let r = admin_request(Method::POST, &url, None).await;
    assert_eq!(r.status, 401);
    let r = admin_request(Method::POST, &url, Some("wrong-token-wrong-token-wrong")).await;
    assert_eq!(r.status, 401);
    let r = admin_request(Method::POST, &url, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 2);
}

#[tokio::test]
async fn admin_endpoints_are_not_on_the_data_plane() {
    let h = Harness::start(ROUTES).await;
    for p in ["/metrics", "/healthz", "/admin/reload"] {
        let r = h.client().get(p).await;
        assert_eq!(r.status, 404, "{p}");
        let r = h
            .client()
            .send(
                Method::POST,
                p,
                &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
                "",
            )
            .await;
        assert!(r.status == 404 || r.status == 405, "{p}");
    }
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn a_request_the_client_abandons_is_still_observed_once() {
    let h = Harness::start(&ROUTES.replace("timeout = \"500ms\"", "timeout = \"5s\"")).await;
    let c = h.client_h2();
    // Dropping the response future resets the HTTP/2 stream mid-request.
    let gone = tokio::time::timeout(std::time::Duration::from_millis(200), c.get("/delay/2000")).await;
    assert!(gone.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let m = admin_request(Method::GET, &h.admin_url("/metrics"), None)
        .await
        .text();
    assert!(
        m.contains(
            r#"rampart_requests_total{route="delay",method="GET",status="499",outcome="client-cancelled"} 1"#
        ),
        "{m}"
    );
    // The same connection still serves.
    assert_eq!(c.get("/v1/accounts").await.status, 200);
}
