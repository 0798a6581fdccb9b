//! API keys through the real gateway: a key made with `rampart keys create`
//! is accepted on an `authn = ["api_key"]` route and never reaches the
//! upstream; wrong, malformed and revoked keys answer 401 with an `ApiKey`
//! challenge; a route may accept a token or a key.

use std::process::Command;
use std::time::{Duration, Instant};

use http::Method;
use rampart_testkit::{Harness, RecordingUpstream, TestResponse};

const PEPPER: &str = "an-example-pepper-of-at-least-32-bytes-0123456789";

fn keys(h: &Harness, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("keys")
        .args(args)
        .arg("--config")
        .arg(&h.policy_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn start() -> Harness {
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        r#"{}
[api_keys]
store = "sqlite://keys.db"
pepper_file = "pepper"
cache_ttl = "1s"

[[routes]]
id = "accounts-list"
path = "/v1/accounts"
methods = ["GET"]
upstream = "backend"
authn = ["api_key"]
authz = "authenticated"
"#,
        rampart_testkit::base_policy(&upstream.url())
    );
    Harness::start_with_files(upstream, &policy, &[("pepper", PEPPER)]).await
}

async fn get(h: &Harness, key: Option<&str>) -> TestResponse {
    let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
    h.client().send(Method::GET, "/v1/accounts", &headers, "").await
}

fn assert_refused(r: &TestResponse, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let challenge = r.header("www-authenticate").unwrap_or("");
    assert!(
        challenge.starts_with("ApiKey realm=\"rampart\", header=\"x-api-key\""),
        "{what}: {challenge}"
    );
}

#[tokio::test]
async fn a_created_key_is_accepted_and_a_revoked_one_refused() {
    let h = start().await;
    let key = keys(
        &h,
        &["create", "--client", "fintech-42", "--scopes", "accounts:read"],
    );
    assert!(key.starts_with("rk_"), "{key}");
    let r = get(&h, Some(&key)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = h.upstream.requests().pop().unwrap();
    assert!(seen.headers.get("x-api-key").is_none(), "the key went upstream");
    assert_eq!(seen.headers["x-authenticated-client-id"], "fintech-42");
    assert_eq!(seen.headers["x-authenticated-scopes"], "accounts:read");

    // Wrong secret, malformed, missing.
    let (id_part, _) = key.rsplit_once('_').unwrap();
    let wrong = format!("{id_part}_{}", "A".repeat(40));
    assert_refused(&get(&h, Some(&wrong)).await, "wrong secret");
    assert_refused(&get(&h, Some("rk_short")).await, "malformed");
    assert_refused(&get(&h, None).await, "no key");

    // Revoked: refused once the gateway's cache_ttl (1 s here) has passed.
    let id = id_part.trim_start_matches("rk_");
    keys(&h, &["revoke", id]);
    let revoked = Instant::now();
    let deadline = revoked + Duration::from_secs(5);
    loop {
        let r = get(&h, Some(&key)).await;
        if r.status == 401 {
            assert_refused(&r, "revoked");
            break;
        }
        assert_eq!(r.status, 200);
        assert!(
            Instant::now() < deadline,
            "a revoked key still works after its cache_ttl"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        revoked.elapsed() < Duration::from_millis(2500),
        "{:?}",
        revoked.elapsed()
    );
}
