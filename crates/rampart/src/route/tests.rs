//! Table-driven tests of path normalisation and the route table.
//!
//! Normalisation: canonical forms, every refusal (traversal, encoded
//! separators, control characters, bad escapes, non-UTF-8 and overlong
//! sequences, length), idempotence and output grammar over generated input.
//! Table: template errors, specificity, host matching, method fallback and
//! 405 `Allow`, conflicts reported with indices, decoded parameters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::Method;

use super::path::*;
use super::table::*;

// ---------------------------------------------------------------- path ----

const NORMALIZE_OK: &[(&str, &str)] = &[
    ("/", "/"),
    ("/v1/accounts", "/v1/accounts"),
    ("/v1/accounts/", "/v1/accounts/"),
    ("//v1//accounts", "/v1/accounts"),
    ("//a///b", "/a/b"),
    ("//", "/"),
    ("/a//", "/a/"),
    ("/v1/./accounts", "/v1/accounts"),
    ("/a/./b/../c", "/a/c"),
    ("/a/b/..", "/a/"),
    ("/a/b/.", "/a/b/"),
    ("/a/./", "/a/"),
    ("/a/..", "/"),
    ("/.", "/"),
    ("/./", "/"),
    ("/a/b/../../c", "/c"),
    ("/v1/accounts/%2e%2e/payments", "/v1/payments"),
    ("/v1/accounts/%2E%2E/payments", "/v1/payments"),
    ("/v1/accounts/%2E./payments", "/v1/payments"),
    ("/v1/accounts/.%2e/payments", "/v1/payments"),
    ("/v1/%2e/accounts", "/v1/accounts"),
    ("/a%2Eb", "/a.b"),
    ("/%7e%7E%41%5f%2d%30", "/~~A_-0"),
    ("/...", "/..."),
    ("/..a/a..", "/..a/a.."),
    ("/a%20b", "/a%20b"),
    ("/a b", "/a%20b"),
    ("/a%3bb", "/a%3Bb"),
    ("/a;b", "/a;b"),
    ("/a%25b", "/a%25b"),
    ("/%C3%A9", "/%C3%A9"),
    ("/%c3%a9", "/%C3%A9"),
    ("/é", "/%C3%A9"),
    ("/%F0%9F%92%B6", "/%F0%9F%92%B6"),
    ("/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;="),
    ("/a\"<>`{}|^[]#?", "/a%22%3C%3E%60%7B%7D%7C%5E%5B%5D%23%3F"),
    ("/v1/accounts/%7Bid%7D", "/v1/accounts/%7Bid%7D"),
];

const NORMALIZE_ERR: &[(&str, PathError)] = &[
    ("", PathError::NotAbsolute),
    ("v1/accounts", PathError::NotAbsolute),
    ("*", PathError::NotAbsolute),
    ("%2Fv1", PathError::NotAbsolute),
    ("/v1/accounts/..%2Fpayments", PathError::EncodedSeparator),
    ("/v1/accounts/..%2fpayments", PathError::EncodedSeparator),
    ("/v1/accounts%2F..%2Fpayments", PathError::EncodedSeparator),
    ("/a%5Cb", PathError::EncodedSeparator),
    ("/a%5cb", PathError::EncodedSeparator),
    ("/a\\b", PathError::Backslash),
    ("/..\\admin", PathError::Backslash),
    ("/..", PathError::Traversal),
    ("/../", PathError::Traversal),
    ("/%2e%2e/etc/passwd", PathError::Traversal),
    ("/%2E%2e/etc/passwd", PathError::Traversal),
    ("/a/../../b", PathError::Traversal),
    ("/v1/../../admin", PathError::Traversal),
    ("/./..", PathError::Traversal),
    ("/v1/accounts%00", PathError::ControlCharacter),
    ("/v1/accounts%00.json", PathError::ControlCharacter),
    ("/a%0Ab", PathError::ControlCharacter),
    ("/a%0db", PathError::ControlCharacter),
    ("/a%1F", PathError::ControlCharacter),
    ("/a%7f", PathError::ControlCharacter),
    ("/a\tb", PathError::ControlCharacter),
    ("/a\nb", PathError::ControlCharacter),
    ("/a\u{7f}", PathError::ControlCharacter),
    ("/a%", PathError::BadEscape),
    ("/a%G1", PathError::BadEscape),
    ("/a%1G", PathError::BadEscape),
    ("/a%4", PathError::BadEscape),
    ("/a%4/b", PathError::BadEscape),
    ("/%%41", PathError::BadEscape),
    ("/%+1", PathError::BadEscape),
    ("/%C0%AE%C0%AE/etc", PathError::InvalidUtf8),
    ("/%C0%AF", PathError::InvalidUtf8),
    ("/%E0%80%AE", PathError::InvalidUtf8),
    ("/%FF", PathError::InvalidUtf8),
    ("/%C3", PathError::InvalidUtf8),
    ("/%C3/%A9", PathError::InvalidUtf8),
    ("/%ED%A0%80", PathError::InvalidUtf8),
    ("/%F4%90%80%80", PathError::InvalidUtf8),
    ("/..;/admin", PathError::DotSegmentParameter),
    ("/v1/public/..;/admin", PathError::DotSegmentParameter),
    ("/a/..;x/b", PathError::DotSegmentParameter),
    ("/.;/a", PathError::DotSegmentParameter),
    ("/v1/accounts/;/balances", PathError::EmptySegmentParameter),
    ("/v1/accounts/;jsessionid=1", PathError::EmptySegmentParameter),
    ("/v1/accounts/%3Bx", PathError::EmptySegmentParameter),
    ("/v1/%252e%252e/admin", PathError::DoubleEncoding),
    ("/v1/a%252Fb", PathError::DoubleEncoding),
    ("/v1/a%255cb", PathError::DoubleEncoding),
    ("/v1/%25%32%65%25%32%65/admin", PathError::DoubleEncoding),
    ("/v1/a%2500", PathError::DoubleEncoding),
    ("/v1/a%253B", PathError::DoubleEncoding),
    ("/a/%2e%2e%3b/admin", PathError::DotSegmentParameter),
    ("/a/%2E%2E;jsessionid=1/admin", PathError::DotSegmentParameter),
];

#[test]
fn normalize_accepts_and_canonicalises() {
    for &(input, want) in NORMALIZE_OK {
        assert_eq!(normalize(input).as_deref(), Ok(want), "input {input:?}");
    }
}

#[test]
fn normalize_refuses() {
    for &(input, want) in NORMALIZE_ERR {
        assert_eq!(normalize(input), Err(want), "input {input:?}");
    }
}

#[test]
fn normalize_length_limits() {
    let exact = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
    assert_eq!(normalize(&exact).as_deref(), Ok(exact.as_str()));
    let over = format!("/{}", "a".repeat(MAX_PATH_LEN));
    assert_eq!(normalize(&over), Err(PathError::TooLong));
    // Refused before any other check.
    let over_relative = "a".repeat(MAX_PATH_LEN + 1);
    assert_eq!(normalize(&over_relative), Err(PathError::TooLong));
    // The canonical output is bounded too, so its re-normalisation succeeds.
    let grows = format!("/{}", " ".repeat(3000));
    assert_eq!(normalize(&grows), Err(PathError::TooLong));
    let fits = format!("/{}", " ".repeat(2700));
    let once = normalize(&fits).unwrap();
    assert_eq!(once.len(), 1 + 3 * 2700);
    assert_eq!(normalize(&once), Ok(once.clone()));
    // Many segments collapsing to nothing is not a stack or time problem.
    let dots = "/a".to_owned() + &"/.".repeat(4000);
    assert_eq!(normalize(&dots).as_deref(), Ok("/a/"));
}

use crate::testutil::Rng;

const PIECES: &[&str] = &[
    "/", "/", "/", "a", "b", "v1", ".", "..", "%2e", "%2E", "%2e%2e", "%2F", "%5c", "\\", "%00", "%20", " ",
    "%", "%4", "%41", "%7e", "~", "é", "%C3%A9", "%C3", "%C0%AE", ";", "%3B", "%3b", ":", "@", "+", "%25",
    "{", "}", "?", "#", "\"", "%7F", "\t", "-", "_",
];

/// Checks the documented output grammar of a canonical path.
fn assert_canonical(p: &str) {
    assert!(p.starts_with('/'), "{p:?} not absolute");
    assert!(p.len() <= MAX_PATH_LEN, "{p:?} too long");
    let segs: Vec<&str> = segments(p).collect();
    for (i, s) in segs.iter().enumerate() {
        assert!(
            !s.is_empty() || i + 1 == segs.len(),
            "{p:?}: empty segment inside"
        );
        assert!(*s != "." && *s != "..", "{p:?}: dot segment left");
        let b = s.as_bytes();
        let mut j = 0;
        while j < b.len() {
            if b[j] == b'%' {
                let hex = &s[j + 1..j + 3];
                assert!(
                    hex.bytes()
                        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)),
                    "{p:?}: escape {hex:?} not upper-case hex"
                );
                let v = u8::from_str_radix(hex, 16).unwrap();
                assert!(
                    !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
                    "{p:?}: unreserved byte left encoded"
                );
                j += 3;
            } else {
                assert!(
                    b[j].is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b[j]),
                    "{p:?}: raw byte {:#x} outside pchar",
                    b[j]
                );
                j += 1;
            }
        }
        assert!(decode_segment(s).is_ok(), "{p:?}: segment does not decode");
    }
}

#[test]
fn normalize_is_idempotent_and_canonical() {
    let mut inputs: Vec<String> = NORMALIZE_OK.iter().map(|(i, _)| (*i).to_owned()).collect();
    inputs.extend(NORMALIZE_ERR.iter().map(|(i, _)| (*i).to_owned()));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let n = 1 + (rng.next() % 12) as usize;
        let mut s = String::from("/");
        for _ in 0..n {
            s.push_str(rng.pick(PIECES));
        }
        inputs.push(s);
    }
    let mut accepted = 0;
    for input in &inputs {
        if let Ok(once) = normalize(input) {
            accepted += 1;
            assert_canonical(&once);
            assert_eq!(normalize(&once), Ok(once.clone()), "input {input:?}");
        }
    }
    // The generator must exercise both outcomes for the loop to mean anything.
    assert!(accepted > 1_000, "only {accepted} accepted");
    assert!(accepted < inputs.len() - 1_000, "almost nothing refused");
}

#[test]
fn segments_split() {
    let cases: &[(&str, &[&str])] = &[
        ("/", &[""]),
        ("/a", &["a"]),
        ("/a/", &["a", ""]),
        ("/a/b%20c/d", &["a", "b%20c", "d"]),
    ];
    for &(path, want) in cases {
        assert_eq!(segments(path).collect::<Vec<_>>(), want, "path {path:?}");
    }
}

#[test]
fn decode_segment_cases() {
    let cases: &[(&str, Result<&str, PathError>)] = &[
        ("abc", Ok("abc")),
        ("", Ok("")),
        ("a%20b", Ok("a b")),
        ("%C3%A9", Ok("é")),
        ("a%25b", Ok("a%b")),
        ("%3B%3a", Ok(";:")),
        ("%2e%2E", Ok("..")),
        ("a%2Fb", Err(PathError::EncodedSeparator)),
        ("a/b", Err(PathError::EncodedSeparator)),
        ("a%5Cb", Err(PathError::EncodedSeparator)),
        ("a\\b", Err(PathError::Backslash)),
        ("%00", Err(PathError::ControlCharacter)),
        ("a\rb", Err(PathError::ControlCharacter)),
        ("%4", Err(PathError::BadEscape)),
        ("%zz", Err(PathError::BadEscape)),
        ("%FF", Err(PathError::InvalidUtf8)),
        ("%C0%AE", Err(PathError::InvalidUtf8)),
    ];
    for &(seg, want) in cases {
        assert_eq!(
            decode_segment(seg).as_deref().map_err(|e| *e),
            want,
            "seg {seg:?}"
        );
    }
}

// ----------------------------------------------------------- templates ----

#[test]
fn template_errors() {
    let deep = "/a".repeat(MAX_TEMPLATE_SEGMENTS + 1);
    let cases: Vec<(&str, TemplateError)> = vec![
        ("", TemplateError::NotAbsolute),
        ("v1/accounts", TemplateError::NotAbsolute),
        ("{id}", TemplateError::NotAbsolute),
        ("/a/{}", TemplateError::EmptyParamName),
        ("/a/{1x}", TemplateError::BadParamName("1x".into())),
        ("/a/{a-b}", TemplateError::BadParamName("a-b".into())),
        ("/a/{é}", TemplateError::BadParamName("é".into())),
        ("/a/{ id}", TemplateError::BadParamName(" id".into())),
        ("/{a}}", TemplateError::BadParamName("a}".into())),
        ("/{{a}}", TemplateError::BadParamName("{a}".into())),
        ("/{id}/x/{id}", TemplateError::DuplicateParam("id".into())),
        ("/a{id}", TemplateError::BraceInLiteral("a{id}".into())),
        ("/{id}x", TemplateError::BraceInLiteral("{id}x".into())),
        ("/{id", TemplateError::BraceInLiteral("{id".into())),
        ("/id}", TemplateError::BraceInLiteral("id}".into())),
        (
            "//a",
            TemplateError::Unnormalized {
                segment: String::new(),
            },
        ),
        (
            "/a//b",
            TemplateError::Unnormalized {
                segment: String::new(),
            },
        ),
        ("/a/../b", TemplateError::Unnormalized { segment: "..".into() }),
        ("/./a", TemplateError::Unnormalized { segment: ".".into() }),
        ("/a/.", TemplateError::Unnormalized { segment: ".".into() }),
        (
            "/a%7e",
            TemplateError::Unnormalized {
                segment: "a%7e".into(),
            },
        ),
        (
            "/a b",
            TemplateError::Unnormalized {
                segment: "a b".into(),
            },
        ),
        (
            "/a%3b",
            TemplateError::Unnormalized {
                segment: "a%3b".into(),
            },
        ),
        (
            "/a%2Fb",
            TemplateError::InvalidLiteral {
                segment: "a%2Fb".into(),
                source: PathError::EncodedSeparator,
            },
        ),
        (
            "/..;x",
            TemplateError::InvalidLiteral {
                segment: "..;x".into(),
                source: PathError::DotSegmentParameter,
            },
        ),
        (
            "/a%00",
            TemplateError::InvalidLiteral {
                segment: "a%00".into(),
                source: PathError::ControlCharacter,
            },
        ),
        (&deep, TemplateError::TooManySegments),
    ];
    for (template, want) in cases {
        assert_eq!(PathTemplate::parse(template), Err(want), "template {template:?}");
    }
}

#[test]
fn template_parses() {
    use TemplateSegment::{Literal, Param};
    let lit = |s: &str| Literal(Box::from(s));
    let par = |s: &str| Param(Arc::from(s));
    let cases: Vec<(&str, Vec<TemplateSegment>)> = vec![
        ("/", vec![lit("")]),
        ("/v1/accounts/", vec![lit("v1"), lit("accounts"), lit("")]),
        (
            "/v1/accounts/{account_id}/transactions",
            vec![lit("v1"), lit("accounts"), par("account_id"), lit("transactions")],
        ),
        ("/{_x}/{Y9}", vec![par("_x"), par("Y9")]),
        ("/a%20b/~/a;b", vec![lit("a%20b"), lit("~"), lit("a;b")]),
    ];
    for (template, want) in cases {
        let t = PathTemplate::parse(template).unwrap();
        assert_eq!(t.segments(), want.as_slice(), "template {template:?}");
        assert_eq!(t.as_str(), template);
    }
    let t = PathTemplate::parse("/{a}/x/{b}").unwrap();
    let names: Vec<&str> = t.param_names().map(|n| &**n).collect();
    assert_eq!(names, ["a", "b"]);
}

// --------------------------------------------------------------- table ----

fn spec(host: Option<&str>, path: &str, methods: &[&str]) -> RouteSpec {
    RouteSpec {
        host: host.map(str::to_owned),
        path: path.to_owned(),
        methods: methods
            .iter()
            .map(|m| Method::from_bytes(m.as_bytes()).unwrap())
            .collect(),
    }
}

fn methods(ms: &[&str]) -> Vec<Method> {
    ms.iter()
        .map(|m| Method::from_bytes(m.as_bytes()).unwrap())
        .collect()
}

fn demo_specs() -> Vec<RouteSpec> {
    vec![
        /* 0 */ spec(None, "/v1/payments/{payment_id}", &["GET"]),
        /* 1 */ spec(None, "/v1/payments/bulk", &["POST"]),
        /* 2 */
        spec(None, "/v1/accounts/{account_id}/transactions", &["GET"]),
        /* 3 */
        spec(
            Some("api.bank.example"),
            "/v1/accounts/{id}/transactions",
            &["GET"],
        ),
        /* 4 */ spec(None, "/v1/accounts/{account_id}", &["GET", "DELETE"]),
        /* 5 */ spec(None, "/v1/{a}/statements/latest", &["GET"]),
        /* 6 */ spec(None, "/v1/accounts/{b}/{c}", &["GET"]),
        /* 7 */ spec(None, "/", &["GET"]),
        /* 8 */ spec(None, "/health/", &["GET"]),
        /* 9 */ spec(Some("admin.bank.example"), "/v1/payments/bulk", &["GET"]),
        /* 10 */ spec(Some("[::1]"), "/local", &["GET"]),
        /* 11 */ spec(None, "/v1/{x}/{y}/{z}", &["PUT", "PATCH", "PUT"]),
        /* 12 */ spec(None, "/custom", &["PURGE"]),
    ]
}

type Want = Result<(usize, &'static [(&'static str, &'static str)]), RouteMiss>;

#[test]
fn resolve_cases() {
    let table = RouteTable::build(&demo_specs()).unwrap();
    let nf = || Err(RouteMiss::NotFound);
    let na = |ms: &[&str]| Err(RouteMiss::MethodNotAllowed { allow: methods(ms) });
    let deep = "/a".repeat(200);
    let cases: Vec<(Option<&str>, &str, &str, Want)> = vec![
        // literal beats parameter
        (None, "/v1/payments/bulk", "POST", Ok((1, &[]))),
        // ... but the parameter route serves the method the literal lacks
        (
            None,
            "/v1/payments/bulk",
            "GET",
            Ok((0, &[("payment_id", "bulk")])),
        ),
        (
            Some("admin.bank.example"),
            "/v1/payments/bulk",
            "GET",
            Ok((9, &[])),
        ),
        (
            Some("admin.bank.example"),
            "/v1/payments/bulk",
            "POST",
            Ok((1, &[])),
        ),
        // decoded parameters
        (
            None,
            "/v1/payments/p%20q%C3%A9%25",
            "GET",
            Ok((0, &[("payment_id", "p q\u{e9}%")])),
        ),
        (
            None,
            "/v1/payments/a%3Bb",
            "GET",
            Ok((0, &[("payment_id", "a;b")])),
        ),
        // 405 with the union of methods, sorted and deduplicated
        (None, "/v1/payments/abc", "DELETE", na(&["GET"])),
        (None, "/v1/payments/bulk", "DELETE", na(&["GET", "POST"])),
        (
            Some("admin.bank.example"),
            "/v1/payments/bulk",
            "PUT",
            na(&["GET", "POST"]),
        ),
        (None, "/v1/a/b/c", "GET", na(&["PATCH", "PUT"])),
        (
            None,
            "/v1/a/b/c",
            "PUT",
            Ok((11, &[("x", "a"), ("y", "b"), ("z", "c")])),
        ),
        // no implicit HEAD / OPTIONS
        (None, "/", "HEAD", na(&["GET"])),
        (None, "/", "OPTIONS", na(&["GET"])),
        (None, "/", "GET", Ok((7, &[]))),
        (None, "/custom", "PURGE", Ok((12, &[]))),
        (None, "/custom", "GET", na(&["PURGE"])),
        // host matching: case, port, trailing dot; host route beats host-less
        (
            Some("API.Bank.Example:8443"),
            "/v1/accounts/a1/transactions",
            "GET",
            Ok((3, &[("id", "a1")])),
        ),
        (
            Some("api.bank.example."),
            "/v1/accounts/a1/transactions",
            "GET",
            Ok((3, &[("id", "a1")])),
        ),
        (
            Some("other.example"),
            "/v1/accounts/a1/transactions",
            "GET",
            Ok((2, &[("account_id", "a1")])),
        ),
        (
            Some("api.bank.example.evil"),
            "/v1/accounts/a1/transactions",
            "GET",
            Ok((2, &[("account_id", "a1")])),
        ),
        (
            None,
            "/v1/accounts/a1/transactions",
            "GET",
            Ok((2, &[("account_id", "a1")])),
        ),
        (Some("[::1]:8443"), "/local", "GET", Ok((10, &[]))),
        (Some("[::2]"), "/local", "GET", nf()),
        (None, "/local", "GET", nf()),
        // leftmost literal wins, even against more literals further right
        (
            None,
            "/v1/accounts/statements/latest",
            "GET",
            Ok((6, &[("b", "statements"), ("c", "latest")])),
        ),
        (
            None,
            "/v1/cards/statements/latest",
            "GET",
            Ok((5, &[("a", "cards")])),
        ),
        // exact segment count, no prefix matching, no empty parameter
        (None, "/v1/payments", "GET", nf()),
        (None, "/v1/payments/abc/extra/more", "GET", nf()),
        (None, "/v1/payments/", "GET", nf()),
        (None, "/v1/accounts/a1/", "GET", nf()),
        (
            None,
            "/v1/accounts/a1",
            "DELETE",
            Ok((4, &[("account_id", "a1")])),
        ),
        // trailing slash is part of the path
        (None, "/health/", "GET", Ok((8, &[]))),
        (None, "/health", "GET", nf()),
        (None, &deep, "GET", nf()),
        (None, "relative", "GET", nf()),
        (None, "", "GET", nf()),
    ];
    for (host, path, method, want) in cases {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let got = table.resolve(host, path, &m);
        let want = want.map(|(index, params)| RouteMatch {
            index,
            params: params
                .iter()
                .map(|(k, v)| (Arc::from(*k), (*v).to_owned()))
                .collect(),
        });
        assert_eq!(got, want, "{host:?} {method} {path}");
    }
}

#[test]
fn resolve_after_normalize_blocks_traversal() {
    let table = RouteTable::build(&[
        spec(None, "/v1/accounts/{id}", &["GET"]),
        spec(None, "/v1/payments", &["POST"]),
    ])
    .unwrap();
    let cases: &[(&str, Result<usize, ()>)] = &[
        ("/v1/accounts/..%2Fpayments", Err(())),
        ("/v1/accounts/%2e%2e/payments", Ok(1)),
        ("/v1/accounts/x/%2E%2E/../payments", Ok(1)),
        ("/v1//accounts/%41", Ok(0)),
    ];
    for &(raw, want) in cases {
        let got = normalize(raw).map_err(|_| ()).and_then(|p| {
            table
                .resolve(None, &p, &Method::POST)
                .or_else(|_| table.resolve(None, &p, &Method::GET))
                .map(|m| m.index)
                .map_err(|_| ())
        });
        assert_eq!(got, want, "raw {raw:?}");
    }
    let m = table
        .resolve(None, &normalize("/v1/accounts/%41").unwrap(), &Method::GET)
        .unwrap();
    assert_eq!(&*m.params[0].1, "A");
}

#[test]
fn build_reports_every_bad_spec() {
    let specs = vec![
        /* 0 */ spec(None, "/a/{x}", &["GET"]),
        /* 1 */ spec(None, "/a/{y}", &["POST", "GET"]),
        /* 2 */ spec(None, "/a/{y}", &["POST"]),
        /* 3 */ spec(Some("h.example"), "/a/{z}", &["GET"]),
        /* 4 */ spec(Some("H.Example."), "/a/{q}", &["GET"]),
        /* 5 */ spec(None, "/a/b", &["GET"]),
        /* 6 */ spec(None, "/a/{x}", &[]),
        /* 7 */ spec(None, "a", &["GET"]),
        /* 8 */ spec(Some("h.example:443"), "/p", &["GET"]),
        /* 9 */ spec(Some("*.example"), "/p", &["GET"]),
        /* 10 */ spec(Some(""), "/p", &["GET"]),
        /* 11 */ spec(None, "/a/{x}", &["GET", "GET"]),
        /* 12 */ spec(None, "/a/{x}/c", &["GET"]),
        /* 13 */ spec(None, "/a/{x}", &["DELETE"]),
        /* 14 */ spec(None, "/a/{id}/{id}", &["GET"]),
        /* 15 */ spec(Some("h.example"), "/a/{x}", &["PUT", "GET"]),
        /* 16 */ spec(Some("a..b"), "/p", &["GET"]),
    ];
    let want = vec![
        (1, RouteTableError::Conflict { with: 0 }),
        (4, RouteTableError::Conflict { with: 3 }),
        (6, RouteTableError::NoMethods),
        (7, RouteTableError::Template(TemplateError::NotAbsolute)),
        (8, RouteTableError::BadHost("h.example:443".into())),
        (9, RouteTableError::BadHost("*.example".into())),
        (10, RouteTableError::BadHost(String::new())),
        (11, RouteTableError::Conflict { with: 0 }),
        (
            14,
            RouteTableError::Template(TemplateError::DuplicateParam("id".into())),
        ),
        (15, RouteTableError::Conflict { with: 3 }),
        (16, RouteTableError::BadHost("a..b".into())),
    ];
    assert_eq!(RouteTable::build(&specs).err(), Some(want));

    // The same table without the bad specs builds, and resolves by index.
    let good: Vec<RouteSpec> = [0, 2, 3, 5, 12, 13].iter().map(|&i| specs[i].clone()).collect();
    let table = RouteTable::build(&good).unwrap();
    let got = table.resolve(Some("h.example"), "/a/1", &Method::POST);
    assert_eq!(got.map(|m| m.index), Ok(1));
    let got = table.resolve(Some("h.example"), "/a/1", &Method::GET);
    assert_eq!(got.map(|m| m.index), Ok(2));
    let got = table.resolve(Some("h.example"), "/a/1", &Method::PUT);
    assert_eq!(
        got,
        Err(RouteMiss::MethodNotAllowed {
            allow: methods(&["DELETE", "GET", "POST"])
        })
    );
}

#[test]
fn empty_table_finds_nothing() {
    let table = RouteTable::build(&[]).unwrap();
    assert_eq!(
        table.resolve(Some("x"), "/", &Method::GET),
        Err(RouteMiss::NotFound)
    );
}
