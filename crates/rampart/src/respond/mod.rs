//! The last word on every response: refusals as RFC 9457 problems, upstream
//! responses stripped of what leaks, security headers on everything.
//!
//! Threats answered: information disclosure (server software and versions,
//! stack traces in upstream 5xx bodies, internal error detail; OWASP API8)
//! and missing transport protections (HSTS, MIME sniffing, framing, caching
//! of banking data). Every response, refused or forwarded, passes through
//! [`Responder::finish`] or [`Responder::reject`]. How it fails: header names
//! and values that cannot be encoded are configuration errors at load, so
//! nothing can fail at request time.

pub mod config;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use self::config::ResponseConfig;
use crate::config::ConfigProblem;
use crate::exchange::Exchange;
use crate::reject::Reject;
use crate::route::config::UpstreamErrors;
use crate::route::RoutePolicy;
use crate::Body;

/// Headers that reveal server software, removed from every response.
const LEAKY_HEADERS: &[&str] = &[
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-runtime",
    "x-backend-server",
    "via",
];

/// `RateLimit-Policy` (IETF httpapi rate-limit headers draft).
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (same draft).
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `x-fapi-interaction-id` (FAPI 2.0).
pub const X_FAPI_INTERACTION_ID: HeaderName = HeaderName::from_static("x-fapi-interaction-id");

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
pub const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether a header is hop-by-hop by definition.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

/// Removes every header for which `drop` is true, in one pass over the
/// headers present (usually a handful) rather than one lookup per name that
/// might be there.
pub fn remove_where(headers: &mut HeaderMap, drop: impl Fn(&HeaderName) -> bool) {
    let doomed: Vec<HeaderName> = headers.keys().filter(|n| drop(n)).cloned().collect();
    for name in doomed {
        headers.remove(&name);
    }
}

/// The header names listed in `Connection` (they are hop-by-hop too).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// Removes hop-by-hop headers, including those named in `Connection`, and
/// any header for which `also` is true.
pub fn strip_hop_by_hop_and(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let named = connection_named(headers);
    remove_where(headers, |n| is_hop_by_hop(n) || named.contains(n) || also(n));
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_hop_by_hop_and(headers, |_| false);
}

/// `Location` and `Content-Location` that point at the upstream itself
/// (`http://core-1.bank.internal:8443/v1/payments/7`) would tell clients
/// the bank's internal host names and send them where they cannot go; they
/// become path-absolute references (`/v1/payments/7`), which resolve
/// against the gateway's own URL. Other absolute URLs (an external IdP) are
/// left alone.
fn hide_upstream_urls(headers: &mut HeaderMap, upstream: &crate::upstream::Upstream) {
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(uri) = value.parse::<http::Uri>() else {
            continue;
        };
        let internal = uri
            .authority()
            .is_some_and(|a| upstream.is_target_authority(a.as_str()));
        if !internal {
            continue;
        }
        let relative = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        match HeaderValue::from_str(relative) {
            Ok(v) => {
                headers.insert(name, v);
            }
            Err(_) => {
                headers.remove(name);
            }
        }
    }
}

/// The validated response policy.
#[derive(Debug)]
pub struct Responder {
    strip: Vec<HeaderName>,
    add: Vec<(HeaderName, HeaderValue)>,
    hsts: Option<HeaderValue>,
    problem_type_base: String,
    request_id_header: HeaderName,
}

// === impl Responder ===

impl Responder {
    /// Validates `[response]`.
    pub fn from_config(cfg: &ResponseConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut strip: Vec<HeaderName> = LEAKY_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect();
        for (i, h) in cfg.strip_headers.iter().enumerate() {
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => strip.push(n),
                Err(_) => problems.push(ConfigProblem::error(
                    format!("response.strip_headers[{i}]"),
                    format!("`{h}` is not a valid header name"),
                )),
            }
        }
        let mut add = Vec::new();
        for (k, v) in &cfg.add_headers {
            let lower = k.to_ascii_lowercase();
            if lower == "x-fapi-interaction-id" || lower == cfg.request_id_header.to_ascii_lowercase() {
                problems.push(ConfigProblem::error(
                    format!("response.add_headers.{k}"),
                    "set by the gateway for each request; it cannot be configured",
                ));
                continue;
            }
            let name = HeaderName::from_bytes(k.as_bytes());
            let value = HeaderValue::from_str(v);
            match (name, value) {
                (Ok(n), Ok(v)) => add.push((n, v)),
                _ => problems.push(ConfigProblem::error(
                    format!("response.add_headers.{k}"),
                    "not a valid header name and value",
                )),
            }
        }
        let hsts = if cfg.hsts.is_empty() {
            None
        } else {
            match HeaderValue::from_str(&cfg.hsts) {
                Ok(v) => Some(v),
                Err(_) => {
                    problems.push(ConfigProblem::error("response.hsts", "not a valid header value"));
                    None
                }
            }
        };
        if !(cfg.problem_type_base.starts_with("https://")
            || cfg.problem_type_base.starts_with("http://")
            || cfg.problem_type_base.starts_with("urn:"))
        {
            problems.push(ConfigProblem::error(
                "response.problem_type_base",
                "must be an absolute URI (https://…, http://… or urn:…)",
            ));
        }
        let request_id_header = match HeaderName::from_bytes(cfg.request_id_header.as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                problems.push(ConfigProblem::error(
                    "response.request_id_header",
                    "not a valid header name",
                ));
                HeaderName::from_static("x-request-id")
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            strip,
            add,
            hsts,
            problem_type_base: cfg.problem_type_base.clone(),
            request_id_header,
        })
    }

    /// The header that carries the request id, upstream and back.
    pub fn request_id_header(&self) -> &HeaderName {
        &self.request_id_header
    }

    /// Turns a refusal into an `application/problem+json` response. The body
    /// holds only fixed text and the request id: never input, never the
    /// internal cause.
    pub fn reject(&self, reject: &Reject, ex: &Exchange) -> Response<Body> {
        let class = reject.class();
        let mut resp = self.problem(class.status, class.code, class.title, reject.pointer(), ex);
        if let Reject::Forbidden(refusal) = reject {
            let h = resp.headers_mut();
            if let Some(c) = refusal.challenge() {
                h.insert(header::WWW_AUTHENTICATE, c);
            }
            if let Some(secs) = refusal.retry_after() {
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        if let Reject::Unauthenticated(refusal) = reject {
            let h = resp.headers_mut();
            for c in &refusal.challenges {
                h.append(header::WWW_AUTHENTICATE, c.clone());
            }
            if let Some(nonce) = &refusal.nonce {
                h.insert("dpop-nonce", nonce.clone());
            }
        }
        if let Reject::Overloaded(_) = reject {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Reject::RateLimited(limited) = reject {
            let h = resp.headers_mut();
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::rate_limit::retry_after_secs(limited.retry_after)),
            );
            h.insert(RATELIMIT_POLICY, limited.headers.0.clone());
            h.insert(RATELIMIT, limited.headers.1.clone());
        }
        if let Reject::MethodNotAllowed { allow } = reject {
            let list = allow.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::from_str(&list) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        self.decorate(resp.headers_mut(), ex);
        resp
    }

    /// Filters an upstream response on its way to the client.
    pub fn finish(
        &self,
        resp: Response<crate::upstream::pool::ResponseBody>,
        route: &RoutePolicy,
        upstream: &crate::upstream::Upstream,
        ex: &mut Exchange,
    ) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        if parts.status.is_server_error() && route.upstream_errors == UpstreamErrors::Scrub {
            ex.outcome = "upstream-error";
            let retry_after = parts.headers.get(header::RETRY_AFTER).cloned();
            let mut scrubbed = self.problem(
                parts.status,
                "upstream-error",
                "The service could not complete the request",
                None,
                ex,
            );
            self.decorate(scrubbed.headers_mut(), ex);
            if let Some(v) = retry_after {
                scrubbed.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return scrubbed;
        }
        strip_hop_by_hop_and(&mut parts.headers, |n| self.strip.contains(n));
        hide_upstream_urls(&mut parts.headers, upstream);
        self.decorate(&mut parts.headers, ex);
        Response::from_parts(parts, Either::Left(body))
    }

    /// A generic problem of `status` in place of an upstream error body
    /// (used by response guarding for an undeclared 4xx body).
    pub fn scrubbed(&self, status: StatusCode, ex: &mut Exchange) -> Response<Body> {
        ex.outcome = "upstream-error";
        let mut resp = self.problem(
            status,
            "upstream-error",
            "The service could not complete the request",
            None,
            ex,
        );
        self.decorate(resp.headers_mut(), ex);
        resp
    }

    /// A stored (idempotency) response on its way to the client; `replayed`
    /// marks one served from the store.
    pub fn stored(
        &self,
        stored: &crate::rate_limit::idempotency::Stored,
        upstream: &crate::upstream::Upstream,
        ex: &Exchange,
        replayed: bool,
    ) -> Response<Body> {
        let mut resp = Response::new(Either::Right(Full::new(stored.body.clone())));
        *resp.status_mut() = stored.status;
        *resp.headers_mut() = stored.headers.clone();
        hide_upstream_urls(resp.headers_mut(), upstream);
        self.decorate(resp.headers_mut(), ex);
        if replayed {
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        resp
    }

    fn problem(
        &self,
        status: StatusCode,
        code: &str,
        title: &str,
        pointer: Option<&str>,
        ex: &Exchange,
    ) -> Response<Body> {
        let mut body = serde_json::json!({
            "type": format!("{}{}", self.problem_type_base, code),
            "title": title,
            "status": status.as_u16(),
            "instance": format!("urn:uuid:{}", ex.request_id),
        });
        if let (Some(p), Some(m)) = (pointer, body.as_object_mut()) {
            m.insert("pointer".into(), serde_json::Value::from(p));
        }
        let bytes = Bytes::from(body.to_string());
        let mut resp = Response::new(Either::Right(Full::new(bytes)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp
    }

    /// Headers every response leaves with, and those it leaves without.
    fn decorate(&self, h: &mut HeaderMap, ex: &Exchange) {
        if let Some((policy, state)) = &ex.rate_limit {
            h.insert(RATELIMIT_POLICY, policy.clone());
            h.insert(RATELIMIT, state.clone());
        }
        if let (Some(hsts), Some(_)) = (&self.hsts, &ex.conn.tls) {
            h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
        for (k, v) in &self.add {
            h.insert(k.clone(), v.clone());
        }
        h.insert(X_FAPI_INTERACTION_ID, ex.interaction_id.clone());
        h.insert(self.request_id_header.clone(), ex.request_id_value.clone());
    }
}
