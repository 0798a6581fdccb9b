//! Invariant 1, asserted from outside: TLS 1.3 and TLS 1.2 with ECDHE+AEAD
//! succeed; TLS 1.0/1.1, CBC suites and static-RSA key exchange are refused.
//! Uses rustls clients pinned to one version, and the real `openssl
//! s_client` for what rustls cannot even offer. (Renegotiation does not exist
//! in rustls at all; it is not tested here.)

use std::sync::Arc;

use rampart_testkit::Harness;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::ROUTES;

async fn handshake(
    h: &Harness,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<(rustls::ProtocolVersion, Option<Vec<u8>>), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(h.pki.ca_cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tls = conn
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let s = tls.get_ref().1;
    Ok((
        s.protocol_version().unwrap(),
        s.alpn_protocol().map(|a| a.to_vec()),
    ))
}

#[tokio::test]
async fn tls13_and_tls12_handshakes_succeed_with_alpn() {
    let h = Harness::start(ROUTES).await;
    let (v, alpn) = handshake(&h, &rustls::version::TLS13).await.unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (v, _) = handshake(&h, &rustls::version::TLS12).await.unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_2);
}

/// Runs `openssl s_client` with `args` against the gateway; true if a
/// session was established.
async fn openssl_connects(h: &Harness, args: &[&str]) -> (bool, String) {
    let ca = h.path("ca.pem");
    let out = tokio::process::Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(h.addr().to_string())
        .arg("-servername")
        .arg("localhost")
        .arg("-CAfile")
        .arg(&ca)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl is installed by scripts/test.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A completed handshake prints the negotiated cipher; a refused one
    // prints `Cipher is (NONE)` or only an alert.
    let connected = out.status.success() && text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (connected, text)
}

#[tokio::test]
async fn openssl_sees_only_modern_tls() {
    let h = Harness::start(ROUTES).await;
    // Sanity: openssl itself can connect with an allowed configuration, so
    // the refusals below are not vacuous.
    let (ok, text) = openssl_connects(&h, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]).await;
    assert!(ok, "TLS 1.2 AEAD refused: {text}");
    let (ok, text) = openssl_connects(&h, &["-tls1_3"]).await;
    assert!(ok, "TLS 1.3 refused: {text}");
    // Old protocol versions (SECLEVEL=0 so that the client offers them).
    for v in ["-tls1", "-tls1_1"] {
        let (ok, text) = openssl_connects(&h, &[v, "-cipher", "DEFAULT:@SECLEVEL=0"]).await;
        assert!(!ok, "{v} accepted: {text}");
    }
    // CBC suites, and a static-RSA suite, over TLS 1.2.
    for suite in [
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
        "AES128-GCM-SHA256",
    ] {
        let (ok, text) = openssl_connects(&h, &["-tls1_2", "-cipher", suite]).await;
        assert!(!ok, "{suite} accepted: {text}");
    }
}

fn with_client_auth(mode: &str) -> impl Fn(&str) -> String + '_ {
    move |upstream_url: &str| {
        rampart_testkit::base_policy(upstream_url).replace(
            "key = \"server.key\"\n",
            &format!("key = \"server.key\"\nclient_auth = \"{mode}\"\nclient_ca = \"ca.pem\"\n"),
        ) + ROUTES
    }
}

#[tokio::test]
async fn required_client_certificates_are_enforced_in_the_handshake() {
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let policy = with_client_auth("required")(&upstream.url());
    let h = Harness::start_with(upstream, &policy).await;
    let pki = &h.pki;
    let with = rampart_testkit::Client::with_identity(
        &pki.ca_cert_pem,
        h.addr(),
        rampart_testkit::Alpn::Http1,
        &pki.client_cert_pem,
        &pki.client_key_pem,
    );
    assert_eq!(with.get("/v1/accounts").await.status, 200);
    let without = h
        .client()
        .try_send(http::Method::GET, "/v1/accounts", &[], "")
        .await;
    assert!(without.is_err(), "served without a client certificate");
    // A certificate from another CA is refused too.
    let other = TestPkiAlias::generate(&["localhost"]).unwrap();
    let foreign = rampart_testkit::Client::with_identity(
        &pki.ca_cert_pem,
        h.addr(),
        rampart_testkit::Alpn::Http1,
        &other.client_cert_pem,
        &other.client_key_pem,
    );
    assert!(foreign
        .try_send(http::Method::GET, "/v1/accounts", &[], "")
        .await
        .is_err());
    assert_eq!(h.upstream.count(), 1);
}

use rampart_testkit::TestPki as TestPkiAlias;

#[tokio::test]
async fn optional_client_certificates_admit_both() {
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let policy = with_client_auth("optional")(&upstream.url());
    let h = Harness::start_with(upstream, &policy).await;
    let pki = &h.pki;
    let with = rampart_testkit::Client::with_identity(
        &pki.ca_cert_pem,
        h.addr(),
        rampart_testkit::Alpn::Http2,
        &pki.client_cert_pem,
        &pki.client_key_pem,
    );
    assert_eq!(with.get("/v1/accounts").await.status, 200);
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
}

#[tokio::test]
async fn a_reload_re_reads_the_server_certificate_for_new_connections() {
    let h = Harness::start(ROUTES).await;
    let old_client = h.client();
    assert_eq!(old_client.get("/v1/accounts").await.status, 200);
    let new_pki = TestPkiAlias::generate(&["localhost"]).unwrap();
    std::fs::write(h.path("server.pem"), &new_pki.server_cert_pem).unwrap();
    std::fs::write(h.path("server.key"), &new_pki.server_key_pem).unwrap();
    let r = rampart_testkit::admin_request(
        http::Method::POST,
        &h.admin_url("/admin/reload"),
        Some(rampart_testkit::ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new_client =
        rampart_testkit::Client::new(&new_pki.ca_cert_pem, h.addr(), rampart_testkit::Alpn::Http1);
    assert_eq!(new_client.get("/v1/accounts").await.status, 200);
    let fresh_old = h.client();
    assert!(fresh_old
        .try_send(http::Method::GET, "/v1/accounts", &[], "")
        .await
        .is_err());
}
