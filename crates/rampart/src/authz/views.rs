//! Property-level authorization (OWASP API3): what of a response a caller
//! may see, by scope. A view keeps only allowed fields, removes others and
//! masks sensitive values (`DE89 **** **** **** 3000`) before the response
//! leaves the gateway.
//!
//! Fields are JSON pointers in which `*` stands for any array element or
//! object member: `/accounts/*/iban`. A view applies, in order: `allow`
//! (if set, everything not under an allowed field is removed), `remove`,
//! `mask` (a string becomes its mask; any other non-null value `****`).
//!
//! Threat answered: excessive data exposure, where a backend returns whole
//! records and trusts the client to show only part. How it fails: closed.
//! A response a view must apply to but which is not JSON (or not
//! parseable) is not passed on: the pipeline answers 502 instead.

use serde_json::Value;

use super::config::ViewConfig;
use crate::config::ConfigProblem;
use crate::redact::MaskStyle;

/// One segment of a field pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Any,
}

/// A field pattern: a JSON pointer with `*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Seg>);

impl Pattern {
    /// Parses `/a/*/b` (RFC 6901 escapes `~0`, `~1`; `*` alone is a wildcard).
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(format!("`{s}` is not a JSON pointer (one starts with `/`)"));
        };
        let mut segs = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                segs.push(Seg::Any);
                continue;
            }
            if raw.replace("~0", "").replace("~1", "").contains('~') {
                return Err(format!("`{s}`: `~` must be written `~0` (or `~1` for `/`)"));
            }
            segs.push(Seg::Key(raw.replace("~1", "/").replace("~0", "~")));
        }
        Ok(Self(segs))
    }

    fn matches_at(&self, depth: usize, key: &str) -> bool {
        match self.0.get(depth) {
            Some(Seg::Any) => true,
            Some(Seg::Key(k)) => k == key,
            None => false,
        }
    }
}

/// A validated view.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    scope: Option<String>,
    allow: Vec<Pattern>,
    remove: Vec<Pattern>,
    mask: Vec<(Pattern, MaskStyle)>,
}

impl View {
    /// Validates `[[routes.authz.views]]` entry at key path `at`.
    pub fn from_config(at: &str, cfg: &ViewConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut parse = |key: String, s: &str| match Pattern::parse(s) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(ConfigProblem::error(key, e));
                None
            }
        };
        let allow = cfg
            .allow
            .iter()
            .enumerate()
            .filter_map(|(j, s)| parse(format!("{at}.allow[{j}]"), s))
            .collect();
        let remove = cfg
            .remove
            .iter()
            .enumerate()
            .filter_map(|(j, s)| parse(format!("{at}.remove[{j}]"), s))
            .collect();
        let mask = cfg
            .mask
            .iter()
            .filter_map(|(s, style)| parse(format!("{at}.mask"), s).map(|p| (p, *style)))
            .collect();
        if cfg.scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
            problems.push(ConfigProblem::error(format!("{at}.scope"), "must not be empty"));
        }
        if problems.is_empty() {
            Ok(Self {
                scope: cfg.scope.clone(),
                allow,
                remove,
                mask,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether a caller with `has_scope` gets this view.
    pub fn applies(&self, has_scope: impl Fn(&str) -> bool) -> bool {
        self.scope.as_deref().is_none_or(has_scope)
    }

    /// Whether the view changes anything (a full view does not).
    pub fn is_full(&self) -> bool {
        self.allow.is_empty() && self.remove.is_empty() && self.mask.is_empty()
    }

    /// Applies the view to a response document.
    pub fn apply(&self, doc: &mut Value) {
        if !self.allow.is_empty() {
            let all: Vec<&Pattern> = self.allow.iter().collect();
            keep(doc, &all, 0);
        }
        for p in &self.remove {
            remove(doc, p, 0);
        }
        for (p, style) in &self.mask {
            mask(doc, p, 0, *style);
        }
    }
}

/// Keeps what lies under one of `live` (patterns matching so far, at
/// `depth`). Returns whether `v` itself is kept.
fn keep(v: &mut Value, live: &[&Pattern], depth: usize) -> bool {
    if live.iter().any(|p| p.0.len() == depth) {
        return true; // a whole allowed field
    }
    let visit = |key: &str, child: &mut Value| -> bool {
        let next: Vec<&Pattern> = live
            .iter()
            .copied()
            .filter(|p| p.matches_at(depth, key))
            .collect();
        !next.is_empty() && keep(child, &next, depth + 1)
    };
    match v {
        Value::Object(m) => {
            m.retain(|k, child| visit(k, child));
            true
        }
        Value::Array(a) => {
            let mut i = 0usize;
            a.retain_mut(|child| {
                let kept = visit(&i.to_string(), child);
                i += 1;
                kept
            });
            true
        }
        // A scalar where the allowed field lies deeper: not allowed.
        _ => false,
    }
}

fn remove(v: &mut Value, p: &Pattern, depth: usize) {
    let last = depth + 1 == p.0.len();
    match v {
        Value::Object(m) => {
            if last {
                m.retain(|k, _| !p.matches_at(depth, k));
            } else {
                for (k, child) in m.iter_mut() {
                    if p.matches_at(depth, k) {
                        remove(child, p, depth + 1);
                    }
                }
            }
        }
        Value::Array(a) => {
            if last {
                let mut i = 0usize;
                a.retain(|_| {
                    let gone = p.matches_at(depth, &i.to_string());
                    i += 1;
                    !gone
                });
            } else {
                for (i, child) in a.iter_mut().enumerate() {
                    if p.matches_at(depth, &i.to_string()) {
                        remove(child, p, depth + 1);
                    }
                }
            }
        }
        _ => {}
    }
}

fn mask(v: &mut Value, p: &Pattern, depth: usize, style: MaskStyle) {
    if depth == p.0.len() {
        match v {
            Value::Null => {}
            Value::String(s) => *s = style.apply(s),
            other => *other = Value::from(crate::redact::mask::FULL_MASK),
        }
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if p.matches_at(depth, k) {
                    mask(child, p, depth + 1, style);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                if p.matches_at(depth, &i.to_string()) {
                    mask(child, p, depth + 1, style);
                }
            }
        }
        _ => {}
    }
}

/// Largest response body a view reads; a larger one is not passed on.
pub const MAX_VIEW_BODY: usize = 8 * 1024 * 1024;

/// Applies `view` to a response on its way out. Server errors (already
/// scrubbed) and empty bodies pass as they are; a JSON body is filtered
/// and re-encoded (`Content-Length` set, validators that no longer match
/// removed). Anything else (another media type, a compressed or oversized
/// body, malformed JSON) is an error: the caller answers 502 rather than
/// let unfiltered data through.
pub async fn filter_response(
    resp: http::Response<crate::Body>,
    view: &View,
) -> Result<http::Response<crate::Body>, String> {
    use http::header;
    use http_body_util::BodyExt as _;
    if resp.status().is_server_error() {
        return Ok(resp);
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_VIEW_BODY)
        .collect()
        .await
        .map_err(|e| format!("response not read for its view: {e}"))?
        .to_bytes();
    if !bytes.is_empty() {
        if parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
        {
            return Err("a compressed response cannot be filtered".into());
        }
        let media = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !(media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))) {
            return Err(format!("a `{media}` response cannot be filtered"));
        }
        let limits = crate::body::json::JsonLimits {
            max_depth: crate::body::json::MAX_DEPTH_CEILING,
            max_keys: usize::MAX,
            max_array: usize::MAX,
            max_string: usize::MAX,
            max_tokens: usize::MAX,
        };
        let mut doc = crate::body::json::parse(&bytes, &limits)
            .map_err(|e| format!("response is not valid JSON ({e})"))?;
        view.apply(&mut doc);
        let out = bytes::Bytes::from(doc.to_string());
        for h in [header::ETAG, header::CONTENT_LENGTH] {
            parts.headers.remove(h);
        }
        parts.headers.remove("content-digest");
        parts.headers.remove("content-md5");
        parts.headers.remove("repr-digest");
        parts
            .headers
            .insert(header::CONTENT_LENGTH, http::HeaderValue::from(out.len()));
        return Ok(http::Response::from_parts(
            parts,
            http_body_util::Either::Right(http_body_util::Full::new(out)),
        ));
    }
    Ok(http::Response::from_parts(
        parts,
        http_body_util::Either::Right(http_body_util::Full::new(bytes)),
    ))
}
