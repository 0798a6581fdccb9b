//! Path templates and the compiled route table.
//!
//! A template such as `/v1/accounts/{account_id}/transactions` is a list of
//! whole segments, each a literal (in canonical, normalised form) or a
//! `{name}` parameter. [`RouteTable::build`] compiles a list of
//! [`RouteSpec`]s into a segment trie; [`RouteTable::resolve`] maps a
//! host, a path already passed through [`normalize`](super::path::normalize)
//! and a method to the one spec that handles it.
//!
//! Threat: a request reaching a route, and so a policy, the operator did not
//! mean. Hence: no prefix matching (segment count must be equal), literals
//! beat parameters segment by segment from the left, a host-specific route
//! beats a host-less one of the same shape, empty parameter values never
//! match, no implicit `HEAD`/`OPTIONS`, and ambiguous tables (same host,
//! same shape, overlapping method) are refused at build time rather than
//! resolved by declaration order.
//!
//! Failure: `build` reports every bad spec with its index, never a partial
//! table; `resolve` answers [`RouteMiss::NotFound`] (404) or
//! [`RouteMiss::MethodNotAllowed`] (405 with `Allow`). Neither panics.
//! `resolve` allocates only for the returned parameters (and on the 405
//! path); its work is bounded by the size of the trie.

use std::collections::BTreeMap;
use std::str::Split;
use std::sync::Arc;

use http::Method;

use super::path::{decode_segment, normalize, segments, PathError};

/// Most segments a template may have; deeper request paths are a 404 at once.
pub const MAX_TEMPLATE_SEGMENTS: usize = 64;

/// Why a path template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not start with `/`.
    #[error("template does not start with '/'")]
    NotAbsolute,
    /// More than [`MAX_TEMPLATE_SEGMENTS`] segments.
    #[error("template has more than {MAX_TEMPLATE_SEGMENTS} segments")]
    TooManySegments,
    /// `{}`.
    #[error("empty parameter name")]
    EmptyParamName,
    /// A parameter name not matching `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("bad parameter name {0:?}")]
    BadParamName(String),
    /// The same parameter name twice in one template.
    #[error("duplicate parameter name {0:?}")]
    DuplicateParam(String),
    /// A `{` or `}` in a segment that is not exactly `{name}`.
    #[error("brace inside literal segment {0:?}")]
    BraceInLiteral(String),
    /// An empty segment (other than a final one), `.`, `..`, or a literal
    /// that is not already in the canonical form `normalize` produces
    /// (for instance `%7e` instead of `~`, or a raw space instead of `%20`).
    #[error("segment {segment:?} is not in normalised form")]
    Unnormalized {
        /// The offending segment as written.
        segment: String,
    },
    /// A literal that `normalize` refuses outright (e.g. `%2F`, `..;x`).
    #[error("invalid literal segment {segment:?}: {source}")]
    InvalidLiteral {
        /// The offending segment as written.
        segment: String,
        /// Why `normalize` refused it.
        source: PathError,
    },
}

/// One segment of a [`PathTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSegment {
    /// Matches exactly this (normalised, still percent-encoded) segment.
    /// The empty literal only appears last and stands for a trailing slash.
    Literal(Box<str>),
    /// Matches any non-empty segment; the value is handed on decoded.
    Param(Arc<str>),
}

/// A parsed path template such as `/v1/accounts/{account_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: Box<str>,
    segments: Vec<TemplateSegment>,
}

fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PathTemplate {
    /// Parses a template. Literal segments must already be in the canonical
    /// form [`normalize`] produces; a final empty segment (trailing slash) is
    /// allowed and then matches only paths with that trailing slash.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let Some(rest) = template.strip_prefix('/') else {
            return Err(TemplateError::NotAbsolute);
        };
        let count = rest.split('/').count();
        if count > MAX_TEMPLATE_SEGMENTS {
            return Err(TemplateError::TooManySegments);
        }
        let mut out = Vec::with_capacity(count);
        for (i, seg) in rest.split('/').enumerate() {
            let last = i + 1 == count;
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if inner.is_empty() {
                    return Err(TemplateError::EmptyParamName);
                }
                if !is_param_name(inner) {
                    return Err(TemplateError::BadParamName(inner.to_owned()));
                }
                let duplicate = out
                    .iter()
                    .any(|s| matches!(s, TemplateSegment::Param(p) if **p == *inner));
                if duplicate {
                    return Err(TemplateError::DuplicateParam(inner.to_owned()));
                }
                out.push(TemplateSegment::Param(Arc::from(inner)));
                continue;
            }
            if seg.contains(['{', '}']) {
                return Err(TemplateError::BraceInLiteral(seg.to_owned()));
            }
            if (seg.is_empty() && !last) || seg == "." || seg == ".." {
                return Err(TemplateError::Unnormalized {
                    segment: seg.to_owned(),
                });
            }
            if !seg.is_empty() {
                let probe = format!("/{seg}");
                match normalize(&probe) {
                    Ok(canonical) if canonical == probe => {}
                    Ok(_) => {
                        return Err(TemplateError::Unnormalized {
                            segment: seg.to_owned(),
                        })
                    }
                    Err(source) => {
                        return Err(TemplateError::InvalidLiteral {
                            segment: seg.to_owned(),
                            source,
                        })
                    }
                }
            }
            out.push(TemplateSegment::Literal(Box::from(seg)));
        }
        Ok(Self {
            source: Box::from(template),
            segments: out,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The segments, left to right.
    pub fn segments(&self) -> &[TemplateSegment] {
        &self.segments
    }

    /// The parameter names, left to right.
    pub fn param_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.segments.iter().filter_map(|s| match s {
            TemplateSegment::Param(p) => Some(p),
            TemplateSegment::Literal(_) => None,
        })
    }
}

/// One route as the policy declares it, before compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `None` matches any host; `Some(h)` matches `h` case-insensitively,
    /// ignoring the request's port and one trailing dot. `h` itself must be
    /// a bare DNS name or bracketed IPv6 literal: no port, no wildcard.
    pub host: Option<String>,
    /// A path template, see [`PathTemplate::parse`].
    pub path: String,
    /// The methods served; must not be empty. No implicit `HEAD`/`OPTIONS`.
    pub methods: Vec<Method>,
}

/// Why a [`RouteSpec`] was refused by [`RouteTable::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteTableError {
    /// The path template is invalid.
    #[error("bad path template: {0}")]
    Template(#[from] TemplateError),
    /// The methods list is empty.
    #[error("route lists no methods")]
    NoMethods,
    /// The host is empty, carries a port or wildcard, or has bad characters.
    #[error("bad host {0:?}")]
    BadHost(String),
    /// Same host, same template shape and an overlapping method as the
    /// earlier spec `with` (an index into the specs given to `build`).
    #[error("conflicts with route #{with}")]
    Conflict {
        /// Index of the earlier, conflicting spec.
        with: usize,
    },
}

/// A successful resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index into the specs given to [`RouteTable::build`].
    pub index: usize,
    /// `(name, value)` for each parameter, left to right; values are
    /// percent-decoded and never empty.
    pub params: Vec<(Arc<str>, String)>,
}

/// Why no route handles a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMiss {
    /// No route matches the host and path (404).
    NotFound,
    /// Routes match the host and path, none for this method (405).
    MethodNotAllowed {
        /// Union of their methods, sorted by name, deduplicated (`Allow`).
        allow: Vec<Method>,
    },
}

#[derive(Debug)]
struct Entry {
    index: usize,
    /// Lower case, without trailing dot.
    host: Option<Box<str>>,
    methods: Vec<Method>,
    /// (segment position, name), by position.
    params: Vec<(usize, Arc<str>)>,
}

impl Entry {
    fn host_matches(&self, request_host: Option<&str>) -> bool {
        match (&self.host, request_host) {
            (None, _) => true,
            (Some(h), Some(r)) => h.eq_ignore_ascii_case(r),
            (Some(_), None) => false,
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    /// Literal children; ordered, so lookups compare, never hash.
    literals: BTreeMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    /// Routes whose template ends here: host-specific first, then by index.
    routes: Vec<Entry>,
}

/// The compiled, immutable route table.
#[derive(Debug, Default)]
pub struct RouteTable {
    root: Node,
    max_depth: usize,
}

/// Checks and canonicalises a spec host (lower case, no trailing dot).
fn spec_host(host: &str) -> Result<Box<str>, RouteTableError> {
    let bad = || RouteTableError::BadHost(host.to_owned());
    let h = host.strip_suffix('.').unwrap_or(host);
    let ok = if let Some(inner) = h.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    } else {
        !h.is_empty()
            && h.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    if ok {
        Ok(Box::from(h.to_ascii_lowercase()))
    } else {
        Err(bad())
    }
}

/// The request host without port and trailing dot; no allocation.
fn request_host(host: &str) -> &str {
    let h = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        }
    } else {
        host.split(':').next().unwrap_or(host)
    };
    h.strip_suffix('.').unwrap_or(h)
}

/// Depth-first walk, literals before the parameter, so leaves are visited
/// most specific first. Stops when `visit` returns true.
fn walk<'n>(
    node: &'n Node,
    mut segs: Split<'_, char>,
    host: Option<&str>,
    visit: &mut dyn FnMut(&'n Entry) -> bool,
) -> bool {
    let Some(seg) = segs.next() else {
        return node.routes.iter().filter(|e| e.host_matches(host)).any(visit);
    };
    if let Some(child) = node.literals.get(seg) {
        if walk(child, segs.clone(), host, visit) {
            return true;
        }
    }
    match &node.param {
        Some(child) if !seg.is_empty() => walk(child, segs, host, visit),
        _ => false,
    }
}

impl RouteTable {
    /// Compiles the specs. On failure, returns every bad spec with its index
    /// (a spec is checked for conflicts only against earlier valid specs).
    pub fn build(specs: &[RouteSpec]) -> Result<RouteTable, Vec<(usize, RouteTableError)>> {
        let mut table = RouteTable::default();
        let mut errors = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            if let Err(e) = table.insert(index, spec) {
                errors.push((index, e));
            }
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            Err(errors)
        }
    }

    fn insert(&mut self, index: usize, spec: &RouteSpec) -> Result<(), RouteTableError> {
        let template = PathTemplate::parse(&spec.path)?;
        let host = spec.host.as_deref().map(spec_host).transpose()?;
        if spec.methods.is_empty() {
            return Err(RouteTableError::NoMethods);
        }
        let mut methods = spec.methods.clone();
        methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        methods.dedup();

        let mut node = &mut self.root;
        let mut params = Vec::new();
        for (pos, seg) in template.segments().iter().enumerate() {
            node = match seg {
                TemplateSegment::Literal(lit) => node.literals.entry(lit.clone()).or_default(),
                TemplateSegment::Param(name) => {
                    params.push((pos, Arc::clone(name)));
                    node.param.get_or_insert_with(Box::default)
                }
            };
        }
        let conflict = node
            .routes
            .iter()
            .filter(|e| e.host == host && e.methods.iter().any(|m| methods.contains(m)))
            .map(|e| e.index)
            .min();
        if let Some(with) = conflict {
            return Err(RouteTableError::Conflict { with });
        }
        let at = if host.is_some() {
            node.routes.iter().take_while(|e| e.host.is_some()).count()
        } else {
            node.routes.len()
        };
        node.routes.insert(
            at,
            Entry {
                index,
                host,
                methods,
                params,
            },
        );
        self.max_depth = self.max_depth.max(template.segments().len());
        Ok(())
    }

    /// Finds the route for a request.
    ///
    /// `host` is the request authority (port and one trailing dot ignored;
    /// `None` matches only host-less routes); `normalized_path` must come
    /// from [`normalize`]. Among routes matching host and path, the most
    /// specific one listing `method` wins; if none lists it, the answer is
    /// [`RouteMiss::MethodNotAllowed`] with the union of their methods.
    pub fn resolve(
        &self,
        host: Option<&str>,
        normalized_path: &str,
        method: &Method,
    ) -> Result<RouteMatch, RouteMiss> {
        if !normalized_path.starts_with('/') {
            return Err(RouteMiss::NotFound);
        }
        let depth = normalized_path.bytes().filter(|&b| b == b'/').count();
        if depth > self.max_depth {
            return Err(RouteMiss::NotFound);
        }
        let host = host.map(request_host);
        let segs = segments(normalized_path);

        let mut found = None;
        walk(&self.root, segs.clone(), host, &mut |e| {
            let hit = e.methods.contains(method);
            if hit {
                found = Some(e);
            }
            hit
        });
        if let Some(entry) = found {
            let mut params = Vec::with_capacity(entry.params.len());
            let mut wanted = entry.params.iter().peekable();
            for (pos, seg) in segs.enumerate() {
                let Some((_, name)) = wanted.next_if(|(p, _)| *p == pos) else {
                    continue;
                };
                // Only fails on a path that did not come from `normalize`.
                let value = decode_segment(seg).map_err(|_| RouteMiss::NotFound)?;
                params.push((Arc::clone(name), value));
            }
            return Ok(RouteMatch {
                index: entry.index,
                params,
            });
        }

        let mut allow: Vec<Method> = Vec::new();
        walk(&self.root, segs, host, &mut |e| {
            allow.extend(e.methods.iter().cloned());
            false
        });
        if allow.is_empty() {
            return Err(RouteMiss::NotFound);
        }
        allow.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        allow.dedup();
        Err(RouteMiss::MethodNotAllowed { allow })
    }
}
