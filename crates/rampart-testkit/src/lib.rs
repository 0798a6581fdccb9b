//! Test helpers for Rampart, used by the integration tests and benches.
//!
//! - [`Harness`]: a throw-away directory with a test PKI and a policy, a
//!   gateway started in-process from it on `127.0.0.1:0`, and a
//!   [`RecordingUpstream`] behind it.
//! - [`RecordingUpstream`]: a real HTTP server on `127.0.0.1:0` that records
//!   every request it receives, so a test can assert that a refused request
//!   never reached the backend.
//! - [`Client`]: an HTTPS client trusting the test CA, HTTP/1.1 or HTTP/2.
//!
//! - [`RedisServer`]: a private `redis-server` on a free port, which a test
//!   may stop, restart or freeze.
//! - [`Cuttable`]: a TCP forwarder to PostgreSQL that a test cuts and
//!   restores (the database goes away mid-run), or that loses the answer
//!   to a `COMMIT`.
//!
//! No fixed ports, no shared servers.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future as _;

mod cuttable;

pub use cuttable::{postgres_url, Cuttable};
pub use rampart::demo::pki::TestPki;
pub use rampart::runtime::Server;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// HTTP version the request arrived with.
    pub version: http::Version,
    /// Path and query as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A real upstream that records what reaches it.
///
/// Behaviour by path:
/// - `/status/{code}[/…]`: answers `{code}` with a body that leaks internals
///   (a stack trace), as a careless backend would;
/// - `/delay/{ms}`: waits, then 200;
/// - anything else: 200 with a small JSON echo of method and path.
///
/// Every response carries `Server` and `X-Powered-By` headers so tests can
/// check that the gateway strips them.
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    canned: Canned,
    task: tokio::task::JoinHandle<()>,
    scheme: &'static str,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordingUpstream {
    /// A plain-HTTP upstream (HTTP/1.1, or h2 with prior knowledge).
    pub async fn start() -> Self {
        Self::spawn(None).await
    }

    /// An HTTPS upstream with the given certificate and key (PEM); with
    /// `client_ca`, it requires a client certificate issued by that CA.
    pub async fn start_tls(cert_pem: &str, key_pem: &str, client_ca: Option<&str>) -> Self {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(c.unwrap()).unwrap();
                }
                let v =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(v)
            }
        };
        let mut cfg = builder.with_single_cert(certs, key).unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::spawn(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await
    }

    async fn spawn(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen2 = seen.clone();
        let canned: Canned = Arc::default();
        let canned2 = canned.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted2 = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    continue;
                };
                accepted2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let seen = seen2.clone();
                let canned = canned2.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        let canned = canned.clone();
                        async move { Ok::<_, Infallible>(upstream_answer(req, seen, canned).await) }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            seen,
            canned,
            task,
            scheme,
            accepted,
        }
    }

    /// From now on, answers `path` (exactly) with `status` and the JSON
    /// `body` (a backend's record, an entitlement service's answer).
    pub fn answer(&self, path: &str, status: u16, body: &str) {
        let status = StatusCode::from_u16(status).unwrap();
        self.canned
            .lock()
            .unwrap()
            .insert(path.to_string(), (status, body.to_string()));
    }

    /// The URL to put in a policy's `targets`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// How many connections the gateway has opened to this upstream.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Fixed answers by exact path: (status, JSON body).
type Canned = Arc<Mutex<std::collections::HashMap<String, (StatusCode, String)>>>;

/// A body that yields `left` chunks of `chunk\n`, one every `every`.
struct SlowBody {
    left: u64,
    every: Duration,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let every = self.every;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
        match sleep.as_mut().poll(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(()) => {
                self.sleep = None;
                self.left -= 1;
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"chunk\n")))))
            }
        }
    }
}

async fn upstream_answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Recorded>>>,
    canned: Canned,
) -> Response<UpstreamBody> {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    // Recorded as soon as the head arrives, so that a request whose body
    // never comes still counts as having reached the upstream.
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(Recorded {
            method: parts.method.clone(),
            version: parts.version,
            target: target.clone(),
            headers: parts.headers.clone(),
            body: Bytes::new(),
        });
        seen.len() - 1
    };
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if let Some(r) = seen.lock().unwrap().get_mut(index) {
        r.body = body;
    }
    let path = parts.uri.path();
    let fixed = canned.lock().unwrap().get(path).cloned();
    if let Some((status, body)) = fixed {
        return Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)).boxed())
            .unwrap();
    }
    if let Some(rest) = path.strip_prefix("/slow/") {
        // /slow/{chunks}/{ms}: a body sent one chunk every {ms}.
        let mut it = rest.split('/').map(|x| x.parse::<u64>().unwrap_or(1));
        let (chunks, ms) = (it.next().unwrap_or(1), it.next().unwrap_or(100));
        let slow = SlowBody {
            left: chunks,
            every: Duration::from_millis(ms),
            sleep: None,
        };
        return Response::builder()
            .status(StatusCode::OK)
            .body(slow.boxed())
            .unwrap();
    }
    let (status, body) = if let Some(code) = path.strip_prefix("/status/") {
        let code = code
            .split('/')
            .next()
            .unwrap_or("")
            .parse()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::OK);
        (
            code,
            "java.lang.NullPointerException\n\tat com.bank.core.Ledger.post(Ledger.java:42)\n\tdb=core-db-7.bank.internal".to_string(),
        )
    } else if let Some(to) = path.strip_prefix("/redirect/") {
        // /redirect/{path}: a 302 to an absolute URL on this upstream, as a
        // backend that knows only its own address would send.
        let host = parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        return Response::builder()
            .status(StatusCode::FOUND)
            .header("location", format!("http://{host}/{to}?x=1"))
            .header("content-location", "https://idp.example/login")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
    } else if let Some(ms) = path.strip_prefix("/delay/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        (StatusCode::OK, "{\"slept\":true}".to_string())
    } else {
        (
            StatusCode::OK,
            serde_json::json!({"method": parts.method.as_str(), "target": target}).to_string(),
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("server", "Apache/2.4.1 (Unix) OpenSSL/1.0.2")
        .header("x-powered-by", "PHP/5.6.40")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap()
}

/// A response, fully read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Which HTTP version a [`Client`] speaks (chosen by ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Http1,
    Http2,
}

/// An HTTPS client that trusts one CA.
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

impl Client {
    /// A client for `https://localhost:{port}` trusting `ca_pem`.
    pub fn new(ca_pem: &str, addr: SocketAddr, alpn: Alpn) -> Self {
        Self::build(ca_pem, addr, alpn, None)
    }

    /// A client that presents a certificate (PEM chain and key).
    pub fn with_identity(ca_pem: &str, addr: SocketAddr, alpn: Alpn, cert_pem: &str, key_pem: &str) -> Self {
        Self::build(ca_pem, addr, alpn, Some((cert_pem, key_pem)))
    }

    /// A client whose connections come from `local` (e.g. 127.0.0.2: any
    /// 127/8 address works on Linux loopback), to test address rules.
    pub fn from_address(ca_pem: &str, addr: SocketAddr, local: std::net::IpAddr) -> Self {
        Self::build_from(ca_pem, addr, Alpn::Http1, None, Some(local))
    }

    fn build(ca_pem: &str, addr: SocketAddr, alpn: Alpn, identity: Option<(&str, &str)>) -> Self {
        Self::build_from(ca_pem, addr, alpn, identity, None)
    }

    fn build_from(
        ca_pem: &str,
        addr: SocketAddr,
        alpn: Alpn,
        identity: Option<(&str, &str)>,
        local: Option<std::net::IpAddr>,
    ) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        use rustls_pki_types::pem::PemObject;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let tls = match identity {
            None => tls.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                tls.with_client_auth_cert(certs, key).unwrap()
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_local_address(local);
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only();
        let connector = match alpn {
            Alpn::Http1 => b.enable_http1().wrap_connector(http),
            Alpn::Http2 => b.enable_http2().wrap_connector(http),
        };
        let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
        builder.http2_only(alpn == Alpn::Http2);
        Self {
            inner: builder.build(connector),
            base: format!("https://localhost:{}", addr.port()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        self.try_send(method, path, headers, body).await.unwrap()
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<TestResponse, hyper_util::client::legacy::Error> {
        let mut req = Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).unwrap();
        let resp = self.inner.request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Ok(TestResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }
}

/// The policy head every harness policy starts with: one TLS listener on
/// 127.0.0.1:0, the admin listener on 127.0.0.1:0 with a token file, and an
/// upstream `backend` pointing at the recording upstream.
pub fn base_policy(upstream_url: &str) -> String {
    format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"
[listeners.tls]
cert = "server.pem"
key = "server.key"

[admin]
bind = "127.0.0.1:0"
token_file = "admin.token"

[[upstreams]]
name = "backend"
targets = ["{upstream_url}"]
connect_timeout = "1s"
request_timeout = "5s"
"#
    )
}

/// The admin token every harness writes.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A gateway with a recording upstream, started in-process.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub upstream: RecordingUpstream,
    pub server: Option<Server>,
    pub policy_path: PathBuf,
}

impl Harness {
    /// Starts a recording upstream and a gateway whose policy is
    /// [`base_policy`] followed by `rest` (routes and more).
    pub async fn start(rest: &str) -> Self {
        let upstream = RecordingUpstream::start().await;
        let policy = format!("{}\n{}", base_policy(&upstream.url()), rest);
        Self::start_with(upstream, &policy).await
    }

    /// Starts a gateway from a whole policy text (which may use the PKI
    /// files `server.pem`, `server.key`, `ca.pem`, `client.pem`,
    /// `client.key` and `admin.token`).
    pub async fn start_with(upstream: RecordingUpstream, policy: &str) -> Self {
        Self::start_with_files(upstream, policy, &[]).await
    }

    /// [`Harness::start_with`], writing extra files (name, contents) into
    /// the policy's directory first.
    pub async fn start_with_files(upstream: RecordingUpstream, policy: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(&["localhost", "127.0.0.1"]).unwrap();
        pki.write(dir.path()).unwrap();
        std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let policy_path = dir.path().join("rampart.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let server = rampart::runtime::start(&policy_path)
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        Self {
            dir,
            pki,
            upstream,
            server: Some(server),
            policy_path,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server().first_addr().unwrap()
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.server().admin_addr(), path)
    }

    /// The gateway's `/metrics` text (read with the admin token).
    pub async fn metrics(&self) -> String {
        admin_request(Method::GET, &self.admin_url("/metrics"), Some(ADMIN_TOKEN))
            .await
            .text()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.pki.ca_cert_pem, self.addr(), Alpn::Http1)
    }

    pub fn client_h2(&self) -> Client {
        Client::new(&self.pki.ca_cert_pem, self.addr(), Alpn::Http2)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces the policy file (the running gateway is not told).
    pub fn write_policy(&self, policy: &str) {
        std::fs::write(&self.policy_path, policy).unwrap();
    }

    /// Shuts the gateway down, draining in-flight requests.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// A raw TLS connection (ALPN http/1.1) to `addr` as `localhost`, trusting
/// `ca_pem`: for tests that write HTTP by hand.
pub async fn tls_connect(
    ca_pem: &str,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends raw bytes over a TLS connection (ALPN http/1.1) to `addr`, trusting
/// `ca_pem`, and returns everything the server sent back until it closed the
/// connection or `wait` passed. For requests a well-behaved client library
/// refuses to produce (duplicate Host, absolute form, smuggling attempts).
pub async fn raw_tls(ca_pem: &str, addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(ca_pem, addr).await;
    tls.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A plain HTTP/1.1 client for the admin listener.
pub async fn admin_request(method: Method, url: &str, bearer: Option<&str>) -> TestResponse {
    admin_send(method, url, bearer, "").await
}

/// An admin request with a (JSON) body.
pub async fn admin_send(method: Method, url: &str, bearer: Option<&str>, body: &str) -> TestResponse {
    let client: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    TestResponse {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    }
}

/// A private `redis-server` on a free port of 127.0.0.1, owned by one test:
/// it can be stopped, restarted on the same port, or frozen (SIGSTOP) to
/// play a hung Redis. Nothing is kept on disk. Killed when dropped.
pub struct RedisServer {
    port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one; panics with the reason if `redis-server` is missing
    /// (`scripts/test.sh` installs it).
    pub fn start() -> Self {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut s = Self { port, child: None };
            if s.spawn() {
                return s;
            }
        }
        panic!("could not start a private redis-server");
    }

    fn spawn(&mut self) -> bool {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server could not run ({e}); scripts/test.sh installs it"));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if self.ping() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (its data is gone).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "redis-server did not come back on port {}",
            self.port
        );
    }

    /// Freezes (`true`, SIGSTOP) or thaws (`false`, SIGCONT) the server:
    /// connections stay open and nothing answers.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Runs a command through `redis-cli` (for assertions on keys).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // Thaw first, or a frozen server ignores the kill until resumed.
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.stop();
    }
}
