//! Forwarding: HTTP/1.1 and HTTP/2 from clients, bodies, upstream failures
//! and timeouts, retries only when safe.

use std::time::{Duration, Instant};

use http::Method;
use rampart_testkit::{base_policy, Harness, RecordingUpstream};

use crate::ROUTES;

#[tokio::test]
async fn http1_and_http2_clients_are_both_proxied() {
    let h = Harness::start(ROUTES).await;
    let r1 = h.client().get("/v1/accounts").await;
    assert_eq!(r1.status, 200);
    assert_eq!(r1.version, http::Version::HTTP_11);
    let r2 = h.client_h2().get("/v1/accounts").await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.version, http::Version::HTTP_2);
    assert_eq!(h.upstream.count(), 2);
    assert_eq!(r2.json()["target"], "/v1/accounts");
}

#[tokio::test]
async fn request_body_reaches_the_upstream_intact() {
    let h = Harness::start(ROUTES).await;
    let body = r#"{"debtor_account":"acc-1001","instructed_amount":{"amount":"125.00","currency":"EUR"}}"#;
    for c in [h.client(), h.client_h2()] {
        let r = c
            .send(
                Method::POST,
                "/v1/payments",
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let seen = h.upstream.requests();
    assert_eq!(seen.len(), 2);
    for s in seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.body, body.as_bytes());
    }
}

#[tokio::test]
async fn upstream_down_is_502_within_the_connect_timeout() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let upstream = RecordingUpstream::start().await;
    let policy = base_policy(&format!("http://127.0.0.1:{port}")) + ROUTES;
    let h = Harness::start_with(upstream, &policy).await;
    let t = Instant::now();
    let r = h.client().get("/v1/accounts").await;
    assert_eq!(r.status, 502);
    assert!(t.elapsed() < Duration::from_secs(1), "took {:?}", t.elapsed());
    let p = r.json();
    assert_eq!(p["type"], "https://rampart.dev/problems/upstream-unavailable");
    assert!(
        !r.text().contains(&port.to_string()),
        "upstream address leaked: {}",
        r.text()
    );
    assert!(!r.text().contains("127.0.0.1"));
}

#[tokio::test]
async fn slow_upstream_is_504_at_the_route_timeout() {
    let h = Harness::start(ROUTES).await;
    let t = Instant::now();
    let r = h.client().get("/delay/3000").await;
    assert_eq!(r.status, 504);
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(r.json()["type"], "https://rampart.dev/problems/upstream-timeout");
    // Sanity: a fast request on the same route passes.
    assert_eq!(h.client().get("/delay/1").await.status, 200);
}

#[tokio::test]
async fn only_idempotent_requests_are_retried_on_another_target() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let upstream = RecordingUpstream::start().await;
    let dead = format!("http://127.0.0.1:{port}");
    let policy = format!(
        "{}\nretries = 1\n[upstreams.health]\nmax_failures = 100\n{}",
        base_policy(&dead).replace(
            &format!("targets = [\"{dead}\"]"),
            &format!("targets = [\"{dead}\", \"{}\"]", upstream.url())
        ),
        ROUTES
    );
    let h = Harness::start_with(upstream, &policy).await;
    // Round robin starts with the dead target. A POST there fails with 502
    // and is not replayed on the live target: no duplicate payment.
    let r = h.client().send(Method::POST, "/v1/payments", &[], "{}").await;
    assert_eq!(r.status, 502);
    assert_eq!(h.upstream.count(), 0);
    // Next pick is the live target.
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
    // Then the dead one again: a GET is retried on the live target.
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
    assert_eq!(h.upstream.count(), 2);
}

#[tokio::test]
async fn upstream_connections_are_reused_for_fixed_and_chunked_responses() {
    let h = Harness::start(ROUTES).await;
    let c = h.client();
    for _ in 0..5 {
        assert_eq!(c.get("/v1/accounts").await.status, 200);
    }
    // /slow/1/1 answers with a chunked body (no content-length).
    for _ in 0..5 {
        let r = c.get("/slow/1/1").await;
        assert_eq!(r.text(), "chunk\n");
    }
    assert_eq!(h.upstream.count(), 10);
    assert_eq!(
        h.upstream.connections(),
        1,
        "each response should return its connection to the pool"
    );
}

#[tokio::test]
async fn a_response_body_that_stalls_is_cut_at_the_upstream_timeout() {
    let upstream = RecordingUpstream::start().await;
    let policy =
        base_policy(&upstream.url()).replace("request_timeout = \"5s\"", "request_timeout = \"1s\"") + ROUTES;
    let h = Harness::start_with(upstream, &policy).await;
    let t = Instant::now();
    // Headers at once, then one chunk every 3 s: the second one never comes
    // in time.
    let r = h.client().try_send(Method::GET, "/slow/3/3000", &[], "").await;
    let elapsed = t.elapsed();
    assert!(elapsed < Duration::from_millis(6000), "{elapsed:?}");
    if let Ok(resp) = r {
        assert_eq!(
            resp.status,
            200,
            "headers should have come through: {}",
            resp.text()
        );
        assert!(
            resp.text().len() < "chunk\n".len() * 3,
            "whole body arrived: {}",
            resp.text()
        );
    }
    // The gateway is fine afterwards.
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
}
