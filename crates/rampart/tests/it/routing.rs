//! Router behaviour end to end: declared endpoints pass, everything else is
//! refused with problem+json and never reaches the upstream.

use http::Method;
use rampart_testkit::Harness;

use crate::ROUTES;

#[tokio::test]
async fn declared_route_is_forwarded_with_normalised_path_and_query() {
    let h = Harness::start(ROUTES).await;
    let r = h.client().get("/v1/accounts/acc-1001?x=1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = h.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/v1/accounts/acc-1001?x=1");
}

#[tokio::test]
async fn unknown_path_is_404_problem_and_not_forwarded() {
    let h = Harness::start(ROUTES).await;
    let r = h.client().get("/internal/admin").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    assert_eq!(p["type"], "https://rampart.dev/problems/not-found");
    assert_eq!(p["status"], 404);
    assert_eq!(h.upstream.count(), 0);
    // Sanity: the gateway does forward a declared path.
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let h = Harness::start(ROUTES).await;
    let r = h.client().send(Method::DELETE, "/v1/accounts", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(
        r.json()["type"],
        "https://rampart.dev/problems/method-not-allowed"
    );
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn trailing_slash_and_extra_segments_are_not_prefix_matches() {
    let h = Harness::start(ROUTES).await;
    for p in [
        "/v1/accounts/",
        "/v1/accounts/acc-1/extra",
        "/v1",
        "/v1/accountsX",
    ] {
        let r = h.client().get(p).await;
        assert_eq!(r.status, 404, "{p}");
    }
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn dot_segments_are_resolved_before_matching_and_forwarded_resolved() {
    let h = Harness::start(ROUTES).await;
    // `/v1/payments/../accounts` is `/v1/accounts`: it matches accounts-list
    // and the upstream receives the resolved path, never the dots.
    let r = h.client().get("/v1/payments/../accounts").await;
    assert_eq!(r.status, 200);
    assert_eq!(h.upstream.requests()[0].target, "/v1/accounts");
}
