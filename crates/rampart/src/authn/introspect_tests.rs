#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Introspection against a real local HTTPS authorization server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use serde_json::{json, Value};

use super::super::config::{DpopPolicy, IssuerConfig, IssuerPolicy};
use super::super::error::AuthnError;
use super::super::jwt::Issuer;
use super::super::{Authenticator, AuthnRequest, DpopVerifier, SenderBinding};
use crate::clock::FakeClock;

const ISS: &str = "https://as.bank.example";
const NOW: u64 = 1_700_000_000;

/// What the server saw of one call.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// An HTTPS authorization server on 127.0.0.1:0 answering POST
/// `/introspect` from a table (token → answer), counting calls; `fail`
/// answers 503, `slow` waits 3s first.
struct AuthServer {
    url: String,
    calls: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    answers: Arc<Mutex<HashMap<String, Value>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    dir: tempfile::TempDir,
}

impl AuthServer {
    async fn start() -> Self {
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        use rustls_pki_types::pem::PemObject;

        let pki = crate::demo::pki::TestPki::generate(&["127.0.0.1"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_cert_pem).unwrap();
        std::fs::write(dir.path().join("secret"), "s3cret:with/odd chars\n").unwrap();
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/introspect", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let slow = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(HashMap::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = (
            calls.clone(),
            fail.clone(),
            slow.clone(),
            answers.clone(),
            seen.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (calls, fail, slow, answers, seen) = state.clone();
                        async move {
                            use http_body_util::BodyExt;
                            calls.fetch_add(1, Ordering::SeqCst);
                            let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
                            let (authorization, content_type) = (h("authorization"), h("content-type"));
                            let ok_path =
                                req.method() == http::Method::POST && req.uri().path() == "/introspect";
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body = String::from_utf8(body.to_vec()).unwrap();
                            seen.lock().unwrap().push(Seen {
                                authorization,
                                content_type,
                                body: body.clone(),
                            });
                            if slow.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                            }
                            let token = body
                                .split('&')
                                .find_map(|kv| kv.strip_prefix("token="))
                                .unwrap_or("")
                                .to_owned();
                            let (status, answer) = if fail.load(Ordering::SeqCst) {
                                (503, json!({"error": "down"}))
                            } else if !ok_path {
                                (404, json!({}))
                            } else {
                                let a = answers.lock().unwrap().get(&token).cloned();
                                (200, a.unwrap_or_else(|| json!({"active": false})))
                            };
                            let resp = http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(answer.to_string())))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
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
            calls,
            fail,
            slow,
            answers,
            seen,
            dir,
        }
    }

    fn answer(&self, token: &str, answer: Value) {
        self.answers.lock().unwrap().insert(token.to_owned(), answer);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn config(&self, extra: &str) -> IssuerConfig {
        toml::from_str(&format!(
            r#"name = "bank-as"
issuer = "{ISS}"
audiences = ["bank-api"]
introspection_url = "{}"
introspection_client_id = "rampart gw"
introspection_client_secret_file = "{}"
ca_file = "{}"
{extra}"#,
            self.url,
            self.dir.path().join("secret").display(),
            self.dir.path().join("ca.pem").display(),
        ))
        .unwrap()
    }

    fn issuer(&self, extra: &str) -> (Issuer, Arc<FakeClock>) {
        let policy = IssuerPolicy::from_config(&self.config(extra), "issuers[0]").unwrap();
        let clock = FakeClock::at_unix(NOW);
        (
            Issuer::from_policy(policy, clock.clone(), "issuers[0]").unwrap(),
            clock,
        )
    }
}

fn active(extra: Value) -> Value {
    let mut a = json!({
        "active": true, "iss": ISS, "aud": "bank-api", "sub": "customer-a",
        "client_id": "fintech-42", "scope": "accounts:read payments:write",
        "exp": NOW + 3600, "token_type": "Bearer",
    });
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

async fn introspect(issuer: &Issuer, token: &str) -> Result<Arc<super::Principal>, AuthnError> {
    issuer.introspector().unwrap().introspect(token).await
}

#[tokio::test]
async fn an_active_token_becomes_the_principal_and_the_gateway_authenticates() {
    let server = AuthServer::start().await;
    server.answer("opaque-1", active(json!({})));
    let (issuer, _clock) = server.issuer("");
    let p = introspect(&issuer, "opaque-1").await.unwrap();
    assert_eq!(p.issuer(), "bank-as");
    assert_eq!(p.subject(), Some("customer-a"));
    assert_eq!(p.client_id(), Some("fintech-42"));
    assert_eq!(p.scopes(), ["accounts:read", "payments:write"]);
    assert_eq!(p.expires_at(), i64::try_from(NOW).unwrap() + 3600);
    assert!(p.extra().get("active").is_none());
    // client_secret_basic, form-encoded id and secret (RFC 6749 §2.3.1).
    let seen = server.seen.lock().unwrap()[0].clone();
    use base64::Engine as _;
    let expected =
        base64::engine::general_purpose::STANDARD.encode("rampart%20gw:s3cret%3Awith%2Fodd%20chars");
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Basic {expected}").as_str())
    );
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen.body, "token=opaque-1&token_type_hint=access_token");
}

#[tokio::test]
async fn results_are_cached_for_the_ttl_and_never_past_exp() {
    let server = AuthServer::start().await;
    server.answer("opaque-1", active(json!({})));
    server.answer("short", active(json!({"exp": NOW + 35})));
    let (issuer, clock) = server.issuer("");
    introspect(&issuer, "opaque-1").await.unwrap();
    introspect(&issuer, "opaque-1").await.unwrap();
    assert_eq!(server.calls(), 1, "a cached result does not call");
    clock.advance(Duration::from_secs(29));
    introspect(&issuer, "opaque-1").await.unwrap();
    assert_eq!(server.calls(), 1);
    clock.advance(Duration::from_secs(1));
    introspect(&issuer, "opaque-1").await.unwrap();
    assert_eq!(
        server.calls(),
        2,
        "after the 30s default TTL the server is asked again"
    );

    // Now NOW+30: a token expiring in 5s is not reused past its exp,
    // whatever the TTL.
    introspect(&issuer, "short").await.unwrap();
    assert_eq!(server.calls(), 3);
    clock.advance(Duration::from_secs(5));
    server.answer("short", json!({"active": false}));
    assert_eq!(
        introspect(&issuer, "short").await.unwrap_err(),
        AuthnError::Inactive
    );
    assert_eq!(server.calls(), 4);
}

#[tokio::test]
async fn a_configured_ttl_is_the_revocation_latency() {
    let server = AuthServer::start().await;
    server.answer("opaque-1", active(json!({})));
    let (issuer, clock) = server.issuer("introspection_cache_ttl = \"5s\"");
    introspect(&issuer, "opaque-1").await.unwrap();
    // Revoked at the server: still accepted from cache until the TTL ends.
    server.answer("opaque-1", json!({"active": false}));
    clock.advance(Duration::from_secs(4));
    introspect(&issuer, "opaque-1").await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        introspect(&issuer, "opaque-1").await.unwrap_err(),
        AuthnError::Inactive
    );
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn inactive_and_mismatched_answers_are_refused_and_cached_briefly() {
    let server = AuthServer::start().await;
    server.answer("other-aud", active(json!({"aud": ["another-api"]})));
    server.answer("other-iss", active(json!({"iss": "https://elsewhere.example"})));
    server.answer("expired", active(json!({"exp": NOW - 1})));
    server.answer("future", active(json!({"nbf": NOW + 60})));
    server.answer("bad-cnf", active(json!({"cnf": "x"})));
    server.answer("no-aud", {
        let mut a = active(json!({}));
        a.as_object_mut().unwrap().remove("aud");
        a
    });
    server.answer("active-string", active(json!({"active": "true"})));
    let (issuer, clock) = server.issuer("");
    for (token, want) in [
        ("unknown", AuthnError::Inactive),
        ("active-string", AuthnError::Inactive),
        ("other-aud", AuthnError::WrongAudience),
        ("other-iss", AuthnError::WrongIssuer),
        ("expired", AuthnError::Expired),
        ("future", AuthnError::NotYetValid),
        ("bad-cnf", AuthnError::Claim("cnf".into())),
    ] {
        assert_eq!(introspect(&issuer, token).await.unwrap_err(), want, "{token}");
    }
    // No `aud` in the answer: the authorization server vouched for it.
    introspect(&issuer, "no-aud").await.unwrap();
    let calls = server.calls();
    assert_eq!(
        introspect(&issuer, "unknown").await.unwrap_err(),
        AuthnError::Inactive
    );
    assert_eq!(server.calls(), calls, "a refusal is cached");
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        introspect(&issuer, "unknown").await.unwrap_err(),
        AuthnError::Inactive
    );
    assert_eq!(server.calls(), calls + 1, "for 10s at most");
}

#[tokio::test]
async fn endpoint_down_or_slow_fails_closed_and_is_not_cached() {
    let server = AuthServer::start().await;
    server.answer("opaque-1", active(json!({})));
    server.answer("opaque-2", active(json!({})));
    let (issuer, _clock) = server.issuer("introspection_timeout = \"300ms\"");
    introspect(&issuer, "opaque-1").await.unwrap();
    server.fail.store(true, Ordering::SeqCst);
    let e = introspect(&issuer, "opaque-2").await.unwrap_err();
    assert!(matches!(e, AuthnError::IntrospectionUnavailable(_)), "{e:?}");
    assert_eq!(e.cause(), "authn.introspection_unavailable");
    assert_eq!(e.class(), super::super::ErrorClass::InvalidToken);
    // Cached results keep working during the outage.
    introspect(&issuer, "opaque-1").await.unwrap();
    server.fail.store(false, Ordering::SeqCst);
    introspect(&issuer, "opaque-2").await.unwrap();

    server.slow.store(true, Ordering::SeqCst);
    server.answer("opaque-3", active(json!({})));
    let started = std::time::Instant::now();
    let e = introspect(&issuer, "opaque-3").await.unwrap_err();
    assert!(matches!(e, AuthnError::IntrospectionUnavailable(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );
    // Nothing listening at all.
    let mut cfg = server.config("");
    cfg.introspection_url = Some("https://127.0.0.1:1/introspect".into());
    let policy = IssuerPolicy::from_config(&cfg, "issuers[0]").unwrap();
    let issuer = Issuer::from_policy(policy, FakeClock::at_unix(NOW), "issuers[0]").unwrap();
    assert!(matches!(
        introspect(&issuer, "opaque-1").await.unwrap_err(),
        AuthnError::IntrospectionUnavailable(_)
    ));
}

#[tokio::test]
async fn cnf_from_introspection_binds_the_token_like_a_jwt() {
    let server = AuthServer::start().await;
    let cert = b"not really a certificate, only its bytes are hashed";
    let x5t = super::super::thumbprint::x5t_s256(cert);
    server.answer("bound", active(json!({"cnf": {"x5t#S256": x5t}})));
    server.answer("plain", active(json!({})));
    let (issuer, clock) = server.issuer("");
    let auth = Authenticator::new(DpopVerifier::new(DpopPolicy::default(), clock));
    let run = |token: &'static str, cert: Option<&'static [u8]>, fapi: bool| {
        let (auth, issuer) = (&auth, &issuer);
        async move {
            let mut h = HeaderMap::new();
            h.insert("authorization", format!("Bearer {token}").parse().unwrap());
            let req = AuthnRequest {
                headers: &h,
                method: "GET",
                url: "https://api.bank.example/v1/accounts",
                client_cert_der: cert,
                require_sender_constrained: fapi,
            };
            auth.authenticate_introspected(issuer, &req)
                .await
                .map(|a| a.binding)
        }
    };
    assert_eq!(
        run("bound", Some(cert), true).await.unwrap(),
        SenderBinding::Certificate
    );
    assert_eq!(
        run("bound", None, false).await.unwrap_err(),
        AuthnError::CertificateMissing
    );
    assert_eq!(
        run("bound", Some(b"another certificate"), false)
            .await
            .unwrap_err(),
        AuthnError::CertificateMismatch
    );
    assert_eq!(run("plain", None, false).await.unwrap(), SenderBinding::None);
    assert_eq!(
        run("plain", None, true).await.unwrap_err(),
        AuthnError::SenderConstraintRequired
    );
}

fn problems(c: &IssuerConfig) -> Vec<String> {
    match IssuerPolicy::from_config(c, "issuers[0]") {
        Ok(_) => Vec::new(),
        Err(p) => p
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
    }
}

#[tokio::test]
async fn introspection_config_validation() {
    let server = AuthServer::start().await;
    let c = server.config("");
    assert!(problems(&c).is_empty(), "{:?}", problems(&c));
    assert_eq!(c.introspection_cache_ttl, Duration::from_secs(30));
    let mut plain = c.clone();
    plain.introspection_url = Some("http://as.bank.example/introspect".into());
    assert!(problems(&plain)[0].starts_with("issuers[0].introspection_url: "));
    let mut anonymous = c.clone();
    anonymous.introspection_client_id = None;
    assert!(problems(&anonymous)[0].starts_with("issuers[0].introspection_client_id: "));
    let mut no_secret = c.clone();
    no_secret.introspection_client_secret_file = None;
    assert!(problems(&no_secret)[0].starts_with("issuers[0].introspection_client_secret_file: "));
    let mut long = c.clone();
    long.introspection_cache_ttl = Duration::from_secs(3600);
    assert!(problems(&long)[0].starts_with("issuers[0].introspection_cache_ttl: "));
    let mut stray = c.clone();
    stray.introspection_url = None;
    let stray = problems(&stray);
    assert!(
        stray
            .iter()
            .any(|p| p.starts_with("issuers[0].introspection_client_id: only used")),
        "{stray:?}"
    );
    // A missing secret file is reported when the issuer is built.
    let mut missing = c.clone();
    missing.introspection_client_secret_file = Some("/nonexistent/secret".into());
    let policy = IssuerPolicy::from_config(&missing, "issuers[0]").unwrap();
    let err = Issuer::from_policy(policy, FakeClock::at_unix(NOW), "issuers[0]").unwrap_err();
    assert_eq!(err[0].path, "issuers[0].introspection_client_secret_file");
}
