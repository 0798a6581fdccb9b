//! `rampart demo` end to end, as a newcomer runs it: the real binary, its
//! generated CA, demo.json, the sample bank behind HTTPS.

use std::process::Stdio;
use std::time::Duration;

use rampart_testkit::{admin_request, Alpn, Client};

#[tokio::test]
async fn demo_serves_the_bank_through_https_and_writes_demo_json() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["demo", "--port", "0", "--admin-port", "0", "--dir"])
        .arg(&demo_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let json_path = demo_dir.join("demo.json");
    let info: serde_json::Value = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(text) = std::fs::read_to_string(&json_path) {
                if let Ok(v) = serde_json::from_str(&text) {
                    return v;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("demo.json was not written");
    for key in [
        "gateway_url",
        "admin_url",
        "upstream_url",
        "ca_cert",
        "admin_token",
    ] {
        assert!(
            info[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} missing: {info}"
        );
    }
    let ca = std::fs::read_to_string(info["ca_cert"].as_str().unwrap()).unwrap();
    let port: u16 = info["gateway_url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let c = Client::new(&ca, ([127, 0, 0, 1], port).into(), Alpn::Http1);

    let r = c.get("/v1/accounts").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let accounts = r.json();
    assert!(accounts.to_string().contains("acc-1001"), "{accounts}");
    assert!(r.header("server").is_none() && r.header("x-powered-by").is_none());
    assert!(r.header("strict-transport-security").is_some());

    let r = c.get("/internal/admin").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let everything = format!("{:?}{}", r.headers, r.text()).to_lowercase();
    for word in ["rampart/", "hyper", "axum", "demo-core-banking", "server:"] {
        assert!(!everything.contains(word), "{word} in {everything}");
    }

    // The payment limit: five pass the limiter, the sixth is 429 with its
    // headers (the demo's printed loop does the same).
    for i in 1..=5 {
        let key = format!("demo-limit-{i}");
        let r = c
            .send(
                http::Method::POST,
                "/v1/payments",
                &[("content-type", "application/json"), ("idempotency-key", &key)],
                "{}".to_string(),
            )
            .await;
        assert_ne!(r.status, 429, "payment {i}: {}", r.text());
    }
    let r = c
        .send(
            http::Method::POST,
            "/v1/payments",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "demo-limit-6"),
            ],
            "{}".to_string(),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(r.header("ratelimit").unwrap().starts_with("\"payments\";r=0;t="));
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"per-client\";q=120;w=60, \"payments\";q=5;w=60")
    );
    let r = c
        .send(
            http::Method::GET,
            "/v1/accounts",
            &[("x-partner-id", "fintech-42")],
            String::new(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("ratelimit-policy")
        .unwrap()
        .contains("\"partner-daily\";q=1000;w=86400"));
    let examples = info["examples"].to_string();
    assert!(examples.contains("the sixth gets 429"), "{examples}");

    let r = c.get("/v1/debug/fail").await;
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("PaymentService"), "{}", r.text());

    let m = admin_request(
        http::Method::GET,
        &format!("{}/metrics", info["admin_url"].as_str().unwrap()),
        None,
    )
    .await;
    assert!(m.text().contains("rampart_requests_total"), "{}", m.text());

    let pid = child.id().unwrap();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stdout.take().unwrap(), &mut out)
        .await
        .unwrap();
    assert!(out.contains("curl --cacert"), "{out}");
}
