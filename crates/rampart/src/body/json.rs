//! Strict JSON: one parse of a request (or response) body into a
//! [`serde_json::Value`], refusing what lets two parsers disagree and what
//! costs the gateway more than it should.
//!
//! Threats answered: duplicate object keys (`{"debtor":"A","debtor":"B"}`:
//! the gateway would check one value and the backend use the other; keys
//! that differ only in ASCII case count as duplicates, since some backends
//! bind them to one field), and
//! payloads built to exhaust a parser (deep nesting, huge arrays or
//! objects, long strings, millions of tokens; OWASP API4). Limits are
//! checked while parsing, so the cost is bounded by them, not by the input.
//! Invalid UTF-8 is refused by the parser itself.
//!
//! How it fails: [`JsonError`] names the class of fault and the JSON pointer
//! (RFC 6901) where it was found, never the offending value; it never
//! panics, whatever the input.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Structure limits, checked while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonLimits {
    /// Deepest nesting of objects and arrays (the top level is depth 1).
    pub max_depth: usize,
    /// Most keys in one object.
    pub max_keys: usize,
    /// Most elements in one array.
    pub max_array: usize,
    /// Longest string (keys included), in bytes.
    pub max_string: usize,
    /// Most values in the whole document (every scalar, object and array
    /// counts one).
    pub max_tokens: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_keys: 256,
            max_array: 10_000,
            max_string: 64 * 1024,
            max_tokens: 100_000,
        }
    }
}

/// The deepest nesting any policy may allow (serde_json's own recursion
/// limit is 128; this stays below it).
pub const MAX_DEPTH_CEILING: usize = 100;

/// What is wrong with a JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFault {
    /// Not JSON: a syntax error, invalid UTF-8, trailing data, an empty body.
    Syntax,
    /// An object has the same key twice.
    DuplicateKey,
    /// Nested deeper than `max_depth`.
    TooDeep,
    /// An object with more than `max_keys` keys.
    TooManyKeys,
    /// An array with more than `max_array` elements.
    ArrayTooLong,
    /// A string longer than `max_string` bytes.
    StringTooLong,
    /// More than `max_tokens` values.
    TooManyTokens,
}

impl JsonFault {
    /// A stable name, for logs and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::DuplicateKey => "duplicate-key",
            Self::TooDeep => "too-deep",
            Self::TooManyKeys => "too-many-keys",
            Self::ArrayTooLong => "array-too-long",
            Self::StringTooLong => "string-too-long",
            Self::TooManyTokens => "too-many-tokens",
        }
    }
}

/// A refused document: the fault and where (a JSON pointer; `""` is the
/// whole document). Never holds the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} at `{pointer}`", fault.as_str())]
pub struct JsonError {
    /// What is wrong.
    pub fault: JsonFault,
    /// Where (RFC 6901).
    pub pointer: String,
}

/// Parses `bytes` as one JSON document within `limits`.
pub fn parse(bytes: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    let mut state = State {
        limits: *limits,
        tokens: 0,
        path: Vec::new(),
        fault: None,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Node {
        state: &mut state,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(_) => Err(JsonError {
            fault: state.fault.unwrap_or(JsonFault::Syntax),
            pointer: pointer(&state.path),
        }),
    }
}

/// An RFC 6901 pointer from path segments (`~` → `~0`, `/` → `~1`).
pub fn pointer<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        for c in s.as_ref().chars() {
            match c {
                '~' => out.push_str("~0"),
                '/' => out.push_str("~1"),
                c => out.push(c),
            }
        }
    }
    out
}

struct State {
    limits: JsonLimits,
    tokens: usize,
    path: Vec<String>,
    fault: Option<JsonFault>,
}

impl State {
    fn fail<E: de::Error>(&mut self, fault: JsonFault) -> E {
        self.fault = Some(fault);
        E::custom(fault.as_str())
    }

    fn token<E: de::Error>(&mut self) -> Result<(), E> {
        self.tokens += 1;
        if self.tokens > self.limits.max_tokens {
            return Err(self.fail(JsonFault::TooManyTokens));
        }
        Ok(())
    }

    fn string<E: de::Error>(&mut self, s: &str) -> Result<(), E> {
        if s.len() > self.limits.max_string {
            return Err(self.fail(JsonFault::StringTooLong));
        }
        Ok(())
    }
}

struct Node<'a> {
    state: &'a mut State,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.state.token()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.state.token()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.state.token()?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.state.token()?;
        // serde_json never yields a non-finite number; refuse one anyway.
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| self.state.fail(JsonFault::Syntax))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.state.token()?;
        self.state.string(v)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.state.token()?;
        self.state.string(&v)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.state.token()?;
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Node { state, depth } = self;
        state.token()?;
        if depth + 1 > state.limits.max_depth {
            return Err(state.fail(JsonFault::TooDeep));
        }
        let mut out = Vec::new();
        loop {
            if out.len() == state.limits.max_array {
                // One more element would be too many; an end is fine.
                state.path.push(out.len().to_string());
                let more = seq.next_element_seed(Node {
                    state,
                    depth: depth + 1,
                })?;
                if more.is_some() {
                    return Err(state.fail(JsonFault::ArrayTooLong));
                }
                state.path.pop();
                break;
            }
            state.path.push(out.len().to_string());
            let next = seq.next_element_seed(Node {
                state,
                depth: depth + 1,
            })?;
            state.path.pop();
            match next {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Node { state, depth } = self;
        state.token()?;
        if depth + 1 > state.limits.max_depth {
            return Err(state.fail(JsonFault::TooDeep));
        }
        let mut out = Map::new();
        // Keys folded to lower case, kept only once a key has an ASCII
        // capital: until then a folded duplicate is an exact one.
        let mut folded: Option<std::collections::HashSet<String>> = None;
        while let Some(key) = map.next_key::<KeyString>()? {
            // The key goes on the path (for error pointers) and comes back
            // off it into the object: no copy.
            state.path.push(key.0);
            let key = state.path.last().map(String::as_str).unwrap_or("");
            if key.len() > state.limits.max_string {
                return Err(state.fail(JsonFault::StringTooLong));
            }
            if out.len() == state.limits.max_keys {
                return Err(state.fail(JsonFault::TooManyKeys));
            }
            // Case-insensitively: some backends (ASP.NET Core's defaults,
            // for one) bind `Debtor` and `debtor` to the same field.
            if folded.is_none() && key.bytes().any(|b| b.is_ascii_uppercase()) {
                folded = Some(out.keys().map(|k| k.to_ascii_lowercase()).collect());
            }
            let duplicate = match &mut folded {
                Some(set) => !set.insert(key.to_ascii_lowercase()),
                None => out.contains_key(key),
            };
            if duplicate {
                return Err(state.fail(JsonFault::DuplicateKey));
            }
            let v = map.next_value_seed(Node {
                state,
                depth: depth + 1,
            })?;
            let key = state.path.pop().unwrap_or_default();
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// An object key (only strings are keys in JSON).
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(KeyString)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(s: &str, limits: &JsonLimits) -> JsonError {
        match parse(s.as_bytes(), limits) {
            Err(e) => e,
            Ok(v) => panic!("{s} parsed as {v}"),
        }
    }

    #[test]
    fn valid_documents_parse_as_serde_json_does() {
        for s in [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"},"f":-1.5e3,"g":18446744073709551615}"#,
            "[]",
            "{}",
            r#""x""#,
            "0",
            " \n[1, 2]\t",
        ] {
            let ours = parse(s.as_bytes(), &JsonLimits::default());
            let theirs: Value = serde_json::from_str(s).unwrap();
            assert_eq!(ours, Ok(theirs), "{s}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_pointer() {
        let e = err(
            r#"{"payment":{"debtor":"A","debtor":"B"}}"#,
            &JsonLimits::default(),
        );
        assert_eq!(e.fault, JsonFault::DuplicateKey);
        assert_eq!(e.pointer, "/payment/debtor");
        // Escapes that spell the same key are the same key, and so are
        // keys that differ only in case.
        for s in [
            r#"{"a":1,"\u0061":2}"#,
            r#"{"debtor":1,"Debtor":2}"#,
            r#"{"a":1,"b":2,"B":3}"#,
            r#"{"Ab":1,"aB":2}"#,
            r#"{"x":{"k":1},"y":{"K":1,"k":2}}"#,
        ] {
            assert_eq!(
                err(s, &JsonLimits::default()).fault,
                JsonFault::DuplicateKey,
                "{s}"
            );
        }
    }

    #[test]
    fn distinct_keys_pass_whatever_their_case() {
        for s in [
            r#"{"a":1,"B":2,"c":3}"#,
            r#"{"é":1,"É":2}"#,
            r#"{"x":{"k":1},"y":{"K":1}}"#,
        ] {
            assert!(parse(s.as_bytes(), &JsonLimits::default()).is_ok(), "{s}");
        }
    }

    #[test]
    fn syntax_errors_and_bad_utf8() {
        let l = JsonLimits::default();
        for s in [
            &b""[..],
            b"{",
            b"{\"a\":}",
            b"[1,]",
            b"{} {}",
            b"\"\xff\"",
            b"nul",
            b"1e999",
        ] {
            let e = parse(s, &l).unwrap_err();
            assert_eq!(e.fault, JsonFault::Syntax, "{s:?}");
        }
    }

    #[test]
    fn each_limit_is_enforced_at_its_bound() {
        let l = JsonLimits {
            max_depth: 3,
            max_keys: 2,
            max_array: 3,
            max_string: 5,
            max_tokens: 8,
        };
        assert!(parse(br#"[[[1]]]"#, &l).is_ok());
        let e = err(r#"{"a":[[[1]]]}"#, &l);
        assert_eq!((e.fault, e.pointer.as_str()), (JsonFault::TooDeep, "/a/0/0"));
        assert!(parse(br#"{"a":1,"b":2}"#, &l).is_ok());
        assert_eq!(err(r#"{"a":1,"b":2,"c":3}"#, &l).fault, JsonFault::TooManyKeys);
        assert!(parse(b"[1,2,3]", &l).is_ok());
        let e = err("[1,2,3,4]", &l);
        assert_eq!((e.fault, e.pointer.as_str()), (JsonFault::ArrayTooLong, "/3"));
        assert!(parse(br#"["12345"]"#, &l).is_ok());
        assert_eq!(err(r#"["123456"]"#, &l).fault, JsonFault::StringTooLong);
        assert_eq!(err(r#"{"123456":1}"#, &l).fault, JsonFault::StringTooLong);
        // 1 + 1 + 3 + 3 = 8 values; one more is too many.
        assert!(parse(b"[1,[2,3],[4,5]]", &l).is_ok());
        assert_eq!(err("[1,[2,3],[4,5,6]]", &l).fault, JsonFault::TooManyTokens);
        let l = JsonLimits {
            max_tokens: 4,
            ..JsonLimits::default()
        };
        assert!(parse(b"[1,2,3]", &l).is_ok());
        assert_eq!(err("[1,2,3,4]", &l).fault, JsonFault::TooManyTokens);
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let deep = "[".repeat(100_000);
        assert_eq!(err(&deep, &JsonLimits::default()).fault, JsonFault::TooDeep);
        let objs = "{\"a\":".repeat(100_000);
        assert_eq!(err(&objs, &JsonLimits::default()).fault, JsonFault::TooDeep);
    }

    #[test]
    fn pointers_escape_tilde_and_slash() {
        assert_eq!(pointer(&["a/b", "c~d", "0"]), "/a~1b/c~0d/0");
        let e = err(r#"{"a/b":{"x":1,"x":2}}"#, &JsonLimits::default());
        assert_eq!(e.pointer, "/a~1b/x");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::testutil::Rng(7);
        let alphabet = b"{}[]\":,01-.e\\u tfnrl\xff\x00a";
        for _ in 0..20_000 {
            let len = (rng.next() % 40) as usize;
            let s: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = parse(&s, &JsonLimits::default());
        }
    }
}
