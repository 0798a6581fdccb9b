//! Fetching key material over verified HTTPS: a JWKS URL, or OIDC discovery
//! (`{issuer}/.well-known/openid-configuration` → `jwks_uri` → JWKS); and
//! the one `POST` of RFC 7662 token introspection ([`HttpsClient::post_form`]).
//!
//! Threat answered: key substitution in transit, and a key endpoint used to
//! make the gateway misbehave. Only `https://`; the TLS configuration comes
//! from [`crate::tls::provider`] with the system roots or a configured CA;
//! no redirects are followed; a body above [`MAX_JWKS_BYTES`] or a fetch
//! slower than the timeout fails. Discovery checks that the document's
//! `issuer` is the configured one (OIDC Discovery §4.3) and that `jwks_uri`
//! is `https://`.
//!
//! How it fails: a [`JwksError::Fetch`] naming the step, never a panic; the
//! caller ([`super::jwks::KeySource`]) keeps its cached keys.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::jwks::{BoxFuture, JwksError, JwksFetcher, MAX_JWKS_BYTES};

/// Total time for one fetch (connect, TLS, request, body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A verified-TLS HTTP/1.1 client for key endpoints.
#[derive(Clone)]
pub struct HttpsClient {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HttpsClient {
    /// A client trusting `ca_file` (PEM), or the system roots without one.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, String> {
        let roots = match ca_file {
            Some(p) => crate::tls::load_roots(p)?,
            None => crate::tls::system_roots(),
        };
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::VERSIONS)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout: FETCH_TIMEOUT,
        })
    }

    /// Sets the total timeout of one fetch.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The total timeout of one fetch.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET url`, expecting 200 and at most [`MAX_JWKS_BYTES`].
    pub async fn get(&self, url: &str) -> Result<Bytes, JwksError> {
        let accept = "application/json, application/jwk-set+json";
        tokio::time::timeout(
            self.timeout,
            self.send(http::Method::GET, url, accept, None, None, false),
        )
        .await
        .unwrap_or_else(|_| Err(JwksError::Fetch(format!("timed out after {:?}", self.timeout))))
        .and_then(|b| b.ok_or_else(|| JwksError::Fetch("status 404 Not Found".into())))
    }

    /// `GET url` for JSON, expecting 200 (the body) or 404 (`None`) and at
    /// most [`MAX_JWKS_BYTES`] (an entitlement lookup).
    pub async fn get_json_or_absent(&self, url: &str) -> Result<Option<Bytes>, JwksError> {
        tokio::time::timeout(
            self.timeout,
            self.send(http::Method::GET, url, "application/json", None, None, true),
        )
        .await
        .unwrap_or_else(|_| Err(JwksError::Fetch(format!("timed out after {:?}", self.timeout))))
    }

    /// `POST url` with a form body (`application/x-www-form-urlencoded`)
    /// and an `Authorization` header, expecting 200 JSON and at most
    /// [`MAX_JWKS_BYTES`] (RFC 7662 introspection).
    pub async fn post_form(
        &self,
        url: &str,
        authorization: &http::HeaderValue,
        form: String,
    ) -> Result<Bytes, JwksError> {
        tokio::time::timeout(
            self.timeout,
            self.send(
                http::Method::POST,
                url,
                "application/json",
                Some(authorization),
                Some(Bytes::from(form)),
                false,
            ),
        )
        .await
        .unwrap_or_else(|_| Err(JwksError::Fetch(format!("timed out after {:?}", self.timeout))))
        .and_then(|b| b.ok_or_else(|| JwksError::Fetch("status 404 Not Found".into())))
    }

    async fn send(
        &self,
        method: http::Method,
        url: &str,
        accept: &'static str,
        authorization: Option<&http::HeaderValue>,
        form: Option<Bytes>,
        not_found_ok: bool,
    ) -> Result<Option<Bytes>, JwksError> {
        let fail = |step: &str, e: &dyn std::fmt::Display| JwksError::Fetch(format!("{step}: {e}"));
        let uri: Uri = url.parse().map_err(|e| fail("invalid URL", &e))?;
        if uri.scheme_str() != Some("https") {
            return Err(JwksError::Fetch("only https:// URLs are fetched".into()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| JwksError::Fetch("URL without host".into()))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| fail("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.clone()).map_err(|e| fail("server name", &e))?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| fail("TLS", &e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| fail("HTTP handshake", &e))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority.as_str())
            .header(http::header::ACCEPT, accept)
            .header(http::header::USER_AGENT, "rampart");
        if let Some(auth) = authorization {
            req = req.header(http::header::AUTHORIZATION, auth.clone());
        }
        if form.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(form.unwrap_or_default()))
            .map_err(|e| fail("request", &e))?;
        let resp = sender.send_request(req).await.map_err(|e| fail("request", &e))?;
        if not_found_ok && resp.status() == http::StatusCode::NOT_FOUND {
            driver.abort();
            return Ok(None);
        }
        if resp.status() != http::StatusCode::OK {
            driver.abort();
            return Err(JwksError::Fetch(format!("status {}", resp.status())));
        }
        let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| fail("body", &e))?
            .to_bytes();
        driver.abort();
        Ok(Some(body))
    }
}

/// Fetches a JWKS from a fixed `https://` URL.
#[derive(Debug, Clone)]
pub struct UrlFetcher {
    client: HttpsClient,
    url: String,
}

impl UrlFetcher {
    /// A fetcher for `url` using `client`.
    pub fn new(client: HttpsClient, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl JwksFetcher for UrlFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, JwksError>> {
        Box::pin(async move { Ok(self.client.get(&self.url).await?.to_vec()) })
    }
}

/// Finds the JWKS by OIDC discovery on every fetch (so a moved `jwks_uri`
/// is followed at the next refresh).
#[derive(Debug, Clone)]
pub struct DiscoveryFetcher {
    client: HttpsClient,
    issuer: String,
}

impl DiscoveryFetcher {
    /// Discovery for `issuer` (an `https://` issuer identifier).
    pub fn new(client: HttpsClient, issuer: impl Into<String>) -> Self {
        Self {
            client,
            issuer: issuer.into(),
        }
    }

    /// The discovery document's URL (OIDC Discovery §4).
    pub fn configuration_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }

    /// The `jwks_uri` the issuer currently publishes.
    pub async fn jwks_uri(&self) -> Result<String, JwksError> {
        let doc = self.client.get(&self.configuration_url()).await?;
        let doc: serde_json::Value =
            serde_json::from_slice(&doc).map_err(|e| JwksError::Fetch(format!("discovery document: {e}")))?;
        if doc.get("issuer").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err(JwksError::Fetch("discovery document names another issuer".into()));
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| JwksError::Fetch("discovery document without jwks_uri".into()))?;
        if !uri.starts_with("https://") {
            return Err(JwksError::Fetch("jwks_uri is not https://".into()));
        }
        Ok(uri.to_owned())
    }
}

impl JwksFetcher for DiscoveryFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, JwksError>> {
        Box::pin(async move {
            let uri = self.jwks_uri().await?;
            Ok(self.client.get(&uri).await?.to_vec())
        })
    }
}
