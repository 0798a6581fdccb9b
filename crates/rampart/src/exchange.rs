//! The per-request context: identifiers, the connection, the route, timings.
//!
//! Each phase writes what it decided into the [`Exchange`] (the route id,
//! later the principal and limiter key); metrics, the access log and, later,
//! the audit trail read it. It holds no credential: nothing in it may be
//! unsafe to log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Version};
use rustls_pki_types::CertificateDer;

/// What the listener learnt about a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Listener name.
    pub listener: Arc<str>,
    /// Client address.
    pub peer: SocketAddr,
    /// Local address the client reached.
    pub local: SocketAddr,
    /// TLS details; `None` on a plain-HTTP listener.
    pub tls: Option<TlsInfo>,
    /// The listener's URI length limit when the connection was accepted.
    pub max_uri_length: usize,
    /// The listener's limit on request-head bytes, checked again here for
    /// HTTP/2 where header bytes are counted after HPACK decoding.
    pub max_header_bytes: usize,
    /// `X-Forwarded-For` value for this connection's requests (the peer IP).
    pub forwarded_for: HeaderValue,
    /// `Forwarded` value without `host` (`for=…;proto=…`).
    pub forwarded: String,
}

impl ConnInfo {
    /// What a listener knows of a new connection; the forwarding headers
    /// derived from the peer are computed here once, not per request.
    pub fn new(
        listener: Arc<str>,
        peer: SocketAddr,
        local: SocketAddr,
        tls: Option<TlsInfo>,
        max_uri_length: usize,
        max_header_bytes: usize,
    ) -> Self {
        let ip = peer.ip();
        let forwarded_for =
            HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let node = forwarded_node(ip);
        let proto = if tls.is_some() { "https" } else { "http" };
        Self {
            listener,
            peer,
            local,
            tls,
            max_uri_length,
            max_header_bytes,
            forwarded_for,
            forwarded: format!("for={node};proto={proto}"),
        }
    }
}

/// The TLS session of a connection.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// Negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// Server name the client asked for (SNI).
    pub sni: Option<String>,
    /// The client's verified certificate chain, leaf first; empty when none
    /// was presented.
    pub client_chain: Vec<CertificateDer<'static>>,
}

/// One request's context.
#[derive(Debug)]
pub struct Exchange {
    /// Gateway-generated id (UUID v4), sent upstream and back.
    pub request_id: String,
    /// The same id as a header value, built once.
    pub request_id_value: HeaderValue,
    /// FAPI interaction id: the client's if well-formed, else generated.
    pub interaction_id: HeaderValue,
    /// The connection it arrived on.
    pub conn: Arc<ConnInfo>,
    /// Request method.
    pub method: Method,
    /// HTTP version of the client's request.
    pub version: Version,
    /// Monotonic start time.
    pub started: Duration,
    /// The normalised path, once the router has computed it.
    pub path: Option<String>,
    /// The client's address: the peer's, or the one a trusted proxy
    /// reported (see `ip_filter`).
    pub client_ip: std::net::IpAddr,
    /// Whether the peer is a trusted proxy (its forwarding headers count).
    pub via_trusted_proxy: bool,
    /// The host the request is for (authority or `Host`, checked to agree),
    /// once the router has computed it.
    pub host: Option<String>,
    /// The route id, once matched.
    pub route_id: Option<Arc<str>>,
    /// Path parameters of the matched route, decoded.
    pub params: Vec<(Arc<str>, String)>,
    /// Who is calling, once authenticated.
    pub principal: Option<Arc<crate::authn::Principal>>,
    /// `RateLimit-Policy` and `RateLimit` values for the response.
    pub rate_limit: Option<(HeaderValue, HeaderValue)>,
    /// `forwarded`, or the stable code of the refusal.
    pub outcome: &'static str,
    /// The detailed internal cause of a refusal, for logs and audit only,
    /// never for the client.
    pub cause: Option<String>,
    /// The query string, already redacted (only with an audit trail; the
    /// raw query is never kept).
    pub query: Option<String>,
    /// Request body bytes, when declared (`Content-Length`).
    pub bytes_in: Option<u64>,
    /// The upstream's status, once it answered.
    pub upstream_status: Option<u16>,
    /// How long the upstream took to answer.
    pub upstream_latency: Option<Duration>,
    /// Findings let through (`flag`) and verified signatures, for the
    /// threat engine and the audit record; never values.
    pub signals: Vec<crate::validate::Signal>,
    /// A one-time code confirmed this request (transaction confirmation).
    pub confirmed: bool,
}

impl Exchange {
    /// Starts the context of a request that arrived on `conn` at `now`.
    pub fn start<B>(conn: Arc<ConnInfo>, req: &Request<B>, now: Duration) -> Self {
        // One draw from the DRBG serves both ids.
        let [id, spare] = new_uuids();
        let request_id = id.to_string();
        let request_id_value =
            HeaderValue::from_str(&request_id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        let interaction_id = req
            .headers()
            .get("x-fapi-interaction-id")
            .filter(|v| valid_interaction_id(v.as_bytes()))
            .cloned()
            .unwrap_or_else(|| {
                HeaderValue::from_str(&spare.to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
            });
        let peer_ip = conn.peer.ip();
        Self {
            request_id,
            request_id_value,
            interaction_id,
            conn,
            method: req.method().clone(),
            version: req.version(),
            started: now,
            path: None,
            client_ip: peer_ip,
            via_trusted_proxy: false,
            host: None,
            route_id: None,
            params: Vec::new(),
            principal: None,
            rate_limit: None,
            outcome: "forwarded",
            cause: None,
            query: None,
            bytes_in: None,
            upstream_status: None,
            upstream_latency: None,
            signals: Vec::new(),
            confirmed: false,
        }
    }

    /// A method name safe for a metric label: standard methods by name,
    /// anything else `OTHER` (bounded cardinality).
    pub fn method_label(&self) -> &'static str {
        method_label(&self.method)
    }

    /// The HTTP version as text.
    pub fn version_label(&self) -> &'static str {
        match self.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_3 => "HTTP/3",
            _ => "other",
        }
    }
}

/// An address as a `Forwarded` node (RFC 7239: IPv6 quoted and bracketed).
pub fn forwarded_node(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// A method name with bounded cardinality.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// FAPI 2.0 asks for an RFC 4122 UUID in its hyphenated form; anything else
/// (including the braced, URN and simple forms) is replaced, so that a client
/// cannot inject arbitrary text into our logs and upstream headers.
fn valid_interaction_id(v: &[u8]) -> bool {
    v.len() == 36
        && std::str::from_utf8(v)
            .ok()
            .and_then(|s| uuid::Uuid::try_parse(s).ok())
            .is_some()
}

/// Two random (version 4) UUIDs from aws-lc's user-space DRBG, no system
/// call, unlike `Uuid::new_v4`. Random bytes are drawn 512 at a time into a
/// per-thread buffer: the DRBG's per-call overhead, not its output, was the
/// cost on the request path.
pub fn new_uuids() -> [uuid::Uuid; 2] {
    thread_local! {
        static POOL: std::cell::RefCell<([u8; 512], usize)> = const { std::cell::RefCell::new(([0; 512], 512)) };
    }
    let drawn = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (buf, pos) = &mut *pool;
        if *pos + 32 > buf.len() {
            if aws_lc_rs::rand::fill(buf).is_err() {
                return None;
            }
            *pos = 0;
        }
        let mut x = [0u8; 16];
        let mut y = [0u8; 16];
        x.copy_from_slice(buf.get(*pos..*pos + 16)?);
        y.copy_from_slice(buf.get(*pos + 16..*pos + 32)?);
        // Each byte is used once.
        *pos += 32;
        Some((x, y))
    });
    match drawn {
        Some((x, y)) => [
            uuid::Builder::from_random_bytes(x).into_uuid(),
            uuid::Builder::from_random_bytes(y).into_uuid(),
        ],
        None => [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()],
    }
}

#[cfg(test)]
pub(crate) fn test_exchange(peer: &str, tls: bool) -> Exchange {
    let conn = Arc::new(ConnInfo::new(
        Arc::from("public"),
        peer.parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 1))),
        SocketAddr::from(([127, 0, 0, 1], 8443)),
        tls.then(|| TlsInfo {
            version: "TLSv1.3",
            alpn: None,
            sni: None,
            client_chain: vec![],
        }),
        8192,
        32768,
    ));
    let req = Request::new(());
    Exchange::start(conn, &req, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct_v4_uuids_across_refills() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            for id in super::new_uuids() {
                assert_eq!(id.get_version_num(), 4);
                assert!(seen.insert(id), "repeated id {id}");
            }
        }
    }
}
