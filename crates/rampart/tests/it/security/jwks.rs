//! The issuer's key endpoint under attack and outage, through the real
//! gateway and a real HTTPS JWKS server (the test CA): a flood of tokens
//! naming unknown `kid`s makes the gateway fetch the JWKS once, not once per
//! token; and while the endpoint is down, the keys already loaded keep
//! working.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::Algorithm;
use rampart::authn::sign::SigningKey;
use rampart_testkit::{Harness, RecordingUpstream, TestPki};
use rustls_pki_types::pem::PemObject;
use serde_json::json;

/// A JWKS endpoint that counts its fetches and can be taken down (503).
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

async fn jwks_server(pki: &TestPki, jwks: String) -> JwksServer {
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
    let cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}/jwks.json", tcp.local_addr().unwrap().port());
    let (fetches, down) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let (f, d, body) = (fetches.clone(), down.clone(), Bytes::from(jwks));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = tcp.accept().await else {
                continue;
            };
            let (acceptor, f, d, body) = (acceptor.clone(), f.clone(), d.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    f.fetch_add(1, Ordering::SeqCst);
                    let resp = if d.load(Ordering::SeqCst) {
                        Response::builder()
                            .status(503)
                            .body(Full::new(Bytes::new()))
                            .unwrap()
                    } else {
                        Response::new(Full::new(body.clone()))
                    };
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    JwksServer { url, fetches, down }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn token(key: &SigningKey) -> String {
    key.mint(&json!({
        "iss": "https://idp.bank.test", "aud": "https://api.bank.test", "sub": "customer-a",
        "iat": now(), "exp": now() + 300, "jti": rampart::authn::sign::random_id(),
    }))
    .unwrap()
}

async fn get(h: &Harness, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    h.client()
        .send(
            Method::GET,
            "/v1/accounts",
            &[("authorization", auth.as_str())],
            "",
        )
        .await
        .status
        .as_u16()
}

/// A JWKS server with a CA of its own (the IdP's), and a gateway that
/// trusts that CA for the issuer (`ca_file`), with a refresh floor of one
/// second (and a schedule of an hour, so that only unknown kids fetch).
async fn setup(jwks: String) -> (Harness, JwksServer) {
    let pki = TestPki::generate(&["localhost", "127.0.0.1"]).unwrap();
    let server = jwks_server(&pki, jwks).await;
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        r#"{}
[brute_force]
enabled = false

[[issuers]]
name = "bank-idp"
issuer = "https://idp.bank.test"
audiences = ["https://api.bank.test"]
jwks_url = "{}"
ca_file = "idp-ca.pem"
jwks_min_refresh = "1s"
jwks_refresh = "1h"

[[routes]]
id = "accounts-list"
path = "/v1/accounts"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = "authenticated"
"#,
        rampart_testkit::base_policy(&upstream.url()),
        server.url
    );
    let h = Harness::start_with_files(upstream, &policy, &[("idp-ca.pem", &pki.ca_cert_pem)]).await;
    (h, server)
}

async fn wait_for_keys(h: &Harness, good: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(h, good).await != 200 {
        assert!(Instant::now() < deadline, "the gateway never loaded the JWKS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_jwks_once() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (h, server) = setup(key.jwks().to_string()).await;
    wait_for_keys(&h, &token(&key)).await;
    // Past the floor since the first load: one refresh is allowed now.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // 200 tokens, each under a kid the JWKS does not have, made first.
    let strangers: Vec<String> = (0..200)
        .map(|_| token(&SigningKey::generate(Algorithm::ES256).unwrap()))
        .collect();
    let before = server.fetches.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in strangers {
        let c = h.client_h2();
        tasks.spawn(async move {
            let auth = format!("Bearer {t}");
            c.send(
                Method::GET,
                "/v1/accounts",
                &[("authorization", auth.as_str())],
                "",
            )
            .await
            .status
            .as_u16()
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    let extra = server.fetches.load(Ordering::SeqCst) - before;
    // One fetch, and at most one more per floor (1s) if a loaded machine
    // stretches the flood past it: never one per unknown kid.
    let allowed = 1 + started.elapsed().as_secs() as usize;
    assert!(
        (1..=allowed).contains(&extra),
        "unknown kids fetched the JWKS {extra} times in {:?}",
        started.elapsed()
    );
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn keys_already_loaded_keep_working_while_the_jwks_endpoint_is_down() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (h, server) = setup(key.jwks().to_string()).await;
    let good = token(&key);
    wait_for_keys(&h, &good).await;
    server.down.store(true, Ordering::SeqCst);
    // Past the floor, an unknown kid makes the gateway try the (now
    // failing) endpoint...
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = server.fetches.load(Ordering::SeqCst);
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    assert_eq!(get(&h, &token(&stranger)).await, 401);
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        before + 1,
        "no refresh was tried"
    );
    // ...and the keys it had still verify new tokens (each a new jti, so
    // no verdict cache helps).
    for _ in 0..3 {
        assert_eq!(get(&h, &token(&key)).await, 200);
    }
}
