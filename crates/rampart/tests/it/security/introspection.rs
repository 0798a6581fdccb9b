//! Opaque tokens checked by RFC 7662 introspection, through the real
//! gateway against a real local HTTPS authorization server: an active token
//! is accepted and its identity forwarded, an inactive one refused with
//! 401 `invalid_token`, and an unreachable endpoint fails closed (401
//! `invalid_token`; cause `authn.introspection_unavailable` on /metrics).
//! Nothing refused reaches the upstream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;
use rampart_testkit::{Harness, RecordingUpstream};
use serde_json::{json, Value};

const ISS: &str = "https://as.bank.test";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An HTTPS authorization server on 127.0.0.1:0: POST /introspect answers
/// from a table (unknown tokens are inactive) when the client
/// authenticates as `rampart`, else 401.
struct AuthServer {
    url: String,
    ca_pem: String,
    calls: Arc<AtomicUsize>,
    answers: Arc<Mutex<HashMap<String, Value>>>,
}

impl AuthServer {
    async fn start() -> Self {
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        use rustls_pki_types::pem::PemObject;

        let pki = rampart::demo::pki::TestPki::generate(&["127.0.0.1"]).unwrap();
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/introspect", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let answers: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let (c, a) = (calls.clone(), answers.clone());
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("rampart:introspection-secret")
        );
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, c, a, expected) = (acceptor.clone(), c.clone(), a.clone(), expected.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (c, a, expected) = (c.clone(), a.clone(), expected.clone());
                        async move {
                            use http_body_util::BodyExt;
                            c.fetch_add(1, Ordering::SeqCst);
                            let authed = req.headers().get("authorization").map(|v| v.as_bytes())
                                == Some(expected.as_bytes());
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body = String::from_utf8(body.to_vec()).unwrap();
                            let token = body
                                .split('&')
                                .find_map(|kv| kv.strip_prefix("token="))
                                .unwrap_or("");
                            let (status, answer) = if authed {
                                let answer = a.lock().unwrap().get(token).cloned();
                                (200, answer.unwrap_or_else(|| json!({"active": false})))
                            } else {
                                (401, json!({"error": "invalid_client"}))
                            };
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(answer.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self {
            url,
            ca_pem: pki.ca_cert_pem,
            calls,
            answers,
        }
    }
}

async fn gateway(introspection_url: &str, ca_pem: &str) -> Harness {
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        r#"{base}
[[issuers]]
name = "bank-as"
issuer = "{ISS}"
audiences = ["https://api.bank.test"]
introspection_url = "{introspection_url}"
introspection_client_id = "rampart"
introspection_client_secret_file = "introspection.secret"
ca_file = "as-ca.pem"
introspection_timeout = "500ms"

[[routes]]
id = "accounts-list"
path = "/v1/accounts"
methods = ["GET"]
upstream = "backend"
authn = ["introspect:bank-as"]
authz = "authenticated"
"#,
        base = rampart_testkit::base_policy(&upstream.url()),
    );
    Harness::start_with_files(
        upstream,
        &policy,
        &[
            ("introspection.secret", "introspection-secret\n"),
            ("as-ca.pem", ca_pem),
        ],
    )
    .await
}

#[tokio::test]
async fn an_opaque_token_is_accepted_via_introspection_and_an_inactive_one_refused() {
    let server = AuthServer::start().await;
    server.answers.lock().unwrap().insert(
        "opaque-active-token".into(),
        json!({
            "active": true, "iss": ISS, "aud": "https://api.bank.test",
            "sub": "customer-a", "client_id": "fintech-42", "scope": "accounts:read",
            "exp": now() + 300,
        }),
    );
    let h = gateway(&server.url, &server.ca_pem).await;
    let c = h.client();
    let call = |token: &str| {
        let auth = format!("Bearer {token}");
        let c = &c;
        async move {
            c.send(Method::GET, "/v1/accounts", &[("authorization", &auth)], "")
                .await
        }
    };
    let r = call("opaque-active-token").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let last = h.upstream.requests().pop().unwrap();
    assert!(
        last.headers.get("authorization").is_none(),
        "the token went upstream"
    );
    assert_eq!(last.headers["x-authenticated-subject"], "customer-a");
    assert_eq!(last.headers["x-authenticated-client-id"], "fintech-42");
    assert_eq!(last.headers["x-authenticated-issuer"], "bank-as");
    // Cached: a second request does not ask again.
    assert_eq!(call("opaque-active-token").await.status, 200);
    assert_eq!(server.calls.load(Ordering::SeqCst), 1);

    let forwarded = h.upstream.count();
    let r = call("opaque-revoked-token").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(!r.text().contains("active"), "{}", r.text());
    assert_eq!(
        h.upstream.count(),
        forwarded,
        "a refused request reached the upstream"
    );
    // The sanity call: the good token still works.
    assert_eq!(call("opaque-active-token").await.status, 200);
}

#[tokio::test]
async fn an_unreachable_introspection_endpoint_fails_closed() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/introspect", closed.local_addr().unwrap());
    drop(closed);
    let server = AuthServer::start().await;
    let h = gateway(&url, &server.ca_pem).await;
    let r = h
        .client()
        .send(
            Method::GET,
            "/v1/accounts",
            &[("authorization", "Bearer opaque-active-token")],
            "",
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    assert_eq!(h.upstream.count(), 0);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("cause=\"authn.introspection_unavailable\""),
        "{metrics}"
    );
}
