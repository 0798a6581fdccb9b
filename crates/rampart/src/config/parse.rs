//! From TOML text to the raw [`GatewayConfig`], collecting every problem.
//!
//! The document is parsed once into a spanned tree. Each top-level section,
//! and each element of an array of tables, is deserialised on its own, so a
//! typo in `routes[0]` does not hide a wrong type in `routes[4]`. Every error
//! carries the key path and line of the offending key, found by walking the
//! spanned tree ([`Locator`]). Unknown keys are errors everywhere
//! (`deny_unknown_fields`).

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::error::ConfigProblem;
use super::GatewayConfig;

/// Finds key paths and lines in the policy text.
pub struct Locator<'t> {
    text: &'t str,
    root: Option<Spanned<DeTable<'t>>>,
}

impl<'t> Locator<'t> {
    /// Parses `text` for locating; a text that does not parse locates nothing.
    pub fn new(text: &'t str) -> Self {
        Self {
            text,
            root: DeTable::parse(text).ok(),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The line where the key at `path` (e.g. `routes[2].upstream`) is
    /// written; if that key is absent, the line of its nearest present parent.
    pub fn line_of_path(&self, path: &str) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut best = None;
        let mut table: Option<&DeTable<'t>> = Some(root.get_ref());
        let mut value: Option<&Spanned<DeValue<'t>>> = None;
        for step in split_path(path) {
            match step {
                Step::Key(k) => {
                    let t = match (table, value) {
                        (Some(t), None) => t,
                        (_, Some(v)) => match v.get_ref() {
                            DeValue::Table(t) => t,
                            _ => break,
                        },
                        (None, None) => break,
                    };
                    let Some((key, v)) = t.iter().find(|(key, _)| key.get_ref() == k) else {
                        break;
                    };
                    best = Some(key.span().start);
                    table = None;
                    value = Some(v);
                }
                Step::Index(i) => {
                    let Some(DeValue::Array(a)) = value.map(|v| v.get_ref()) else {
                        break;
                    };
                    let Some(v) = a.get(i) else { break };
                    best = Some(v.span().start);
                    value = Some(v);
                }
            }
        }
        best.map(|o| self.line_of(o))
    }

    /// The key path of the problem at `offset`, below the value at `base`
    /// (whose path is `base_path`): the key written at `offset` if there is
    /// one (tables declared by a `[header]` do not span their keys), else
    /// the deepest value containing it.
    fn path_at(base: &Spanned<DeValue<'t>>, base_path: &str, offset: usize) -> String {
        Self::key_at(base, base_path, offset).unwrap_or_else(|| Self::value_at(base, base_path, offset))
    }

    fn key_at(v: &Spanned<DeValue<'t>>, path: &str, offset: usize) -> Option<String> {
        match v.get_ref() {
            DeValue::Table(t) => t.iter().find_map(|(k, v)| {
                let p = format!("{}{}", dot(path), k.get_ref());
                let ks = k.span();
                let vs = v.span();
                // The key itself, or a scalar value written right after it.
                let scalar = !matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_));
                if (ks.start <= offset && offset < ks.end)
                    || (scalar && vs.start <= offset && offset < vs.end)
                {
                    Some(p)
                } else {
                    Self::key_at(v, &p, offset)
                }
            }),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, v)| Self::key_at(v, &format!("{path}[{i}]"), offset)),
            _ => None,
        }
    }

    fn value_at(base: &Spanned<DeValue<'t>>, base_path: &str, offset: usize) -> String {
        let mut path = base_path.to_string();
        let mut cur = base;
        loop {
            let next = match cur.get_ref() {
                DeValue::Table(t) => t.iter().find_map(|(k, v)| {
                    let (ks, vs) = (k.span(), v.span());
                    let hit = (ks.start <= offset && offset < ks.end.max(ks.start + 1))
                        || (vs.start <= offset && offset < vs.end);
                    hit.then(|| (format!("{}{}", dot(&path), k.get_ref()), v))
                }),
                DeValue::Array(a) => a.iter().enumerate().find_map(|(i, v)| {
                    let vs = v.span();
                    (vs.start <= offset && offset < vs.end).then(|| (format!("{path}[{i}]"), v))
                }),
                _ => None,
            };
            match next {
                Some((p, v)) => {
                    path = p;
                    cur = v;
                }
                None => return path,
            }
        }
    }
}

fn dot(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    }
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                steps.push(Step::Index(i));
            }
        }
    }
    steps
}

/// The top-level sections a policy may have.
const SECTIONS: &[&str] = &[
    "listeners",
    "admin",
    "upstreams",
    "routes",
    "response",
    "logging",
    "dangerous",
    "ip_filter",
    "concurrency",
    "rate_limit",
    "redis",
    "issuers",
    "dpop",
    "api_keys",
    "revocation",
    "brute_force",
    "mtls",
    "identity",
    "entitlements",
    "mfa",
    "audit",
    "apis",
    "signatures",
];

/// Parses a whole policy. On failure, every problem found, each with its path
/// and line.
pub fn parse(text: &str) -> Result<GatewayConfig, Vec<ConfigProblem>> {
    let locator = Locator::new(text);
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let mut p = ConfigProblem::error("", format!("invalid TOML: {}", e.message()));
            p.line = e.span().map(|s| locator.line_of(s.start));
            return Err(vec![p]);
        }
    };
    let mut problems = Vec::new();
    let root_value = Spanned::new(root.span(), DeValue::Table(root.get_ref().clone()));
    for (key, _) in root.get_ref().iter() {
        if !SECTIONS.contains(&&**key.get_ref()) {
            let mut p = ConfigProblem::error(
                key.get_ref().to_string(),
                format!("unknown section, expected one of {}", SECTIONS.join(", ")),
            );
            p.line = Some(locator.line_of(key.span().start));
            problems.push(p);
        }
    }
    let mut cx = Cx {
        locator: &locator,
        problems: &mut problems,
        root: &root_value,
    };
    let config = GatewayConfig {
        listeners: cx.array("listeners"),
        admin: cx.table("admin"),
        upstreams: cx.array("upstreams"),
        routes: cx.array("routes"),
        response: cx.table("response"),
        logging: cx.table("logging"),
        dangerous: cx.table("dangerous"),
        ip_filter: cx.table("ip_filter"),
        concurrency: cx.table("concurrency"),
        rate_limit: cx.array("rate_limit"),
        redis: cx.table("redis"),
        issuers: cx.array("issuers"),
        dpop: cx.table("dpop"),
        api_keys: cx.table("api_keys"),
        revocation: cx.table("revocation"),
        brute_force: cx.table("brute_force"),
        mtls: cx.table("mtls"),
        identity: cx.table("identity"),
        entitlements: cx.array("entitlements"),
        mfa: cx.table("mfa"),
        audit: cx.table("audit"),
        apis: cx.array("apis"),
        signatures: cx.table("signatures"),
    };
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

struct Cx<'a, 't> {
    locator: &'a Locator<'t>,
    problems: &'a mut Vec<ConfigProblem>,
    root: &'a Spanned<DeValue<'t>>,
}

impl<'t> Cx<'_, 't> {
    fn get(&self, key: &str) -> Option<&Spanned<DeValue<'t>>> {
        match self.root.get_ref() {
            DeValue::Table(t) => t.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn de<T: DeserializeOwned>(&mut self, value: &Spanned<DeValue<'t>>, path: &str) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let offset = e.span().map(|s| s.start).unwrap_or(value.span().start);
                let path = Locator::path_at(value, path, offset);
                let mut p = ConfigProblem::error(path, e.message().to_string());
                p.line = Some(self.locator.line_of(offset));
                self.problems.push(p);
                None
            }
        }
    }

    fn table<T: DeserializeOwned + Default>(&mut self, key: &str) -> T {
        match self.get(key).cloned() {
            None => T::default(),
            Some(v) => self.de(&v, key).unwrap_or_default(),
        }
    }

    fn array<T: DeserializeOwned>(&mut self, key: &str) -> Vec<T> {
        let Some(v) = self.get(key).cloned() else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            let mut p = ConfigProblem::error(key, format!("expected an array of tables: [[{key}]]"));
            p.line = Some(self.locator.line_of(v.span().start));
            self.problems.push(p);
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.de(item, &format!("{key}[{i}]")))
            .collect()
    }
}
