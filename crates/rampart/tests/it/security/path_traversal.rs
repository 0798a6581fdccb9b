//! Threat: path tricks that make a request match one route while the
//! backend serves another (OWASP API9/API5; CVE classes in Envoy, nginx,
//! Spring). Method: send each trick through real TLS; the gateway must refuse
//! it (400) or resolve it to a declared route, and the recording upstream
//! must never see an undeclared path, an encoded separator or a dot segment.

use rampart_testkit::Harness;

use crate::ROUTES;

#[tokio::test]
async fn encoded_separators_and_escapes_are_refused_before_routing() {
    let h = Harness::start(ROUTES).await;
    let c = h.client();
    for p in [
        "/v1/accounts/..%2Fpayments",
        "/v1/accounts/acc%2F1001",
        "/v1/accounts/acc%5C1001",
        "/v1/accounts/%2e%2e/%2e%2e/etc/passwd",
        "/%2e%2e/v1/accounts",
        "/v1/accounts/acc%00",
        "/v1/accounts/..;/payments",
        "/v1/accounts/;/balances",
        "/v1/accounts/acc-1/%252e%252e/%252e%252e/admin",
        "/v1/accounts/acc%252F1001",
        "/v1/accounts/%zz",
    ] {
        let r = c.get(p).await;
        assert!(r.status == 400 || r.status == 404, "{p}: {}", r.status);
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{p}");
        assert!(
            !r.text().contains("passwd") && !r.text().contains(".."),
            "{p}: input echoed"
        );
    }
    assert_eq!(h.upstream.count(), 0, "{:?}", h.upstream.requests());
    assert_eq!(c.get("/v1/accounts/acc-1001").await.status, 200);
}

#[tokio::test]
async fn encoded_dots_cannot_escape_a_route() {
    let h = Harness::start(ROUTES).await;
    // %2e%2e decodes to `..` and is resolved like `..`: the request becomes
    // `/v1/accounts/acc-2`, and that is what the upstream sees.
    let r = h.client().get("/v1/accounts/acc-1/%2e%2e/acc-2").await;
    assert_eq!(r.status, 200);
    assert_eq!(h.upstream.requests()[0].target, "/v1/accounts/acc-2");
    // `/v1/payments/%2E%2E/accounts` resolves to a GET route, not payments.
    let r = h.client().get("/v1/payments/%2E%2E/accounts").await;
    assert_eq!(r.status, 200);
    assert_eq!(h.upstream.requests()[1].target, "/v1/accounts");
}

#[tokio::test]
async fn duplicate_slashes_collapse() {
    let h = Harness::start(ROUTES).await;
    let r = h.client().get("//v1///accounts").await;
    assert_eq!(r.status, 200);
    assert_eq!(h.upstream.requests()[0].target, "/v1/accounts");
}
