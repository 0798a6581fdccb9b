//! Toward the upstream: TLS is always verified (custom CA), a client
//! certificate can be presented (mutual TLS), and both HTTP/1.1 and HTTP/2
//! are spoken.

use rampart_testkit::{base_policy, Harness, RecordingUpstream, TestPki};

use crate::ROUTES;

const UPSTREAM_TLS: &str = "[upstreams.tls]\nca = \"upstream-ca.pem\"\n";

fn policy(upstream_url: &str, extra: &str) -> String {
    // The [upstreams.tls] table must follow the upstream, before the routes.
    format!("{}{extra}\n{ROUTES}", base_policy(upstream_url))
}

#[tokio::test]
async fn upstream_tls_is_verified_against_the_configured_ca() {
    let upki = TestPki::generate(&["localhost"]).unwrap();
    let upstream = RecordingUpstream::start_tls(&upki.server_cert_pem, &upki.server_key_pem, None).await;
    let url = upstream.url().replace("127.0.0.1", "localhost");
    let h = Harness::start_with_files(
        upstream,
        &policy(&url, UPSTREAM_TLS),
        &[("upstream-ca.pem", &upki.ca_cert_pem)],
    )
    .await;
    let r = h.client().get("/v1/accounts").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.upstream.count(), 1);
    // ALPN chose HTTP/2 toward the upstream.
    assert_eq!(h.upstream.requests()[0].version, http::Version::HTTP_2);
    // Later requests, even concurrent ones, share that one connection.
    let c = h.client_h2();
    let all = futures_join(&c).await;
    assert!(all.iter().all(|s| *s == 200), "{all:?}");
    assert_eq!(h.upstream.count(), 9);
    assert_eq!(h.upstream.connections(), 1);
}

#[tokio::test]
async fn an_upstream_certificate_from_another_ca_is_refused() {
    let upki = TestPki::generate(&["localhost"]).unwrap();
    let other = TestPki::generate(&["localhost"]).unwrap();
    let upstream = RecordingUpstream::start_tls(&upki.server_cert_pem, &upki.server_key_pem, None).await;
    let url = upstream.url().replace("127.0.0.1", "localhost");
    let h = Harness::start_with_files(
        upstream,
        &policy(&url, UPSTREAM_TLS),
        &[("upstream-ca.pem", &other.ca_cert_pem)],
    )
    .await;
    let r = h.client().get("/v1/accounts").await;
    assert_eq!(r.status, 502);
    assert_eq!(h.upstream.count(), 0);
    assert!(!r.text().to_lowercase().contains("certificate"), "{}", r.text());
}

#[tokio::test]
async fn the_gateway_presents_its_client_certificate_to_an_mtls_upstream() {
    let upki = TestPki::generate(&["localhost"]).unwrap();
    let gw_identity = TestPki::generate(&["localhost"]).unwrap();
    let upstream = RecordingUpstream::start_tls(
        &upki.server_cert_pem,
        &upki.server_key_pem,
        Some(&gw_identity.ca_cert_pem),
    )
    .await;
    let url = upstream.url().replace("127.0.0.1", "localhost");
    let with_cert =
        format!("{UPSTREAM_TLS}client_cert = \"gw-client.pem\"\nclient_key = \"gw-client.key\"\n");
    let files = [
        ("upstream-ca.pem", upki.ca_cert_pem.as_str()),
        ("gw-client.pem", gw_identity.client_cert_pem.as_str()),
        ("gw-client.key", gw_identity.client_key_pem.as_str()),
    ];
    let h = Harness::start_with_files(upstream, &policy(&url, &with_cert), &files).await;
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
    assert_eq!(h.upstream.count(), 1);

    // Same upstream, no client certificate: the upstream refuses, 502.
    let upstream = RecordingUpstream::start_tls(
        &upki.server_cert_pem,
        &upki.server_key_pem,
        Some(&gw_identity.ca_cert_pem),
    )
    .await;
    let url = upstream.url().replace("127.0.0.1", "localhost");
    let h = Harness::start_with_files(upstream, &policy(&url, UPSTREAM_TLS), &files).await;
    assert_eq!(h.client().get("/v1/accounts").await.status, 502);
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn http2_with_prior_knowledge_to_a_plain_upstream() {
    let upstream = RecordingUpstream::start().await;
    let url = upstream.url();
    let h = Harness::start_with(upstream, &policy(&url, "protocol = \"http2\"\n")).await;
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
    assert_eq!(h.upstream.requests()[0].version, http::Version::HTTP_2);
    // Default toward plain HTTP is HTTP/1.1.
    let upstream = RecordingUpstream::start().await;
    let url = upstream.url();
    let h = Harness::start_with(upstream, &policy(&url, "")).await;
    assert_eq!(h.client_h2().get("/v1/accounts").await.status, 200);
    assert_eq!(h.upstream.requests()[0].version, http::Version::HTTP_11);
}

async fn futures_join(c: &rampart_testkit::Client) -> Vec<u16> {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.get("/v1/accounts").await.status.as_u16()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
