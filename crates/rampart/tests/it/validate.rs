//! Validation through the real gateway: the demo bank's OpenAPI document
//! as the inventory, the payload corpus (`testdata/vectors/validation/`)
//! against the payment route, parameters, structure limits, header values,
//! and response guarding. Every refusal is checked at the client (status,
//! problem type, pointer, never the value) and at the recording upstream
//! (nothing arrived); valid requests pass with exactly their bytes.

use std::path::{Path, PathBuf};

use http::Method;
use rampart_testkit::{Harness, RecordingUpstream, TestResponse};
use serde_json::{json, Value};

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

pub fn spec_text() -> String {
    std::fs::read_to_string(repo("config/demo/bank-openapi.yaml")).unwrap()
}

/// The stable code at the end of a problem's `type`.
pub use crate::authz::problem as code;

const API_ROUTES: &str = r#"
[[apis]]
name = "bank"
spec = "bank.yaml"
upstream = "backend"

[[routes]]
id = "payment-create"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = "none"
[routes.validate]
# Small structure limits, so the corpus can cross each one (the valid
# payments stay within them: 4 keys, no arrays, at most 11 values).
json = { max_depth = 8, max_string = 256, max_keys = 8, max_array = 4, max_tokens = 32 }

[[routes]]
id = "transactions"
path = "/v1/accounts/{id}/transactions"
methods = ["GET"]
upstream = "backend"
authn = "none"

[[routes]]
id = "account"
path = "/v1/accounts/{account_id}"
methods = ["GET"]
upstream = "backend"
authn = "none"
[routes.validate.response]
check = "block"
strip_undeclared = true
mask = { "/iban" = "iban" }

[[routes]]
id = "payment-get"
path = "/v1/payments/{payment_id}"
methods = ["GET"]
upstream = "backend"
authn = "none"
[routes.validate.response]
check = "flag"
mask_detected = true
"#;

pub async fn bank_with(upstream: RecordingUpstream, routes: &str) -> Harness {
    let policy = format!("{}\n{routes}", rampart_testkit::base_policy(&upstream.url()));
    Harness::start_with_files(upstream, &policy, &[("bank.yaml", &spec_text())]).await
}

async fn post(h: &Harness, ct: &str, body: impl AsRef<[u8]>) -> TestResponse {
    h.client()
        .send(
            Method::POST,
            "/v1/payments",
            &[("content-type", ct)],
            body.as_ref().to_vec(),
        )
        .await
}

#[tokio::test]
async fn valid_payments_pass_with_their_exact_bytes() {
    let h = bank_with(RecordingUpstream::start().await, API_ROUTES).await;
    let valid = std::fs::read_to_string(repo("testdata/vectors/validation/payments-valid.jsonl")).unwrap();
    for (i, line) in valid.lines().enumerate() {
        let r = post(&h, "application/json", line).await;
        assert_eq!(r.status, 200, "{line}: {}", r.text());
        assert_eq!(
            h.upstream.requests()[i].body,
            line.as_bytes(),
            "forwarded bytes differ"
        );
    }
    // `+json` and parameters on the media type are JSON too.
    let r = post(
        &h,
        "application/json; charset=utf-8",
        valid.lines().next().unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn each_malformed_class_is_refused_with_its_status_type_and_pointer() {
    let h = bank_with(RecordingUpstream::start().await, API_ROUTES).await;
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("testdata/vectors/validation/payments-malformed.json")).unwrap(),
    )
    .unwrap();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut body = case["body"].as_str().unwrap().to_owned();
        if let Some(n) = case["long"].as_u64() {
            body = body.replace("LONG", &"x".repeat(n as usize));
        }
        // `"encoding": "latin1"`: each character sent as one byte, as a
        // legacy client would (so `ü` is 0xFC: not UTF-8).
        let bytes: Vec<u8> = match case["encoding"].as_str() {
            None => body.into_bytes(),
            Some("latin1") => body
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap())
                .collect(),
            Some(other) => panic!("{name}: unknown encoding {other}"),
        };
        let r = post(&h, case["content_type"].as_str().unwrap(), bytes).await;
        assert_eq!(
            r.status,
            case["status"].as_u64().unwrap() as u16,
            "{name}: {}",
            r.text()
        );
        assert_eq!(code(&r), case["type"].as_str().unwrap(), "{name}");
        if let Some(p) = case["pointer"].as_str() {
            assert_eq!(r.json()["pointer"], p, "{name}: {}", r.text());
        }
        // Where, never what: no refusal echoes the input (the request id
        // in `instance` is random, so it is left out of the comparison).
        let mut shown = r.json();
        shown.as_object_mut().unwrap().remove("instance");
        for v in [
            "acc-1003",
            "DE89370400440532013001",
            "ABC",
            "1e3",
            "debtor=",
            "Beispiel",
            "GmbH",
        ] {
            assert!(!shown.to_string().contains(v), "{name}: echoed {v}: {shown}");
        }
        assert_eq!(h.upstream.count(), 0, "{name} reached the upstream");
    }
    // Sanity: the route still works.
    let ok = post(&h, "application/json", r#"{"debtor_account":"acc-1001","instructed_amount":{"amount":"1.00","currency":"EUR"},"creditor":{"name":"A","iban":"DE89370400440532013000"}}"#).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test]
async fn an_oversized_body_is_413_and_a_missing_body_422() {
    let routes = API_ROUTES.replace(
        "id = \"payment-create\"\npath = \"/v1/payments\"\nmethods = [\"POST\"]\nupstream = \"backend\"\nauthn = \"none\"",
        "id = \"payment-create\"\npath = \"/v1/payments\"\nmethods = [\"POST\"]\nupstream = \"backend\"\nauthn = \"none\"\nmax_body = 512",
    );
    assert!(routes.contains("max_body = 512"));
    let h = bank_with(RecordingUpstream::start().await, &routes).await;
    let big = format!(
        r#"{{"debtor_account":"acc-1001","remittance_information":"{}"}}"#,
        "x".repeat(600)
    );
    let r = post(&h, "application/json", &big).await;
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (413, "body-too-large"),
        "{}",
        r.text()
    );
    let r = post(&h, "application/json", "").await;
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (422, "schema-violation"),
        "{}",
        r.text()
    );
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn parameters_are_validated_against_their_schemas() {
    let h = bank_with(RecordingUpstream::start().await, API_ROUTES).await;
    let c = h.client();
    for (path, pointer) in [
        ("/v1/accounts/acc-1001/transactions?page=0", "/query/page"),
        ("/v1/accounts/acc-1001/transactions?page=abc", "/query/page"),
        (
            "/v1/accounts/acc-1001/transactions?page_size=101",
            "/query/page_size",
        ),
        ("/v1/accounts/acc-1001/transactions?page=1&page=2", "/query/page"),
        ("/v1/accounts/acc-1001/transactions?page=%2B1", "/query/page"),
        ("/v1/accounts/1001/transactions", "/path/account_id"),
        ("/v1/accounts/acc-10011/transactions", "/path/account_id"),
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(code(&r), "invalid-parameter", "{path}");
        assert_eq!(r.json()["pointer"], pointer, "{path}");
        assert_eq!(h.upstream.count(), 0, "{path} reached the upstream");
    }
    // Unknown parameters are ignored (the spec says so); valid ones pass.
    for path in [
        "/v1/accounts/acc-1001/transactions",
        "/v1/accounts/acc-1001/transactions?page=2&page_size=5",
        "/v1/accounts/acc-1001/transactions?utm=x",
    ] {
        assert_eq!(c.get(path).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn header_values_that_are_not_utf8_are_refused() {
    let h = bank_with(RecordingUpstream::start().await, API_ROUTES).await;
    let raw = b"GET /v1/accounts/acc-1001/transactions HTTP/1.1\r\nHost: localhost\r\nX-Note: caf\xe9\r\nConnection: close\r\n\r\n";
    let answer = rampart_testkit::raw_tls(
        &h.pki.ca_cert_pem,
        h.addr(),
        raw,
        std::time::Duration::from_secs(2),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid-header"), "{answer}");
    assert!(answer.contains("/header/x-note"), "{answer}");
    assert_eq!(h.upstream.count(), 0);
    let ok = h
        .client()
        .send(
            Method::GET,
            "/v1/accounts/acc-1001/transactions",
            &[("x-note", "café")],
            "",
        )
        .await;
    assert_eq!(ok.status, 200, "UTF-8 is fine: {}", ok.text());
}

#[tokio::test]
async fn the_spec_is_the_inventory_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bank.yaml"), spec_text()).unwrap();
    let pki = rampart_testkit::TestPki::generate(&["localhost"]).unwrap();
    pki.write(dir.path()).unwrap();
    std::fs::write(dir.path().join("admin.token"), rampart_testkit::ADMIN_TOKEN).unwrap();
    let policy = format!(
        "{}\n{}",
        rampart_testkit::base_policy("http://127.0.0.1:9"),
        r#"
[[apis]]
name = "bank"
spec = "bank.yaml"
upstream = "backend"

[[routes]]
id = "accounts"
path = "/v1/accounts"
methods = ["GET", "DELETE"]
upstream = "backend"
authn = "none"

[[routes]]
id = "admin"
path = "/internal/admin"
methods = ["GET"]
upstream = "backend"
authn = "none"
"#
    );
    let file = dir.path().join("rampart.toml");
    std::fs::write(&file, policy).unwrap();
    // A second document with a problem: named by file, line and pointer.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get:\n      parameters:\n        - $ref: 'other.yaml#/p'\n      responses: {}\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{text}\n[[apis]]\nname = \"broken\"\nspec = \"broken.yaml\"\n"),
    )
    .unwrap();
    let errors = rampart::runtime::check(&file).unwrap_err().to_string();
    assert!(
        errors.contains("routes[0].methods[1]: `DELETE /v1/accounts` is not declared by api `bank`"),
        "{errors}"
    );
    assert!(
        errors.contains("error: apis[1].spec: ")
            && errors.contains("broken.yaml:7: #/paths/~1x/get/parameters/0: external reference"),
        "{errors}"
    );
    assert!(
        errors.contains("routes[1].methods[0]: `GET /internal/admin` is not declared"),
        "{errors}"
    );
}

#[tokio::test]
async fn generated_routes_cover_every_operation_and_nothing_else() {
    let upstream = RecordingUpstream::start().await;
    let h = bank_with(
        upstream,
        r#"
[[apis]]
name = "bank"
spec = "bank.yaml"
upstream = "backend"
routes = "generate"
generate = { authn = "none" }
"#,
    )
    .await;
    let c = h.client();
    assert_eq!(c.get("/v1/accounts").await.status, 200);
    assert_eq!(
        c.get("/v1/payments/f076761b-5787-41ee-9ba6-134432fc7584")
            .await
            .status,
        200
    );
    // Validated as the spec says.
    let r = c.get("/v1/payments/not-a-uuid").await;
    assert_eq!((r.status.as_u16(), code(&r).as_str()), (400, "invalid-parameter"));
    // Undeclared: never reaches the bank.
    assert_eq!(c.get("/v1/admin").await.status, 404);
    assert_eq!(c.send(Method::DELETE, "/v1/accounts", &[], "").await.status, 405);
    assert_eq!(h.upstream.count(), 2);
}

#[tokio::test]
async fn responses_are_stripped_masked_and_checked() {
    let upstream = RecordingUpstream::start().await;
    let account = json!({
        "account_id": "acc-1001", "iban": "DE89370400440532013000", "currency": "EUR",
        "name": "Current account", "product": "Girokonto", "customer_id": "cust-001",
        "owner_name": "Erika Mustermann", "status": "enabled",
        "internal_risk_score": 17, "core_banking_ref": "CB-7731"
    });
    upstream.answer("/v1/accounts/acc-1001", 200, &account.to_string());
    // Does not conform: a wrong status value.
    upstream.answer(
        "/v1/accounts/acc-1002",
        200,
        &json!({"account_id": "acc-1002", "status": "frozen"}).to_string(),
    );
    // An error body the spec does not declare for this status.
    upstream.answer(
        "/v1/accounts/acc-1003",
        409,
        &json!({"sql": "SELECT * FROM accounts", "trace": "at db.query"}).to_string(),
    );
    let payment = json!({
        "payment_id": "f076761b-5787-41ee-9ba6-134432fc7584", "status": "ACSC",
        "created_at": "2025-06-30T09:15:27Z", "debtor_account": "acc-1001",
        "debtor_iban": "DE18200411330012345678",
        "instructed_amount": {"amount": "125.00", "currency": "EUR"},
        "creditor": {"name": "Max Beispiel", "iban": "DE89370400440532013000"},
        "remittance_information": "card 4111 1111 1111 1111"
    });
    upstream.answer(
        "/v1/payments/f076761b-5787-41ee-9ba6-134432fc7584",
        200,
        &payment.to_string(),
    );
    let h = bank_with(upstream, API_ROUTES).await;
    let c = h.client();
    let r = c.get("/v1/accounts/acc-1001").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["iban"], "DE89 **** **** **** 3000");
    assert!(
        body.get("internal_risk_score").is_none() && body.get("core_banking_ref").is_none(),
        "{body}"
    );
    assert_eq!(body["owner_name"], "Erika Mustermann");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    // `check = "block"`: a non-conforming answer is not passed on.
    let r = c.get("/v1/accounts/acc-1002").await;
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (502, "upstream-unavailable")
    );
    assert!(!r.text().contains("frozen"));
    // An undeclared error body is replaced, its status kept.
    let r = c.get("/v1/accounts/acc-1003").await;
    assert_eq!((r.status.as_u16(), code(&r).as_str()), (409, "upstream-error"));
    assert!(!r.text().contains("SELECT"), "{}", r.text());
    // Card numbers and IBANs found anywhere are masked (`mask_detected`).
    let r = c.get("/v1/payments/f076761b-5787-41ee-9ba6-134432fc7584").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["creditor"]["iban"], "DE89 **** **** **** 3000");
    assert_eq!(body["debtor_iban"], "DE18 **** **** **** 5678");
    assert_eq!(
        body["remittance_information"], "card 4111 1111 1111 1111",
        "only whole values are detected"
    );
    assert_eq!(body["payment_id"], "f076761b-5787-41ee-9ba6-134432fc7584");
}

#[tokio::test]
async fn flagged_responses_pass_and_are_counted() {
    let upstream = RecordingUpstream::start().await;
    upstream.answer(
        "/v1/payments/f076761b-5787-41ee-9ba6-134432fc7584",
        200,
        &json!({"payment_id": "f076761b-5787-41ee-9ba6-134432fc7584", "status": "BOGUS"}).to_string(),
    );
    let h = bank_with(upstream, API_ROUTES).await;
    let r = h
        .client()
        .get("/v1/payments/f076761b-5787-41ee-9ba6-134432fc7584")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = rampart_testkit::admin_request(
        Method::GET,
        &h.admin_url("/metrics"),
        Some(rampart_testkit::ADMIN_TOKEN),
    )
    .await;
    assert!(
        m.text()
            .contains("rampart_validation_findings_total{kind=\"response:schema\",action=\"flag\"} 1"),
        "{}",
        m.text()
    );
}

/// `rampart demo` as a newcomer runs it: a malformed and an injected
/// payment are refused with precise problem types, a signed one is
/// verified (and its answer signed by the gateway), the same signature
/// over a changed body is refused.
#[tokio::test]
async fn the_demo_refuses_malformed_and_injected_payments_and_verifies_a_signed_one() {
    use rampart::validate::signature::{self, Message};
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["demo", "--port", "0", "--admin-port", "0", "--dir"])
        .arg(&demo_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let info: Value = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            if let Some(v) = std::fs::read_to_string(demo_dir.join("demo.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
            {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("demo.json");
    let examples = info["examples"].to_string();
    for want in [
        "422 schema-violation",
        "400 injection-detected",
        "RFC 9421",
        "invalid-digest",
    ] {
        assert!(examples.contains(want), "{want} not in the printed lines");
    }
    let gateway = info["gateway_url"].as_str().unwrap().to_owned();
    let port: u16 = gateway.rsplit(':').next().unwrap().parse().unwrap();
    let ca = std::fs::read_to_string(info["ca_cert"].as_str().unwrap()).unwrap();
    let c = rampart_testkit::Client::new(&ca, ([127, 0, 0, 1], port).into(), rampart_testkit::Alpn::Http1);
    let bound = &info["tokens"]["dpop_bound"];
    let jwk: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(bound["key_file"].as_str().unwrap()).unwrap()).unwrap();
    let proof_key = rampart::authn::sign::SigningKey::from_private_jwk(&jwk).unwrap();
    let token = bound["token"].as_str().unwrap();
    let auth = format!("DPoP {token}");
    let url = format!("{gateway}/v1/payments");
    let send = |body: String, extra: Vec<(String, String)>, key: &'static str| {
        let c = c.clone();
        let proof = proof_key
            .dpop_proof("POST", &url, Some(token), rampart::authn::sign::unix_now(), None)
            .unwrap();
        let auth = auth.clone();
        async move {
            let mut h: Vec<(&str, &str)> = vec![
                ("content-type", "application/json"),
                ("idempotency-key", key),
                ("authorization", &auth),
                ("dpop", &proof),
            ];
            h.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            c.send(Method::POST, "/v1/payments", &h, body).await
        }
    };
    let payment = json!({"debtor_account": "acc-1001", "instructed_amount": {"amount": "125.00", "currency": "EUR"},
        "creditor": {"name": "ACME Energy GmbH", "iban": "DE89370400440532013000"}, "remittance_information": "Invoice 2026-117"});
    let mut malformed = payment.clone();
    // Three decimals: within the customer's consent (authorization passes),
    // but not an amount the API accepts.
    malformed["instructed_amount"]["amount"] = json!("125.005");
    let r = send(malformed.to_string(), vec![], "t-malformed").await;
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (422, "schema-violation"),
        "{}",
        r.text()
    );
    assert_eq!(r.json()["pointer"], "/instructed_amount/amount");
    let mut injected = payment.clone();
    injected["remittance_information"] = json!("x' OR '1'='1");
    let r = send(injected.to_string(), vec![], "t-injected").await;
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (400, "injection-detected"),
        "{}",
        r.text()
    );
    assert_eq!(r.json()["pointer"], "/remittance_information");
    // Signed as `rampart sign` does, with the partner key demo.json names.
    let key_text = std::fs::read_to_string(info["signing"]["key_file"].as_str().unwrap()).unwrap();
    let key = rampart::authn::sign::SigningKey::load(&key_text, None).unwrap();
    let body = payment.to_string();
    let mut h = http::HeaderMap::new();
    h.insert(
        "content-digest",
        signature::content_digest(body.as_bytes()).parse().unwrap(),
    );
    h.insert("authorization", auth.parse().unwrap());
    let authority = format!("localhost:{port}");
    let m = Message::request("POST", "https", &authority, "/v1/payments", None, &h);
    let components = rampart::validate::config::default_components();
    let (input, sig) = signature::sign_message(
        &key,
        key.kid(),
        &components,
        rampart::authn::sign::unix_now(),
        Some("demo-1"),
        &m,
        "sig1",
    )
    .unwrap();
    let headers = vec![
        (
            "content-digest".to_owned(),
            h["content-digest"].to_str().unwrap().to_owned(),
        ),
        ("signature-input".to_owned(), input),
        ("signature".to_owned(), sig),
    ];
    let r = send(body.clone(), headers.clone(), "t-signed").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.header("signature-input")
            .is_some_and(|v| v.starts_with("rampart=")),
        "the answer is signed"
    );
    let r = send(body.replace("125.00", "225.00"), headers, "t-tampered").await;
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (400, "invalid-digest"),
        "{}",
        r.text()
    );
}

/// `rampart sign` and `rampart verify`, the real binary: a key from
/// `rampart keys gen`, a signed request verified, the same headers over a
/// changed body refused (exit 1), bad arguments exit 2.
#[test]
fn the_sign_and_verify_commands_round_trip() {
    use std::process::Command;
    let bin = env!("CARGO_BIN_EXE_rampart");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = Command::new(bin)
        .args(["keys", "gen", "--alg", "EdDSA", "--out-dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = "https://api.bank.test/v1/payments?x=1";
    let body = r#"{"amount":"1.00"}"#;
    let headers = dir.path().join("sig.headers");
    let out = Command::new(bin)
        .args(["sign", "--key"])
        .arg(keys.join("private.jwk"))
        .args([
            "--method",
            "POST",
            "--url",
            url,
            "-H",
            "authorization: DPoP abc",
            "-d",
            body,
            "--out",
        ])
        .arg(&headers)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = std::fs::read_to_string(&headers).unwrap();
    for name in ["Content-Digest: sha-256=:", "Signature-Input: sig1=(\"@method\" \"@target-uri\" \"@authority\" \"content-digest\" \"authorization\")", "Signature: sig1=:"] {
        assert!(lines.contains(name), "{name} in {lines}");
    }
    let verify = |body: &str| {
        let mut c = Command::new(bin);
        c.args(["verify", "--jwks"]).arg(keys.join("jwks.json"));
        c.args([
            "--method",
            "POST",
            "--url",
            url,
            "-H",
            "authorization: DPoP abc",
            "-d",
            body,
        ]);
        c.args([
            "--components",
            "@method @target-uri @authority content-digest authorization",
        ]);
        for l in lines.lines() {
            c.args(["-H", l]);
        }
        c.output().unwrap()
    };
    let ok = verify(body);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("signature valid"));
    let bad = verify(r#"{"amount":"9.00"}"#);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("content digest"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let usage = Command::new(bin)
        .args(["sign", "--key", "x", "--url", "not a url"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}
