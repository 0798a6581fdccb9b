//! Data-plane listeners: accept, TLS, HTTP/1.1 and HTTP/2, connection limits.
//!
//! Threats answered: downgrade and weak cryptography (TLS 1.3/1.2 AEAD only,
//! see [`crate::tls`]), slow-loris and idle-connection exhaustion (handshake,
//! header-read and idle timeouts), connection floods (`max_connections`:
//! extra connections are closed at once), oversized heads (431/414).
//!
//! Each accepted connection takes the TLS configuration of the snapshot that
//! is current when it arrives, so a reload that re-reads certificates
//! affects new connections only. Each request on it takes the then-current
//! snapshot for its whole life. Shutdown stops accepting, asks every
//! connection to finish its in-flight requests, and waits (bounded).

pub mod config;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use self::config::{ClientAuth, ListenerConfig, ListenerLimitsConfig};
use crate::config::{ConfigProblem, GatewayConfig, LoadedConfig};
use crate::exchange::{ConnInfo, TlsInfo};
use crate::metrics::ListenerLabels;
use crate::runtime::Runtime;

/// One validated listener.
pub struct ListenerPolicy {
    /// Name, for logs and metrics.
    pub name: Arc<str>,
    /// Bind address as configured.
    pub bind: SocketAddr,
    /// TLS acceptor; `None` for plain HTTP (only under `[dangerous]`).
    pub tls: Option<TlsAcceptor>,
    /// Limits.
    pub limits: ListenerLimitsConfig,
}

impl std::fmt::Debug for ListenerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerPolicy")
            .field("name", &self.name)
            .field("bind", &self.bind)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Validates every `[[listeners]]` entry and reads its certificates.
pub fn policies_from_config(
    cfg: &GatewayConfig,
    loaded: &LoadedConfig,
) -> Result<Vec<ListenerPolicy>, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    if cfg.listeners.is_empty() {
        problems.push(ConfigProblem::error(
            "listeners",
            "at least one [[listeners]] is needed",
        ));
    }
    for (i, l) in cfg.listeners.iter().enumerate() {
        if cfg.listeners[..i].iter().any(|o| o.name == l.name) {
            problems.push(ConfigProblem::error(
                format!("listeners[{i}].name"),
                format!("duplicate listener name `{}`", l.name),
            ));
        }
        if l.bind.port() != 0 && l.bind.port() == cfg.admin.bind.port() {
            problems.push(ConfigProblem::error(
                format!("listeners[{i}].bind"),
                "the admin listener's port: the admin plane never shares a data-plane listener",
            ));
        }
        match ListenerPolicy::from_config(i, l, cfg.dangerous.allow_plain_http, loaded) {
            Ok(p) => out.push(p),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

// === impl ListenerPolicy ===

impl ListenerPolicy {
    fn from_config(
        i: usize,
        cfg: &ListenerConfig,
        allow_plain: bool,
        loaded: &LoadedConfig,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let at = |k: &str| format!("listeners[{i}].{k}");
        let mut problems = Vec::new();
        if cfg.name.trim().is_empty() {
            problems.push(ConfigProblem::error(at("name"), "must not be empty"));
        }
        let lim = &cfg.limits;
        if !(8192..=1024 * 1024).contains(&lim.max_header_bytes) {
            problems.push(ConfigProblem::error(
                at("limits.max_header_bytes"),
                "must be between 8192 and 1048576",
            ));
        }
        if !(256..=65536).contains(&lim.max_uri_length) {
            problems.push(ConfigProblem::error(
                at("limits.max_uri_length"),
                "must be between 256 and 65536",
            ));
        }
        if lim.max_connections_per_client == Some(0) {
            problems.push(ConfigProblem::error(
                at("limits.max_connections_per_client"),
                "must be at least 1",
            ));
        }
        if lim.max_connections == 0 {
            problems.push(ConfigProblem::error(
                at("limits.max_connections"),
                "must be at least 1",
            ));
        }
        if lim.max_concurrent_streams == 0 {
            problems.push(ConfigProblem::error(
                at("limits.max_concurrent_streams"),
                "must be at least 1",
            ));
        }
        for (k, d) in [
            ("limits.tls_handshake_timeout", lim.tls_handshake_timeout),
            ("limits.header_read_timeout", lim.header_read_timeout),
            ("limits.idle_timeout", lim.idle_timeout),
        ] {
            if d.is_zero() {
                problems.push(ConfigProblem::error(at(k), "must be more than 0"));
            }
        }
        let tls = match &cfg.tls {
            None if !allow_plain => {
                problems.push(ConfigProblem::error(
                    at("tls"),
                    "required: plain HTTP is only allowed with [dangerous] allow_plain_http = true",
                ));
                None
            }
            None => None,
            Some(t) => match server_config(&format!("listeners[{i}].tls"), t, loaded) {
                Ok(c) => Some(TlsAcceptor::from(Arc::new(c))),
                Err(p) => {
                    problems.extend(p);
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            name: Arc::from(cfg.name.as_str()),
            bind: cfg.bind,
            tls,
            limits: cfg.limits.clone(),
        })
    }
}

/// A TLS server configuration from a `tls` section at key path `section`
/// (`listeners[0].tls`, `admin.tls`): the one provider, TLS 1.3/1.2,
/// ALPN h2 and http/1.1, client certificates as configured.
pub fn server_config(
    section: &str,
    t: &config::ListenerTlsConfig,
    loaded: &LoadedConfig,
) -> Result<rustls::ServerConfig, Vec<ConfigProblem>> {
    let at = |k: &str| format!("{section}.{k}");
    let mut problems = Vec::new();
    let certs = crate::tls::load_certs(&loaded.resolve(&t.cert))
        .map_err(|e| problems.push(ConfigProblem::error(at("cert"), e)));
    let key = crate::tls::load_key(&loaded.resolve(&t.key))
        .map_err(|e| problems.push(ConfigProblem::error(at("key"), e)));
    let provider = crate::tls::provider();
    let verifier = match (t.client_auth, &t.client_ca) {
        (ClientAuth::None, None) => None,
        (ClientAuth::None, Some(_)) => {
            problems.push(ConfigProblem::error(
                at("client_ca"),
                "set, but client_auth = \"none\" never asks for a certificate",
            ));
            None
        }
        (_, None) => {
            problems.push(ConfigProblem::error(
                at("client_ca"),
                "required when client_auth is \"optional\" or \"required\"",
            ));
            None
        }
        (mode, Some(ca)) => match crate::tls::load_roots(&loaded.resolve(ca)) {
            Err(e) => {
                problems.push(ConfigProblem::error(at("client_ca"), e));
                None
            }
            Ok(roots) => {
                let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let b = if mode == ClientAuth::Optional {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                match b.build() {
                    Ok(v) => Some(v),
                    Err(e) => {
                        problems.push(ConfigProblem::error(at("client_ca"), e.to_string()));
                        None
                    }
                }
            }
        },
    };
    let (Ok(certs), Ok(key)) = (certs, key) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(crate::tls::VERSIONS)
        .map_err(|e| vec![ConfigProblem::error(at("cert"), e.to_string())])?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        vec![ConfigProblem::error(
            at("key"),
            format!("does not match the certificate: {e}"),
        )]
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    Ok(config)
}

/// Shared counters of one listener's open connections.
#[derive(Debug, Default)]
pub struct ConnCounter {
    open: AtomicUsize,
    /// Open connections per peer address (only while a per-client cap is
    /// configured; an address leaves the map with its last connection).
    per_peer: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

struct ConnGuard {
    counter: Arc<ConnCounter>,
    gauge: prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>,
    peer: Option<std::net::IpAddr>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.counter.open.fetch_sub(1, Ordering::SeqCst);
        self.gauge.dec();
        if let (Some(ip), Ok(mut map)) = (self.peer, self.counter.per_peer.lock()) {
            if let Some(n) = map.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl ConnCounter {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Accepts connections on `tcp` until draining starts.
pub async fn serve(
    tcp: TcpListener,
    name: Arc<str>,
    runtime: Arc<Runtime>,
    counter: Arc<ConnCounter>,
    mut shutdown: Shutdown,
) {
    let labels = ListenerLabels {
        listener: name.clone(),
    };
    loop {
        let accepted = tokio::select! {
            a = tcp.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let gw = runtime.snapshot();
        let Some(policy) = gw.listener(&name) else {
            continue;
        };
        let metrics = gw.metrics.clone();
        if gw.ip_filter.denies_connection(peer.ip())
            || gw.limits.bans.is_banned(peer.ip(), gw.clock.monotonic())
        {
            // Before any TLS work: the cheapest possible refusal.
            metrics.connections_denied.get_or_create(&labels).inc();
            drop(stream);
            continue;
        }
        if counter.open() >= policy.limits.max_connections {
            metrics.connections_refused.get_or_create(&labels).inc();
            drop(stream);
            continue;
        }
        // One client may not hold more than its share of the listener.
        let per_peer = match policy.limits.max_connections_per_client {
            None => None,
            Some(cap) => {
                let admitted = counter.per_peer.lock().map(|mut map| {
                    let n = map.entry(peer.ip()).or_insert(0);
                    if *n >= cap {
                        false
                    } else {
                        *n += 1;
                        true
                    }
                });
                if !matches!(admitted, Ok(true)) {
                    metrics.connections_refused.get_or_create(&labels).inc();
                    drop(stream);
                    continue;
                }
                Some(peer.ip())
            }
        };
        counter.open.fetch_add(1, Ordering::SeqCst);
        let gauge = metrics.open_connections.get_or_create(&labels).clone();
        gauge.inc();
        metrics.connections.get_or_create(&labels).inc();
        let guard = ConnGuard {
            counter: counter.clone(),
            gauge,
            peer: per_peer,
        };
        let acceptor = policy.tls.clone();
        let limits = policy.limits.clone();
        let local = stream.local_addr().unwrap_or(peer);
        let runtime = runtime.clone();
        let name = name.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _ = stream.set_nodelay(true);
            connection(stream, peer, local, name, acceptor, limits, runtime, shutdown).await;
        });
    }
}

/// Activity of one connection, for the idle timeout.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    requests: AtomicUsize,
    last_ms: AtomicU64,
}

/// Marks one request in flight until dropped, which happens when its
/// response body has been sent, or when hyper drops the request because the
/// client went away (RST_STREAM, disconnect): either way the connection
/// counts as active exactly while a request really is.
struct InFlight {
    activity: Arc<Activity>,
    clock: crate::clock::SharedClock,
}

impl InFlight {
    fn start(activity: Arc<Activity>, clock: crate::clock::SharedClock) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        activity.requests.fetch_add(1, Ordering::SeqCst);
        Self { activity, clock }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.last_ms.store(millis(&self.clock), Ordering::SeqCst);
        self.activity.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight until it is
/// finished or dropped, so the idle timeout never cuts a slow download.
struct Tracked {
    inner: crate::Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = <crate::Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn millis(clock: &crate::clock::SharedClock) -> u64 {
    u64::try_from(clock.monotonic().as_millis()).unwrap_or(u64::MAX)
}

/// The shutdown signal: `None` while serving; `Some(grace)` once draining,
/// after which a connection still open is closed by force.
pub type Shutdown = watch::Receiver<Option<Duration>>;

#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    name: Arc<str>,
    acceptor: Option<TlsAcceptor>,
    limits: ListenerLimitsConfig,
    runtime: Arc<Runtime>,
    shutdown: Shutdown,
) {
    match acceptor {
        None => {
            let conn = Arc::new(ConnInfo::new(
                name,
                peer,
                local,
                None,
                limits.max_uri_length,
                limits.max_header_bytes,
            ));
            http(TokioIo::new(stream), conn, limits, runtime, shutdown).await;
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)).await;
            let failure = match handshake {
                Ok(Ok(tls)) => Ok(tls),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            };
            let tls = match failure {
                Ok(tls) => tls,
                Err(cause) => {
                    tracing::debug!(listener = %name, %peer, %cause, "TLS handshake failed");
                    let labels = ListenerLabels { listener: name };
                    runtime
                        .metrics()
                        .tls_handshake_failures
                        .get_or_create(&labels)
                        .inc();
                    return;
                }
            };
            let session = tls.get_ref().1;
            let info = TlsInfo {
                version: crate::tls::version_name(session.protocol_version()),
                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                sni: session.server_name().map(str::to_owned),
                client_chain: session
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
            };
            let conn = Arc::new(ConnInfo::new(
                name,
                peer,
                local,
                Some(info),
                limits.max_uri_length,
                limits.max_header_bytes,
            ));
            http(TokioIo::new(tls), conn, limits, runtime, shutdown).await;
        }
    }
}

async fn http<I>(
    io: TokioIo<I>,
    conn: Arc<ConnInfo>,
    limits: ListenerLimitsConfig,
    runtime: Arc<Runtime>,
    mut shutdown: Shutdown,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // ALPN already said which protocol: skip hyper-util's sniffing of the
    // first bytes (and its rewind buffer on every read).
    let alpn = conn.tls.as_ref().and_then(|t| t.alpn.clone());
    let clock = runtime.clock();
    let activity = Arc::new(Activity::default());
    activity.last_ms.store(millis(&clock), Ordering::SeqCst);
    let svc = {
        let activity = activity.clone();
        let clock = clock.clone();
        service_fn(move |req| {
            let gw = runtime.snapshot();
            let conn = conn.clone();
            let guard = InFlight::start(activity.clone(), clock.clone());
            async move {
                let resp = crate::pipeline::handle(gw, conn, req).await;
                // In flight until the last byte of the body is sent.
                Ok::<_, Infallible>(resp.map(|inner| Tracked {
                    inner,
                    _in_flight: guard,
                }))
            }
        })
    };
    let mut builder = match alpn.as_deref() {
        Some(b"h2") => auto::Builder::new(TokioExecutor::new()).http2_only(),
        Some(b"http/1.1") => auto::Builder::new(TokioExecutor::new()).http1_only(),
        _ => auto::Builder::new(TokioExecutor::new()),
    };
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's own limit is a backstop for absurd heads; the precise
        // limit is enforced by the router, which answers 431 problem+json.
        .max_buf_size(limits.max_header_bytes * 2 + limits.max_uri_length)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes * 2).unwrap_or(u32::MAX));
    let conn_fut = builder.serve_connection(io, svc);
    tokio::pin!(conn_fut);
    let idle = limits.idle_timeout;
    // Until the first request, the header-read timeout bounds the wait too
    // (a client that connects and sends nothing, or one byte of preface).
    let first = limits.header_read_timeout.min(idle);
    let tick = (first / 4).max(Duration::from_millis(50));
    let mut closing = false;
    let mut force_at: Option<tokio::time::Instant> = None;
    loop {
        let force = async {
            match force_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            res = conn_fut.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                conn_fut.as_mut().graceful_shutdown();
                let grace = shutdown.borrow().unwrap_or(Duration::ZERO);
                force_at = Some(tokio::time::Instant::now() + grace);
            }
            _ = force => {
                tracing::debug!("connection closed by force after its grace period");
                break;
            }
            _ = tokio::time::sleep(tick), if !closing => {
                let idle_for = Duration::from_millis(millis(&clock).saturating_sub(activity.last_ms.load(Ordering::SeqCst)));
                let limit = if activity.requests.load(Ordering::SeqCst) == 0 { first } else { idle };
                if activity.in_flight.load(Ordering::SeqCst) == 0 && idle_for >= limit {
                    closing = true;
                    conn_fut.as_mut().graceful_shutdown();
                    force_at = Some(tokio::time::Instant::now() + limits.header_read_timeout);
                }
            }
        }
    }
}
