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
    start_with("", &[]).await
}

/// The API-key route, with `extra` policy text and `files` beside it.
async fn start_with(extra: &str, files: &[(&str, &str)]) -> Harness {
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        r#"{}
{extra}
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
    let mut all = vec![("pepper", PEPPER)];
    all.extend_from_slice(files);
    Harness::start_with_files(upstream, &policy, &all).await
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

/// Keys made and rotated over the admin API (role `security-admin`; the
/// trail records the action, never the key): the key is in the answer
/// only, works on the data plane, and its replacement too.
#[tokio::test]
async fn keys_are_created_and_rotated_over_the_admin_api_by_a_security_admin() {
    use rampart_testkit::{admin_send, ADMIN_TOKEN};
    const SECURITY: &str = "security-admin-token-0123456789abcdef";
    let h = start_with(
        "[[admin.tokens]]\nname = \"security\"\nfile = \"security.token\"\nrole = \"security-admin\"\n",
        &[("security.token", SECURITY)],
    )
    .await;
    let url = h.admin_url("/admin/keys");
    let body = r#"{"client": "fintech-7", "scopes": ["accounts:read"], "expires": "90d"}"#;
    // The operator token may not make keys.
    let r = admin_send(Method::POST, &url, Some(ADMIN_TOKEN), body).await;
    assert_eq!(r.status, 403, "{}", r.text());
    for (bad, why) in [
        (r#"{"scopes": "accounts:read"}"#, "no client"),
        (r#"{"client": "fintech-7"}"#, "no scopes"),
        (
            r#"{"client": "fintech-7", "scopes": "accounts:read", "expires": "soon"}"#,
            "bad expiry",
        ),
        ("not json", "not JSON"),
    ] {
        let r = admin_send(Method::POST, &url, Some(SECURITY), bad).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text());
    }
    let r = admin_send(Method::POST, &url, Some(SECURITY), body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let made = r.json();
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("rk_{id}_")), "{made}");
    assert_eq!(made["client"], "fintech-7");
    assert!(made["expires_at"].is_string(), "{made}");
    assert_eq!(get(&h, Some(&key)).await.status, 200);
    assert_eq!(
        h.upstream.requests().pop().unwrap().headers["x-authenticated-client-id"],
        "fintech-7"
    );
    // The list shows it, never the key.
    let list = admin_send(Method::GET, &url, Some(SECURITY), "").await.text();
    assert!(list.contains(&id) && !list.contains(&key), "{list}");

    // Rotation: a new key; the old one works during the overlap.
    let rotate = h.admin_url("/admin/keys/rotate");
    let r = admin_send(
        Method::POST,
        &rotate,
        Some(SECURITY),
        &format!(r#"{{"id": "{id}", "overlap": "1h"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let next = r.json();
    assert_eq!(next["replaces"], id.as_str());
    let new_key = next["key"].as_str().unwrap();
    assert_ne!(new_key, key);
    assert_eq!(get(&h, Some(new_key)).await.status, 200);
    assert_eq!(
        get(&h, Some(&key)).await.status,
        200,
        "the old key within its overlap"
    );
    // A rotated key cannot be rotated again; an unknown one is 404.
    let r = admin_send(
        Method::POST,
        &rotate,
        Some(SECURITY),
        &format!(r#"{{"id": "{id}"}}"#),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    let unknown = "a".repeat(id.len());
    let r = admin_send(
        Method::POST,
        &rotate,
        Some(SECURITY),
        &format!(r#"{{"id": "{unknown}"}}"#),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
}
