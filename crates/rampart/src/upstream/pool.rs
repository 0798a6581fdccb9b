//! Connections to upstream targets: a lean pool on `hyper::client::conn`.
//!
//! HTTP/1.1 connections are kept in a per-target stack of idle senders; a
//! connection goes back on the stack when the response body that used it has
//! been read to the end (a body dropped early closes its connection, since
//! the rest of it would still be on the wire). HTTP/2 connections
//! (ALPN `h2`, or `protocol = "http2"`) are shared: one per target,
//! multiplexed. Each connection is driven by its own task.
//!
//! Why not hyper-util's pooled client: per request it takes a pool lock,
//! hands the request to the connection's task through a channel, and spawns
//! one more task per HTTP/1 response to return the connection to the pool.
//! Profiles under load put that at a large part of the upstream leg's cost
//! (docs/benchmarks.md).
//!
//! How it fails: connection problems (TCP, TLS, handshake, connect timeout)
//! are [`SendError::Connect`]; a request that an idle connection could not
//! even start sending is retried once on a fresh connection (it was never
//! sent, so this is safe for any method); anything after that is
//! [`SendError::Protocol`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::config::UpstreamProtocol;
use crate::clock::SharedClock;
use crate::ForwardBody;

/// Why a request could not be exchanged with a target.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made.
    Connect(String),
    /// The exchange failed on an established connection.
    Protocol(String),
}

/// Opens connections to targets.
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    protocol: UpstreamProtocol,
    body_idle: Duration,
}

/// An idle HTTP/1.1 connection is not reused after this long: upstreams
/// close idle keep-alive connections on their own schedule (nginx after
/// 75 s), and a request written into a connection the upstream is closing
/// fails after it may have been read.
pub const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// The idle connections of one target.
pub struct TargetPool {
    /// Idle HTTP/1.1 senders with the monotonic time they went idle.
    idle: Mutex<Vec<(Duration, http1::SendRequest<ForwardBody>)>>,
    /// The shared HTTP/2 connection, with a generation number so that a
    /// failed request clears only the connection it failed on.
    h2: Mutex<Option<(u64, http2::SendRequest<ForwardBody>)>>,
    generation: std::sync::atomic::AtomicU64,
    max_idle: usize,
    clock: SharedClock,
}

impl TargetPool {
    /// A pool keeping at most `max_idle` idle HTTP/1.1 connections.
    pub fn new(max_idle: usize, clock: SharedClock) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            max_idle,
            clock,
        })
    }

    fn checkout_h1(&self) -> Option<http1::SendRequest<ForwardBody>> {
        let now = self.clock.monotonic();
        let mut idle = self.idle.lock().ok()?;
        let mut not_ready = Vec::new();
        let mut found = None;
        while let Some((since, s)) = idle.pop() {
            if s.is_closed() || now.saturating_sub(since) > MAX_IDLE_AGE {
                continue;
            }
            if s.is_ready() {
                found = Some(s);
                break;
            }
            // Its last response just ended; the connection task has not
            // caught up yet. Keep it for a later request.
            not_ready.push((since, s));
        }
        idle.extend(not_ready);
        found
    }

    fn checkin_h1(&self, sender: http1::SendRequest<ForwardBody>) {
        if sender.is_closed() {
            return;
        }
        let now = self.clock.monotonic();
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push((now, sender));
            }
        }
    }

    fn shared_h2(&self) -> Option<(u64, http2::SendRequest<ForwardBody>)> {
        let guard = self.h2.lock().ok()?;
        guard.as_ref().filter(|(_, s)| !s.is_closed()).cloned()
    }

    fn set_h2(&self, sender: http2::SendRequest<ForwardBody>) -> u64 {
        let generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Ok(mut slot) = self.h2.lock() {
            *slot = Some((generation, sender));
        }
        generation
    }

    /// Forgets the shared HTTP/2 connection if it is still `generation`
    /// (and, unless `always`, only if it has closed: one failed stream does
    /// not condemn the connection).
    fn clear_h2(&self, generation: u64, always: bool) {
        if let Ok(mut slot) = self.h2.lock() {
            if slot
                .as_ref()
                .is_some_and(|(g, s)| *g == generation && (always || s.is_closed()))
            {
                *slot = None;
            }
        }
    }
}

enum Conn {
    H1(http1::SendRequest<ForwardBody>),
    H2(http2::SendRequest<ForwardBody>),
}

/// A response body from an upstream. When read to the end, it returns its
/// HTTP/1.1 connection to the pool. An upstream that goes quiet mid-body for
/// longer than the idle limit gets the body cut with an error, so neither
/// the client's nor the upstream's connection is held forever.
pub struct ResponseBody {
    inner: Incoming,
    back: Option<(Arc<TargetPool>, http1::SendRequest<ForwardBody>)>,
    done: bool,
    idle_limit: Duration,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl ResponseBody {
    fn new(
        inner: Incoming,
        back: Option<(Arc<TargetPool>, http1::SendRequest<ForwardBody>)>,
        idle_limit: Duration,
    ) -> Self {
        Self {
            inner,
            back,
            done: false,
            idle_limit,
            deadline: None,
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = bytes::Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future as _;
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.deadline = None;
                if frame.is_none() {
                    self.done = true;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let limit = self.idle_limit;
                let deadline = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                        "upstream body idle for more than {limit:?}"
                    )
                    .into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some((pool, sender)) = self.back.take() {
            // Only a fully read response leaves the connection reusable
            // (hyper marks a chunked body ended only once it returned None).
            if self.done || http_body::Body::is_end_stream(&self.inner) {
                pool.checkin_h1(sender);
            }
        }
    }
}

// === impl Connector ===

impl Connector {
    /// A connector using `tls` for https targets (ALPN set from `protocol`);
    /// response bodies that stall for `body_idle` are cut.
    pub fn new(
        mut tls: rustls::ClientConfig,
        connect_timeout: Duration,
        protocol: UpstreamProtocol,
        body_idle: Duration,
    ) -> Self {
        tls.alpn_protocols = match protocol {
            UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
        };
        Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            protocol,
            body_idle,
        }
    }

    /// Sends `req` (whose URI is absolute) to the target at `scheme://authority`.
    pub async fn send(
        &self,
        scheme: &Scheme,
        authority: &Authority,
        pool: &Arc<TargetPool>,
        req: Request<ForwardBody>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let mut req = req;
        if let Some((generation, h2)) = pool.shared_h2() {
            match self.send_h2(h2, req).await {
                Ok(resp) => return Ok(resp),
                // Refused before it was sent (GOAWAY, closed): send it on a
                // fresh connection below.
                Err(Retry::Unsent(r)) => {
                    pool.clear_h2(generation, true);
                    req = *r;
                }
                Err(Retry::Failed(e)) => {
                    pool.clear_h2(generation, false);
                    return Err(e);
                }
            }
        } else if let Some(sender) = pool.checkout_h1() {
            match self.send_h1(sender, pool, req, authority).await {
                Ok(resp) => return Ok(resp),
                // Never sent: the idle connection had been closed. Safe to
                // send again on a fresh one.
                Err(Retry::Unsent(r)) => req = *r,
                Err(Retry::Failed(e)) => return Err(e),
            }
        }
        let unsent = || SendError::Protocol("connection closed before the request was sent".into());
        match self.connect(scheme, authority).await? {
            Conn::H2(h2) => {
                let generation = pool.set_h2(h2.clone());
                self.send_h2(h2, req).await.map_err(|retry| match retry {
                    Retry::Unsent(_) => {
                        pool.clear_h2(generation, true);
                        unsent()
                    }
                    Retry::Failed(e) => {
                        pool.clear_h2(generation, false);
                        e
                    }
                })
            }
            Conn::H1(sender) => {
                self.send_h1(sender, pool, req, authority)
                    .await
                    .map_err(|retry| match retry {
                        Retry::Unsent(_) => unsent(),
                        Retry::Failed(e) => e,
                    })
            }
        }
    }

    async fn connect(&self, scheme: &Scheme, authority: &Authority) -> Result<Conn, SendError> {
        let work = async {
            let https = *scheme == Scheme::HTTPS;
            let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
            let host = authority.host();
            let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
                .await
                .map_err(|e| SendError::Connect(format!("tcp connect error: {e}")))?;
            let _ = tcp.set_nodelay(true);
            if https {
                let name =
                    ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
                        .map_err(|e| SendError::Connect(format!("invalid server name: {e}")))?;
                let tls = self
                    .tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| SendError::Connect(format!("tls handshake: {e}")))?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2")
                    || self.protocol == UpstreamProtocol::Http2;
                handshake(TokioIo::new(tls), h2).await
            } else {
                handshake(TokioIo::new(tcp), self.protocol == UpstreamProtocol::Http2).await
            }
        };
        tokio::time::timeout(self.connect_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Connect(format!(
                    "connect timeout after {:?}",
                    self.connect_timeout
                )))
            })
    }
}

async fn handshake<I>(io: TokioIo<I>, h2: bool) -> Result<Conn, SendError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if h2 {
        // Pings find a connection that died silently (a firewall dropped it,
        // the upstream hung), so the shared connection is replaced instead
        // of timing out every request sent on it.
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(format!("http2 handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn::H2(sender))
    } else {
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(format!("http1 handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn::H1(sender))
    }
}

enum Retry {
    Unsent(Box<Request<ForwardBody>>),
    Failed(SendError),
}

impl Connector {
    async fn send_h1(
        &self,
        mut sender: http1::SendRequest<ForwardBody>,
        pool: &Arc<TargetPool>,
        mut req: Request<ForwardBody>,
        authority: &Authority,
    ) -> Result<Response<ResponseBody>, Retry> {
        // HTTP/1.1 wants the origin form and a Host header. The absolute URI is
        // kept for a resend, which may go out over HTTP/2.
        let absolute = req.uri().clone();
        let pq = req.uri().path_and_query().cloned();
        if let Some(pq) = pq {
            *req.uri_mut() = Uri::from(pq);
        }
        if !req.headers().contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        let unsent = |mut req: Request<ForwardBody>| {
            *req.uri_mut() = absolute.clone();
            Err(Retry::Unsent(Box::new(req)))
        };
        if sender.ready().await.is_err() {
            return unsent(req);
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                let back = Some((pool.clone(), sender));
                Ok(resp.map(|inner| ResponseBody::new(inner, back, self.body_idle)))
            }
            Err(mut e) => match e.take_message() {
                Some(req) => unsent(req),
                None => Err(Retry::Failed(SendError::Protocol(e.into_error().to_string()))),
            },
        }
    }

    async fn send_h2(
        &self,
        mut sender: http2::SendRequest<ForwardBody>,
        mut req: Request<ForwardBody>,
    ) -> Result<Response<ResponseBody>, Retry> {
        // HTTP/2 takes the authority from the URI; a Host header would be a
        // second, possibly different, opinion.
        if let Some(host) = req.headers_mut().remove(header::HOST) {
            let rebuilt = host.to_str().ok().and_then(|h| {
                let mut parts = req.uri().clone().into_parts();
                parts.authority = Authority::try_from(h).ok();
                Uri::from_parts(parts).ok()
            });
            if let Some(uri) = rebuilt {
                *req.uri_mut() = uri;
            }
        }
        *req.version_mut() = http::Version::HTTP_2;
        if sender.ready().await.is_err() {
            return Err(Retry::Unsent(Box::new(req)));
        }
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(resp.map(|inner| ResponseBody::new(inner, None, self.body_idle))),
            Err(mut e) => match e.take_message() {
                Some(req) => Err(Retry::Unsent(Box::new(req))),
                None => Err(Retry::Failed(SendError::Protocol(e.into_error().to_string()))),
            },
        }
    }
}
