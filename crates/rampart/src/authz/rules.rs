//! Object-level rules: CEL expressions compiled once at policy load and
//! evaluated per request against what the request says and who sent it.
//!
//! Variables (nothing else is in scope):
//!
//! | Name | Value |
//! |---|---|
//! | `principal` | `issuer`, `sub`, `client_id`, `scopes`, `roles`, `acr`, `amr`, `auth_time`, `claims` (every other claim of the token) |
//! | `path` | the route's path parameters, decoded (`path.account_id`) |
//! | `query` | query parameters, decoded (`query.account`) |
//! | `headers` | request headers by lower-case name (`headers["x-customer-id"]`) |
//! | `body` | the JSON request body (`body.debtorAccount.iban`) |
//! | `method` | the request method |
//! | `now` | Unix seconds |
//! | `entitlements` | the `[[entitlements]]` sources by name (`entitlements.accounts`) |
//!
//! Threat answered: broken object-level authorization (OWASP API1), where a
//! valid caller names an object that is not theirs. At load, each
//! expression is parsed, every variable it reads must be one of the above,
//! every `path.X` must be a parameter of the route's template and every
//! `entitlements.X` a declared source; problems carry the rule's key path.
//! Per request, query parameters and headers a rule reads must appear
//! once (case-insensitively): `?account=A&ACCOUNT=B` would let the gateway
//! check one and the backend use the other. How it fails: closed. A rule
//! that errors (a missing field, a wrong type) or yields anything but
//! `true` refuses the request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use http::HeaderMap;
use serde_json::{Map, Value};

use super::error::AuthzError;
use crate::authn::Principal;

/// The variables a rule may read.
pub const VARIABLES: &[&str] = &[
    "principal",
    "path",
    "query",
    "headers",
    "body",
    "method",
    "now",
    "entitlements",
];

/// Which fields of a map variable an expression reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Fields {
    /// None.
    #[default]
    None,
    /// These (as written).
    Some(BTreeSet<String>),
    /// Unknown (a computed index): treat as every one.
    All,
}

impl Fields {
    fn add(&mut self, f: Option<&str>) {
        match (f, &mut *self) {
            (_, Fields::All) => {}
            (None, s) => *s = Fields::All,
            (Some(f), Fields::Some(set)) => {
                set.insert(f.to_owned());
            }
            (Some(f), s @ Fields::None) => *s = Fields::Some(BTreeSet::from([f.to_owned()])),
        }
    }

    fn merge(&mut self, other: &Fields) {
        match other {
            Fields::None => {}
            Fields::All => *self = Fields::All,
            Fields::Some(set) => {
                for f in set {
                    self.add(Some(f));
                }
            }
        }
    }

    /// Whether anything is read.
    pub fn any(&self) -> bool {
        *self != Fields::None
    }
}

/// What the expressions of a route read, so a request builds only that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uses {
    /// Top-level variables read.
    pub roots: BTreeSet<String>,
    /// Fields of `path`.
    pub path: Fields,
    /// Fields of `query`.
    pub query: Fields,
    /// Fields of `headers`.
    pub headers: Fields,
    /// Fields of `entitlements`.
    pub entitlements: Fields,
}

impl Uses {
    /// The union of two.
    pub fn merge(&mut self, other: &Uses) {
        self.roots.extend(other.roots.iter().cloned());
        self.path.merge(&other.path);
        self.query.merge(&other.query);
        self.headers.merge(&other.headers);
        self.entitlements.merge(&other.entitlements);
    }

    /// Whether `root` is read.
    pub fn reads(&self, root: &str) -> bool {
        self.roots.contains(root)
    }
}

/// A compiled expression.
#[derive(Debug)]
pub struct Expression {
    source: String,
    program: cel::Program,
    uses: Uses,
}

impl Expression {
    /// Parses and checks `source`. `params` are the route's path
    /// parameters; `entitlements` the declared sources. The error is a
    /// message for a [`ConfigProblem`](crate::config::ConfigProblem).
    pub fn compile(
        env: &cel::Env,
        source: &str,
        params: &[String],
        entitlements: &[String],
    ) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("an empty expression".to_owned());
        }
        let program = env
            .compile(source)
            .map_err(|e| format!("not a valid CEL expression {}", one_line(&e.to_string())))?;
        let mut uses = Uses::default();
        let mut unknown = BTreeSet::new();
        walk(program.expression(), &mut Vec::new(), &mut uses, &mut unknown);
        if let Some(u) = unknown.into_iter().next() {
            return Err(format!(
                "unknown variable `{u}`; rules may read {}",
                VARIABLES.join(", ")
            ));
        }
        if let Fields::Some(fields) = &uses.path {
            if let Some(f) = fields.iter().find(|f| !params.contains(f)) {
                return Err(if params.is_empty() {
                    format!("`path.{f}`: the route's path has no parameters")
                } else {
                    format!(
                        "`path.{f}` is not a parameter of the route's path (it has {})",
                        params.join(", ")
                    )
                });
            }
        }
        if let Fields::Some(fields) = &uses.entitlements {
            if let Some(f) = fields.iter().find(|f| !entitlements.contains(f)) {
                return Err(format!(
                    "`entitlements.{f}`: no [[entitlements]] source named `{f}`"
                ));
            }
        }
        if uses.entitlements == Fields::All {
            return Err("name entitlement sources literally (`entitlements.accounts`)".to_owned());
        }
        Ok(Self {
            source: source.to_owned(),
            program,
            uses,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What it reads.
    pub fn uses(&self) -> &Uses {
        &self.uses
    }

    /// Evaluates to a boolean; anything else is an error.
    pub fn eval(&self, ctx: &cel::Context) -> Result<bool, String> {
        match self.program.execute(ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("yields {:?}, not a boolean", other.type_of())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The first line of a CEL parse error, `ERROR: <input>:1:48: …` read as
/// `at 1:48: …` (line and column within the expression).
fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("").trim();
    match first.strip_prefix("ERROR: <input>:") {
        Some(rest) => format!("at {rest}"),
        None => first.to_owned(),
    }
}

/// The literal string of an expression, if it is one.
fn literal_str(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.as_ref()),
        _ => None,
    }
}

fn note_root(uses: &mut Uses, root: &str, field: Option<&str>) {
    uses.roots.insert(root.to_owned());
    let fields = match root {
        "path" => &mut uses.path,
        "query" => &mut uses.query,
        "headers" => &mut uses.headers,
        "entitlements" => &mut uses.entitlements,
        _ => return,
    };
    fields.add(field);
}

/// Collects free variables, and the fields read of the map variables.
/// `bound` holds the comprehension variables in scope.
fn walk(e: &IdedExpr, bound: &mut Vec<String>, uses: &mut Uses, unknown: &mut BTreeSet<String>) {
    match &e.expr {
        Expr::Ident(name) => {
            if bound.iter().any(|b| b == name) {
                return;
            }
            if VARIABLES.contains(&name.as_str()) {
                // A whole map read (`size(query)`, `path` passed on).
                note_root(uses, name, None);
            } else {
                unknown.insert(name.clone());
            }
        }
        Expr::Select(s) => match &s.operand.expr {
            Expr::Ident(root) if !bound.iter().any(|b| b == root) && VARIABLES.contains(&root.as_str()) => {
                note_root(uses, root, Some(&s.field));
            }
            _ => walk(&s.operand, bound, uses, unknown),
        },
        Expr::Call(c) => {
            // `headers["x-a"]`: an index with a literal key.
            if c.func_name == "_[_]" && c.args.len() == 2 {
                if let Expr::Ident(root) = &c.args[0].expr {
                    if !bound.iter().any(|b| b == root) && VARIABLES.contains(&root.as_str()) {
                        note_root(uses, root, literal_str(&c.args[1]));
                        walk(&c.args[1], bound, uses, unknown);
                        return;
                    }
                }
            }
            if let Some(t) = &c.target {
                walk(t, bound, uses, unknown);
            }
            for a in &c.args {
                walk(a, bound, uses, unknown);
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, uses, unknown);
            walk(&c.accu_init, bound, uses, unknown);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(c.accu_var.clone());
            walk(&c.loop_cond, bound, uses, unknown);
            walk(&c.loop_step, bound, uses, unknown);
            walk(&c.result, bound, uses, unknown);
            bound.truncate(depth);
        }
        Expr::List(l) => {
            for x in &l.elements {
                walk(x, bound, uses, unknown);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    walk(&me.key, bound, uses, unknown);
                    walk(&me.value, bound, uses, unknown);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => walk(&f.value, bound, uses, unknown),
                    EntryExpr::MapEntry(me) => {
                        walk(&me.key, bound, uses, unknown);
                        walk(&me.value, bound, uses, unknown);
                    }
                }
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// What one request offers the rules.
#[derive(Debug)]
pub struct Input<'a> {
    /// The caller, if authenticated.
    pub principal: Option<&'a Principal>,
    /// Request method.
    pub method: &'a str,
    /// Path parameters, decoded.
    pub params: &'a [(Arc<str>, String)],
    /// The raw query string.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The JSON body, if the route read one.
    pub body: Option<&'a Value>,
    /// Unix seconds.
    pub now: i64,
}

/// The principal as rules see it.
pub fn principal_value(p: &Principal) -> Value {
    let mut m = Map::new();
    m.insert("issuer".into(), Value::from(p.issuer()));
    if let Some(s) = p.subject() {
        m.insert("sub".into(), Value::from(s));
    }
    if let Some(c) = p.client_id() {
        m.insert("client_id".into(), Value::from(c));
    }
    m.insert("scopes".into(), Value::from(p.scopes().to_vec()));
    m.insert("roles".into(), Value::from(p.roles().to_vec()));
    if let Some(a) = p.acr() {
        m.insert("acr".into(), Value::from(a));
    }
    m.insert("amr".into(), Value::from(p.amr().to_vec()));
    if let Some(t) = p.auth_time() {
        m.insert("auth_time".into(), Value::from(t));
    }
    m.insert("claims".into(), Value::Object(p.extra().clone()));
    Value::Object(m)
}

/// Decoded query parameters, refusing ambiguity in the names `fields`
/// lists (or in every name, for [`Fields::All`]): a name present twice,
/// whatever the case, or a name or value that is not UTF-8 once decoded.
pub fn query_params(query: Option<&str>, fields: &Fields) -> Result<BTreeMap<String, String>, AuthzError> {
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let relevant = |name: &str| match fields {
            Fields::None => false,
            Fields::All => true,
            Fields::Some(set) => set.iter().any(|f| f.eq_ignore_ascii_case(name)),
        };
        let Some(k) = form_decode(k) else {
            if *fields == Fields::All {
                return Err(AuthzError::AmbiguousParameter("query parameter name".into()));
            }
            continue;
        };
        let Some(v) = form_decode(v) else {
            if relevant(&k) {
                return Err(AuthzError::AmbiguousParameter(format!("query parameter `{k}`")));
            }
            continue;
        };
        let n = seen.entry(k.to_ascii_lowercase()).or_default();
        *n += 1;
        if *n > 1 && relevant(&k) {
            return Err(AuthzError::AmbiguousParameter(format!("query parameter `{k}`")));
        }
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

/// `application/x-www-form-urlencoded` decoding of one name or value:
/// `+` is a space, `%XX` a byte; `None` if the bytes are not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Headers by lower-case name, refusing a header a rule reads that appears
/// more than once or is not UTF-8.
pub fn header_map(headers: &HeaderMap, fields: &Fields) -> Result<BTreeMap<String, String>, AuthzError> {
    let mut out = BTreeMap::new();
    let wanted: Box<dyn Fn(&str) -> bool> = match fields {
        Fields::None => return Ok(out),
        Fields::All => Box::new(|_| true),
        Fields::Some(set) => Box::new(move |n: &str| set.iter().any(|f| f.eq_ignore_ascii_case(n))),
    };
    for name in headers.keys() {
        if !wanted(name.as_str()) {
            continue;
        }
        let mut values = headers.get_all(name).iter();
        let (Some(v), None) = (values.next(), values.next()) else {
            return Err(AuthzError::AmbiguousParameter(format!("header `{name}`")));
        };
        let v = v
            .to_str()
            .map_err(|_| AuthzError::AmbiguousParameter(format!("header `{name}`")))?;
        out.insert(name.as_str().to_owned(), v.to_owned());
    }
    Ok(out)
}

/// Builds the evaluation context for `uses` (only what is read).
/// `entitlements` holds the resolved sources.
pub fn context<'a>(
    env: &Arc<cel::Env>,
    input: &Input<'_>,
    uses: &Uses,
    entitlements: &BTreeMap<String, Value>,
) -> Result<cel::Context<'a, 'a>, AuthzError> {
    let mut ctx = cel::Context::with_env(env.clone());
    let add = |ctx: &mut cel::Context<'a, 'a>, name: &str, v: Value| {
        ctx.add_variable(name, v).map_err(|e| AuthzError::RuleError {
            index: 0,
            rule: name.to_owned(),
            error: e.to_string(),
        })
    };
    for root in &uses.roots {
        let value = match root.as_str() {
            "principal" => match input.principal {
                Some(p) => principal_value(p),
                None => Value::Null,
            },
            "path" => Value::Object(
                input
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
                    .collect(),
            ),
            "query" => Value::Object(
                query_params(input.query, &uses.query)?
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            ),
            "headers" => Value::Object(
                header_map(input.headers, &uses.headers)?
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            ),
            "body" => input.body.cloned().unwrap_or(Value::Null),
            "method" => Value::from(input.method),
            "now" => Value::from(input.now),
            "entitlements" => {
                Value::Object(entitlements.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            }
            _ => continue,
        };
        add(&mut ctx, root, value)?;
    }
    Ok(ctx)
}

/// The CEL environment every policy compiles with: the standard library
/// and the strings extension (`lowerAscii()`, `startsWith()`, …).
pub fn env() -> Arc<cel::Env> {
    let mut env = cel::Env::stdlib();
    // The extension only declares functions; it cannot fail on a fresh
    // environment, and if it did the standard library alone still works.
    let _ = env.add_extension(cel::extensions::strings);
    Arc::new(env)
}
