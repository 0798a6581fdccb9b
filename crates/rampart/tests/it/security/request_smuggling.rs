//! Threat: a request that the gateway and the backend read differently:
//! two hosts (absolute-form target vs `Host`, or `Host` twice), a body on a
//! method that takes none, conflicting framing headers, or headers that some
//! frameworks obey as instructions (`X-Original-URL`, method overrides).
//! Method: raw bytes over real TLS; the gateway refuses (400, problem+json)
//! and the recording upstream sees nothing, or sees the request without the
//! instruction. A valid request after each attack proves the refusal was not
//! vacuous. Header values holding NUL, CR or LF do not even reach the
//! pipeline: the HTTP/1.1 parser answers a bare 400 and closes.

use std::time::Duration;

use http::Method;
use rampart_testkit::{raw_tls, Harness};

use crate::ROUTES;

async fn raw(h: &Harness, req: &str) -> String {
    raw_tls(
        &h.pki.ca_cert_pem,
        h.addr(),
        req.as_bytes(),
        Duration::from_millis(800),
    )
    .await
}

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn ambiguous_hosts_are_refused() {
    let h = Harness::start(ROUTES).await;
    let port = h.addr().port();
    for req in [
        format!("GET /v1/accounts HTTP/1.1\r\nHost: localhost:{port}\r\nHost: internal.bank\r\nConnection: close\r\n\r\n"),
        format!("GET https://localhost:{port}/v1/accounts HTTP/1.1\r\nHost: internal.bank\r\nConnection: close\r\n\r\n"),
        "GET /v1/accounts HTTP/1.1\r\nHost: bad host!\r\nConnection: close\r\n\r\n".to_string(),
    ] {
        let resp = raw(&h, &req).await;
        assert_eq!(status_of(&resp), 400, "{req:?} -> {resp}");
        assert!(resp.contains("invalid-host"), "{resp}");
        assert!(!resp.contains("internal.bank"), "input echoed: {resp}");
    }
    assert_eq!(h.upstream.count(), 0);
    let ok = raw(&h, &format!("GET https://localhost:{port}/v1/accounts HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")).await;
    assert_eq!(status_of(&ok), 200, "{ok}");
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn a_body_on_get_is_refused() {
    let h = Harness::start(ROUTES).await;
    for req in [
        "GET /v1/accounts HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        "GET /v1/accounts HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let resp = raw(&h, req).await;
        assert_eq!(status_of(&resp), 400, "{resp}");
        assert!(resp.contains("body-not-allowed"), "{resp}");
    }
    assert_eq!(h.upstream.count(), 0);
    let ok = raw(
        &h,
        "GET /v1/accounts HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ok), 200, "{ok}");
}

#[tokio::test]
async fn conflicting_framing_never_reaches_the_upstream_as_two_requests() {
    let h = Harness::start(ROUTES).await;
    // CL.TE: hyper reads the body by Transfer-Encoding, drops Content-Length
    // and closes the connection after answering (RFC 9112 §6.3), so the
    // request hidden in the body is never parsed as a request.
    let req = "POST /v1/payments HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /internal/admin HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let resp = raw(&h, req).await;
    assert_eq!(
        resp.matches("HTTP/1.1 ").count(),
        1,
        "the smuggled request was answered: {resp}"
    );
    assert!(resp.to_ascii_lowercase().contains("connection: close"), "{resp}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = h.upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/v1/payments");
    assert!(seen[0].body.is_empty());
    assert!(
        seen[0].headers.get("transfer-encoding").is_none() || seen[0].headers.get("content-length").is_none()
    );
}

#[tokio::test]
async fn instruction_headers_are_not_forwarded() {
    let h = Harness::start(ROUTES).await;
    let r = h
        .client()
        .send(
            Method::POST,
            "/v1/payments",
            &[
                ("x-original-url", "/internal/admin"),
                ("x-rewrite-url", "/internal/admin"),
                ("x-http-method-override", "DELETE"),
                ("x-method-override", "DELETE"),
                ("true-client-ip", "10.0.0.1"),
                ("x-forwarded-prefix", "/internal"),
            ],
            "{}",
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = &h.upstream.requests()[0];
    for name in [
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-method-override",
        "true-client-ip",
        "x-forwarded-prefix",
    ] {
        assert!(seen.headers.get(name).is_none(), "{name} reached the upstream");
    }
    assert_eq!(seen.method, Method::POST);
}

/// Issue 6 item 2: a header value holding NUL, a bare CR, or a line break
/// (an obs-fold continuation, or a lone LF inside the value) is refused
/// before anything is forwarded: a backend that reads the value
/// differently (cut at the NUL, split at the CR) would otherwise see
/// headers the gateway never checked. The refusal is hyper's (a bare 400,
/// then the connection closes), not a problem document: the request never
/// reaches the pipeline. Each attempt on its own connection, then a clean
/// request that passes.
#[tokio::test]
async fn header_values_with_nul_cr_or_lf_are_refused() {
    let h = Harness::start(ROUTES).await;
    for (what, value) in [
        ("NUL", "acc-1001\0admin"),
        ("bare CR", "acc-1001\rX-Role: admin"),
        ("obs-fold", "acc-1001\r\n X-Role: admin"),
        ("lone LF", "acc-1001\nadmin"),
    ] {
        let req = format!(
            "GET /v1/accounts HTTP/1.1\r\nHost: localhost\r\nX-Customer: {value}\r\nConnection: close\r\n\r\n"
        );
        let resp = raw(&h, &req).await;
        assert_eq!(status_of(&resp), 400, "{what}: {resp:?}");
        assert!(!resp.contains("admin"), "{what}: input echoed: {resp:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.upstream.count(), 0, "{:?}", h.upstream.requests());
    let ok = raw(
        &h,
        "GET /v1/accounts HTTP/1.1\r\nHost: localhost\r\nX-Customer: acc-1001 admin\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ok), 200, "{ok}");
    let seen = h.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-customer"], "acc-1001 admin");
}
