//! Response guarding: what leaves the gateway is what the API declares.
//!
//! On a route with `[routes.validate.response]`, the upstream's answer is
//! read (bounded) and checked against the operation's declared responses:
//! the status (or `4XX`/`default`), the media type and the schema. A
//! response that does not conform is replaced (`block`: 502) or passed
//! with a signal (`flag`). Members the schema does not declare are removed
//! (`strip_undeclared`); sensitive values are masked for callers without
//! `reveal_scope`, by pointer (`mask`, the masks of [`crate::redact`]
//! through an authorization [`View`]) or wherever a valid card number or
//! IBAN appears (`mask_detected`). An error response (4xx) that does not
//! match its declaration is replaced by a generic problem of the same
//! status: upstream error bodies never pass unfiltered (5xx bodies are
//! scrubbed by `respond` already).
//!
//! Threat answered: excessive data exposure and leaking internals in
//! responses (OWASP API3, API8). How it fails: closed; a body that cannot
//! be read, parsed or re-encoded is not passed on (502).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::config::{Action, ResponseGuardConfig, RouteSignatureConfig, SignaturesConfig};
use super::signature::{self, RouteSignature, Signatures};
use super::{media_type, CompiledOp, Signal};
use crate::authz::views::View;
use crate::config::{ConfigProblem, LoadedConfig};
use crate::exchange::Exchange;
use crate::rate_limit::config::StoreKind;

/// Largest response body guarded; a larger one is not passed on.
pub const MAX_GUARDED_BODY: usize = 8 * 1024 * 1024;

/// A route's response guard.
#[derive(Debug)]
pub struct ResponseGuard {
    check: Action,
    strip: bool,
    mask: Option<View>,
    mask_detected: bool,
    reveal_scope: Option<String>,
}

impl ResponseGuard {
    /// Validates `[routes.validate.response]` at key path `at`.
    pub fn from_config(at: &str, cfg: &ResponseGuardConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mask = if cfg.mask.is_empty() {
            None
        } else {
            let view = crate::authz::config::ViewConfig {
                scope: None,
                allow: Vec::new(),
                remove: Vec::new(),
                mask: cfg.mask.clone(),
            };
            Some(View::from_config(at, &view))
        };
        let mut problems = Vec::new();
        if cfg.reveal_scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
            problems.push(ConfigProblem::error(
                format!("{at}.reveal_scope"),
                "must not be empty",
            ));
        }
        let mask = match mask {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(p)) => {
                problems.extend(p);
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            check: cfg.check,
            strip: cfg.strip_undeclared,
            mask,
            mask_detected: cfg.mask_detected,
            reveal_scope: cfg.reveal_scope.clone(),
        })
    }
}

/// What a guarded response became.
pub enum Guarded {
    /// Pass this response on.
    Pass(Box<Response<crate::Body>>),
    /// Replace it by a generic problem of this status (an error body that
    /// does not match its declaration).
    Scrub(http::StatusCode),
}

fn declared(op: &CompiledOp, status: u16) -> Option<&[super::Media]> {
    let exact = status.to_string();
    let class = format!("{}XX", status / 100);
    op.responses
        .iter()
        .find(|(k, _)| *k == exact)
        .or_else(|| op.responses.iter().find(|(k, _)| k.eq_ignore_ascii_case(&class)))
        .or_else(|| op.responses.iter().find(|(k, _)| k == "default"))
        .map(|(_, m)| m.as_slice())
}

/// Reads a body, bounded.
pub async fn read_body(body: crate::Body) -> Result<Bytes, String> {
    http_body_util::Limited::new(body, MAX_GUARDED_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("response not read for guarding: {e}"))
}

/// Guards `resp` on a route with `guard` (and, if bound to an API, `op`).
pub async fn guard(
    guard: &ResponseGuard,
    op: Option<&CompiledOp>,
    resp: Response<crate::Body>,
    ex: &mut Exchange,
) -> Result<Guarded, String> {
    if resp.status().is_server_error() {
        return Ok(Guarded::Pass(Box::new(resp))); // scrubbed by `respond` already
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = read_body(body).await?;
    let status = parts.status.as_u16();
    let media = media_type(&parts.headers);
    let mut fault: Option<(String, String)> = None; // (kind, pointer)
    let mut schema_pointer = None;
    let mut doc = None;
    if let Some(op) = op {
        match declared(op, status) {
            None => fault = Some(("response:status".into(), String::new())),
            Some(list) if bytes.is_empty() => {
                if !list.is_empty() && list.iter().all(|m| m.schema.is_some()) && status != 204 {
                    fault = Some(("response:empty".into(), String::new()));
                }
            }
            Some(list) => {
                let m = media.clone().unwrap_or_default();
                match list.iter().find(|x| super::media_matches(&x.media, &m)) {
                    None => fault = Some(("response:media-type".into(), String::new())),
                    Some(x) => {
                        schema_pointer = x.pointer.clone();
                        if super::is_json(&m) {
                            match crate::body::json::parse(&bytes, &response_limits()) {
                                Err(e) => fault = Some(("response:json".into(), e.pointer)),
                                Ok(mut d) => {
                                    // Undeclared members are removed, not faults.
                                    if guard.strip {
                                        if let Some(p) = &x.pointer {
                                            strip(&op.spec, p, &mut d, 0);
                                        }
                                    }
                                    if let Some(s) = &x.schema {
                                        if let Err(v) = s.check(&d) {
                                            fault = Some(("response:schema".into(), v.pointer));
                                        }
                                    }
                                    doc = Some(d);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some((kind, pointer)) = fault {
        if parts.status.is_client_error() {
            // An error body the API does not declare: never passed on.
            return Ok(Guarded::Scrub(parts.status));
        }
        match guard.check {
            Action::Block => return Err(format!("{kind} at `{pointer}`")),
            Action::Flag => ex.signals.push(Signal { kind, pointer }),
            Action::Off => {}
        }
    }
    let reveal = guard
        .reveal_scope
        .as_deref()
        .is_some_and(|s| ex.principal.as_deref().is_some_and(|p| p.has_scope(s)));
    let rewrite = guard.strip || (!reveal && (guard.mask.is_some() || guard.mask_detected));
    if rewrite && !bytes.is_empty() {
        let media = media.unwrap_or_default();
        if !super::is_json(&media) {
            return Err(format!("a `{media}` response cannot be filtered"));
        }
        if parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
        {
            return Err("a compressed response cannot be filtered".into());
        }
        let mut d = match doc {
            Some(d) => d, // already stripped
            None => {
                let mut d = crate::body::json::parse(&bytes, &response_limits())
                    .map_err(|e| format!("response is not valid JSON ({e})"))?;
                if guard.strip {
                    if let (Some(op), Some(p)) = (op, &schema_pointer) {
                        strip(&op.spec, p, &mut d, 0);
                    }
                }
                d
            }
        };
        if !reveal {
            if let Some(view) = &guard.mask {
                view.apply(&mut d);
            }
            if guard.mask_detected {
                mask_detected(&mut d, 0);
            }
        }
        let out = Bytes::from(d.to_string());
        for h in [
            "etag",
            "content-length",
            "content-digest",
            "repr-digest",
            "content-md5",
        ] {
            parts.headers.remove(h);
        }
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        return Ok(Guarded::Pass(Box::new(Response::from_parts(parts, full(out)))));
    }
    Ok(Guarded::Pass(Box::new(Response::from_parts(parts, full(bytes)))))
}

fn full(b: Bytes) -> crate::Body {
    http_body_util::Either::Right(http_body_util::Full::new(b))
}

fn response_limits() -> crate::body::json::JsonLimits {
    crate::body::json::JsonLimits {
        max_depth: crate::body::json::MAX_DEPTH_CEILING,
        max_keys: usize::MAX,
        max_array: usize::MAX,
        max_string: usize::MAX,
        max_tokens: usize::MAX,
    }
}

/// What a schema says of an object's members: the declared ones (name and
/// schema pointer), the schema of the others if any, and whether others
/// are allowed as they are.
struct ObjectShape {
    props: Vec<(String, String)>,
    extra: Option<String>,
    allowed: bool,
}

/// The properties a schema declares for an object (following `$ref`s and
/// merging `allOf`/`anyOf`/`oneOf` branches), whether extra members are
/// allowed and with which schema; `None` if the schema says nothing about
/// objects (members are then left alone).
fn object_shape(spec: &super::openapi::Spec, pointer: &str, depth: usize) -> Option<ObjectShape> {
    if depth > 16 {
        return None;
    }
    let at = spec.resolve(pointer).ok()?;
    let node = spec.doc.pointer(&at)?;
    let mut props = Vec::new();
    let mut extra_schema = None;
    let mut extra_allowed = false;
    let mut said = false;
    if let Some(p) = node.get("properties").and_then(Value::as_object) {
        said = true;
        for k in p.keys() {
            props.push((
                k.clone(),
                format!("{at}/properties/{}", super::openapi::escape(k)),
            ));
        }
    }
    match node.get("additionalProperties") {
        Some(Value::Bool(true)) => extra_allowed = true,
        Some(Value::Object(_)) => extra_schema = Some(format!("{at}/additionalProperties")),
        _ => {}
    }
    if node.get("patternProperties").is_some() {
        extra_allowed = true;
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = node.get(k).and_then(Value::as_array) {
            for i in 0..list.len() {
                if let Some(branch) = object_shape(spec, &format!("{at}/{k}/{i}"), depth + 1) {
                    said = true;
                    props.extend(branch.props);
                    extra_schema = extra_schema.or(branch.extra);
                    extra_allowed |= branch.allowed;
                }
            }
        }
    }
    let allowed = extra_allowed || (extra_schema.is_none() && props.is_empty());
    said.then_some(ObjectShape {
        props,
        extra: extra_schema,
        allowed,
    })
}

/// Removes members the schema at `pointer` does not declare.
pub fn strip(spec: &super::openapi::Spec, pointer: &str, v: &mut Value, depth: usize) {
    if depth > crate::body::json::MAX_DEPTH_CEILING {
        return;
    }
    match v {
        Value::Object(m) => {
            let Some(ObjectShape {
                props,
                extra,
                allowed,
            }) = object_shape(spec, pointer, 0)
            else {
                return;
            };
            if extra.is_none() && !allowed {
                m.retain(|k, _| props.iter().any(|(p, _)| p == k));
            }
            for (k, child) in m.iter_mut() {
                let sub = props
                    .iter()
                    .find(|(p, _)| p == k)
                    .map(|(_, s)| s.clone())
                    .or_else(|| extra.clone());
                if let Some(sub) = sub {
                    strip(spec, &sub, child, depth + 1);
                }
            }
        }
        Value::Array(a) => {
            let Some(at) = spec.resolve(pointer).ok() else {
                return;
            };
            let items = format!("{at}/items");
            if spec.doc.pointer(&items).is_some() {
                for child in a {
                    strip(spec, &items, child, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Masks every string that is a valid card number or IBAN.
fn mask_detected(v: &mut Value, depth: usize) {
    if depth > crate::body::json::MAX_DEPTH_CEILING {
        return;
    }
    match v {
        Value::String(s) => {
            if crate::redact::luhn_valid(s) {
                *s = crate::redact::mask_pan(s);
            } else if s.len() >= 15 && crate::redact::iban_valid(s) {
                *s = crate::redact::mask_iban(s);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask_detected(x, depth + 1)),
        Value::Object(m) => m.values_mut().for_each(|x| mask_detected(x, depth + 1)),
        _ => {}
    }
}

/// Signs a response with the gateway's key (buffers the body).
pub async fn sign(sigs: &Signatures, resp: Response<crate::Body>) -> Result<Response<crate::Body>, String> {
    let (mut parts, body) = resp.into_parts();
    let bytes = read_body(body).await?;
    sigs.sign_response(parts.status.as_u16(), &mut parts.headers, &bytes)?;
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Response::from_parts(parts, full(bytes)))
}

/// Validates `[routes.validate.signature]` at `at`.
pub fn route_signature(
    at: &str,
    cfg: &RouteSignatureConfig,
    sigs: Option<&Signatures>,
) -> Result<RouteSignature, Vec<ConfigProblem>> {
    let Some(sigs) = sigs else {
        return Err(vec![ConfigProblem::error(
            at,
            "needs a [signatures] section with the clients whose keys are accepted",
        )]);
    };
    let mut problems = Vec::new();
    let clients = if cfg.clients.is_empty() {
        (0..sigs.clients.len()).collect()
    } else {
        let mut out = Vec::new();
        for (j, c) in cfg.clients.iter().enumerate() {
            match sigs.clients.iter().position(|x| &x.name == c) {
                Some(i) => out.push(i),
                None => problems.push(ConfigProblem::error(
                    format!("{at}.clients[{j}]"),
                    format!("no [[signatures.clients]] named `{c}`"),
                )),
            }
        }
        out
    };
    for (j, c) in cfg.components.iter().enumerate() {
        let known = matches!(
            c.as_str(),
            "@method" | "@target-uri" | "@authority" | "@scheme" | "@request-target" | "@path" | "@query"
        ) || (!c.starts_with('@')
            && http::HeaderName::from_bytes(c.as_bytes()).is_ok()
            && *c == c.to_ascii_lowercase());
        if !known {
            problems.push(ConfigProblem::error(
                format!("{at}.components[{j}]"),
                format!("`{c}` is not a supported component (derived components or lower-case header names)"),
            ));
        }
    }
    if cfg.sign_response && sigs.response_key.is_none() {
        problems.push(ConfigProblem::error(
            format!("{at}.sign_response"),
            "needs [signatures.response] with the gateway's signing key",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RouteSignature {
        required: cfg.required,
        clients,
        components: cfg.components.clone(),
        require_nonce: cfg.require_nonce,
        sign_response: cfg.sign_response,
    })
}

/// Validates `[signatures]`, reading every client's JWKS and the response
/// key; what loaded is returned with the problems (routes are checked
/// against it; any error still stops the policy).
pub fn signatures_from_config(
    cfg: &SignaturesConfig,
    loaded: &LoadedConfig,
    clock: crate::clock::SharedClock,
    redis: Option<&Arc<crate::rate_limit::redis::RedisStore>>,
    redis_configured: bool,
    nonces: &Arc<crate::authn::dpop::MemoryReplayCache>,
) -> (Signatures, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    let mut clients = Vec::new();
    for (i, c) in cfg.clients.iter().enumerate() {
        let at = |k: &str| format!("signatures.clients[{i}].{k}");
        if cfg.clients[..i].iter().any(|o| o.name == c.name) {
            problems.push(ConfigProblem::error(
                at("name"),
                format!("duplicate client `{}`", c.name),
            ));
        }
        let file = loaded.resolve(&c.jwks_file);
        match std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))
            .and_then(|t| signature::keys_from_jwks(&t).map_err(|e| format!("{}: {e}", file.display())))
        {
            Ok(keys) if keys.is_empty() => {
                problems.push(ConfigProblem::error(at("jwks_file"), "the JWKS has no key"))
            }
            Ok(keys) => clients.push(signature::Client {
                name: c.name.clone(),
                keys,
            }),
            Err(e) => problems.push(ConfigProblem::error(at("jwks_file"), e)),
        }
    }
    if cfg.max_age.is_zero() {
        problems.push(ConfigProblem::error("signatures.max_age", "must be more than 0"));
    }
    if cfg.nonce_capacity == 0 {
        problems.push(ConfigProblem::error(
            "signatures.nonce_capacity",
            "must be at least 1",
        ));
    }
    let response_key = match &cfg.response {
        None => None,
        Some(r) => {
            let file = loaded.resolve(&r.key_file);
            match std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
                .and_then(|t| crate::authn::sign::SigningKey::load(&t, None).map_err(|e| e.to_string()))
            {
                Ok(key) => match signature::alg_of(&key) {
                    Ok(_) => {
                        let keyid = r.keyid.clone().unwrap_or_else(|| key.kid().to_owned());
                        Some((key, keyid))
                    }
                    Err(e) => {
                        problems.push(ConfigProblem::error(
                            "signatures.response.key_file",
                            e.to_string(),
                        ));
                        None
                    }
                },
                Err(e) => {
                    problems.push(ConfigProblem::error("signatures.response.key_file", e));
                    None
                }
            }
        }
    };
    let store: Arc<dyn crate::authn::dpop::ReplayCache> = match (cfg.nonce_store, redis) {
        (StoreKind::Memory, _) => nonces.clone(),
        (StoreKind::Redis, Some(r)) => Arc::new(crate::authn::dpop::RedisReplayCache::new(
            r.clone(),
            nonces.clone(),
        )),
        (StoreKind::Redis, None) => {
            if !redis_configured {
                problems.push(ConfigProblem::error(
                    "signatures.nonce_store",
                    "`redis` needs a [redis] section with the server's url",
                ));
            }
            nonces.clone()
        }
    };
    let sigs = Signatures {
        clients,
        max_age: cfg.max_age,
        clock_skew: cfg.clock_skew,
        nonces: store,
        response_key,
        clock,
    };
    (sigs, problems)
}
