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

    let token = |name: &str| info["tokens"][name]["token"].as_str().unwrap().to_string();
    let get = |path: &'static str, name: Option<&str>| {
        let c = c.clone();
        let auth = name.map(|n| format!("Bearer {}", token(n)));
        async move {
            let mut headers = vec![];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            c.send(http::Method::GET, path, &headers, "").await
        }
    };
    // Customer A sees their accounts only; B does not see A's.
    let r = get("/v1/accounts", Some("customer_a")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let accounts = r.json().to_string();
    assert!(
        accounts.contains("acc-1001") && !accounts.contains("acc-1003"),
        "{accounts}"
    );
    assert!(r.header("server").is_none() && r.header("x-powered-by").is_none());
    assert!(r.header("strict-transport-security").is_some());
    assert!(get("/v1/accounts", Some("customer_b"))
        .await
        .json()
        .to_string()
        .contains("acc-1003"));
    assert_eq!(get("/v1/accounts/acc-1001", Some("customer_b")).await.status, 404);
    // No token, an expired one, one for another audience: 401.
    for name in [None, Some("expired"), Some("wrong_audience")] {
        let r = get("/v1/accounts", name).await;
        assert_eq!(r.status, 401, "{name:?}");
        assert!(r.header("www-authenticate").is_some());
    }

    let r = c.get("/internal/admin").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let everything = format!("{:?}{}", r.headers, r.text()).to_lowercase();
    for word in ["rampart/", "hyper", "axum", "demo-core-banking", "server:"] {
        assert!(!everything.contains(word), "{word} in {everything}");
    }

    // Payments: a plain bearer token is refused; the DPoP-bound token with
    // a fresh proof (made with the key demo.json names) passes. Five pass
    // the limiter, the sixth is 429 with its headers.
    let bound = &info["tokens"]["dpop_bound"];
    let jwk: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(bound["key_file"].as_str().unwrap()).unwrap()).unwrap();
    let proof_key = rampart::authn::sign::SigningKey::from_private_jwk(&jwk).unwrap();
    let dpop_token = bound["token"].as_str().unwrap();
    let url = format!("{}/v1/payments", info["gateway_url"].as_str().unwrap());
    let pay = |key: String, dpop: bool| {
        let c = c.clone();
        let auth = if dpop {
            format!("DPoP {dpop_token}")
        } else {
            format!("Bearer {}", token("customer_a"))
        };
        let proof = proof_key
            .dpop_proof(
                "POST",
                &url,
                Some(dpop_token),
                rampart::authn::sign::unix_now(),
                None,
            )
            .unwrap();
        async move {
            let mut headers = vec![
                ("content-type", "application/json"),
                ("idempotency-key", key.as_str()),
                ("authorization", auth.as_str()),
            ];
            if dpop {
                headers.push(("dpop", proof.as_str()));
            }
            c.send(http::Method::POST, "/v1/payments", &headers, "{}").await
        }
    };
    assert_eq!(pay("demo-bearer".into(), false).await.status, 401);
    for i in 1..=5 {
        let r = pay(format!("demo-limit-{i}"), true).await;
        assert!(
            r.status != 429 && r.status != 401,
            "payment {i}: {} {}",
            r.status,
            r.text()
        );
    }
    let r = pay("demo-limit-6".into(), true).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(r.header("ratelimit").unwrap().starts_with("\"payments\";r=0;t="));
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"per-client\";q=120;w=60, \"payments\";q=5;w=60")
    );
    let auth = format!("Bearer {}", token("customer_a"));
    let r = c
        .send(
            http::Method::GET,
            "/v1/accounts",
            &[("x-partner-id", "fintech-42"), ("authorization", auth.as_str())],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("ratelimit-policy")
        .unwrap()
        .contains("\"partner-daily\";q=1000;w=86400"));
    // The partner's API key: accepted, counted against its daily quota.
    let key = info["api_keys"]["partner"]["key"].as_str().unwrap().to_string();
    let r = c
        .send(
            http::Method::GET,
            "/v1/accounts",
            &[("x-api-key", key.as_str())],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("ratelimit-policy")
        .unwrap()
        .contains("\"partner-daily\""));
    let r = c
        .send(
            http::Method::GET,
            "/v1/accounts",
            &[(
                "x-api-key",
                "rk_notarealkey0_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )],
            "",
        )
        .await;
    assert_eq!(r.status, 401);
    let examples = info["examples"].to_string();
    assert!(examples.contains("past five, 429"), "{examples}");

    // Test secrets in a path and a query: they must not be in any file the
    // demo writes (checked after it stops).
    let auth_a = format!("Bearer {}", token("customer_a"));
    for path in [
        "/v1/accounts/4111111111111111",
        "/v1/accounts?iban=GB29NWBK60161331926819&email=alice.smith%40example.com",
    ] {
        let r = c
            .send(http::Method::GET, path, &[("authorization", auth_a.as_str())], "")
            .await;
        assert!(r.status.as_u16() < 500, "{path}: {}", r.status);
    }

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
    crate::audit::check_demo_trail(&demo_dir, &out, &token("customer_a"));
}
