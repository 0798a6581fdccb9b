//! The request pipeline. Read this file first: it is the whole life of a
//! request.
//!
//! ```text
//! listener (accept, TLS, limits)          listener/
//!   → route      404 / 405 / 400 / 414 / 431   route/
//!   → ip_filter  403 by client address         ip_filter/ (pre-TLS deny in listener/)
//!   → authn      401 / 400 + WWW-Authenticate  authn/ (JWT, DPoP, mTLS-bound) → Principal
//!   → authz      403 / 401 step-up / 400       authz/ (scopes, roles, rules, RAR) → Permit
//!   → rate_limit 429 + Retry-After              rate_limit/ (keys may be the principal)
//!   → validate   400 / 413 / 415 / 422 / 401     validate/ (OpenAPI, limits, injection, RFC 9421)
//!   → in-flight  503 + Retry-After (gateway, route, upstream ceilings)
//!   → upstream   502 / 504                     upstream/
//!   → respond    strip leaky headers, scrub upstream 5xx, security headers;
//!                response guarding, views, signing  validate/response.rs, authz/views.rs
//!   → audit      one redacted, chained, encrypted record, durable before the
//!                response leaves (503 up front if the trail cannot take it)
//!   → observe    metrics + one access-log line, for every request
//! ```
//!
//! Every phase returns `Result<_, Reject>`. The first `Reject` skips to
//! [`Responder::reject`](crate::respond::Responder::reject), the only code
//! that turns a refusal into a response. Observation runs for every request,
//! accepted or refused. The request holds one [`Gateway`] snapshot from start
//! to finish, so a reload never mixes two policies in one request.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use crate::body::RequestBody;
use crate::exchange::{ConnInfo, Exchange};
use crate::gateway::Gateway;
use crate::metrics::{RequestLabels, UpstreamErrorLabels};
use crate::rate_limit::config::IdempotencyConfig;
use crate::rate_limit::config::StoreKind;
use crate::rate_limit::idempotency::{self, Begin, Stored};
use crate::rate_limit::AdmitError;
use crate::reject::Reject;
use crate::route::{AuthnPolicy, RoutePolicy};
use crate::telemetry::{self, AccessLog};
use crate::upstream::{Upstream, UpstreamError};
use crate::Body;

/// Handles one request from start to finish. Never fails: every failure is
/// a response.
pub async fn handle(gw: Arc<Gateway>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Response<Body> {
    let mut ex = Exchange::start(conn, &req, gw.clock.monotonic());
    let peer = ex.conn.peer.ip();
    ex.via_trusted_proxy = gw.ip_filter.is_trusted(peer);
    ex.client_ip = gw.ip_filter.client_ip(peer, req.headers());
    ex.bytes_in = req.body().size_hint().exact();
    if let Some(audit) = gw.auditor() {
        // Only the redacted query is kept.
        ex.query = req
            .uri()
            .query()
            .filter(|q| !q.is_empty())
            .map(|q| crate::redact::redact_query(q, &audit.policy().config.query_params));
    }
    // Observed exactly once, when this guard drops: after the response, or
    // when the client goes away mid-request (hyper then drops this future).
    let mut obs = Observation {
        gw: gw.clone(),
        ex,
        status: None,
        audit: None,
    };
    // A place for this request's audit record, or 503 (`[audit] on_failure`).
    let admitted = match gw.auditor() {
        None => Ok(()),
        Some(audit) => match audit.admit().await {
            Ok(permit) => {
                obs.audit = Some(permit);
                Ok(())
            }
            Err(_) => Err(Reject::Overloaded("audit")),
        },
    };
    let result = match admitted {
        Ok(()) => run(&gw, &mut obs.ex, req.map(RequestBody::new)).await,
        Err(reject) => Err(reject),
    };
    let response = match result {
        Ok(resp) => resp,
        Err(reject) => {
            let ex = &mut obs.ex;
            ex.outcome = reject.class().code;
            ex.cause = Some(reject.to_string());
            if let Reject::Upstream(e) = &reject {
                gw.metrics
                    .upstream_errors
                    .get_or_create(&UpstreamErrorLabels {
                        upstream: e.upstream().clone(),
                        kind: e.kind(),
                    })
                    .inc();
            }
            let resp = gw.respond.reject(&reject, ex);
            if let Reject::RateLimited(l) = &reject {
                ex.rate_limit = Some(l.headers.clone()); // the limit's state, for the audit record
            }
            resp
        }
    };
    obs.status = Some(response.status().as_u16());
    // Durable before the client hears back (`[audit] durability`).
    obs.audit(response.body().size_hint().exact()).await;
    response
}

async fn run(
    gw: &Gateway,
    ex: &mut Exchange,
    mut req: Request<RequestBody>,
) -> Result<Response<Body>, Reject> {
    let route = gw.router.resolve(&req, ex)?; // 404, 405, 400, 414, 431
    if let Some(ban) = gw.limits.bans.ban_of(ex.client_ip, gw.clock.monotonic()) {
        return Err(gw.brute_force.refusal(&ban, ex.client_ip, gw.clock.monotonic()));
        // 403; 429 + Retry-After for brute force
    }
    route.ip.check(ex.client_ip).map_err(Reject::IpDenied)?; // 403
    let scheme = token_scheme(req.headers());
    // A message signature may cover the credentials the gateway consumes.
    let signed_authorization = route
        .validate
        .as_ref()
        .and_then(|v| v.signature.as_ref())
        .and_then(|_| req.headers().get(header::AUTHORIZATION).cloned());
    if route.authn != AuthnPolicy::None {
        ex.principal = authenticate(gw, ex, &req, route).await?; // 401 + WWW-Authenticate (400 if malformed)
        if !route.forward_credentials {
            // The token was for the gateway; the upstream gets the identity.
            req.headers_mut().remove(header::AUTHORIZATION);
            req.headers_mut().remove("dpop");
            if let Some(h) = gw.authn.api_key_header() {
                req.headers_mut().remove(h);
            }
        }
    }
    let (mut parts, body) = req.into_parts();
    // The body is read before authorization only when a rule or the
    // authorization details look inside it.
    let mut payload = Payload::Stream(body);
    let mut json = None;
    if route.authz.needs_body() {
        let bytes = payload.read(body_limit(route)).await?; // 413
        json = parse_json(&parts.headers, &bytes)?; // 400 invalid-json
    }
    let permit = authorize(gw, ex, route, &parts, json.as_ref(), scheme).await?; // 403; 401 step-up; 429 confirmation locked
    ex.confirmed = permit.confirmed();
    if let Some(h) = route.authz.confirm_header() {
        // A one-time code is for the gateway, never the upstream.
        parts.headers.remove(h);
    }
    ex.rate_limit = route
        .limits
        .admit(
            &gw.limits,
            &gw.metrics,
            ex.client_ip,
            ex.principal.as_deref(),
            &parts.headers,
            gw.clock.monotonic(),
        )
        .await
        .map_err(|e| match e {
            AdmitError::Limited(l) => Reject::RateLimited(l), // 429
            AdmitError::StoreDown => Reject::Overloaded("rate_limit_store"), // 503, on_failure = "deny"
        })?;
    if let Some(v) = route.validate.as_deref() {
        let bytes = payload.read(body_limit(route)).await?; // 413
        validate(gw, ex, v, &parts, signed_authorization, &bytes, json.take()).await?;
        // 400, 401, 415, 422; the bytes checked are the bytes forwarded
    }
    let upstream = gw.upstream_of(route).ok_or(Reject::NoRoute)?;
    // In flight until the response headers are ready (503 when full).
    let _permits = [
        ("gateway", gw.gate.as_ref()),
        ("route", route.gate.as_ref()),
        ("upstream", upstream.gate.as_ref()),
    ]
    .into_iter()
    .map(|(scope, gate)| match gate {
        None => Ok(None),
        Some(g) => g.try_enter().map(Some).ok_or(Reject::Overloaded(scope)),
    })
    .collect::<Result<Vec<_>, _>>()?;
    let view = permit.view().and_then(|i| route.authz.view(i));
    if view.is_some() {
        // The response must be readable to be filtered.
        parts.headers.remove(header::ACCEPT_ENCODING);
    }
    let resp = match &route.idempotency {
        None => {
            let req = Request::from_parts(parts, payload.into_forward());
            let sent = gw.clock.monotonic();
            let forwarded = upstream
                .forward(req, ex, &permit, gw.respond.request_id_header(), route.timeout)
                .await;
            ex.upstream_latency = Some(gw.clock.monotonic().saturating_sub(sent));
            let resp = forwarded.map_err(Reject::Upstream)?; // 502, 504
            ex.upstream_status = Some(resp.status().as_u16());
            gw.respond.finish(resp, route, upstream, ex) // scrubs 5xx bodies, hides upstream URLs
        }
        Some(idem) => {
            let body = payload.read(body_limit(route)).await?;
            idempotent(gw, ex, parts, body, &permit, route, upstream, idem).await?
            // 400, 409, 413, 422; replays
        }
    };
    let bad_gateway = |detail: String| {
        Reject::Upstream(UpstreamError::Protocol {
            upstream: upstream.name().clone(),
            detail,
        })
    };
    // Checked against the API, undeclared members stripped, sensitive
    // values masked (502 if it cannot be, or does not conform on `block`).
    let resp = match route.validate.as_deref() {
        Some(v) => match &v.response {
            Some(g) => {
                let method = ex.method.clone();
                let before = ex.signals.len();
                let guarded = crate::validate::response::guard(g, v.operation(&method), resp, ex).await;
                count_findings(gw, ex, before);
                match guarded.map_err(bad_gateway)? {
                    crate::validate::response::Guarded::Pass(r) => *r,
                    crate::validate::response::Guarded::Scrub(status) => gw.respond.scrubbed(status, ex),
                }
            }
            None => resp,
        },
        None => resp,
    };
    let resp = match view {
        // Fields the caller's scope may not see are removed or masked.
        Some(view) => crate::authz::views::filter_response(resp, view)
            .await
            .map_err(bad_gateway)?, // 502 if it cannot be filtered
        None => resp,
    };
    // Signed last, over exactly what the client receives.
    let sign = route
        .validate
        .as_deref()
        .and_then(|v| v.signature.as_ref())
        .is_some_and(|s| s.sign_response);
    match (sign, &gw.validation.signatures) {
        (true, Some(sigs)) => crate::validate::response::sign(sigs, resp)
            .await
            .map_err(bad_gateway),
        _ => Ok(resp),
    }
}

/// The validation phase: header values, media type, signature, parameters,
/// structure limits, schema, injection.
async fn validate(
    gw: &Gateway,
    ex: &mut Exchange,
    v: &crate::validate::RouteValidation,
    parts: &http::request::Parts,
    signed_authorization: Option<http::HeaderValue>,
    bytes: &Bytes,
    json: Option<serde_json::Value>,
) -> Result<(), Reject> {
    let with_credentials;
    let headers = match signed_authorization {
        Some(a) if !parts.headers.contains_key(header::AUTHORIZATION) => {
            let mut h = parts.headers.clone();
            h.insert(header::AUTHORIZATION, a);
            with_credentials = h;
            &with_credentials
        }
        _ => &parts.headers,
    };
    let params = ex.params.clone();
    let authority = ex.host.clone().unwrap_or_default();
    let view = crate::validate::RequestView {
        method: &parts.method,
        msg: crate::validate::signature::Message::request(
            parts.method.as_str(),
            if ex.conn.tls.is_some() { "https" } else { "http" },
            &authority,
            parts.uri.path(),
            parts.uri.query(),
            headers,
        ),
        params: &params,
    };
    let before = ex.signals.len();
    let checked = v.check(&gw.validation, ex, &view, bytes, json).await;
    count_findings(gw, ex, before);
    if let Err(crate::validate::ValidateError::Injection { class, .. }) = &checked {
        gw.metrics
            .validation_findings
            .get_or_create(&crate::metrics::ValidationFindingLabels {
                kind: format!("injection:{}", class.as_str()),
                action: "block",
            })
            .inc();
    }
    checked.map(|_| ()).map_err(Reject::Invalid)
}

/// Counts the findings flagged (let through) since signal `from`.
fn count_findings(gw: &Gateway, ex: &Exchange, from: usize) {
    for s in ex.signals.iter().skip(from) {
        if s.kind.starts_with("signature:") {
            continue;
        }
        gw.metrics
            .validation_findings
            .get_or_create(&crate::metrics::ValidationFindingLabels {
                kind: s.kind.clone(),
                action: "flag",
            })
            .inc();
    }
}

/// The request body: still streaming, or read once (and then forwarded
/// as exactly those bytes).
enum Payload {
    Stream(RequestBody),
    Read(Bytes),
}

impl Payload {
    /// The whole body, read at most once, up to `limit` bytes (413 above).
    async fn read(&mut self, limit: usize) -> Result<Bytes, Reject> {
        if let Payload::Read(b) = self {
            return Ok(b.clone());
        }
        let Payload::Stream(body) = std::mem::replace(self, Payload::Read(Bytes::new())) else {
            return Ok(Bytes::new());
        };
        let bytes = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    Reject::BodyTooLarge
                } else {
                    Reject::BodyUnreadable
                }
            })?
            .to_bytes();
        *self = Payload::Read(bytes.clone());
        Ok(bytes)
    }

    fn into_forward(self) -> crate::ForwardBody {
        match self {
            Payload::Stream(b) => Either::Left(b),
            Payload::Read(b) => Either::Right(Full::new(b)),
        }
    }
}

/// The most the gateway reads of a route's request body.
fn body_limit(route: &RoutePolicy) -> usize {
    match &route.idempotency {
        Some(i) => i.max_body.min(route.max_body),
        None => route.max_body,
    }
}

/// A JSON body (`application/json` or `+json`) parsed strictly; `None` for
/// an empty body or another media type.
fn parse_json(headers: &http::HeaderMap, bytes: &Bytes) -> Result<Option<serde_json::Value>, Reject> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
    if !json || bytes.is_empty() {
        return Ok(None);
    }
    crate::body::json::parse(bytes, &crate::body::json::JsonLimits::default())
        .map(Some)
        .map_err(Reject::InvalidJson)
}

/// The scheme the client's token came with, for challenges.
fn token_scheme(h: &http::HeaderMap) -> &'static str {
    match h.get(header::AUTHORIZATION).map(|v| v.as_bytes()) {
        Some(v) if v.len() >= 5 && v[..5].eq_ignore_ascii_case(b"dpop ") => "DPoP",
        _ => "Bearer",
    }
}

/// Runs the route's authorization: the permit to forward, or a refusal.
async fn authorize(
    gw: &Gateway,
    ex: &Exchange,
    route: &RoutePolicy,
    parts: &http::request::Parts,
    body: Option<&serde_json::Value>,
    scheme: &'static str,
) -> Result<crate::authz::Permit, Reject> {
    let now = gw
        .clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let input = crate::authz::rules::Input {
        principal: ex.principal.as_deref(),
        method: ex.method.as_str(),
        params: &ex.params,
        query: parts.uri.query(),
        headers: &parts.headers,
        body,
        now,
    };
    gw.authz
        .authorize(&route.authz, ex.principal.as_ref(), &input, gw.clock.monotonic())
        .await
        .map_err(|error| {
            gw.metrics
                .authz_refusals
                .get_or_create(&crate::metrics::AuthzRefusalLabels { cause: error.cause() })
                .inc();
            Reject::Forbidden(crate::authz::AuthzRefusal { error, scheme })
        })
}

/// Runs the route's authentication: the principal, or 401 with challenges.
async fn authenticate(
    gw: &Gateway,
    ex: &Exchange,
    req: &Request<RequestBody>,
    route: &RoutePolicy,
) -> Result<Option<Arc<crate::authn::Principal>>, Reject> {
    let scheme = if ex.conn.tls.is_some() { "https" } else { "http" };
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    let url = format!("{scheme}://{authority}{}", req.uri().path());
    let handshake = ex
        .conn
        .tls
        .as_ref()
        .and_then(|t| t.client_chain.first())
        .map(|c| c.as_ref());
    // The handshake's certificate, or RFC 9440 `Client-Cert` from a trusted proxy.
    let refusal =
        match gw
            .authn
            .client_certificate(handshake, req.headers(), ex.via_trusted_proxy, &route.authn)
        {
            Err(refusal) => refusal,
            Ok(_) if gw.brute_force.key_banned(req.headers()).await => gw
                .authn
                .refusal(crate::authn::AuthnError::ApiKeyBanned, &route.authn),
            Ok(cert) => match gw
                .authn
                .authenticate(
                    &route.authn,
                    req.headers(),
                    ex.method.as_str(),
                    &url,
                    cert.as_deref(),
                )
                .await
            {
                Ok(principal) => return Ok(principal),
                Err(refusal) => refusal,
            },
        };
    gw.metrics
        .authn_failures
        .get_or_create(&crate::metrics::AuthnFailureLabels {
            cause: refusal.error.cause(),
        })
        .inc();
    if refusal.error == crate::authn::AuthnError::RevocationUnavailable {
        return Err(Reject::Overloaded("revocation_store")); // 503, [redis] on_failure = "deny"
    }
    // Counted per address (never a trusted proxy's own) and API-key id.
    let client = (!gw.ip_filter.is_trusted(ex.client_ip)).then_some(ex.client_ip);
    gw.brute_force
        .failed(&gw.limits, client, req.headers(), &refusal.error)
        .await;
    Err(Reject::Unauthenticated(refusal))
}

/// An `Idempotency-Key` route: the first request is forwarded and its answer
/// kept; a retry of the same request is answered from the store.
#[allow(clippy::too_many_arguments)]
async fn idempotent(
    gw: &Gateway,
    ex: &mut Exchange,
    parts: http::request::Parts,
    body: Bytes,
    permit: &crate::authz::Permit,
    route: &RoutePolicy,
    upstream: &Upstream,
    idem: &IdempotencyConfig,
) -> Result<Response<Body>, Reject> {
    let key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned)
        .ok_or(Reject::IdempotencyKeyRequired)?;
    let fp = idempotency::fingerprint(parts.method.as_str(), ex.path.as_deref().unwrap_or("/"), &body);
    let redis = match idem.store {
        StoreKind::Redis => gw.traffic.redis.as_ref(),
        StoreKind::Memory => None,
    };
    let now = gw.clock.monotonic();
    let scope = idempotency::client_scope(ex.principal.as_deref(), ex.client_ip);
    let begin = idempotency::begin(&gw.limits, redis, &route.id, &scope, &key, fp, now)
        .await
        .map_err(|_| Reject::Overloaded("idempotency_store"))?; // 503, on_failure = "deny"
    let claim = match begin {
        Begin::New(claim) => claim,
        Begin::Replay(stored) => return Ok(gw.respond.stored(&stored, upstream, ex, true)),
        Begin::Mismatch => return Err(Reject::IdempotencyKeyReused),
        Begin::InFlight => return Err(Reject::IdempotencyConflict),
        Begin::Full => return Err(Reject::Overloaded("idempotency")),
    };
    let req = Request::from_parts(parts, Either::Right(Full::new(body)));
    let sent = gw.clock.monotonic();
    let forwarded = upstream
        .forward(req, ex, permit, gw.respond.request_id_header(), route.timeout)
        .await;
    ex.upstream_latency = Some(gw.clock.monotonic().saturating_sub(sent));
    let resp = forwarded.map_err(Reject::Upstream)?; // the claim drops: a retry may go through
    ex.upstream_status = Some(resp.status().as_u16());
    if resp.status().is_server_error() {
        drop(claim);
        return Ok(gw.respond.finish(resp, route, upstream, ex));
    }
    let (parts, body) = resp.into_parts();
    let body = Limited::new(body, idem.max_body).collect().await.map_err(|e| {
        Reject::Upstream(UpstreamError::Protocol {
            upstream: upstream.name().clone(),
            detail: format!("response body not kept for idempotency: {e}"),
        })
    })?;
    let mut headers = http::HeaderMap::new();
    for name in [
        header::CONTENT_TYPE,
        header::LOCATION,
        header::CONTENT_LOCATION,
        header::ETAG,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let stored = Stored {
        status: parts.status,
        headers,
        body: body.to_bytes(),
    };
    let response = gw.respond.stored(&stored, upstream, ex, false);
    claim.complete(stored, fp, gw.clock.monotonic(), idem.ttl).await;
    Ok(response)
}

/// Status recorded for a request whose client went away first (nginx's
/// convention; never sent).
const CLIENT_CLOSED: u16 = 499;

struct Observation {
    gw: Arc<Gateway>,
    ex: Exchange,
    status: Option<u16>,
    /// The place reserved for this request's audit record, until sent.
    audit: Option<crate::audit::Permit>,
}

impl Observation {
    fn audit_event(&self, bytes_out: Option<u64>) -> crate::audit::Event {
        let latency = self.gw.clock.monotonic().saturating_sub(self.ex.started);
        let status = self.status.unwrap_or(CLIENT_CLOSED);
        crate::audit::Event::Request(Box::new(crate::audit::RequestEvent::from_exchange(
            &self.ex, status, latency, bytes_out,
        )))
    }

    /// Sends this request's record and waits as `[audit] durability` says.
    async fn audit(&mut self, bytes_out: Option<u64>) {
        let Some(permit) = self.audit.take() else {
            return;
        };
        let event = self.audit_event(bytes_out);
        if let Err(e) = permit.record(event).await {
            tracing::error!(target: "rampart::audit", request_id = %self.ex.request_id, error = %e, "audit record not confirmed");
        }
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.ex.outcome = "client-cancelled";
        }
        // The client went away before its record was sent.
        if let Some(permit) = self.audit.take() {
            permit.record_detached(self.audit_event(None));
        }
        observe(&self.gw, &self.ex, self.status.unwrap_or(CLIENT_CLOSED));
    }
}

fn observe(gw: &Gateway, ex: &Exchange, status: u16) {
    let latency = gw.clock.monotonic().saturating_sub(ex.started);
    let route = ex.route_id.clone().unwrap_or_else(|| Arc::from("unmatched"));
    gw.metrics.observe_request(
        RequestLabels {
            route: route.clone(),
            method: ex.method_label(),
            status,
            outcome: ex.outcome,
        },
        latency,
    );
    if let Some(cause) = &ex.cause {
        tracing::debug!(request_id = %ex.request_id, outcome = ex.outcome, cause = %crate::redact::redact(cause), "request refused");
    }
    if gw.logging.access_log {
        let path = ex.path.as_deref().map(crate::redact::redact_url_part);
        telemetry::access(&AccessLog {
            request_id: &ex.request_id,
            listener: &ex.conn.listener,
            route: &route,
            method: ex.method_label(),
            path: path.as_deref().unwrap_or("-"),
            status,
            outcome: ex.outcome,
            latency,
            peer: ex.conn.peer,
            client: ex.client_ip,
            version: ex.version_label(),
        });
    }
}
