//! Validation: every incoming value conforms to what the API declares, and
//! every outgoing response reveals no more than it should.
//!
//! - [`openapi`]: `[[apis]]` documents (OpenAPI 3.0/3.1) are the inventory;
//!   routes are checked against them (or generated from them).
//! - [`schema`]: schemas compiled once at load, with banking formats.
//! - request checks, in order: header values (UTF-8, no NUL/CR/LF; 400
//!   `invalid-header`), media type (415), body size (413, the route's
//!   `max_body`), RFC 9421 signature and RFC 9530 digest (401/400),
//!   parameters (400 `invalid-parameter`), strict JSON with the route's
//!   structure limits (400 `invalid-json`), schema (422
//!   `schema-violation`), injection ([`injection`]; 400
//!   `injection-detected`, or a flag on the exchange).
//! - [`response`]: responses checked against the document, undeclared
//!   members stripped, sensitive values masked by scope, signed.
//!
//! Threats answered: OWASP API3 (mass assignment, excessive exposure),
//! API8 (injection, malformed input), API9 (inventory), API10 (unsafe
//! consumption: SSRF), message tampering and replay. How it fails: closed
//! and precisely: each refusal names its class and the JSON pointer of the
//! offending field, never the value.

pub mod config;
pub mod injection;
pub mod openapi;
pub mod response;
pub mod schema;
pub mod signature;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method};
use serde_json::Value;

use self::config::{Action, ApiConfig, RouteValidateConfig, RoutesMode};
use self::injection::InjectionClass;
use self::openapi::{Operation, ParamIn, Spec};
use self::schema::Schema;
use crate::body::json::{JsonError, JsonLimits};
use crate::config::{ConfigProblem, GatewayConfig, LoadedConfig};
use crate::exchange::Exchange;
use crate::route::config::RouteConfig;

/// A refusal of the validation phase (the pipeline wraps it in a
/// [`Reject`](crate::reject::Reject)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// A header value is not UTF-8 or holds NUL, CR or LF.
    #[error("invalid header value")]
    InvalidHeader {
        /// Pointer `/header/<name>`.
        pointer: String,
    },
    /// The body's media type is not accepted.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A parameter is missing, repeated or does not match its schema.
    #[error("invalid parameter at {pointer} ({rule})")]
    InvalidParameter {
        /// `/path/x`, `/query/x`, `/header/x`.
        pointer: String,
        /// The rule that failed (for logs).
        rule: String,
    },
    /// The JSON body is malformed or exceeds a structure limit.
    #[error("invalid JSON: {0}")]
    Json(JsonError),
    /// The body does not match its schema.
    #[error("schema violation at {pointer} ({rule})")]
    SchemaViolation {
        /// JSON pointer into the body (`""`: the whole body).
        pointer: String,
        /// The rule that failed (for logs).
        rule: String,
    },
    /// An injection pattern was found (action `block`).
    #[error("{} injection at {pointer}", class.as_str())]
    Injection {
        /// The class.
        class: InjectionClass,
        /// Where: a body pointer, or `/query/x`, `/path/x`, `/header/x`.
        pointer: String,
    },
    /// The RFC 9421 signature was refused.
    #[error("signature refused: {0}")]
    Signature(signature::SigError),
}

impl ValidateError {
    /// The pointer the client may see.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            ValidateError::InvalidHeader { pointer }
            | ValidateError::InvalidParameter { pointer, .. }
            | ValidateError::SchemaViolation { pointer, .. }
            | ValidateError::Injection { pointer, .. } => Some(pointer),
            ValidateError::Json(e) => Some(&e.pointer),
            ValidateError::UnsupportedMediaType | ValidateError::Signature(_) => None,
        }
    }
}

/// What the validation phase records for the threat engine: a finding let
/// through (`flag`), never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// `injection:sqli`, `response:schema`, …
    pub kind: String,
    /// Where.
    pub pointer: String,
}

/// How a parameter's text becomes a JSON value before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Array(Box<Kind>),
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    location: ParamIn,
    required: bool,
    schema: Option<Schema>,
    kind: Kind,
    explode: bool,
}

/// A compiled request/response media type.
#[derive(Debug, Clone)]
pub struct Media {
    /// Media type (lower case; may be `type/*` or `*/*`).
    pub media: String,
    /// Its schema.
    pub schema: Option<Schema>,
    /// Pointer of the schema in the document (for stripping).
    pub pointer: Option<String>,
}

/// A compiled operation.
#[derive(Debug)]
pub struct CompiledOp {
    /// The operation.
    pub op: Operation,
    params: Vec<Param>,
    /// Body: required, media types.
    pub body: Option<(bool, Vec<Media>)>,
    /// Responses by status key.
    pub responses: Vec<(String, Vec<Media>)>,
    /// The document it came from.
    pub spec: Arc<Spec>,
}

/// A loaded `[[apis]]` entry.
#[derive(Debug)]
pub struct Api {
    /// Name.
    pub name: String,
    /// The upstream it describes.
    pub upstream: Option<String>,
    /// The document.
    pub spec: Arc<Spec>,
    /// Its operations, compiled.
    pub ops: Vec<Arc<CompiledOp>>,
    mode: RoutesMode,
    generate: Option<config::GenerateConfig>,
}

/// The gateway's validation state: APIs and the signature policy.
#[derive(Debug, Default)]
pub struct Validation {
    /// `[[apis]]`.
    pub apis: Vec<Api>,
    /// `[signatures]`.
    pub signatures: Option<Arc<signature::Signatures>>,
    /// Names of `[[apis]]` that did not load (their problems are reported;
    /// routes naming them are not reported again).
    failed: Vec<String>,
}

fn kind_of(spec: &Spec, pointer: &str, depth: usize) -> Kind {
    let Some(node) = spec.node(pointer) else {
        return Kind::String;
    };
    let ty = match node.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_owned(),
        _ => {
            // `allOf: [{$ref}]` and friends: the first branch decides.
            for k in ["allOf", "anyOf", "oneOf"] {
                if node
                    .get(k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
                    && depth < 8
                {
                    let resolved = spec.resolve(pointer).unwrap_or_default();
                    return kind_of(spec, &format!("{resolved}/{k}/0"), depth + 1);
                }
            }
            "string".into()
        }
    };
    match ty.as_str() {
        "integer" => Kind::Integer,
        "number" => Kind::Number,
        "boolean" => Kind::Boolean,
        "array" if depth < 8 => {
            let resolved = spec.resolve(pointer).unwrap_or_default();
            Kind::Array(Box::new(kind_of(spec, &format!("{resolved}/items"), depth + 1)))
        }
        _ => Kind::String,
    }
}

fn compile_op(spec: &Arc<Spec>, op: &Operation, problems: &mut Vec<openapi::SpecProblem>) -> CompiledOp {
    let mut compile = |p: &str| match Schema::compile(spec, p) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(spec.problem(p, format!("schema does not compile: {e}")));
            None
        }
    };
    let params = op
        .params
        .iter()
        .filter(|p| p.location != ParamIn::Cookie)
        .map(|p| Param {
            name: p.name.clone(),
            location: p.location,
            required: p.required,
            schema: p.schema.as_deref().and_then(&mut compile),
            kind: p
                .schema
                .as_deref()
                .map(|s| kind_of(spec, s, 0))
                .unwrap_or(Kind::String),
            explode: p.explode,
        })
        .collect();
    let mut media = |c: &openapi::ContentSpec| -> Vec<Media> {
        c.media
            .iter()
            .map(|(m, s)| Media {
                media: m.clone(),
                schema: s.as_deref().and_then(&mut compile),
                pointer: s.clone(),
            })
            .collect()
    };
    let body = op.body.as_ref().map(|(req, c)| (*req, media(c)));
    let responses = op.responses.iter().map(|(s, c)| (s.clone(), media(c))).collect();
    CompiledOp {
        op: op.clone(),
        params,
        body,
        responses,
        spec: spec.clone(),
    }
}

fn spec_problems(
    at: &str,
    spec_file: &std::path::Path,
    problems: Vec<openapi::SpecProblem>,
) -> Vec<ConfigProblem> {
    problems
        .into_iter()
        .map(|p| {
            let text = p.render(spec_file);
            if p.warning {
                ConfigProblem::warning(at, text)
            } else {
                ConfigProblem::error(at, text)
            }
        })
        .collect()
}

/// Whether two path templates have the same shape (literals equal,
/// variables anywhere a variable is).
fn same_shape(a: &str, b: &str) -> bool {
    let sa: Vec<&str> = a.split('/').collect();
    let sb: Vec<&str> = b.split('/').collect();
    sa.len() == sb.len()
        && sa.iter().zip(&sb).all(|(x, y)| {
            let var = |s: &str| s.starts_with('{') && s.ends_with('}');
            (var(x) && var(y)) || x == y
        })
}

impl Validation {
    /// Loads `[[apis]]` and `[signatures]`, with every problem found
    /// (warnings too: spec problems that do not stop a spec from being
    /// used). What loaded is kept, so routes are checked against it.
    pub fn from_config(
        cfg: &GatewayConfig,
        loaded: &LoadedConfig,
        clock: crate::clock::SharedClock,
        redis: Option<&Arc<crate::rate_limit::redis::RedisStore>>,
        redis_configured: bool,
        nonces: &Arc<crate::authn::dpop::MemoryReplayCache>,
    ) -> (Self, Vec<ConfigProblem>) {
        let mut problems = Vec::new();
        let mut apis = Vec::new();
        let mut failed = Vec::new();
        for (i, a) in cfg.apis.iter().enumerate() {
            match Self::api(i, a, cfg, loaded) {
                Ok((api, warnings)) => {
                    problems.extend(warnings);
                    apis.push(api);
                }
                Err(p) => {
                    failed.push(a.name.clone());
                    problems.extend(p);
                }
            }
        }
        let signatures = cfg.signatures.as_ref().map(|s| {
            let (sigs, p) =
                response::signatures_from_config(s, loaded, clock, redis, redis_configured, nonces);
            problems.extend(p);
            Arc::new(sigs)
        });
        let v = Self {
            apis,
            signatures,
            failed,
        };
        (v, problems)
    }

    fn api(
        i: usize,
        a: &ApiConfig,
        cfg: &GatewayConfig,
        loaded: &LoadedConfig,
    ) -> Result<(Api, Vec<ConfigProblem>), Vec<ConfigProblem>> {
        let at = |k: &str| format!("apis[{i}].{k}");
        let mut problems = Vec::new();
        if a.name.trim().is_empty() {
            problems.push(ConfigProblem::error(at("name"), "must not be empty"));
        }
        if cfg.apis[..i].iter().any(|o| o.name == a.name) {
            problems.push(ConfigProblem::error(
                at("name"),
                format!("duplicate api name `{}`", a.name),
            ));
        }
        if let Some(u) = &a.upstream {
            if !cfg.upstreams.iter().any(|x| &x.name == u) {
                problems.push(ConfigProblem::error(
                    at("upstream"),
                    format!("no upstream named `{u}` in [[upstreams]]"),
                ));
            }
        }
        if a.routes == RoutesMode::Generate && (a.generate.is_none() || a.upstream.is_none()) {
            problems.push(ConfigProblem::error(
                at("routes"),
                "`generate` needs `upstream` and [apis.generate] (authn, authz) for the routes it makes",
            ));
        }
        let file = loaded.resolve(&a.spec);
        let (spec, warnings) = match Spec::load(&file) {
            Ok(s) => s,
            Err(p) => {
                problems.extend(spec_problems(&at("spec"), &file, p));
                return Err(problems);
            }
        };
        let spec = Arc::new(spec);
        let mut spec_issues = warnings;
        let ops = spec
            .operations
            .iter()
            .map(|op| Arc::new(compile_op(&spec, op, &mut spec_issues)))
            .collect();
        let issues = spec_problems(&at("spec"), &file, spec_issues);
        let errors = issues
            .iter()
            .any(|p| p.severity == crate::config::Severity::Error);
        problems.extend(issues);
        if errors
            || problems
                .iter()
                .any(|p| p.severity == crate::config::Severity::Error)
        {
            return Err(problems);
        }
        Ok((
            Api {
                name: a.name.clone(),
                upstream: a.upstream.clone(),
                spec,
                ops,
                mode: a.routes,
                generate: a.generate.clone(),
            },
            problems,
        ))
    }

    /// The routes to build: the policy's, plus one per operation of a
    /// `routes = "generate"` API that no route covers.
    pub fn routes(&self, routes: &[RouteConfig]) -> Vec<RouteConfig> {
        let mut out = routes.to_vec();
        for api in &self.apis {
            let (RoutesMode::Generate, Some(g), Some(upstream)) = (api.mode, &api.generate, &api.upstream)
            else {
                continue;
            };
            for op in &api.ops {
                let covered = out.iter().any(|r| {
                    same_shape(&r.path, &op.op.path)
                        && r.methods
                            .iter()
                            .any(|m| m.eq_ignore_ascii_case(op.op.method.as_str()))
                });
                if covered {
                    continue;
                }
                let id = op
                    .op
                    .operation_id
                    .clone()
                    .unwrap_or_else(|| format!("{}:{} {}", api.name, op.op.method, op.op.path));
                let generated = serde_json::json!({
                    "id": id,
                    "path": op.op.path,
                    "methods": [op.op.method.as_str()],
                    "upstream": upstream,
                });
                if let Ok(mut r) = serde_json::from_value::<RouteConfig>(generated) {
                    r.authn = Some(g.authn.clone());
                    r.authz = g.authz.clone();
                    r.validate = Some(RouteValidateConfig {
                        api: Some(api.name.clone()),
                        ..Default::default()
                    });
                    out.push(r);
                }
            }
        }
        out
    }

    /// The validation of route `i` (`None`: the route validates nothing).
    pub fn route(&self, i: usize, r: &RouteConfig) -> Result<Option<RouteValidation>, Vec<ConfigProblem>> {
        let at = |k: &str| format!("routes[{i}].{k}");
        let mut problems = Vec::new();
        let explicit = r.validate.as_ref().and_then(|v| v.api.as_deref());
        if explicit.is_some_and(|n| self.failed.iter().any(|f| f == n)) {
            return Ok(None); // the API's own problems are reported
        }
        let api = match explicit {
            Some(name) => match self.apis.iter().find(|a| a.name == name) {
                Some(a) => Some(a),
                None => {
                    problems.push(ConfigProblem::error(
                        at("validate.api"),
                        format!("no [[apis]] named `{name}`"),
                    ));
                    None
                }
            },
            None => self
                .apis
                .iter()
                .find(|a| a.upstream.as_deref() == Some(r.upstream.as_str())),
        };
        if r.validate.is_none() && api.is_none() {
            return Ok(None);
        }
        let cfg = r.validate.clone().unwrap_or_default();
        let mut ops = Vec::new();
        if let Some(api) = api {
            for (j, m) in r.methods.iter().enumerate() {
                let found = api.ops.iter().find(|o| {
                    same_shape(&o.op.path, &r.path) && o.op.method.as_str().eq_ignore_ascii_case(m)
                });
                match found {
                    Some(o) => {
                        if let Ok(method) = Method::from_bytes(m.as_bytes()) {
                            ops.push((method, o.clone()));
                        }
                    }
                    None => problems.push(ConfigProblem::error(
                        format!("routes[{i}].methods[{j}]"),
                        format!(
                            "`{m} {}` is not declared by api `{}` ({}): the spec is the inventory",
                            r.path,
                            api.name,
                            api.spec.file.display()
                        ),
                    )),
                }
            }
        }
        if cfg.json.max_depth == 0 || cfg.json.max_depth > crate::body::json::MAX_DEPTH_CEILING {
            problems.push(ConfigProblem::error(
                at("validate.json.max_depth"),
                format!("must be 1 to {}", crate::body::json::MAX_DEPTH_CEILING),
            ));
        }
        for (k, v) in [
            ("max_keys", cfg.json.max_keys),
            ("max_array", cfg.json.max_array),
            ("max_string", cfg.json.max_string),
            ("max_tokens", cfg.json.max_tokens),
        ] {
            if v == 0 {
                problems.push(ConfigProblem::error(
                    at(&format!("validate.json.{k}")),
                    "must be at least 1",
                ));
            }
        }
        let mut scan_headers = Vec::new();
        for (j, h) in cfg.scan_headers.iter().enumerate() {
            match HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
                Ok(n) => scan_headers.push(n),
                Err(_) => problems.push(ConfigProblem::error(
                    format!("routes[{i}].validate.scan_headers[{j}]"),
                    format!("`{h}` is not a header name"),
                )),
            }
        }
        let content_types = match &cfg.content_types {
            Some(list) => {
                for (j, m) in list.iter().enumerate() {
                    if !m.contains('/') {
                        problems.push(ConfigProblem::error(
                            format!("routes[{i}].validate.content_types[{j}]"),
                            format!("`{m}` is not a media type"),
                        ));
                    }
                }
                list.iter().map(|m| m.to_ascii_lowercase()).collect()
            }
            None => {
                let declared: Vec<String> = ops
                    .iter()
                    .filter_map(|(_, o)| o.body.as_ref())
                    .flat_map(|(_, m)| m.iter().map(|m| m.media.clone()))
                    .collect();
                if declared.is_empty() {
                    vec!["application/json".to_owned()]
                } else {
                    declared
                }
            }
        };
        let response = match &cfg.response {
            Some(g) => response::ResponseGuard::from_config(&at("validate.response"), g)
                .map_err(|p| problems.extend(p))
                .ok(),
            None => None,
        };
        let signature = match &cfg.signature {
            None => None,
            Some(s) => response::route_signature(&at("validate.signature"), s, self.signatures.as_deref())
                .map_err(|p| problems.extend(p))
                .ok(),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Some(RouteValidation {
            ops,
            content_types,
            limits: cfg.json,
            injection: cfg.injection,
            scan_headers,
            response,
            signature,
        }))
    }
}

/// One route's validation.
#[derive(Debug)]
pub struct RouteValidation {
    ops: Vec<(Method, Arc<CompiledOp>)>,
    content_types: Vec<String>,
    limits: JsonLimits,
    injection: Action,
    scan_headers: Vec<HeaderName>,
    /// Response guarding.
    pub response: Option<response::ResponseGuard>,
    /// Signature requirements.
    pub signature: Option<signature::RouteSignature>,
}

/// The request as the validation phase sees it.
#[derive(Debug)]
pub struct RequestView<'a> {
    /// Method.
    pub method: &'a Method,
    /// Scheme, authority (as routed), path and query as sent, headers (with
    /// `Authorization` as the client sent it): what a signature covers.
    pub msg: signature::Message<'a>,
    /// Path parameters, decoded, named as the route names them.
    pub params: &'a [(Arc<str>, String)],
}

/// The media type of a `Content-Type` value (lower case, no parameters).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

fn media_matches(accepted: &str, media: &str) -> bool {
    accepted == media
        || accepted == "*/*"
        || accepted
            .strip_suffix("/*")
            .is_some_and(|major| media.split('/').next() == Some(major))
}

fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Most findings one request records on a `flag` route.
const MAX_FLAGGED: usize = 32;

impl RouteValidation {
    fn op(&self, m: &Method) -> Option<&CompiledOp> {
        self.ops.iter().find(|(x, _)| x == m).map(|(_, o)| o.as_ref())
    }

    /// Checks a request. `json` is the body as authorization parsed it
    /// (with the default limits), if it did. Returns the parsed body.
    pub async fn check(
        &self,
        v: &Validation,
        ex: &mut Exchange,
        req: &RequestView<'_>,
        body: &Bytes,
        json: Option<Value>,
    ) -> Result<Option<Value>, ValidateError> {
        check_headers(req.msg.headers)?;
        let op = self.op(req.method);
        let media = media_type(req.msg.headers);
        if !body.is_empty() {
            let ok = media
                .as_deref()
                .is_some_and(|m| self.content_types.iter().any(|a| media_matches(a, m)));
            if !ok {
                return Err(ValidateError::UnsupportedMediaType);
            }
        }
        if let (Some(sig), Some(sigs)) = (&self.signature, &v.signatures) {
            if let Some(ok) = sigs
                .verify(sig, &req.msg, body)
                .await
                .map_err(ValidateError::Signature)?
            {
                ex.signals.push(Signal {
                    kind: format!("signature:{}", ok.client),
                    pointer: String::new(),
                });
            }
        }
        let mut strings: Vec<(String, String)> = Vec::new();
        if let Some(op) = op {
            check_params(op, req, &mut strings)?;
        } else {
            for (name, value) in req.params {
                strings.push((format!("/path/{}", openapi::escape(name)), value.clone()));
            }
            if let Some(q) = req.msg.query {
                for (k, val) in url::form_urlencoded::parse(q.as_bytes()) {
                    let pointer = format!("/query/{}", openapi::escape(&k));
                    strings.push((pointer.clone(), k.into_owned()));
                    strings.push((pointer, val.into_owned()));
                }
            }
        }
        for h in &self.scan_headers {
            for val in req.msg.headers.get_all(h) {
                if let Ok(s) = std::str::from_utf8(val.as_bytes()) {
                    strings.push((format!("/header/{h}"), s.to_owned()));
                }
            }
        }
        let doc = if body.is_empty() {
            if let Some((true, _)) = op.and_then(|o| o.body.as_ref()) {
                return Err(ValidateError::SchemaViolation {
                    pointer: String::new(),
                    rule: "request body required".into(),
                });
            }
            None
        } else if media.as_deref().is_some_and(is_json) {
            let parsed = match json {
                Some(j) if self.limits == JsonLimits::default() => j,
                _ => crate::body::json::parse(body, &self.limits).map_err(ValidateError::Json)?,
            };
            Some(parsed)
        } else {
            None
        };
        if let (Some(doc), Some(op)) = (&doc, op) {
            let schema = op.body.as_ref().and_then(|(_, list)| {
                let m = media.as_deref().unwrap_or("");
                list.iter()
                    .find(|x| media_matches(&x.media, m))
                    .and_then(|x| x.schema.as_ref())
            });
            if let Some(s) = schema {
                s.check(doc).map_err(|e| ValidateError::SchemaViolation {
                    pointer: e.pointer,
                    rule: e.keyword,
                })?;
            }
        }
        if self.injection != Action::Off {
            let block = self.injection == Action::Block;
            let mut found: Vec<(InjectionClass, String)> = Vec::new();
            for (pointer, s) in &strings {
                if let Some(class) = injection::detect(s) {
                    found.push((class, pointer.clone()));
                    if block {
                        break;
                    }
                }
            }
            if let (Some(doc), true) = (&doc, found.is_empty() || !block) {
                // Pointers are built only for what is found.
                scan_strings(doc, &mut Vec::new(), 0, &mut |path, s| {
                    if let Some(class) = injection::detect(s) {
                        found.push((class, pointer_of(path)));
                        // On `flag`, enough to tell the story: a body of
                        // ten thousand findings is not ten thousand signals.
                        return !block && found.len() < MAX_FLAGGED;
                    }
                    true
                });
            }
            for (class, pointer) in found {
                if block {
                    return Err(ValidateError::Injection { class, pointer });
                }
                ex.signals.push(Signal {
                    kind: format!("injection:{}", class.as_str()),
                    pointer,
                });
            }
        }
        Ok(doc)
    }

    /// The compiled operation for a method (response guarding).
    pub fn operation(&self, m: &Method) -> Option<&CompiledOp> {
        self.op(m)
    }
}

fn check_headers(h: &HeaderMap) -> Result<(), ValidateError> {
    for (name, value) in h {
        let b = value.as_bytes();
        if std::str::from_utf8(b).is_err() || b.iter().any(|c| matches!(c, 0 | b'\r' | b'\n')) {
            return Err(ValidateError::InvalidHeader {
                pointer: format!("/header/{name}"),
            });
        }
    }
    Ok(())
}

fn coerce(kind: &Kind, s: &str) -> Value {
    match kind {
        Kind::Integer => s
            .parse::<i64>()
            .ok()
            .filter(|_| !s.starts_with('+'))
            .map(Value::from)
            .unwrap_or_else(|| Value::from(s)),
        Kind::Number => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && !s.starts_with('+') && !s.contains(['e', 'E', 'i', 'n', 'N']))
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(s)),
        Kind::Boolean => match s {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(s),
        },
        Kind::String => Value::from(s),
        Kind::Array(item) => Value::Array(s.split(',').map(|x| coerce(item, x)).collect()),
    }
}

fn check_params(
    op: &CompiledOp,
    req: &RequestView<'_>,
    strings: &mut Vec<(String, String)>,
) -> Result<(), ValidateError> {
    let query: Vec<(String, String)> = req
        .msg
        .query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in &query {
        // Names are scanned too (`user[$ne]=1`).
        strings.push((format!("/query/{}", openapi::escape(k)), k.clone()));
        strings.push((format!("/query/{}", openapi::escape(k)), v.clone()));
    }
    // Path variables by position: the route may name them differently.
    let spec_vars: Vec<&str> = op
        .op
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect();
    for p in &op.params {
        let pointer = format!("/{}/{}", p.location.as_str(), openapi::escape(&p.name));
        let invalid = |rule: &str| ValidateError::InvalidParameter {
            pointer: pointer.clone(),
            rule: rule.to_owned(),
        };
        let values: Vec<String> = match p.location {
            ParamIn::Path => spec_vars
                .iter()
                .position(|v| *v == p.name)
                .and_then(|i| req.params.get(i))
                .map(|(_, v)| vec![v.clone()])
                .unwrap_or_default(),
            ParamIn::Query => query
                .iter()
                .filter(|(k, _)| *k == p.name)
                .map(|(_, v)| v.clone())
                .collect(),
            ParamIn::Header => {
                let mut out = Vec::new();
                for v in req.msg.headers.get_all(p.name.as_str()) {
                    out.push(
                        std::str::from_utf8(v.as_bytes())
                            .map_err(|_| invalid("not UTF-8"))?
                            .to_owned(),
                    );
                }
                out
            }
            ParamIn::Cookie => continue,
        };
        if values.is_empty() {
            if p.required {
                return Err(invalid("required"));
            }
            continue;
        }
        if p.location != ParamIn::Path {
            for v in &values {
                strings.push((pointer.clone(), v.clone()));
            }
        } else {
            strings.push((pointer.clone(), values[0].clone()));
        }
        let value = match (&p.kind, p.explode) {
            (Kind::Array(item), true) if p.location == ParamIn::Query => {
                Value::Array(values.iter().map(|v| coerce(item, v)).collect())
            }
            (_, _) if values.len() > 1 => return Err(invalid("repeated")),
            (k, _) => coerce(k, &values[0]),
        };
        if let Some(s) = &p.schema {
            s.check(&value).map_err(|e| invalid(&e.keyword))?;
        }
    }
    Ok(())
}

const MAX_WALK: usize = crate::body::json::MAX_DEPTH_CEILING;

/// Every string of a document (object keys too) with its JSON pointer:
/// what injection detection scans.
pub fn strings_of(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    scan_strings(doc, &mut Vec::new(), 0, &mut |path, s| {
        out.push((pointer_of(path), s.to_owned()));
        true
    });
    out
}

/// The first string of a document (object keys too) that looks like an
/// injection, with its pointer: what a `block` route runs on a body.
pub fn first_injection(doc: &Value) -> Option<(InjectionClass, String)> {
    let mut found = None;
    scan_strings(
        doc,
        &mut Vec::new(),
        0,
        &mut |path, s| match injection::detect(s) {
            Some(class) => {
                found = Some((class, pointer_of(path)));
                false
            }
            None => true,
        },
    );
    found
}

/// One step of the path to a value: a member or an array index.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn pointer_of(path: &[Step<'_>]) -> String {
    let segments: Vec<String> = path
        .iter()
        .map(|s| match s {
            Step::Key(k) => (*k).to_owned(),
            Step::Index(i) => i.to_string(),
        })
        .collect();
    crate::body::json::pointer(&segments)
}

/// Calls `f` with the path and text of every string of a document (object
/// keys too) until it returns false; allocates nothing per string.
fn scan_strings<'a>(
    v: &'a Value,
    path: &mut Vec<Step<'a>>,
    depth: usize,
    f: &mut impl FnMut(&[Step<'a>], &'a str) -> bool,
) -> bool {
    if depth > MAX_WALK {
        return true;
    }
    match v {
        Value::String(s) => f(path, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Step::Index(i));
                let go = scan_strings(x, path, depth + 1, f);
                path.pop();
                if !go {
                    return false;
                }
            }
            true
        }
        Value::Object(m) => {
            for (k, x) in m {
                path.push(Step::Key(k));
                let go = f(path, k) && scan_strings(x, path, depth + 1, f);
                path.pop();
                if !go {
                    return false;
                }
            }
            true
        }
        _ => true,
    }
}

/// What the fuzz target (and the property test) runs on arbitrary bytes:
/// strict JSON, the demo payment schema, injection detection on every
/// string, and the same bytes as `Signature-Input`/`Content-Digest` field
/// values. Whether the bytes were a valid, clean payment. Never panics.
pub fn fuzz_input(bytes: &[u8]) -> bool {
    static PAYMENT: std::sync::OnceLock<Option<Schema>> = std::sync::OnceLock::new();
    let schema = PAYMENT.get_or_init(|| {
        let (spec, _) = Spec::parse(std::path::Path::new("bank-openapi.yaml"), crate::demo::OPENAPI).ok()?;
        Schema::compile(
            &spec,
            "/paths/~1v1~1payments/post/requestBody/content/application~1json/schema",
        )
        .ok()
    });
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = signature::check_content_digest(text, bytes);
        let _ = injection::detect(text);
    }
    let Ok(doc) = crate::body::json::parse(bytes, &JsonLimits::default()) else {
        return false;
    };
    let conforms = schema.as_ref().is_some_and(|s| s.check(&doc).is_ok());
    conforms
        && strings_of(&doc)
            .iter()
            .all(|(_, s)| injection::detect(s).is_none())
}
