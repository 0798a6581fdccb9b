#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use super::injection::{detect, InjectionClass};
use super::openapi::{OasVersion, Spec};
use super::schema::{self, Schema};
use super::signature::{self, Message, RouteSignature, SigError, Signatures, VerifyKey};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn vector(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo(&format!("testdata/vectors/{name}"))).unwrap())
        .unwrap()
}

fn lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(repo(&format!("testdata/vectors/validation/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("# "))
        .map(str::to_owned)
        .collect()
}

// === formats ===

#[test]
fn formats_accept_what_they_should_and_nothing_else() {
    for ok in ["2026-02-28", "2024-02-29", "2000-02-29", "1999-12-31"] {
        assert!(schema::is_date(ok), "{ok}");
    }
    for bad in [
        "2026-02-29",
        "1900-02-29",
        "2026-13-01",
        "2026-1-01",
        "2026-01-32",
        "20260101",
        "２026-01-01",
        "",
    ] {
        assert!(!schema::is_date(bad), "{bad}");
    }
    for ok in [
        "2025-06-30T09:15:27Z",
        "2025-06-30t09:15:27.123z",
        "2025-06-30T09:15:60+01:00",
        "2025-06-30T23:59:59-05:30",
    ] {
        assert!(schema::is_date_time(ok), "{ok}");
    }
    for bad in [
        "2025-06-30 09:15:27Z",
        "2025-06-30T24:00:00Z",
        "2025-06-30T09:15:27",
        "2025-06-30T09:15:27.Z",
        "2025-06-30T09:15:27+0100",
    ] {
        assert!(!schema::is_date_time(bad), "{bad}");
    }
    assert!(schema::is_uuid("f076761b-5787-41ee-9ba6-134432fc7584"));
    assert!(!schema::is_uuid("f076761b57874 1ee9ba6134432fc7584"));
    assert!(!schema::is_uuid("f076761b-5787-41ee-9ba6-134432fc758g"));
    assert!(schema::is_iban("DE89370400440532013000"));
    assert!(!schema::is_iban("DE89370400440532013001"), "check digits");
    assert!(
        !schema::is_iban("DE89 3704 0044 0532 0130 00"),
        "electronic form only"
    );
    assert!(!schema::is_iban("de89370400440532013000"));
    for ok in ["DEUTDEFF", "DEUTDEFF500", "NWBKGB2L", "BNPAFRPPXXX"] {
        assert!(schema::is_bic(ok), "{ok}");
    }
    for bad in ["DEUTDEF", "DEUTDEFF50", "D3UTDEFF", "deutdeff", "DEUTDEFF5000"] {
        assert!(!schema::is_bic(bad), "{bad}");
    }
    for ok in ["EUR", "USD", "CHF", "JPY", "XAU"] {
        assert!(schema::is_currency(ok), "{ok}");
    }
    for bad in ["EURO", "eur", "ABC", "DEM", "", "EU", "EUŔ", "E\u{0}R"] {
        assert!(!schema::is_currency(bad), "{bad}");
    }
    // Every three-letter code: accepted exactly when the list has it.
    let listed: Vec<&str> = schema::ISO_4217.split_whitespace().collect();
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            for c in b'A'..=b'Z' {
                let code = String::from_utf8(vec![a, b, c]).unwrap();
                assert_eq!(
                    schema::is_currency(&code),
                    listed.contains(&code.as_str()),
                    "{code}"
                );
            }
        }
    }
    for ok in [
        "0",
        "125.00",
        "-42.10",
        "1",
        "0.5",
        "10000000000000000000000000000000.99",
    ] {
        assert!(schema::is_decimal(ok), "{ok}");
    }
    for bad in [
        "",
        "01",
        "1.",
        ".5",
        "+1",
        "1e3",
        "1,00",
        "NaN",
        "1.2.3",
        "-",
        "12345678901234567890123456789012345",
    ] {
        assert!(!schema::is_decimal(bad), "{bad}");
    }
}

#[test]
fn a_schema_asserts_custom_formats() {
    let s = Schema::from_value(&json!({
        "type": "object",
        "properties": {
            "iban": {"type": "string", "format": "iban"},
            "currency": {"type": "string", "format": "currency"},
            "amount": {"type": "string", "format": "decimal"},
            "on": {"type": "string", "format": "date"},
        }
    }))
    .unwrap();
    assert!(s.check(&json!({"iban": "DE89370400440532013000", "currency": "EUR", "amount": "1.00", "on": "2026-01-02"})).is_ok());
    for (doc, pointer) in [
        (json!({"iban": "DE89370400440532013001"}), "/iban"),
        (json!({"currency": "EURO"}), "/currency"),
        (json!({"amount": "1e3"}), "/amount"),
        (json!({"on": "2026-02-30"}), "/on"),
    ] {
        let v = s.check(&doc).unwrap_err();
        assert_eq!(v.pointer, pointer);
        // The rule is named, the value never.
        let value = doc
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert!(!v.keyword.contains(value), "{}", v.keyword);
    }
}

// === the demo spec ===

fn demo_spec() -> Spec {
    Spec::load(&repo("config/demo/bank-openapi.yaml")).unwrap().0
}

#[test]
fn the_demo_spec_loads_with_every_operation() {
    let spec = demo_spec();
    assert_eq!(spec.version, OasVersion::V31);
    let ops: Vec<String> = spec
        .operations
        .iter()
        .map(|o| format!("{} {}", o.method, o.path))
        .collect();
    for want in [
        "GET /v1/accounts",
        "GET /v1/accounts/{account_id}",
        "GET /v1/accounts/{account_id}/balances",
        "GET /v1/accounts/{account_id}/transactions",
        "POST /v1/payments",
        "GET /v1/payments/{payment_id}",
        "GET /v1/debug/fail",
        "GET /v1/debug/slow",
    ] {
        assert!(ops.contains(&want.to_string()), "{want} in {ops:?}");
    }
    let pay = spec
        .operations
        .iter()
        .find(|o| o.method == http::Method::POST)
        .unwrap();
    let (required, content) = pay.body.as_ref().unwrap();
    assert!(required);
    assert_eq!(content.media[0].0, "application/json");
    // Path-level parameters ($ref to components) are merged in.
    let get = spec
        .operations
        .iter()
        .find(|o| o.path == "/v1/accounts/{account_id}")
        .unwrap();
    assert_eq!(get.params[0].name, "account_id");
    assert!(spec
        .line_of("/paths/~1v1~1payments/post")
        .is_some_and(|l| l > 100));
}

#[test]
fn the_demo_payment_schema_accepts_valid_payments_and_names_the_faulty_member() {
    let spec = demo_spec();
    let s = Schema::compile(
        &spec,
        "/paths/~1v1~1payments/post/requestBody/content/application~1json/schema",
    )
    .unwrap();
    for line in lines("payments-valid.jsonl") {
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert!(s.check(&doc).is_ok(), "{line}: {:?}", s.check(&doc));
    }
    let bad: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("testdata/vectors/validation/payments-malformed.json")).unwrap(),
    )
    .unwrap();
    for case in bad.as_array().unwrap() {
        if case["type"] != "schema-violation" {
            continue;
        }
        let doc: Value = serde_json::from_str(case["body"].as_str().unwrap()).unwrap();
        let v = s.check(&doc).unwrap_err();
        assert_eq!(v.pointer, case["pointer"].as_str().unwrap(), "{}", case["name"]);
    }
}

#[test]
fn spec_problems_name_their_line_and_pointer() {
    let text = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a/{id}:\n    get:\n      parameters:\n        - name: id\n          in: path\n          schema: {type: string}\n        - $ref: 'other.yaml#/p'\n      responses: {}\n";
    let errs = Spec::parse(Path::new("bank.yaml"), text).unwrap_err();
    let rendered: Vec<String> = errs.iter().map(|e| e.render(Path::new("bank.yaml"))).collect();
    assert!(
        rendered
            .iter()
            .any(|r| r.starts_with("bank.yaml:10: #/paths/~1a~1{id}/get/parameters/1: external reference")),
        "{rendered:?}"
    );
    assert!(
        rendered.iter().any(|r| r.contains("must be `required: true`")),
        "{rendered:?}"
    );
    let errs = Spec::parse(Path::new("x.yaml"), "swagger: '2.0'\n").unwrap_err();
    assert!(errs[0].message.contains("3.0.x or 3.1.x"));
    let errs = Spec::parse(Path::new("x.yaml"), "openapi: [3.1.0\n").unwrap_err();
    assert!(errs[0].message.starts_with("not valid YAML"), "{errs:?}");
}

#[test]
fn openapi_30_nullable_and_draft4_semantics() {
    let text = r##"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/p": {"post": {
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/P"}}}},
        "responses": {"200": {"description": "ok"}}}}},
        "components": {"schemas": {"P": {"type": "object", "required": ["n"], "properties": {
            "n": {"type": "string", "nullable": true},
            "m": {"type": "number", "minimum": 0, "exclusiveMinimum": true}}}}}}"##;
    let (spec, _) = Spec::parse(Path::new("x.json"), text).unwrap();
    assert_eq!(spec.version, OasVersion::V30);
    let s = Schema::compile(
        &spec,
        "/paths/~1p/post/requestBody/content/application~1json/schema",
    )
    .unwrap();
    assert!(s.check(&json!({"n": null})).is_ok());
    assert!(s.check(&json!({"n": "x", "m": 1})).is_ok());
    assert_eq!(s.check(&json!({"n": "x", "m": 0})).unwrap_err().pointer, "/m");
    assert_eq!(s.check(&json!({"n": 3})).unwrap_err().pointer, "/n");
}

// === injection ===

#[test]
fn benign_look_alikes_pass() {
    for s in lines("benign.txt") {
        assert_eq!(detect(&s), None, "false positive: {s}");
    }
}

#[test]
fn each_injection_list_is_detected_as_its_class() {
    let mut misses = Vec::new();
    let (mut own, mut total) = (0, 0);
    for (file, class) in [
        ("injection/sqli.txt", InjectionClass::Sqli),
        ("injection/xss.txt", InjectionClass::Xss),
        ("injection/path-traversal.txt", InjectionClass::PathTraversal),
        ("injection/command.txt", InjectionClass::Command),
        ("injection/ldap.txt", InjectionClass::Ldap),
        ("injection/nosql.txt", InjectionClass::Nosql),
        ("injection/ssrf.txt", InjectionClass::Ssrf),
    ] {
        for s in lines(file) {
            let got = detect(&s);
            if got.is_none() {
                misses.push(format!("{file}: {s}"));
                continue;
            }
            // A payload may look like more than one class (`*))%00` is
            // LDAP and a NUL byte); refused is what counts, and most are
            // named by their own class.
            if got == Some(class) {
                own += 1;
            }
            total += 1;
        }
    }
    assert!(
        misses.is_empty(),
        "{} missed:\n{}",
        misses.len(),
        misses.join("\n")
    );
    assert!(
        own * 10 >= total * 9,
        "only {own} of {total} named by their own class"
    );
}

#[test]
fn ssrf_catches_every_notation_of_internal_addresses() {
    for s in [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.5:8080/admin",
        "https://192.168.1.1",
        "http://localhost:6379/",
        "http://api.localhost/",
        "gopher://example.com:25/",
        "file:///etc/passwd",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
    ] {
        assert_eq!(detect(s), Some(InjectionClass::Ssrf), "{s}");
    }
    for s in [
        "https://bank.example/callback",
        "https://203.0.113.7/notify",
        "http://8.8.8.8/",
    ] {
        assert_eq!(detect(s), None, "{s}");
    }
}

/// Keywords joined by `+` (a form-encoded space) or `,` rather than a
/// space still reach the detectors: the inert shortcut once looked for
/// keywords only between spaces (found by the property test below).
#[test]
fn sql_keywords_joined_without_spaces_are_refused() {
    for s in ["union+select", "1+union+select+null", "x,union,select,password"] {
        assert!(!super::injection::inert(s), "{s}");
        assert!(detect(s).is_some(), "{s}");
    }
}

/// Compatibility forms a normalising backend (NFKC, Windows best-fit)
/// reads as ASCII are checked as that backend reads them; names and texts
/// with such forms that fold to something harmless still pass.
#[test]
fn fullwidth_and_compatibility_forms_are_checked_folded() {
    for (s, class) in [
        ("ｕｎｉｏｎ ｓｅｌｅｃｔ ｐａｓｓｗｏｒｄ", InjectionClass::Sqli),
        ("１ ｏｒ １＝１", InjectionClass::Sqli),
        ("..／..／etc／passwd", InjectionClass::PathTraversal),
        (
            "..%ef%bc%8f..%ef%bc%8fetc%ef%bc%8fpasswd",
            InjectionClass::PathTraversal,
        ),
        ("..％２ｆ..％２ｆetc％２ｆpasswd", InjectionClass::PathTraversal),
        ("..＼..＼windows＼win.ini", InjectionClass::PathTraversal),
        ("﹤script﹥alert(1)﹤/script﹥", InjectionClass::Xss),
        ("ｈｔｔｐ://１２７.０.０.１/admin", InjectionClass::Ssrf),
    ] {
        assert_eq!(detect(s), Some(class), "{s}");
    }
    for s in [
        "Ｍüller ＧｍｂＨ",
        "株式会社（東京）",
        "José Ａｌｖａｒｅｚ ＆ Ｈｉｊｏｓ",
        "Zahlung Nr．２０２６",
        "ﬁnance ½ year",
    ] {
        assert_eq!(detect(s), None, "{s}");
    }
}

/// Every SQL keyword, in any case and beside any separator, takes a
/// string off the fast path; words that only share a length or a first
/// letter with one do not.
#[test]
fn every_sql_keyword_leaves_the_fast_path() {
    for w in super::injection::SQL_WORDS {
        for s in [
            format!("1 {w}"),
            format!("x+{}", w.to_uppercase()),
            format!("{}_1", w[..1].to_uppercase() + &w[1..]),
        ] {
            assert!(!super::injection::inert(&s), "{s}");
        }
    }
    for s in [
        "ACME Energy GmbH",
        "Invoice 2026-117",
        "orb",
        "an",
        "iban DE89",
        "Nullmann",
    ] {
        assert!(super::injection::inert(s), "{s}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 4000, ..Default::default() })]

    /// The fast path is sound: a string it lets through matches no
    /// detector, and its ASCII and Unicode forms agree.
    #[test]
    fn an_inert_string_matches_no_detector(
        s in "([a-zA-Z0-9 ._,@+=;'()<>/*#-]|or|OR|union|select|and|--|1=1|é){0,16}"
    ) {
        if s.is_ascii() {
            proptest::prop_assert_eq!(
                super::injection::inert_ascii(s.as_bytes()),
                super::injection::inert_unicode(&s),
                "{:?}", s
            );
        }
        if super::injection::inert(&s) {
            proptest::prop_assert_eq!(super::injection::detectors(&s), None, "{:?}", s);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

    /// No string, however strange, panics a detector or takes long.
    #[test]
    fn detectors_never_panic(s in ".{0,300}") {
        let t = std::time::Instant::now();
        let _ = detect(&s);
        proptest::prop_assert!(t.elapsed() < std::time::Duration::from_millis(200));
    }

    /// Strict JSON, then the demo payment schema, then injection: no input
    /// panics the validator.
    #[test]
    fn the_validator_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let _ = check_bytes(&bytes);
    }
}

/// What the fuzz target runs.
fn check_bytes(bytes: &[u8]) -> bool {
    super::fuzz_input(bytes)
}

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = repo("fuzz/corpus/validate");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = check_bytes(&std::fs::read(e.path()).unwrap());
        }
    }
    for s in [
        &b"{\"a\":\"\\u0000\"}"[..],
        b"\"' or 1=1 --\"",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]",
    ] {
        let _ = check_bytes(s);
    }
}

// === RFC 9421 / 9530 ===

fn headers_of(list: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for pair in list.as_array().unwrap() {
        h.append(
            HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes()).unwrap(),
            HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
        );
    }
    h
}

/// A JSON array of strings.
fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// The DER inside a PEM block.
fn pem_der(pem: &Value) -> Vec<u8> {
    let b64: String = pem
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

fn fixed_clock(secs: u64) -> crate::clock::SharedClock {
    crate::clock::FakeClock::at_unix(secs)
}

fn sigs(clock: crate::clock::SharedClock, keys: Vec<(String, VerifyKey)>) -> Signatures {
    Signatures {
        clients: vec![signature::Client {
            name: "rfc".into(),
            keys,
        }],
        max_age: std::time::Duration::from_secs(300),
        clock_skew: std::time::Duration::from_secs(10),
        nonces: Arc::new(crate::authn::dpop::MemoryReplayCache::new(64, clock.clone())),
        response_key: None,
        clock,
    }
}

fn route(components: &[&str]) -> RouteSignature {
    RouteSignature {
        required: true,
        clients: vec![0],
        components: components.iter().map(|s| s.to_string()).collect(),
        require_nonce: false,
        sign_response: false,
    }
}

#[tokio::test]
async fn rfc9421_b26_ed25519_base_signature_and_verification() {
    let v = vector("rfc9421-b26-ed25519.json");
    let r = &v["request"];
    let h = headers_of(&r["headers"]);
    let m = Message::request(
        "POST",
        "https",
        "example.com",
        "/foo",
        Some("param=Value&Pet=dog"),
        &h,
    );
    let components = strings(&v["components"]);
    let params = v["signature_input"]
        .as_str()
        .unwrap()
        .strip_prefix("sig-b26=")
        .unwrap();
    let base = signature::signature_base(&components, params, &m).unwrap();
    assert_eq!(base, v["signature_base"].as_str().unwrap());
    // Our own serialisation of the parameters is the RFC's.
    let ours = signature::signature_params(
        &components,
        &[
            ("created", signature::int_param(1618884473).unwrap()),
            ("keyid", signature::string_param("test-key-ed25519").unwrap()),
        ],
    )
    .unwrap();
    assert_eq!(ours, params);
    // Ed25519 is deterministic: our signature is the RFC's.
    let key =
        crate::authn::sign::SigningKey::from_private_jwk(v["private_jwk"].as_object().unwrap()).unwrap();
    let raw = key.sign_bytes(base.as_bytes()).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .unwrap();
    assert_eq!(
        format!(
            "sig-b26=:{}:",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ),
        v["signature"].as_str().unwrap()
    );
    // And the verifier accepts the published fields.
    let mut h = h.clone();
    h.insert(
        "signature-input",
        HeaderValue::from_str(v["signature_input"].as_str().unwrap()).unwrap(),
    );
    h.insert(
        "signature",
        HeaderValue::from_str(v["signature"].as_str().unwrap()).unwrap(),
    );
    let keys = signature::keys_from_jwks(&v["public_jwks"].to_string()).unwrap();
    let s = sigs(fixed_clock(1618884473 + 60), keys);
    let m = Message { headers: &h, ..m };
    let body = r["body"].as_str().unwrap().as_bytes();
    let ok = s
        .verify(&route(&["@method", "@authority"]), &m, body)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.keyid, "test-key-ed25519");
    // Requiring @target-uri, which the RFC example does not cover, refuses it.
    assert_eq!(
        s.verify(&route(&["@target-uri"]), &m, body).await.unwrap_err(),
        SigError::NotCovered("@target-uri".into())
    );
    // A day later it is expired.
    let late = sigs(
        fixed_clock(1618884473 + 86_400),
        signature::keys_from_jwks(&v["public_jwks"].to_string()).unwrap(),
    );
    assert_eq!(
        late.verify(&route(&[]), &m, body).await.unwrap_err(),
        SigError::Expired
    );
    // One header changed after signing: the signature fails.
    let mut tampered = h.clone();
    tampered.insert("content-length", HeaderValue::from_static("19"));
    let m2 = Message {
        headers: &tampered,
        ..m
    };
    assert_eq!(
        s.verify(&route(&[]), &m2, body).await.unwrap_err(),
        SigError::BadSignature
    );
}

#[test]
fn rfc9421_b24_ecdsa_p256_response_signature_verifies() {
    let v = vector("rfc9421-b24-ecdsa-p256.json");
    let der = pem_der(&v["public_key_spki_pem"]);
    let key = VerifyKey::EcP256(der[der.len() - 65..].to_vec());
    let h = headers_of(&v["response"]["headers"]);
    let m = Message::response(200, &h);
    let components = strings(&v["components"]);
    let params = v["signature_input"]
        .as_str()
        .unwrap()
        .strip_prefix("sig-b24=")
        .unwrap();
    let base = signature::signature_base(&components, params, &m).unwrap();
    let sig = v["signature"].as_str().unwrap();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig.trim_start_matches("sig-b24=:").trim_end_matches(':'))
        .unwrap();
    assert!(key.verify(base.as_bytes(), &sig));
    assert!(!key.verify(base.replace("200", "201").as_bytes(), &sig));
    // The digest the response carries is its body's (RFC 9530).
    let field = h.get("content-digest").unwrap().to_str().unwrap();
    signature::check_content_digest(field, v["response"]["body"].as_str().unwrap().as_bytes()).unwrap();
}

/// The RFC's `test-request` (Appendix B.2) of a vector.
fn request_of<'a>(r: &'a Value, headers: &'a HeaderMap) -> Message<'a> {
    Message::request(
        r["method"].as_str().unwrap(),
        r["scheme"].as_str().unwrap(),
        r["authority"].as_str().unwrap(),
        r["path"].as_str().unwrap(),
        r["query"].as_str(),
        headers,
    )
}

/// `s` with its last byte changed (to another printable character).
fn one_byte_off(s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    *b.last_mut().unwrap() ^= 1;
    String::from_utf8(b).unwrap()
}

/// `headers` with `signature-input` and `signature` set.
fn with_signature(headers: &HeaderMap, input: &str, signature: &str) -> HeaderMap {
    let mut h = headers.clone();
    h.insert("signature-input", HeaderValue::from_str(input).unwrap());
    h.insert("signature", HeaderValue::from_str(signature).unwrap());
    h
}

/// RFC 9421 B.2.1–B.2.3 (`rsa-pss-sha512`, `test-key-rsa-pss`). RSA-PSS is
/// randomized, so the RFC's own signatures are verified with the RFC's
/// public key; no fresh signature is compared with them.
#[tokio::test]
async fn rfc9421_b21_b23_rsa_pss_sha512_published_signatures_verify() {
    let v = vector("rfc9421-b21-b23-rsa-pss-sha512.json");
    let r = &v["request"];
    let h = headers_of(&r["headers"]);
    let m = request_of(r, &h);
    let body = r["body"].as_str().unwrap().as_bytes();
    let keys = signature::keys_from_jwks(&v["public_jwks"].to_string()).unwrap();
    let key = &keys[0].1;
    assert_eq!(key.alg(), "rsa-pss-sha512");
    // B.1.2 prints the key twice; the JWK is the PEM's: a 2048-bit
    // SubjectPublicKeyInfo (rsaEncryption) is a fixed 33-byte header, the
    // modulus, then `INTEGER e`.
    let VerifyKey::Rsa { n, e } = key else {
        panic!("not an RSA key: {key:?}")
    };
    let der = pem_der(&v["public_key_spki_pem"]);
    let header = base64::engine::general_purpose::STANDARD
        .decode("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")
        .unwrap();
    assert_eq!(der.len(), 294);
    assert_eq!(der[..33], header[..]);
    assert_eq!(der[33..289], n[..]);
    assert_eq!(der[289..], [&[2, 3][..], e].concat()[..]);

    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let label = c["label"].as_str().unwrap();
        let input = c["signature_input"].as_str().unwrap();
        let field = c["signature"].as_str().unwrap();
        let rfc_base = c["signature_base"].as_str().unwrap();
        let params = input.strip_prefix(&format!("{label}=")).unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(
                field
                    .strip_prefix(&format!("{label}=:"))
                    .and_then(|s| s.strip_suffix(':'))
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(sig.len(), 256, "{label}");
        // The published signature verifies over the published base, and
        // not once one byte of either is changed.
        assert!(key.verify(rfc_base.as_bytes(), &sig), "{label}");
        let mut flipped = sig.clone();
        flipped[128] ^= 1;
        assert!(!key.verify(rfc_base.as_bytes(), &flipped), "{label}");
        assert!(!key.verify(one_byte_off(rfc_base).as_bytes(), &sig), "{label}");

        let components = strings(&c["components"]);
        let s = sigs(fixed_clock(1618884473 + 60), keys.clone());
        let signed = with_signature(&h, input, field);
        let sm = Message {
            headers: &signed,
            ..m
        };
        if let Some(unsupported) = c["unsupported"].as_str() {
            // B.2.2 covers `"@query-param";name="Pet"`, which Rampart does
            // not implement: it builds no base and refuses the message...
            let refused = SigError::BadComponent(unsupported.into());
            assert_eq!(
                signature::signature_base(&components, params, &m).unwrap_err(),
                refused
            );
            assert_eq!(
                s.verify(&route(&[]), &sm, body).await.unwrap_err(),
                refused,
                "{label}"
            );
            // ...but the lines it builds before that one are the RFC's.
            let before: Vec<String> = components
                .iter()
                .take_while(|c| *c != unsupported)
                .cloned()
                .collect();
            assert_eq!(before.len(), 2);
            let ours = signature::signature_base(&before, "", &m).unwrap();
            let ours = ours.strip_suffix("\"@signature-params\": ").unwrap();
            assert!(rfc_base.starts_with(ours), "{label}: {ours}");
            continue;
        }
        // The base Rampart builds is the RFC's, byte for byte.
        let base = signature::signature_base(&components, params, &m).unwrap();
        assert_eq!(base, rfc_base, "{label}");
        // The verifier accepts the published fields (B.2.3's
        // `Content-Digest`, sha-512, matches the body too).
        let ok = s.verify(&route(&[]), &sm, body).await.unwrap().unwrap();
        assert_eq!(ok.keyid, "test-key-rsa-pss", "{label}");
        if input.contains(";nonce=") {
            assert_eq!(
                s.verify(&route(&[]), &sm, body).await.unwrap_err(),
                SigError::Replayed,
                "{label}"
            );
        }
        // One byte of the signature flipped.
        let flipped_field = format!(
            "{label}=:{}:",
            base64::engine::general_purpose::STANDARD.encode(&flipped)
        );
        let bad = with_signature(&h, input, &flipped_field);
        let bm = Message { headers: &bad, ..m };
        assert_eq!(
            s.verify(&route(&[]), &bm, body).await.unwrap_err(),
            SigError::BadSignature,
            "{label}"
        );
        // One byte of `@signature-params` (covered by every signature).
        let bumped = input.replace("created=1618884473", "created=1618884474");
        assert_ne!(bumped, input);
        let bad = with_signature(&h, &bumped, field);
        let bm = Message { headers: &bad, ..m };
        assert_eq!(
            s.verify(&route(&[]), &bm, body).await.unwrap_err(),
            SigError::BadSignature,
            "{label}"
        );
        // One byte of each covered component.
        for comp in &components {
            let mut th = signed.clone();
            let mut method = m.method.to_owned();
            let mut path = m.path.to_owned();
            let mut query = m.query.unwrap().to_owned();
            let mut authority = m.authority.to_owned();
            match comp.as_str() {
                "@method" => method = one_byte_off(&method),
                "@path" => path = one_byte_off(&path),
                "@query" => query = one_byte_off(&query),
                "@authority" => authority = one_byte_off(&authority),
                field => {
                    let value = one_byte_off(th.get(field).unwrap().to_str().unwrap());
                    th.insert(
                        HeaderName::from_bytes(field.as_bytes()).unwrap(),
                        HeaderValue::from_str(&value).unwrap(),
                    );
                }
            }
            let tm = Message::request(&method, m.scheme, &authority, &path, Some(&query), &th);
            assert_eq!(
                s.verify(&route(&[]), &tm, body).await.unwrap_err(),
                SigError::BadSignature,
                "{label}: {comp}"
            );
        }
    }
}

#[test]
fn rfc9530_content_digest_examples() {
    let v = vector("rfc9530-content-digest.json");
    for c in v["cases"].as_array().unwrap() {
        signature::check_content_digest(
            c["field"].as_str().unwrap(),
            c["body"].as_str().unwrap().as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{c}: {e}"));
    }
    for c in v["mismatches"].as_array().unwrap() {
        assert!(
            signature::check_content_digest(
                c["field"].as_str().unwrap(),
                c["body"].as_str().unwrap().as_bytes()
            )
            .is_err(),
            "{c}"
        );
    }
    assert_eq!(
        signature::content_digest(b"{\"hello\": \"world\"}"),
        v["cases"][0]["field"].as_str().unwrap()
    );
}

#[tokio::test]
async fn sign_then_verify_with_nonce_replay_and_body_change() {
    let key = crate::authn::sign::SigningKey::generate(jsonwebtoken::Algorithm::EdDSA).unwrap();
    let jwks = key.jwks().to_string();
    let clock = fixed_clock(1_800_000_000);
    let s = sigs(clock, signature::keys_from_jwks(&jwks).unwrap());
    let body = br#"{"amount":"1.00"}"#;
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("DPoP abc"));
    h.insert(
        "content-digest",
        HeaderValue::from_str(&signature::content_digest(body)).unwrap(),
    );
    let m = Message::request("POST", "https", "api.bank.test", "/v1/payments", None, &h);
    let components = super::config::default_components();
    let (input, sig) = signature::sign_message(
        &key,
        key.kid(),
        &components,
        1_800_000_000,
        Some("n-1"),
        &m,
        "sig1",
    )
    .unwrap();
    let mut signed = h.clone();
    signed.insert("signature-input", HeaderValue::from_str(&input).unwrap());
    signed.insert("signature", HeaderValue::from_str(&sig).unwrap());
    let policy = RouteSignature {
        require_nonce: true,
        ..route(&components.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let m = Message {
        headers: &signed,
        ..m
    };
    assert!(s.verify(&policy, &m, body).await.unwrap().is_some());
    assert_eq!(s.verify(&policy, &m, body).await.unwrap_err(), SigError::Replayed);
    // The body changed after signing: the digest no longer matches.
    let (input, sig) = signature::sign_message(
        &key,
        key.kid(),
        &components,
        1_800_000_000,
        Some("n-2"),
        &Message { headers: &h, ..m },
        "sig1",
    )
    .unwrap();
    let mut signed2 = h.clone();
    signed2.insert("signature-input", HeaderValue::from_str(&input).unwrap());
    signed2.insert("signature", HeaderValue::from_str(&sig).unwrap());
    let m = Message {
        headers: &signed2,
        ..m
    };
    assert_eq!(
        s.verify(&policy, &m, br#"{"amount":"9999.00"}"#)
            .await
            .unwrap_err(),
        SigError::Digest("does not match the body")
    );
    // Unsigned, on a route that requires a signature.
    let m = Message { headers: &h, ..m };
    assert_eq!(s.verify(&policy, &m, body).await.unwrap_err(), SigError::Missing);
}
