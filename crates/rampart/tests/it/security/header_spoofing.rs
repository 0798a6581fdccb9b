//! Threat: a client forging forwarding headers (`X-Forwarded-For`,
//! `Forwarded`, `X-Real-IP`) to look like an internal caller, or smuggling
//! hop-by-hop headers to the backend. Method: send forged headers through
//! the gateway; the recording upstream must see the gateway's own view
//! (the loopback peer), and no hop-by-hop header.

use http::Method;
use rampart_testkit::Harness;

use crate::ROUTES;

#[tokio::test]
async fn forwarding_headers_are_replaced_not_trusted() {
    let h = Harness::start(ROUTES).await;
    let r = h
        .client()
        .send(
            Method::GET,
            "/v1/accounts",
            &[
                ("x-forwarded-for", "10.0.0.1"),
                ("forwarded", "for=10.0.0.1;proto=https"),
                ("x-real-ip", "10.0.0.1"),
                ("x-forwarded-host", "internal.bank"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = &h.upstream.requests()[0];
    let all = |name: &str| {
        seen.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(all("forwarded").len(), 1);
    assert!(
        all("forwarded")[0].starts_with("for=127.0.0.1;proto=https"),
        "{:?}",
        all("forwarded")
    );
    assert!(all("x-real-ip").is_empty());
    assert_eq!(all("x-forwarded-proto"), vec!["https"]);
    assert!(!format!("{:?}", seen.headers).contains("10.0.0.1"));
    assert!(!format!("{:?}", seen.headers).contains("internal.bank"));
}

#[tokio::test]
async fn hop_by_hop_and_connection_named_headers_do_not_reach_the_upstream() {
    let h = Harness::start(ROUTES).await;
    let r = h
        .client()
        .send(
            Method::GET,
            "/v1/accounts",
            &[
                ("connection", "x-secret-hop"),
                ("x-secret-hop", "1"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = &h.upstream.requests()[0];
    for name in ["x-secret-hop", "proxy-authorization", "te", "connection"] {
        assert!(seen.headers.get(name).is_none(), "{name} reached the upstream");
    }
}

#[tokio::test]
async fn request_id_and_interaction_id_are_passed_on_and_returned() {
    let h = Harness::start(ROUTES).await;
    let fapi = "c7a8ed6e-1c6b-4b36-b2e1-4b1d1e0e7f11";
    let r = h
        .client()
        .send(
            Method::GET,
            "/v1/accounts",
            &[("x-fapi-interaction-id", fapi), ("x-request-id", "forged")],
            "",
        )
        .await;
    assert_eq!(r.header("x-fapi-interaction-id"), Some(fapi));
    let rid = r.header("x-request-id").unwrap().to_string();
    assert_ne!(rid, "forged");
    let seen = &h.upstream.requests()[0];
    assert_eq!(seen.headers["x-fapi-interaction-id"], fapi);
    assert_eq!(seen.headers["x-request-id"], rid.as_str());
    // A malformed interaction id is replaced by a fresh UUID.
    let r = h
        .client()
        .send(
            Method::GET,
            "/v1/accounts",
            &[("x-fapi-interaction-id", "<script>")],
            "",
        )
        .await;
    let id = r.header("x-fapi-interaction-id").unwrap();
    assert_eq!(id.len(), 36, "{id}");
    assert_ne!(id, "<script>");
}
