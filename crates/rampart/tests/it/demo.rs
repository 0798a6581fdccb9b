//! `rampart demo` end to end, as a newcomer runs it: the real binary, its
//! generated CA, demo.json, the sample bank behind HTTPS.

use std::process::Stdio;
use std::time::Duration;

use rampart_testkit::{admin_request, Alpn, Client};

/// The payment the demo prints: from customer A's account acc-1001.
const PAYMENT: &str = r#"{"debtor_account":"acc-1001","instructed_amount":{"amount":"125.00","currency":"EUR"},"creditor":{"name":"ACME Energy GmbH","iban":"DE89370400440532013000"},"remittance_information":"Invoice 2026-117"}"#;

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
    // B asking for A's account: refused by the gateway's ownership rule.
    let r = get("/v1/accounts/acc-1001", Some("customer_b")).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("/forbidden"), "{}", r.text());
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

    // Payments (from the customer's own account): a plain bearer token is
    // refused; the DPoP-bound token with a fresh proof (made with the key
    // demo.json names) passes within the customer's consent (RFC 9396);
    // above 1000 EUR it needs the stepped-up token (RFC 9470), and above 500
    // the customer's one-time code, once. Five succeed in a minute, the
    // sixth is 429 with its headers.
    let bound = &info["tokens"]["dpop_bound"];
    let jwk: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(bound["key_file"].as_str().unwrap()).unwrap()).unwrap();
    let proof_key = rampart::authn::sign::SigningKey::from_private_jwk(&jwk).unwrap();
    let url = format!("{}/v1/payments", info["gateway_url"].as_str().unwrap());
    let pay = |key: &str, tok: &str, body: String, code: Option<String>| {
        let c = c.clone();
        let key = key.to_owned();
        let dpop = tok.starts_with("dpop");
        let token_text = token(tok);
        let auth = if dpop {
            format!("DPoP {token_text}")
        } else {
            format!("Bearer {token_text}")
        };
        let proof = proof_key
            .dpop_proof(
                "POST",
                &url,
                Some(&token_text),
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
            if let Some(code) = &code {
                headers.push(("x-confirmation-code", code.as_str()));
            }
            c.send(http::Method::POST, "/v1/payments", &headers, body).await
        }
    };
    let body = |amount: &str, iban: &str| {
        PAYMENT
            .replace("125.00", amount)
            .replace("DE89370400440532013000", iban)
    };
    let code_of = |r: &rampart_testkit::TestResponse| {
        r.json()["type"]
            .as_str()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        pay("demo-bearer", "customer_a", PAYMENT.into(), None)
            .await
            .status,
        401
    );
    let r = pay(
        "demo-rar",
        "dpop_bound",
        body("125.00", "FR1420041010050500013M02606"),
        None,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), code_of(&r)),
        (403, "insufficient-authorization-details".into())
    );
    let big = body("2500.00", "DE89370400440532013000");
    let r = pay("demo-big-1", "dpop_bound", big.clone(), None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required\", acr_values=\"urn:demo:acr:strong\""),
        "{:?}",
        r.headers
    );
    let r = pay("demo-big-2", "dpop_bound_sca", big.clone(), None).await;
    assert_eq!(
        (r.status.as_u16(), code_of(&r)),
        (403, "confirmation-required".into())
    );
    let seed = rampart::mfa::totp::base32_decode(info["totp"]["secret"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = rampart::mfa::totp::totp(rampart::mfa::totp::Algorithm::Sha1, &seed, now, 6);
    let r = pay("demo-big-3", "dpop_bound_sca", big.clone(), Some(code.clone())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = pay(
        "demo-big-4",
        "dpop_bound_sca",
        body("2600.00", "DE89370400440532013000"),
        Some(code),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), code_of(&r)),
        (403, "confirmation-failed".into()),
        "a replayed code"
    );
    // demo-big-3 counted: nine more are let through, the tenth is refused.
    for i in 1..=9 {
        let r = pay(&format!("demo-limit-{i}"), "dpop_bound", PAYMENT.into(), None).await;
        assert_eq!(r.status, 201, "payment {i}: {}", r.text());
    }
    let r = pay("demo-limit-10", "dpop_bound", PAYMENT.into(), None).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(r.header("ratelimit").unwrap().starts_with("\"payments\";r=0;t="));
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"per-client\";q=120;w=60, \"payments\";q=10;w=60")
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
    assert!(examples.contains("reaches the limit, then 429"), "{examples}");

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

    let metrics_url = format!("{}/metrics", info["admin_url"].as_str().unwrap());
    let m = admin_request(http::Method::GET, &metrics_url, None).await;
    assert_eq!(m.status, 401, "metrics need a credential");
    let m = admin_request(http::Method::GET, &metrics_url, info["admin_token"].as_str()).await;
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
