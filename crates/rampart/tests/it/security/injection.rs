//! Injection (OWASP API8/API10) through the real gateway: every list of the
//! payload corpus (SQLi, XSS, traversal, command, LDAP, NoSQL, SSRF URLs)
//! in a JSON body field, a query parameter and an object key, on a `block`
//! route (400 `injection-detected` with the pointer, nothing reaches the
//! upstream) and on a `flag` route (passed, counted for the threat
//! engine); benign look-alikes pass both.

use http::Method;
use rampart_testkit::{Harness, TestResponse};
use serde_json::json;

use crate::validate::{code, repo};

const ROUTES: &str = r#"
[[routes]]
id = "notes-block"
path = "/block/notes"
methods = ["POST", "GET"]
upstream = "backend"
authn = "none"
[routes.validate]
injection = "block"
scan_headers = ["x-customer-ref"]

[[routes]]
id = "notes-flag"
path = "/flag/notes"
methods = ["POST"]
upstream = "backend"
authn = "none"
[routes.validate]
injection = "flag"
"#;

fn list(name: &str) -> Vec<String> {
    std::fs::read_to_string(repo(&format!("testdata/vectors/validation/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("# "))
        .map(str::to_owned)
        .collect()
}

const LISTS: &[&str] = &[
    "injection/sqli.txt",
    "injection/xss.txt",
    "injection/path-traversal.txt",
    "injection/command.txt",
    "injection/ldap.txt",
    "injection/nosql.txt",
    "injection/ssrf.txt",
    "injection/evasion.txt",
];

async fn note(h: &Harness, path: &str, text: &str) -> TestResponse {
    let body = json!({"customer": "Erika Mustermann", "note": {"text": text}}).to_string();
    h.client()
        .send(Method::POST, path, &[("content-type", "application/json")], body)
        .await
}

#[tokio::test]
async fn every_injection_list_is_refused_on_a_block_route() {
    let h = Harness::start(ROUTES).await;
    let mut n = 0;
    for file in LISTS {
        for payload in list(file) {
            let r = note(&h, "/block/notes", &payload).await;
            assert_eq!(r.status, 400, "{file}: {payload}: {}", r.text());
            assert_eq!(code(&r), "injection-detected", "{file}: {payload}");
            assert_eq!(r.json()["pointer"], "/note/text", "{file}: {payload}");
            // Only fixed text comes back: the title and the pointer.
            let shown = r.json();
            assert_eq!(
                shown["title"],
                "The request contains a value that is not accepted"
            );
            assert_eq!(shown.as_object().unwrap().len(), 5, "{shown}");
            n += 1;
        }
    }
    assert!(n > 500, "only {n} payloads");
    assert_eq!(h.upstream.count(), 0, "an injection reached the upstream");
    // Sanity: the route works.
    assert_eq!(note(&h, "/block/notes", "Invoice 2025-117").await.status, 200);
}

#[tokio::test]
async fn query_parameters_keys_and_scanned_headers_are_checked_too() {
    let h = Harness::start(ROUTES).await;
    let c = h.client();
    for (path, pointer) in [
        ("/block/notes?q=1%27%20OR%20%271%27%3D%271", "/query/q"),
        ("/block/notes?file=..%2F..%2Fetc%2Fpasswd", "/query/file"),
        ("/block/notes?user%5B%24ne%5D=1", "/query/user[$ne]"),
        (
            "/block/notes?callback=http%3A%2F%2F169.254.169.254%2Flatest",
            "/query/callback",
        ),
    ] {
        let r = c.get(path).await;
        assert_eq!(
            (r.status.as_u16(), code(&r).as_str()),
            (400, "injection-detected"),
            "{path}"
        );
        assert_eq!(r.json()["pointer"], pointer, "{path}");
    }
    // An operator as an object key (`{"password": {"$ne": null}}`).
    let r = c
        .send(
            Method::POST,
            "/block/notes",
            &[("content-type", "application/json")],
            r#"{"user":"admin","password":{"$ne":null}}"#,
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (400, "injection-detected")
    );
    assert_eq!(r.json()["pointer"], "/password/$ne");
    let r = c
        .send(
            Method::GET,
            "/block/notes",
            &[("x-customer-ref", "<script>alert(1)</script>")],
            "",
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (400, "injection-detected")
    );
    assert_eq!(r.json()["pointer"], "/header/x-customer-ref");
    assert_eq!(h.upstream.count(), 0);
    // User-Agent is not scanned unless listed: browsers send parentheses
    // and semicolons.
    let r = c
        .send(
            Method::GET,
            "/block/notes?q=O%27Brien",
            &[("user-agent", "Mozilla/5.0 (X11; Linux x86_64) rv:1=1")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_flag_route_passes_injections_and_counts_them() {
    let h = Harness::start(ROUTES).await;
    let payloads = [
        "' OR '1'='1",
        "<img src=x onerror=alert(1)>",
        "../../etc/passwd",
        "http://127.0.0.1:6379/",
    ];
    for p in payloads {
        let r = note(&h, "/flag/notes", p).await;
        assert_eq!(r.status, 200, "{p}: {}", r.text());
    }
    assert_eq!(h.upstream.count(), payloads.len());
    let m = rampart_testkit::admin_request(
        Method::GET,
        &h.admin_url("/metrics"),
        Some(rampart_testkit::ADMIN_TOKEN),
    )
    .await;
    for class in ["sqli", "xss", "path-traversal", "ssrf"] {
        let line =
            format!("rampart_validation_findings_total{{kind=\"injection:{class}\",action=\"flag\"}} 1");
        assert!(m.text().contains(&line), "{line}\n{}", m.text());
    }
}

#[tokio::test]
async fn benign_look_alikes_pass_block_routes() {
    let h = Harness::start(ROUTES).await;
    let benign = list("benign.txt");
    for b in &benign {
        let r = note(&h, "/block/notes", b).await;
        assert_eq!(r.status, 200, "false positive: {b}: {}", r.text());
    }
    assert_eq!(h.upstream.count(), benign.len());
    for name in ["O'Brien", "Smith & Sons Ltd"] {
        assert!(benign.iter().any(|b| b == name), "{name} is in the list");
    }
}
