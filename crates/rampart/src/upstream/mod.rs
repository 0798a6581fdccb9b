//! Forwarding to the bank's services.
//!
//! Each named upstream has one or more targets, used round robin, with
//! passive health: a target that fails `max_failures` times in a row is
//! skipped for `cooldown` (if every target is down, the next one is tried
//! anyway rather than refusing outright). Connections are pooled (keep-alive,
//! HTTP/1.1 or HTTP/2). Upstream TLS is always verified, against the system
//! roots or a configured CA, with an optional client certificate.
//!
//! Threats answered: request smuggling and header spoofing toward the
//! backend (hop-by-hop headers removed, `X-Forwarded-*`/`Forwarded` set from
//! what the gateway saw, never from what the client claimed), duplicated
//! payments (a retry happens only for idempotent methods without a body, and
//! only when the connection failed), and hung backends (connect and response
//! timeouts). How it fails: 502 when no connection could be made or the
//! upstream broke the exchange, 504 when it did not answer in time.

pub mod config;
pub mod pool;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::{Either, Full};

use self::config::UpstreamConfig;
use self::pool::{Connector, ResponseBody, SendError, TargetPool};
use crate::authn::identity::{Identity, IdentityError, SharedIdentity};
use crate::clock::SharedClock;
use crate::config::{ConfigProblem, LoadedConfig};
use crate::exchange::Exchange;
use crate::respond::strip_hop_by_hop_and;
use crate::ForwardBody;

/// Why forwarding failed. Detail for logs and audit only.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be opened (refused, unreachable, TLS failure,
    /// connect timeout).
    #[error("upstream `{upstream}`: cannot connect: {detail}")]
    Connect {
        /// Upstream name.
        upstream: Arc<str>,
        /// Cause.
        detail: String,
    },
    /// No response headers within the request timeout.
    #[error("upstream `{upstream}`: no response within {timeout:?}")]
    Timeout {
        /// Upstream name.
        upstream: Arc<str>,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The exchange broke after the connection was made.
    #[error("upstream `{upstream}`: {detail}")]
    Protocol {
        /// Upstream name.
        upstream: Arc<str>,
        /// Cause.
        detail: String,
    },
}

impl UpstreamError {
    /// Whether this is a timeout (504) rather than a failure (502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout { .. })
    }

    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } => "connect",
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Protocol { .. } => "protocol",
        }
    }

    /// The upstream's name.
    pub fn upstream(&self) -> &Arc<str> {
        match self {
            UpstreamError::Connect { upstream, .. }
            | UpstreamError::Timeout { upstream, .. }
            | UpstreamError::Protocol { upstream, .. } => upstream,
        }
    }
}

struct Target {
    scheme: Scheme,
    authority: Authority,
    /// Path prefix from the target URL, without a trailing slash.
    prefix: String,
    failures: AtomicU32,
    /// Monotonic milliseconds until which the target is skipped.
    down_until_ms: AtomicU64,
    /// Its idle connections.
    pool: Arc<TargetPool>,
}

/// One upstream service, ready to forward to.
pub struct Upstream {
    name: Arc<str>,
    targets: Vec<Target>,
    next: AtomicUsize,
    connector: Connector,
    /// In-flight ceiling.
    pub gate: Option<Arc<crate::rate_limit::concurrency::Gate>>,
    request_timeout: Duration,
    retries: u32,
    preserve_host: bool,
    max_failures: u32,
    cooldown: Duration,
    clock: SharedClock,
    /// Identity forwarding (the snapshot's `[identity]`).
    identity: SharedIdentity,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

// === impl Upstream ===

impl Upstream {
    /// Validates one `[[upstreams]]` entry (index `i`) and builds its client.
    pub fn from_config(
        i: usize,
        cfg: &UpstreamConfig,
        loaded: &LoadedConfig,
        clock: SharedClock,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let at = |k: &str| format!("upstreams[{i}].{k}");
        let mut problems = Vec::new();
        if cfg.name.trim().is_empty() {
            problems.push(ConfigProblem::error(at("name"), "must not be empty"));
        }
        if cfg.targets.is_empty() {
            problems.push(ConfigProblem::error(
                at("targets"),
                "at least one target URL is needed",
            ));
        }
        let mut targets = Vec::new();
        for (j, t) in cfg.targets.iter().enumerate() {
            match parse_target(t) {
                Ok(t) => targets.push(t),
                Err(e) => problems.push(ConfigProblem::error(format!("upstreams[{i}].targets[{j}]"), e)),
            }
        }
        if cfg.max_in_flight == Some(0) {
            problems.push(ConfigProblem::error(at("max_in_flight"), "must be at least 1"));
        }
        if cfg.retries > 3 {
            problems.push(ConfigProblem::error(at("retries"), "at most 3"));
        }
        if cfg.connect_timeout.is_zero() {
            problems.push(ConfigProblem::error(at("connect_timeout"), "must be more than 0"));
        }
        if cfg.request_timeout.is_zero() {
            problems.push(ConfigProblem::error(at("request_timeout"), "must be more than 0"));
        }
        if cfg.health.max_failures == 0 {
            problems.push(ConfigProblem::error(
                at("health.max_failures"),
                "must be at least 1",
            ));
        }
        let tls = match client_tls(i, cfg, loaded) {
            Ok(t) => Some(t),
            Err(mut p) => {
                problems.append(&mut p);
                None
            }
        };
        let Some(tls) = tls else { return Err(problems) };
        if !problems.is_empty() {
            return Err(problems);
        }

        for t in &mut targets {
            t.pool = TargetPool::new(cfg.pool_max_idle, clock.clone());
        }
        // A response body that stalls longer than the time allowed for the
        // response headers is cut.
        let connector = Connector::new(tls, cfg.connect_timeout, cfg.protocol, cfg.request_timeout);
        Ok(Self {
            name: Arc::from(cfg.name.as_str()),
            targets,
            next: AtomicUsize::new(0),
            connector,
            gate: cfg.max_in_flight.map(crate::rate_limit::concurrency::Gate::new),
            request_timeout: cfg.request_timeout,
            retries: cfg.retries,
            preserve_host: cfg.preserve_host,
            max_failures: cfg.health.max_failures,
            cooldown: cfg.health.cooldown,
            clock,
            identity: SharedIdentity::default(),
        })
    }

    /// Forwards identity by `identity` (set by `Gateway::build`; until
    /// then, the default headers and no JWT).
    pub fn set_identity(&mut self, identity: SharedIdentity) {
        self.identity = identity;
    }

    /// The upstream's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Forwards a request that passed every check; returns the upstream's
    /// response headers (the body streams on).
    pub async fn forward(
        &self,
        req: Request<ForwardBody>,
        ex: &Exchange,
        permit: &crate::authz::Permit,
        request_id_header: &HeaderName,
        timeout: Option<Duration>,
    ) -> Result<Response<ResponseBody>, UpstreamError> {
        let timeout = timeout.unwrap_or(self.request_timeout);
        let (mut parts, body) = req.into_parts();
        prepare_headers(
            &mut parts.headers,
            ex,
            permit.principal(),
            request_id_header,
            self.preserve_host,
            &self.identity,
            &self.name,
        )
        .map_err(|e| UpstreamError::Protocol {
            upstream: self.name.clone(),
            detail: e.to_string(),
        })?;
        parts.version = Version::HTTP_11;
        let path = ex.path.as_deref().unwrap_or("/");
        let query = parts.uri.query().map(str::to_owned);
        // A retry is safe only if the request is idempotent and has no body
        // to replay, and only when the first attempt could not connect.
        let replayable = is_idempotent(&parts.method) && body.is_end_stream();
        let attempts = if replayable { 1 + self.retries } else { 1 };
        // A replayable request has no body: send an empty one each time.
        let mut body = (!replayable).then_some(body);
        let mut last_err = None;
        let mut failed = None;
        let mut parts = Some(parts);
        for attempt in 0..attempts {
            // The headers are copied only when another attempt may follow.
            let p = if attempt + 1 == attempts {
                parts.take()
            } else {
                parts.clone()
            };
            let Some(p) = p else { break };
            let idx = self.pick(failed);
            let Some(target) = self.targets.get(idx) else {
                break;
            };
            let uri = match target.uri(path, query.as_deref()) {
                Ok(u) => u,
                Err(detail) => {
                    return Err(UpstreamError::Protocol {
                        upstream: self.name.clone(),
                        detail,
                    });
                }
            };
            let b: ForwardBody = body
                .take()
                .unwrap_or_else(|| Either::Right(Full::new(Bytes::new())));
            let mut req = Request::from_parts(p, b);
            *req.uri_mut() = uri;
            let sent = self
                .connector
                .send(&target.scheme, &target.authority, &target.pool, req);
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(resp)) => {
                    self.mark(idx, true);
                    return Ok(resp);
                }
                Ok(Err(SendError::Connect(detail))) => {
                    self.mark(idx, false);
                    last_err = Some(UpstreamError::Connect {
                        upstream: self.name.clone(),
                        detail,
                    });
                    failed = Some(idx);
                    // Only a bodyless idempotent request goes round again.
                }
                Ok(Err(SendError::Protocol(detail))) => {
                    // With a request body, the client may have caused this
                    // (an aborted upload): it must not mark a target down.
                    if replayable {
                        self.mark(idx, false);
                    }
                    last_err = Some(UpstreamError::Protocol {
                        upstream: self.name.clone(),
                        detail,
                    });
                    break;
                }
                Err(_) => {
                    // A client that trickles its body can run out the clock
                    // too: only bodyless requests count against the target.
                    if replayable {
                        self.mark(idx, false);
                    }
                    last_err = Some(UpstreamError::Timeout {
                        upstream: self.name.clone(),
                        timeout,
                    });
                    break;
                }
            }
        }
        Err(last_err.unwrap_or_else(|| UpstreamError::Connect {
            upstream: self.name.clone(),
            detail: "no target".into(),
        }))
    }

    /// Round robin over healthy targets other than `avoid` (the one that
    /// just failed); failing that, any target other than `avoid`; failing
    /// that (a single target), the next in turn.
    fn pick(&self, avoid: Option<usize>) -> usize {
        let n = self.targets.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let order = || {
            (0..n)
                .map(move |k| (start + k) % n)
                .filter(move |&i| Some(i) != avoid)
        };
        order()
            .find(|&i| {
                self.targets
                    .get(i)
                    .is_some_and(|t| t.down_until_ms.load(Ordering::Relaxed) <= now)
            })
            .or_else(|| order().next())
            .unwrap_or(start % n)
    }

    fn mark(&self, idx: usize, ok: bool) {
        let Some(t) = self.targets.get(idx) else { return };
        if ok {
            t.failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = t.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.max_failures {
            let until = self.now_ms() + u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX / 2);
            t.down_until_ms.store(until, Ordering::Relaxed);
            t.failures.store(0, Ordering::Relaxed);
            tracing::warn!(upstream = %self.name, target = %t.authority, "target marked down");
        }
    }

    fn now_ms(&self) -> u64 {
        // +1 so that a fresh target (down_until 0) is up at time 0.
        u64::try_from(self.clock.monotonic().as_millis()).unwrap_or(u64::MAX / 2) + 1
    }

    /// Whether `authority` is one of this upstream's targets (compared
    /// case-insensitively).
    pub fn is_target_authority(&self, authority: &str) -> bool {
        self.targets
            .iter()
            .any(|t| t.authority.as_str().eq_ignore_ascii_case(authority))
    }

    /// Whether target `idx` is currently skipped (for tests and the admin).
    pub fn is_down(&self, idx: usize) -> bool {
        let now = self.now_ms();
        self.targets
            .get(idx)
            .is_some_and(|t| t.down_until_ms.load(Ordering::Relaxed) > now)
    }
}

impl Target {
    fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, String> {
        let mut pq = String::with_capacity(self.prefix.len() + path.len() + 1 + query.map_or(0, str::len));
        pq.push_str(&self.prefix);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let pq = PathAndQuery::try_from(pq).map_err(|e| e.to_string())?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| e.to_string())
    }
}

fn parse_target(s: &str) -> Result<Target, String> {
    let uri: Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| format!("`{s}` needs a scheme (https:// or http://)"))?;
    if scheme != Scheme::HTTPS && scheme != Scheme::HTTP {
        return Err(format!("`{s}`: only https:// and http:// are supported"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("`{s}` needs a host"))?;
    if uri.query().is_some() {
        return Err(format!("`{s}`: a target URL cannot have a query"));
    }
    if authority.as_str().contains('@') {
        return Err(format!("`{s}`: credentials in the URL are not allowed"));
    }
    let prefix = uri.path().trim_end_matches('/').to_string();
    Ok(Target {
        scheme,
        authority,
        prefix,
        failures: AtomicU32::new(0),
        down_until_ms: AtomicU64::new(0),
        pool: TargetPool::new(0, crate::clock::SystemClock::shared()),
    })
}

fn client_tls(
    i: usize,
    cfg: &UpstreamConfig,
    loaded: &LoadedConfig,
) -> Result<rustls::ClientConfig, Vec<ConfigProblem>> {
    let at = |k: &str| format!("upstreams[{i}].tls.{k}");
    let mut problems = Vec::new();
    let roots = match &cfg.tls.ca {
        Some(ca) => crate::tls::load_roots(&loaded.resolve(ca)).unwrap_or_else(|e| {
            problems.push(ConfigProblem::error(at("ca"), e));
            rustls::RootCertStore::empty()
        }),
        None => crate::tls::system_roots(),
    };
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(crate::tls::VERSIONS)
        .map_err(|e| vec![ConfigProblem::error(format!("upstreams[{i}].tls"), e.to_string())])?
        .with_root_certificates(roots);
    let config = match (&cfg.tls.client_cert, &cfg.tls.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(c), Some(k)) => {
            let certs = crate::tls::load_certs(&loaded.resolve(c));
            let key = crate::tls::load_key(&loaded.resolve(k));
            match (certs, key) {
                (Ok(certs), Ok(key)) => match builder.with_client_auth_cert(certs, key) {
                    Ok(c) => c,
                    Err(e) => {
                        problems.push(ConfigProblem::error(
                            at("client_key"),
                            format!("does not match client_cert: {e}"),
                        ));
                        return Err(problems);
                    }
                },
                (c, k) => {
                    if let Err(e) = c {
                        problems.push(ConfigProblem::error(at("client_cert"), e));
                    }
                    if let Err(e) = k {
                        problems.push(ConfigProblem::error(at("client_key"), e));
                    }
                    return Err(problems);
                }
            }
        }
        _ => {
            problems.push(ConfigProblem::error(
                format!("upstreams[{i}].tls"),
                "client_cert and client_key go together",
            ));
            return Err(problems);
        }
    };
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Client request headers that some backends and frameworks treat as
/// instructions (rewrite the target, override the method, claim a client
/// address or an outer proxy's view). A client's copy is never forwarded:
/// only the gateway speaks for what it saw.
/// (Identity headers are the [`Identity`](crate::authn::identity::Identity)'s
/// to strip and set.)
pub(crate) const DENY_REQUEST_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-original-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // RFC 9440: a client certificate as a proxy saw it; read (only from
    // trusted proxies) by authn, never passed on.
    "client-cert",
    "client-cert-chain",
];

/// Request headers toward the upstream: hop-by-hop and instruction-like
/// headers removed; forwarding headers set from what the gateway itself
/// observed. Only when the peer is a trusted proxy is the incoming
/// `X-Forwarded-For` chain kept (with the peer appended), and `Forwarded`
/// then names the client the chain reports. Identity: client copies of
/// every identity header go; `identity` then asserts the principal toward
/// `upstream` (fails only if the identity JWT cannot be signed).
fn prepare_headers(
    h: &mut http::HeaderMap,
    ex: &Exchange,
    principal: Option<&crate::authn::Principal>,
    request_id_header: &HeaderName,
    preserve_host: bool,
    identity: &Identity,
    upstream: &str,
) -> Result<(), IdentityError> {
    let chain = ex.via_trusted_proxy.then(|| {
        h.get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    });
    // One pass over what the client sent: hop-by-hop, instruction-like and
    // Host go. The router checked that Host and the request target agree;
    // the upstream gets that one host, or the target's own.
    strip_hop_by_hop_and(h, |n| {
        n == header::HOST || DENY_REQUEST_HEADERS.contains(&n.as_str()) || identity.is_reserved(n)
    });
    let host = ex.host.as_deref().and_then(|v| HeaderValue::from_str(v).ok());
    if let (true, Some(v)) = (preserve_host, &host) {
        h.insert(header::HOST, v.clone());
    }
    // HTTP/2 may split cookies over several fields; HTTP/1.1 backends expect
    // one (RFC 9113 §8.2.3).
    if ex.version == http::Version::HTTP_2 && h.get_all(header::COOKIE).iter().count() > 1 {
        let joined = h
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        h.remove(header::COOKIE);
        if let Ok(v) = HeaderValue::from_str(&joined) {
            h.insert(header::COOKIE, v);
        }
    }
    let conn = &ex.conn;
    let proto = if conn.tls.is_some() { "https" } else { "http" };
    let trusted_forwarded;
    let base: &str = match chain.filter(|c| !c.is_empty()) {
        Some(chain) => {
            let xff = format!("{chain}, {}", conn.peer.ip());
            if let Ok(v) = HeaderValue::from_str(&xff) {
                h.insert(X_FORWARDED_FOR, v);
            }
            let node = crate::exchange::forwarded_node(ex.client_ip);
            trusted_forwarded = format!("for={node};proto={proto}");
            &trusted_forwarded
        }
        None => {
            h.insert(X_FORWARDED_FOR, conn.forwarded_for.clone());
            &conn.forwarded
        }
    };
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    let forwarded = match (ex.host.as_deref(), host) {
        (Some(name), Some(v)) => {
            h.insert(X_FORWARDED_HOST, v);
            HeaderValue::from_str(&format!("{base};host=\"{name}\""))
        }
        _ => HeaderValue::from_str(base),
    };
    if let Ok(v) = forwarded {
        h.insert(header::FORWARDED, v);
    }
    h.insert(request_id_header.clone(), ex.request_id_value.clone());
    h.insert(crate::respond::X_FAPI_INTERACTION_ID, ex.interaction_id.clone());
    identity.assert(h, principal, &ex.request_id, upstream)
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
