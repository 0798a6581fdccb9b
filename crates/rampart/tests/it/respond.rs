//! What every response carries and what it never carries: RFC 9457 problem
//! documents for each refusal, security headers, no server software, no
//! upstream stack traces.

use http::Method;
use rampart_testkit::Harness;

use crate::ROUTES;

fn assert_problem(r: &rampart_testkit::TestResponse, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    let obj = p.as_object().unwrap();
    let mut keys: Vec<_> = obj.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["instance", "status", "title", "type"], "{p}");
    assert_eq!(p["type"], format!("https://rampart.dev/problems/{code}"));
    assert_eq!(p["status"], status);
    let rid = r.header("x-request-id").unwrap();
    assert_eq!(p["instance"], format!("urn:uuid:{rid}"));
    assert_security_headers(r);
}

fn assert_security_headers(r: &rampart_testkit::TestResponse) {
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("frame-ancestors 'none'")
    );
    assert!(r.header("x-fapi-interaction-id").is_some());
    assert!(r.header("server").is_none());
    assert!(r.header("x-powered-by").is_none());
}

#[tokio::test]
async fn every_refusal_is_a_problem_document() {
    let h = Harness::start(ROUTES).await;
    let c = h.client();
    // BadPath
    assert_problem(&c.get("/v1/accounts/a%2Fb").await, 400, "invalid-path");
    // UriTooLong (default limit 8192)
    let long = format!("/v1/accounts?q={}", "a".repeat(9000));
    assert_problem(&c.get(&long).await, 414, "uri-too-long");
    // HeadersTooLarge (default limit 32768)
    let big = "b".repeat(20_000);
    let r = c
        .send(
            Method::GET,
            "/v1/accounts",
            &[("x-one", big.as_str()), ("x-two", big.as_str())],
            "",
        )
        .await;
    assert_problem(&r, 431, "headers-too-large");
    // NoRoute
    assert_problem(&c.get("/nope").await, 404, "not-found");
    // MethodNotAllowed
    let r = c.send(Method::PUT, "/v1/payments", &[], "").await;
    assert_problem(&r, 405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    // Upstream timeout
    assert_problem(&c.get("/delay/2000").await, 504, "upstream-timeout");
    // Nothing refused reached the upstream (the timed-out one did, by design).
    assert_eq!(h.upstream.count(), 1);
    // Upstream unavailable is covered in proxy.rs (needs a dead target).
}

#[tokio::test]
async fn forwarded_responses_lose_leaky_headers_and_gain_security_headers() {
    let h = Harness::start(ROUTES).await;
    for c in [h.client(), h.client_h2()] {
        let r = c.get("/v1/accounts").await;
        assert_eq!(r.status, 200);
        assert_security_headers(&r);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn upstream_5xx_bodies_are_scrubbed_unless_the_route_says_pass() {
    let h = Harness::start(ROUTES).await;
    let r = h.client().get("/status/500").await;
    assert_problem(&r, 500, "upstream-error");
    let text = r.text();
    for leak in ["NullPointer", "Ledger.java", "core-db-7", "bank.internal"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    let r = h.client().get("/status/503").await;
    assert_problem(&r, 503, "upstream-error");
    // 4xx bodies are the API's own answers and pass.
    let r = h.client().get("/status/404").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("NullPointer"));
    // A route that opts out passes 5xx bodies (and `rampart check` warns).
    let r = h.client().get("/status/500/pass").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("NullPointer"));
    // Leaky headers go even then.
    assert!(r.header("server").is_none());
}

#[tokio::test]
async fn configured_headers_are_stripped_and_added() {
    let policy = format!(
        "{ROUTES}\n[response]\nstrip_headers = [\"content-type\"]\nadd_headers = {{ \"x-frame-options\" = \"DENY\" }}\n"
    );
    let h = Harness::start(&policy).await;
    let r = h.client().get("/v1/accounts").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_none());
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn redirects_to_the_upstream_itself_do_not_reveal_it() {
    let h = Harness::start(ROUTES).await;
    let r = h.client().get("/redirect/next").await;
    assert_eq!(r.status, 302);
    // The backend said http://127.0.0.1:<its port>/next?x=1.
    assert_eq!(r.header("location"), Some("/next?x=1"));
    // An absolute URL elsewhere is left alone.
    assert_eq!(r.header("content-location"), Some("https://idp.example/login"));
    assert!(!format!("{:?}", r.headers).contains(&h.upstream.addr.port().to_string()));
}
