//! OpenAPI 3.0 and 3.1 import: the bank's own description of its API,
//! read once at load, becomes the gateway's inventory of operations and the
//! schemas their inputs (and outputs) must satisfy.
//!
//! The document (YAML or JSON; JSON is YAML) is parsed with line marks, so
//! every problem names `file:line` and the JSON pointer of the offending
//! node. Local `$ref`s of parameters, request bodies and responses are
//! resolved here; schema `$ref`s are left to the schema compiler. External
//! references are refused: a spec is one document, and loading must not
//! fetch anything.
//!
//! Threat answered: improper inventory (OWASP API9): an operation the bank
//! did not declare never reaches it. How it fails: at load, with every
//! problem found; nothing here runs per request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use http::Method;
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Value};

use crate::body::json::pointer as json_pointer;

/// Largest spec file read.
pub const MAX_SPEC_BYTES: usize = 16 * 1024 * 1024;

/// Which OpenAPI version, and so which JSON Schema dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OasVersion {
    /// 3.0.x: schema objects are an extended subset of draft 4/5
    /// (`nullable`, boolean `exclusiveMinimum`).
    V30,
    /// 3.1.x: JSON Schema 2020-12.
    V31,
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamIn {
    /// A path template variable.
    Path,
    /// The query string.
    Query,
    /// A request header.
    Header,
    /// A cookie (not validated: noted at load).
    Cookie,
}

impl ParamIn {
    /// The name used in pointers (`/query/page`) and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamIn::Path => "path",
            ParamIn::Query => "query",
            ParamIn::Header => "header",
            ParamIn::Cookie => "cookie",
        }
    }
}

/// A declared parameter.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Name (lower case for headers).
    pub name: String,
    /// Where.
    pub location: ParamIn,
    /// Whether it must be present.
    pub required: bool,
    /// Pointer of its schema in the document, if it has one.
    pub schema: Option<String>,
    /// `explode` (default true for `form`, the query default).
    pub explode: bool,
}

/// A declared request or response body: media type → schema pointer.
#[derive(Debug, Clone, Default)]
pub struct ContentSpec {
    /// Media types as declared (lower case), with the pointer of their
    /// schema if any.
    pub media: Vec<(String, Option<String>)>,
}

impl ContentSpec {
    /// The schema for `media` (exact, then `type/*`, then `*/*`).
    pub fn schema_for(&self, media: &str) -> Option<&(String, Option<String>)> {
        let major = media.split('/').next().unwrap_or("");
        self.media
            .iter()
            .find(|(m, _)| m == media)
            .or_else(|| self.media.iter().find(|(m, _)| m == &format!("{major}/*")))
            .or_else(|| self.media.iter().find(|(m, _)| m == "*/*"))
    }
}

/// One operation: a path template and a method.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The path template as the document writes it.
    pub path: String,
    /// The method.
    pub method: Method,
    /// `operationId`, if any.
    pub operation_id: Option<String>,
    /// Pointer of the operation object.
    pub pointer: String,
    /// Parameters (path-level ones merged in, operation-level overriding).
    pub params: Vec<ParamSpec>,
    /// The request body, if declared, and whether it is required.
    pub body: Option<(bool, ContentSpec)>,
    /// Responses by status key (`"200"`, `"4XX"`, `"default"`).
    pub responses: Vec<(String, ContentSpec)>,
}

/// A loaded document.
#[derive(Debug)]
pub struct Spec {
    /// The file it came from.
    pub file: PathBuf,
    /// Its version.
    pub version: OasVersion,
    /// The document (3.0 schemas already converted to the draft-4 dialect
    /// the compiler uses).
    pub doc: Value,
    /// Every operation.
    pub operations: Vec<Operation>,
    lines: HashMap<String, usize>,
}

/// A problem in a spec: where (pointer and line) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// JSON pointer of the node (`""` for the whole document).
    pub pointer: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// Whether the spec can still be used (a warning).
    pub warning: bool,
}

impl SpecProblem {
    /// Renders as `file:line: #pointer: message`.
    pub fn render(&self, file: &Path) -> String {
        let mut out = file.display().to_string();
        if let Some(l) = self.line {
            out.push_str(&format!(":{l}"));
        }
        format!("{out}: #{}: {}", self.pointer, self.message)
    }
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Spec {
    /// Reads and parses `file`.
    pub fn load(file: &Path) -> Result<(Self, Vec<SpecProblem>), Vec<SpecProblem>> {
        let whole = |message: String| {
            vec![SpecProblem {
                pointer: String::new(),
                line: None,
                message,
                warning: false,
            }]
        };
        let meta = std::fs::metadata(file).map_err(|e| whole(format!("cannot read the spec: {e}")))?;
        if meta.len() > MAX_SPEC_BYTES as u64 {
            return Err(whole(format!("larger than {MAX_SPEC_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(file).map_err(|e| whole(format!("cannot read the spec: {e}")))?;
        Self::parse(file, &text)
    }

    /// Parses a document's text.
    pub fn parse(file: &Path, text: &str) -> Result<(Self, Vec<SpecProblem>), Vec<SpecProblem>> {
        let docs = MarkedYaml::load_from_str(text).map_err(|e| {
            vec![SpecProblem {
                pointer: String::new(),
                line: Some(e.marker().line()),
                message: format!("not valid YAML or JSON: {}", e.info()),
                warning: false,
            }]
        })?;
        let Some(root) = docs.first() else {
            return Err(vec![SpecProblem {
                pointer: String::new(),
                line: None,
                message: "the document is empty".into(),
                warning: false,
            }]);
        };
        let mut lines = HashMap::new();
        let mut problems = Vec::new();
        let mut path = Vec::new();
        let mut doc = to_json(root, &mut path, &mut lines, &mut problems, 0);
        let mut spec = Spec {
            file: file.to_path_buf(),
            version: OasVersion::V31,
            doc: Value::Null,
            operations: Vec::new(),
            lines,
        };
        let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
        spec.version = if version.starts_with("3.1.") {
            OasVersion::V31
        } else if version.starts_with("3.0.") {
            OasVersion::V30
        } else {
            problems.push(spec.problem(
                "/openapi",
                format!("`openapi` must be 3.0.x or 3.1.x (found {version:?}); Swagger 2.0 is not supported"),
            ));
            return Err(problems);
        };
        if spec.version == OasVersion::V30 {
            convert_30(&mut doc, 0);
        }
        spec.doc = doc;
        spec.operations = spec.read_operations(&mut problems);
        if problems.iter().any(|p| !p.warning) {
            return Err(problems);
        }
        Ok((spec, problems))
    }

    /// The line of the node at `pointer` (or its nearest parent).
    pub fn line_of(&self, pointer: &str) -> Option<usize> {
        let mut p = pointer;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// A problem at `pointer`.
    pub fn problem(&self, pointer: &str, message: impl Into<String>) -> SpecProblem {
        SpecProblem {
            pointer: pointer.to_owned(),
            line: self.line_of(pointer),
            message: message.into(),
            warning: false,
        }
    }

    fn warning(&self, pointer: &str, message: impl Into<String>) -> SpecProblem {
        SpecProblem {
            warning: true,
            ..self.problem(pointer, message)
        }
    }

    /// Follows a local `$ref` chain from the node at `pointer`; returns the
    /// pointer of the node finally referred to.
    pub fn resolve(&self, pointer: &str) -> Result<String, String> {
        let mut at = pointer.to_owned();
        for _ in 0..32 {
            let node = self
                .doc
                .pointer(&at)
                .ok_or_else(|| format!("`#{at}` does not exist"))?;
            match node.get("$ref").and_then(Value::as_str) {
                None => return Ok(at),
                Some(r) => match r.strip_prefix('#') {
                    Some(target) => at = target.to_owned(),
                    None => {
                        return Err(format!(
                            "external reference `{r}` (only `#/…` references are supported)"
                        ))
                    }
                },
            }
        }
        Err(format!("`$ref` chain from `#{pointer}` is too long or circular"))
    }

    /// The node a pointer names, after `$ref`s.
    pub fn node(&self, pointer: &str) -> Option<&Value> {
        self.resolve(pointer).ok().and_then(|p| self.doc.pointer(&p))
    }

    fn read_operations(&self, problems: &mut Vec<SpecProblem>) -> Vec<Operation> {
        let mut out = Vec::new();
        let Some(paths) = self.doc.get("paths").and_then(Value::as_object) else {
            problems.push(self.warning("", "no `paths`: the API declares no operation"));
            return out;
        };
        for (path, item) in paths {
            let at = json_pointer(&["paths", path.as_str()]);
            if !path.starts_with('/') {
                problems.push(self.problem(&at, "a path must start with `/`"));
                continue;
            }
            if crate::route::table::PathTemplate::parse(path).is_err() {
                problems.push(self.problem(&at, "not a path template the gateway can route (`/a/{b}/c`)"));
                continue;
            }
            let item_at = match self.resolve(&at) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(self.problem(&at, e));
                    continue;
                }
            };
            let Some(item) = self
                .doc
                .pointer(&item_at)
                .and_then(Value::as_object)
                .or(item.as_object())
            else {
                problems.push(self.problem(&at, "a path item must be an object"));
                continue;
            };
            let shared = self.read_params(&format!("{item_at}/parameters"), problems);
            for (m, op) in item {
                if !METHODS.contains(&m.as_str()) {
                    continue;
                }
                let op_at = format!("{item_at}/{m}");
                let Some(op) = op.as_object() else {
                    problems.push(self.problem(&op_at, "an operation must be an object"));
                    continue;
                };
                let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
                let mut params = shared.clone();
                for p in self.read_params(&format!("{op_at}/parameters"), problems) {
                    params.retain(|q| !(q.name == p.name && q.location == p.location));
                    params.push(p);
                }
                let template_vars: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                    .collect();
                for v in &template_vars {
                    if !params.iter().any(|p| p.location == ParamIn::Path && p.name == *v) {
                        problems.push(self.warning(
                            &op_at,
                            format!("path variable `{v}` has no parameter: its value is not validated"),
                        ));
                    }
                }
                for p in &params {
                    if p.location == ParamIn::Path && !template_vars.contains(&p.name.as_str()) {
                        problems.push(self.problem(
                            &op_at,
                            format!("path parameter `{}` is not in the path template", p.name),
                        ));
                    }
                }
                let body = op
                    .get("requestBody")
                    .and_then(|_| self.read_body(&format!("{op_at}/requestBody"), problems));
                let mut responses = Vec::new();
                if let Some(rs) = op.get("responses").and_then(Value::as_object) {
                    for status in rs.keys() {
                        let r_at = format!("{op_at}/responses/{}", escape(status));
                        match self.resolve(&r_at) {
                            Ok(p) => responses.push((
                                status.clone(),
                                self.read_content(&format!("{p}/content"), problems),
                            )),
                            Err(e) => problems.push(self.problem(&r_at, e)),
                        }
                    }
                }
                out.push(Operation {
                    path: path.clone(),
                    method,
                    operation_id: op.get("operationId").and_then(Value::as_str).map(str::to_owned),
                    pointer: op_at,
                    params,
                    body,
                    responses,
                });
            }
        }
        out
    }

    fn read_params(&self, at: &str, problems: &mut Vec<SpecProblem>) -> Vec<ParamSpec> {
        let Some(list) = self.doc.pointer(at).and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for i in 0..list.len() {
            let p_at = format!("{at}/{i}");
            let resolved = match self.resolve(&p_at) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(self.problem(&p_at, e));
                    continue;
                }
            };
            let Some(p) = self.doc.pointer(&resolved).and_then(Value::as_object) else {
                problems.push(self.problem(&p_at, "a parameter must be an object"));
                continue;
            };
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                problems.push(self.problem(&p_at, "a parameter needs a `name`"));
                continue;
            };
            let location = match p.get("in").and_then(Value::as_str) {
                Some("path") => ParamIn::Path,
                Some("query") => ParamIn::Query,
                Some("header") => ParamIn::Header,
                Some("cookie") => ParamIn::Cookie,
                other => {
                    problems.push(self.problem(
                        &resolved,
                        format!("`in` must be path, query, header or cookie (found {other:?})"),
                    ));
                    continue;
                }
            };
            if location == ParamIn::Cookie {
                problems.push(self.warning(&resolved, format!("cookie parameter `{name}` is not validated")));
            }
            let style = p.get("style").and_then(Value::as_str);
            if matches!(
                style,
                Some("deepObject" | "spaceDelimited" | "pipeDelimited" | "matrix" | "label")
            ) {
                problems.push(self.warning(
                    &resolved,
                    format!("style `{}` of `{name}` is not validated", style.unwrap_or("")),
                ));
                continue;
            }
            let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
            if location == ParamIn::Path && !required {
                problems.push(self.problem(
                    &resolved,
                    format!("path parameter `{name}` must be `required: true`"),
                ));
            }
            let schema = if p.contains_key("schema") {
                Some(format!("{resolved}/schema"))
            } else {
                if p.contains_key("content") {
                    problems.push(self.warning(&resolved, format!("`content` of `{name}` is not validated")));
                }
                None
            };
            out.push(ParamSpec {
                name: if location == ParamIn::Header {
                    name.to_ascii_lowercase()
                } else {
                    name.to_owned()
                },
                location,
                required,
                schema,
                explode: p
                    .get("explode")
                    .and_then(Value::as_bool)
                    .unwrap_or(location == ParamIn::Query),
            });
        }
        out
    }

    fn read_body(&self, at: &str, problems: &mut Vec<SpecProblem>) -> Option<(bool, ContentSpec)> {
        let resolved = match self.resolve(at) {
            Ok(p) => p,
            Err(e) => {
                problems.push(self.problem(at, e));
                return None;
            }
        };
        let required = self
            .doc
            .pointer(&format!("{resolved}/required"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Some((
            required,
            self.read_content(&format!("{resolved}/content"), problems),
        ))
    }

    fn read_content(&self, at: &str, problems: &mut Vec<SpecProblem>) -> ContentSpec {
        let mut spec = ContentSpec::default();
        let Some(content) = self.doc.pointer(at).and_then(Value::as_object) else {
            return spec;
        };
        for (media, m) in content {
            let m_at = format!("{at}/{}", escape(media));
            let schema = m.get("schema").map(|_| format!("{m_at}/schema"));
            let media = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if !media.contains('/') {
                problems.push(self.problem(&m_at, format!("`{media}` is not a media type")));
                continue;
            }
            spec.media.push((media, schema));
        }
        spec
    }
}

/// RFC 6901 escaping of one segment.
pub fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

const MAX_YAML_DEPTH: usize = 128;

fn to_json(
    node: &MarkedYaml<'_>,
    path: &mut Vec<String>,
    lines: &mut HashMap<String, usize>,
    problems: &mut Vec<SpecProblem>,
    depth: usize,
) -> Value {
    let here = json_pointer(path);
    lines.entry(here.clone()).or_insert(node.span.start.line());
    if depth > MAX_YAML_DEPTH {
        problems.push(SpecProblem {
            pointer: here,
            line: Some(node.span.start.line()),
            message: "nested too deeply".into(),
            warning: false,
        });
        return Value::Null;
    }
    match &node.data {
        YamlData::Value(s) => scalar(s),
        YamlData::Representation(s, _, _) => Value::String(s.to_string()),
        YamlData::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(i.to_string());
                    let v = to_json(item, path, lines, problems, depth + 1);
                    path.pop();
                    v
                })
                .collect(),
        ),
        YamlData::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                let key = match &k.data {
                    YamlData::Value(s) => match scalar(s) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    YamlData::Representation(s, _, _) => s.to_string(),
                    _ => {
                        problems.push(SpecProblem {
                            pointer: here.clone(),
                            line: Some(k.span.start.line()),
                            message: "a mapping key must be a scalar".into(),
                            warning: false,
                        });
                        continue;
                    }
                };
                path.push(key.clone());
                lines.insert(json_pointer(path), k.span.start.line());
                let value = to_json(v, path, lines, problems, depth + 1);
                path.pop();
                out.insert(key, value);
            }
            Value::Object(out)
        }
        YamlData::Tagged(_, inner) => to_json(inner, path, lines, problems, depth + 1),
        YamlData::Alias(_) | YamlData::BadValue => {
            problems.push(SpecProblem {
                pointer: here,
                line: Some(node.span.start.line()),
                message: "unsupported YAML node (an alias or a bad value)".into(),
                warning: false,
            });
            Value::Null
        }
    }
}

fn scalar(s: &Scalar<'_>) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::from(*i),
        Scalar::FloatingPoint(f) => serde_json::Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

/// OpenAPI 3.0 schema objects in the draft-4 dialect: `nullable: true`
/// becomes `"null"` in `type` (and in `enum`).
fn convert_30(v: &mut Value, depth: usize) {
    if depth > MAX_YAML_DEPTH {
        return;
    }
    match v {
        Value::Object(m) => {
            if m.remove("nullable") == Some(Value::Bool(true)) {
                match m.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = std::mem::take(t);
                        m.insert("type".into(), serde_json::json!([t, "null"]));
                    }
                    Some(Value::Array(a)) if !a.contains(&Value::from("null")) => a.push(Value::from("null")),
                    _ => {}
                }
                if let Some(Value::Array(e)) = m.get_mut("enum") {
                    if !e.contains(&Value::Null) {
                        e.push(Value::Null);
                    }
                }
            }
            for child in m.values_mut() {
                convert_30(child, depth + 1);
            }
        }
        Value::Array(a) => {
            for child in a {
                convert_30(child, depth + 1);
            }
        }
        _ => {}
    }
}
