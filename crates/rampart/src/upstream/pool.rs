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
}

/// The idle connections of one target.
#[derive(Default)]
pub struct TargetPool {
    idle: Mutex<Vec<http1::SendRequest<ForwardBody>>>,
    h2: Mutex<Option<http2::SendRequest<ForwardBody>>>,
    max_idle: usize,
}

impl TargetPool {
    /// A pool keeping at most `max_idle` idle HTTP/1.1 connections.
    pub fn new(max_idle: usize) -> Arc<Self> {
        Arc::new(Self {
            max_idle,
            ..Self::default()
        })
    }

    fn checkout_h1(&self) -> Option<http1::SendRequest<ForwardBody>> {
        let mut idle = self.idle.lock().ok()?;
        let mut not_ready = Vec::new();
        let mut found = None;
        while let Some(s) = idle.pop() {
            if s.is_closed() {
                continue;
            }
            if s.is_ready() {
                found = Some(s);
                break;
            }
            // Its last response just ended; the connection task has not
            // caught up yet. Keep it for a later request.
            not_ready.push(s);
        }
        idle.extend(not_ready);
        found
    }

    fn checkin_h1(&self, sender: http1::SendRequest<ForwardBody>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(sender);
            }
        }
    }

    fn shared_h2(&self) -> Option<http2::SendRequest<ForwardBody>> {
        let guard = self.h2.lock().ok()?;
        guard.as_ref().filter(|s| !s.is_closed()).cloned()
    }
}

enum Conn {
    H1(http1::SendRequest<ForwardBody>),
    H2(http2::SendRequest<ForwardBody>),
}

/// A response body from an upstream. When read to the end, it returns its
/// HTTP/1.1 connection to the pool.
pub struct ResponseBody {
    inner: Incoming,
    back: Option<(Arc<TargetPool>, http1::SendRequest<ForwardBody>)>,
}

impl http_body::Body for ResponseBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

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

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some((pool, sender)) = self.back.take() {
            // Only a fully read response leaves the connection reusable.
            if http_body::Body::is_end_stream(&self.inner) {
                pool.checkin_h1(sender);
            }
        }
    }
}

// === impl Connector ===

impl Connector {
    /// A connector using `tls` for https targets (ALPN set from `protocol`).
    pub fn new(mut tls: rustls::ClientConfig, connect_timeout: Duration, protocol: UpstreamProtocol) -> Self {
        tls.alpn_protocols = match protocol {
            UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
        };
        Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            protocol,
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
        if let Some(h2) = pool.shared_h2() {
            return send_h2(h2, req).await;
        }
        let mut req = req;
        if let Some(sender) = pool.checkout_h1() {
            match send_h1(sender, pool, req, authority).await {
                Ok(resp) => return Ok(resp),
                // Never sent: the idle connection had been closed. Safe to
                // send again on a fresh one.
                Err(Retry::Unsent(r)) => req = *r,
                Err(Retry::Failed(e)) => return Err(e),
            }
        }
        match self.connect(scheme, authority).await? {
            Conn::H2(h2) => {
                if let Ok(mut slot) = pool.h2.lock() {
                    *slot = Some(h2.clone());
                }
                send_h2(h2, req).await
            }
            Conn::H1(sender) => match send_h1(sender, pool, req, authority).await {
                Ok(resp) => Ok(resp),
                Err(Retry::Unsent(_)) => Err(SendError::Protocol(
                    "connection closed before the request was sent".into(),
                )),
                Err(Retry::Failed(e)) => Err(e),
            },
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
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
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

async fn send_h1(
    mut sender: http1::SendRequest<ForwardBody>,
    pool: &Arc<TargetPool>,
    mut req: Request<ForwardBody>,
    authority: &Authority,
) -> Result<Response<ResponseBody>, Retry> {
    // HTTP/1.1 wants the origin form and a Host header.
    let pq = req.uri().path_and_query().cloned();
    if let Some(pq) = pq {
        *req.uri_mut() = Uri::from(pq);
    }
    if !req.headers().contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    if sender.ready().await.is_err() {
        return Err(Retry::Unsent(Box::new(req)));
    }
    match sender.try_send_request(req).await {
        Ok(resp) => Ok(resp.map(|inner| ResponseBody {
            inner,
            back: Some((pool.clone(), sender)),
        })),
        Err(mut e) => match e.take_message() {
            Some(req) => Err(Retry::Unsent(Box::new(req))),
            None => Err(Retry::Failed(SendError::Protocol(e.into_error().to_string()))),
        },
    }
}

async fn send_h2(
    mut sender: http2::SendRequest<ForwardBody>,
    mut req: Request<ForwardBody>,
) -> Result<Response<ResponseBody>, SendError> {
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
    sender
        .ready()
        .await
        .map_err(|e| SendError::Protocol(e.to_string()))?;
    sender
        .send_request(req)
        .await
        .map(|resp| resp.map(|inner| ResponseBody { inner, back: None }))
        .map_err(|e| SendError::Protocol(e.to_string()))
}
