//! The demo's test identity provider: an ES256 signing key, its JWKS and an
//! OIDC discovery document served over HTTPS (the demo CA's server
//! certificate) on an ephemeral loopback port, and the tokens `demo.json`
//! hands out. The gateway finds the keys by discovery, exactly as it would
//! with a bank's real IdP.
//!
//! Threat answered: none; it exists so that the demo shows real token
//! checks. It is a demo: tokens are minted at start and written to files;
//! nothing here is fit for production.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

use crate::authn::sign::SigningKey;

/// The demo IdP: where it listens, and its key.
pub struct DemoIdp {
    /// `https://localhost:<port>`: the issuer identifier and base URL.
    pub issuer: String,
    /// The signing key (private).
    pub key: SigningKey,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DemoIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoIdp").field("issuer", &self.issuer).finish()
    }
}

impl Drop for DemoIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DemoIdp {
    /// Starts the IdP on 127.0.0.1:0 with the demo server certificate.
    pub async fn start(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("demo IdP certificate: {e}"))?;
        let private = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("demo IdP key: {e}"))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, private)
            .map_err(|e| format!("demo IdP TLS: {e}"))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("cannot start the demo IdP: {e}"))?;
        let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
        let issuer = format!("https://localhost:{port}");
        let key = SigningKey::generate(jsonwebtoken::Algorithm::ES256).map_err(|e| e.to_string())?;
        let discovery =
            Bytes::from(json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")}).to_string());
        let jwks = Bytes::from(key.jwks().to_string());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    continue;
                };
                let (acceptor, discovery, jwks) = (acceptor.clone(), discovery.clone(), jwks.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let body = match req.uri().path() {
                            "/.well-known/openid-configuration" => Some(discovery.clone()),
                            "/jwks.json" => Some(jwks.clone()),
                            _ => None,
                        };
                        async move { Ok::<_, Infallible>(answer(body)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { issuer, key, task })
    }

    /// Mints the demo's tokens for `audience` into `dir/tokens/` and
    /// returns their description for `demo.json`.
    pub fn mint_tokens(&self, dir: &Path, audience: &str) -> Result<Value, String> {
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(|e| format!("{}: {e}", tokens.display()))?;
        let now = crate::authn::sign::unix_now();
        let claims = |sub: &str, scope: &str| {
            json!({
                "iss": self.issuer, "aud": audience, "sub": sub, "client_id": "demo-app",
                "scope": scope, "iat": now, "exp": now + 12 * 3600, "acr": "urn:demo:acr:basic",
                "auth_time": now,
            })
        };
        let mint = |c: &Value| self.key.mint(c).map_err(|e| e.to_string());
        let write = |name: &str, text: &str| {
            let path = tokens.join(name);
            super::pki::write_private(&path, text)
                .map_err(|e| format!("{}: {e}", path.display()))
                .map(|()| path.display().to_string())
        };
        let mut out = serde_json::Map::new();
        let scope = "accounts:read payments:write";
        for (name, sub) in [("customer_a", "cust-001"), ("customer_b", "cust-002")] {
            let token = mint(&claims(sub, scope))?;
            let file = write(&format!("{name}.jwt"), &token)?;
            out.insert(name.into(), json!({"token": token, "file": file, "sub": sub}));
        }
        let mut expired = claims("cust-001", scope);
        expired["iat"] = json!(now - 7200);
        expired["exp"] = json!(now - 3600);
        let token = mint(&expired)?;
        out.insert(
            "expired".into(),
            json!({"token": token, "file": write("expired.jwt", &token)?}),
        );
        let mut wrong = claims("cust-001", scope);
        wrong["aud"] = json!("https://another-api.example");
        let token = mint(&wrong)?;
        out.insert(
            "wrong_audience".into(),
            json!({"token": token, "file": write("wrong_audience.jwt", &token)?}),
        );
        // DPoP-bound tokens: the client's proof key travels with them. The
        // customer consented (RFC 9396) to payments of at most 5000.00 EUR to
        // one creditor; the second token is the same after a step-up to a
        // strong authentication (RFC 9470).
        let proof_key = SigningKey::generate(jsonwebtoken::Algorithm::ES256).map_err(|e| e.to_string())?;
        let jwk = Value::Object(proof_key.private_jwk().map_err(|e| e.to_string())?);
        let key_file = write("dpop_key.jwk", &jwk.to_string())?;
        for (name, acr) in [
            ("dpop_bound", "urn:demo:acr:basic"),
            ("dpop_bound_sca", "urn:demo:acr:strong"),
        ] {
            let mut bound = claims("cust-001", scope);
            bound["cnf"] = json!({"jkt": proof_key.thumbprint()});
            bound["acr"] = json!(acr);
            bound["authorization_details"] = json!([{
                "type": "payment_initiation",
                "instructedAmount": {"currency": "EUR", "amount": "5000.00"},
                "creditorName": "ACME Energy GmbH",
                "creditorAccount": {"iban": super::CONSENTED_CREDITOR},
            }]);
            let token = mint(&bound)?;
            out.insert(
                name.into(),
                json!({
                    "token": token,
                    "file": write(&format!("{name}.jwt"), &token)?,
                    "key_file": key_file,
                    "sub": "cust-001",
                    "acr": acr,
                }),
            );
        }
        Ok(Value::Object(out))
    }
}

fn answer(body: Option<Bytes>) -> Response<Full<Bytes>> {
    let (status, body) = match body {
        Some(b) => (StatusCode::OK, b),
        None => (StatusCode::NOT_FOUND, Bytes::from_static(b"{}")),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// For tests: the address part of an issuer URL.
pub fn port_of(issuer: &str) -> Option<SocketAddr> {
    issuer
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
}
