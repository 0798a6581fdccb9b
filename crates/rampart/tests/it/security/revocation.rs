//! Threat: a stolen token (or a compromised customer or partner) that stays
//! valid until it expires, and credentials guessed at network speed.
//! Method: the real gateway with tokens minted by a test issuer (a
//! `jwks_file`, as in `authn.rs`); revocations made through the admin API
//! and the CLI must refuse the very next request, even for a token whose
//! verdict is cached, on every gateway sharing a private Redis; repeated
//! failures from one loopback address (127.0.0.9 and up, so no other test's
//! 127.0.0.1 is banned) must ban it, visibly, until the ban ends, while a
//! good token from another address keeps working.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Method;
use jsonwebtoken::Algorithm;
use rampart::authn::sign::SigningKey;
use rampart_testkit::{
    admin_request, admin_send, base_policy, Client, Harness, RecordingUpstream, RedisServer, TestResponse,
    ADMIN_TOKEN,
};
use serde_json::{json, Value};

const ISS: &str = "https://idp.bank.test";
const AUD: &str = "https://api.bank.test";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A gateway whose `/v1/accounts` needs a token from `bank-idp`, signed by
/// `key`; `extra` is appended to the policy.
async fn start(key: &SigningKey, extra: &str) -> Harness {
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        r#"{base}
[[issuers]]
name = "bank-idp"
issuer = "{ISS}"
audiences = ["{AUD}"]
jwks_file = "jwks.json"

[[routes]]
id = "accounts-list"
path = "/v1/accounts"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = "authenticated"

{extra}
"#,
        base = base_policy(&upstream.url()),
    );
    Harness::start_with_files(upstream, &policy, &[("jwks.json", &key.jwks().to_string())]).await
}

fn token(key: &SigningKey, jti: &str, sub: &str, client: &str) -> String {
    key.mint(&json!({
        "iss": ISS, "aud": AUD, "sub": sub, "client_id": client, "jti": jti,
        "scope": "accounts:read", "iat": now(), "exp": now() + 300,
    }))
    .unwrap()
}

async fn get(c: &Client, token: &str, extra: &[(&str, &str)]) -> TestResponse {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    c.send(Method::GET, "/v1/accounts", &headers, "").await
}

fn from(h: &Harness, ip: &str) -> Client {
    Client::from_address(&h.pki.ca_cert_pem, h.addr(), ip.parse::<IpAddr>().unwrap())
}

/// 401 `invalid_token`, as for any other invalid token: nothing says
/// "revoked".
fn assert_invalid_token(r: &TestResponse, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    assert_eq!(
        r.json()["type"],
        "https://rampart.dev/problems/invalid-token",
        "{what}"
    );
    let bearer = r
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("Bearer"))
        .unwrap();
    assert!(bearer.contains("error=\"invalid_token\""), "{what}: {bearer}");
    assert!(
        !format!("{bearer}{}", r.text()).to_lowercase().contains("revok"),
        "{what}: the cause was told to the client"
    );
}

async fn revoke(h: &Harness, body: Value) -> TestResponse {
    admin_send(
        Method::POST,
        &h.admin_url("/admin/revocations"),
        Some(ADMIN_TOKEN),
        &body.to_string(),
    )
    .await
}

async fn metrics(h: &Harness) -> String {
    h.metrics().await
}

async fn wait_redis_up(h: &Harness) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(h).await.contains("\nrampart_redis_up 1\n") {
        assert!(Instant::now() < deadline, "redis never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_revoked_jti_sub_or_client_is_refused_even_right_after_its_token_was_accepted() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let h = start(&key, "").await;
    let c = h.client();
    let a = token(&key, "tok-a", "customer-a", "fintech-1");
    let b = token(&key, "tok-b", "customer-b", "fintech-1");
    let other = token(&key, "tok-c", "customer-c", "fintech-9");
    // Accepted, so its verdict is now cached.
    assert_eq!(get(&c, &a, &[]).await.status, 200);
    assert_eq!(get(&c, &a, &[]).await.status, 200);
    let r = revoke(
        &h,
        json!({"jti": "tok-a", "ttl": "1h", "reason": "leaked in a log"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["jti"], "tok-a");
    assert_eq!(r.json()["reason"], "leaked in a log");
    assert!(r.json()["expires_at"].as_str().unwrap().ends_with('Z'));
    let upstream_before = h.upstream.count();
    assert_invalid_token(&get(&c, &a, &[]).await, "revoked jti");
    assert_eq!(
        h.upstream.count(),
        upstream_before,
        "a revoked token went upstream"
    );
    // The same customer's other token, and other customers, still work.
    assert_eq!(get(&c, &b, &[]).await.status, 200);
    assert_eq!(
        revoke(&h, json!({"sub": "customer-b", "ttl": "10m"}))
            .await
            .status,
        201
    );
    assert_invalid_token(&get(&c, &b, &[]).await, "revoked sub");
    assert_eq!(get(&c, &other, &[]).await.status, 200);
    assert_eq!(
        revoke(&h, json!({"client_id": "fintech-9", "ttl": "10m"}))
            .await
            .status,
        201
    );
    assert_invalid_token(&get(&c, &other, &[]).await, "revoked client");
    let listed = admin_request(Method::GET, &h.admin_url("/admin/revocations"), Some(ADMIN_TOKEN))
        .await
        .json();
    assert_eq!(listed["revocations"].as_array().unwrap().len(), 3, "{listed}");
    let m = metrics(&h).await;
    for cause in [
        "authn.revoked_jti",
        "authn.revoked_sub",
        "authn.revoked_client_id",
    ] {
        assert!(
            m.contains(&format!("rampart_authn_failures_total{{cause=\"{cause}\"}} 1")),
            "{cause}: {m}"
        );
    }
    // Lifted, the token works again.
    let r = admin_request(
        Method::DELETE,
        &h.admin_url("/admin/revocations?jti=tok-a"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.json()["removed"], true);
    assert_eq!(get(&c, &a, &[]).await.status, 200);
    // The admin API wants its token, and exactly one well-formed target.
    let url = h.admin_url("/admin/revocations");
    assert_eq!(admin_request(Method::GET, &url, None).await.status, 401);
    assert_eq!(
        admin_send(Method::POST, &url, Some("wrong-token-wrong-token-wrong"), "{}")
            .await
            .status,
        401
    );
    for bad in [
        json!({"ttl": "1h"}),
        json!({"jti": "x", "sub": "y", "ttl": "1h"}),
        json!({"jti": "", "ttl": "1h"}),
        json!({"jti": "x"}),
        json!({"jti": "x", "ttl": "400d"}),
    ] {
        assert_eq!(revoke(&h, bad.clone()).await.status, 400, "{bad}");
    }
}

fn redis_policy(url: &str, on_failure: &str) -> String {
    format!(
        "[redis]\nurl = \"{url}\"\ntimeout = \"100ms\"\nkey_prefix = \"it\"\non_failure = \"{on_failure}\"\n\n[revocation]\nstore = \"redis\"\n"
    )
}

#[tokio::test]
async fn a_revocation_on_one_gateway_holds_on_the_other_at_the_next_request() {
    let redis = RedisServer::start();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let p = redis_policy(&redis.url(), "deny");
    let (a, b) = (start(&key, &p).await, start(&key, &p).await);
    wait_redis_up(&a).await;
    wait_redis_up(&b).await;
    let t = token(&key, "tok-shared", "customer-a", "fintech-1");
    assert_eq!(get(&b.client(), &t, &[]).await.status, 200);
    assert_eq!(
        revoke(&a, json!({"jti": "tok-shared", "ttl": "1h", "reason": "stolen"}))
            .await
            .status,
        201
    );
    // No waiting: the very next request on B asks Redis.
    assert_invalid_token(&get(&b.client(), &t, &[]).await, "revoked on A, used on B");
    assert!(redis.cli(&["KEYS", "it:rv:*"]).contains("it:rv:{revoked}:jti:"));
    let listed = admin_request(Method::GET, &b.admin_url("/admin/revocations"), Some(ADMIN_TOKEN))
        .await
        .json();
    assert_eq!(listed["revocations"][0]["jti"], "tok-shared", "{listed}");
    assert_eq!(listed["revocations"][0]["reason"], "stolen");
    // Lifted on B, it is lifted on A.
    let r = admin_request(
        Method::DELETE,
        &b.admin_url("/admin/revocations?jti=tok-shared"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.json()["removed"], true);
    assert_eq!(get(&a.client(), &t, &[]).await.status, 200);
}

#[tokio::test]
async fn with_on_failure_deny_a_stopped_redis_fails_revocation_checks_closed() {
    let mut redis = RedisServer::start();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let h = start(&key, &redis_policy(&redis.url(), "deny")).await;
    wait_redis_up(&h).await;
    let c = h.client();
    let t = token(&key, "tok-1", "customer-a", "fintech-1");
    assert_eq!(get(&c, &t, &[]).await.status, 200);
    redis.stop();
    let r = get(&c, &t, &[]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        h.upstream.count(),
        1,
        "a request passed without its revocation check"
    );
    assert!(metrics(&h)
        .await
        .contains("rampart_authn_failures_total{cause=\"authn.revocation_unavailable\"}"));
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&c, &t, &[]).await.status != 200 {
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn with_on_failure_local_a_stopped_redis_leaves_the_local_list_in_force() {
    let mut redis = RedisServer::start();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let h = start(&key, &redis_policy(&redis.url(), "local")).await;
    wait_redis_up(&h).await;
    let c = h.client();
    let (revoked, fine) = (
        token(&key, "tok-1", "customer-a", "fintech-1"),
        token(&key, "tok-2", "customer-b", "fintech-1"),
    );
    assert_eq!(revoke(&h, json!({"jti": "tok-1", "ttl": "1h"})).await.status, 201);
    redis.stop();
    assert_invalid_token(&get(&c, &revoked, &[]).await, "revoked here, Redis down");
    assert_eq!(get(&c, &fine, &[]).await.status, 200);
}

fn cli(h: &Harness, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .arg("--admin")
        .arg(format!("http://{}", h.server().admin_addr()))
        .arg("--token-file")
        .arg(h.path("admin.token"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_revokes_lists_and_unrevokes_with_the_cli() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let h = start(&key, "").await;
    let c = h.client();
    let t = token(&key, "tok-9", "customer-a", "fintech-42");
    assert_eq!(get(&c, &t, &[]).await.status, 200);
    let (code, out) = tokio::task::block_in_place(|| {
        cli(
            &h,
            &[
                "revoke",
                "--client-id",
                "fintech-42",
                "--ttl",
                "2h",
                "--reason",
                "partner breach",
            ],
        )
    });
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"client_id\":\"fintech-42\""), "{out}");
    assert_invalid_token(&get(&c, &t, &[]).await, "client revoked by the CLI");
    let (code, list) = tokio::task::block_in_place(|| cli(&h, &["revocations"]));
    assert_eq!(code, 0, "{list}");
    assert!(list.contains("partner breach"), "{list}");
    let (code, out) = tokio::task::block_in_place(|| cli(&h, &["unrevoke", "--client-id", "fintech-42"]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"removed\":true"), "{out}");
    assert_eq!(get(&c, &t, &[]).await.status, 200);
    // Exactly one target: usage error (exit 2) otherwise.
    let (code, _) = tokio::task::block_in_place(|| cli(&h, &["revoke", "--jti", "a", "--sub", "b"]));
    assert_eq!(code, 2);
    let (code, _) = tokio::task::block_in_place(|| cli(&h, &["unrevoke"]));
    assert_eq!(code, 2);
}

/// A token signed by a key the issuer does not have.
fn forged(jti: &str) -> String {
    let other = SigningKey::generate(Algorithm::ES256).unwrap();
    token(&other, jti, "customer-a", "fintech-1")
}

#[tokio::test]
async fn repeated_bad_tokens_ban_the_address_visibly_until_the_ban_ends() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let h = start(
        &key,
        "[brute_force]\nmax_failures = 4\nwindow = \"1m\"\nban = \"3s\"\n",
    )
    .await;
    let good = token(&key, "tok-good", "customer-a", "fintech-1");
    let attacker = from(&h, "127.0.0.9");
    // Requests without any credential are not attempts.
    for _ in 0..6 {
        assert_eq!(attacker.get("/v1/accounts").await.status, 401);
    }
    for i in 0..4 {
        let r = get(&attacker, &forged(&format!("f-{i}")), &[]).await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // On the connection it already has: 429 with the time the ban has left.
    let r = get(&attacker, &good, &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    assert!(r
        .header("ratelimit")
        .unwrap()
        .starts_with("\"brute-force\";r=0;t="));
    // A new connection is closed before TLS.
    assert!(from(&h, "127.0.0.9")
        .try_send(Method::GET, "/v1/accounts", &[], "")
        .await
        .is_err());
    let bans = admin_request(Method::GET, &h.admin_url("/admin/bans"), Some(ADMIN_TOKEN))
        .await
        .json();
    assert_eq!(bans["bans"][0]["cidr"], "127.0.0.9/32", "{bans}");
    assert_eq!(bans["bans"][0]["reason"], "brute-force");
    assert!(metrics(&h)
        .await
        .contains("rampart_authn_bans_total{kind=\"client_ip\"} 1"));
    // Everyone else is served.
    assert_eq!(get(&from(&h, "127.0.0.10"), &good, &[]).await.status, 200);
    // The ban ends by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = from(&h, "127.0.0.9")
            .try_send(
                Method::GET,
                "/v1/accounts",
                &[("authorization", &format!("Bearer {good}"))],
                "",
            )
            .await
        {
            assert_eq!(r.status, 200, "{}", r.text());
            break;
        }
        assert!(Instant::now() < deadline, "the ban never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_is_banned_with_429_and_the_proxy_is_not() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let h = start(
        &key,
        "[brute_force]\nmax_failures = 3\nban = \"10m\"\n\n[ip_filter]\ntrusted_proxies = [\"127.0.0.11/32\"]\n",
    )
    .await;
    let proxy = from(&h, "127.0.0.11");
    let good = token(&key, "tok-good", "customer-a", "fintech-1");
    let xff = |ip: &'static str| [("x-forwarded-for", ip)];
    for i in 0..3 {
        let r = get(&proxy, &forged(&format!("f-{i}")), &xff("198.51.100.7")).await;
        assert_eq!(r.status, 401);
    }
    let r = get(&proxy, &good, &xff("198.51.100.7")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["type"], "https://rampart.dev/problems/rate-limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    // Another client behind the same proxy, and the proxy itself, are not
    // banned (failures with no forwarded address count for nobody).
    assert_eq!(get(&proxy, &good, &xff("198.51.100.8")).await.status, 200);
    for i in 0..4 {
        assert_eq!(get(&proxy, &forged(&format!("p-{i}")), &[]).await.status, 401);
    }
    assert_eq!(get(&proxy, &good, &[]).await.status, 200);
}

#[tokio::test]
async fn repeated_failures_under_one_api_key_id_ban_that_key_id_from_every_address() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let h = start(&key, "[brute_force]\nmax_failures = 3\nban = \"10m\"\n").await;
    let good = token(&key, "tok-good", "customer-a", "fintech-1");
    // Three guesses under one key id, each from its own address (no
    // address reaches the threshold).
    for (i, ip) in ["127.0.0.21", "127.0.0.22", "127.0.0.23"].iter().enumerate() {
        let guess = format!("rk_partner7_guess{i}");
        let r = get(
            &from(&h, ip),
            &forged(&format!("k-{i}")),
            &[("x-api-key", &guess)],
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let c = from(&h, "127.0.0.24");
    let r = get(&c, &good, &[("x-api-key", "rk_partner7_anything")]).await;
    assert_invalid_token(&r, "banned key id");
    assert_eq!(
        get(&c, &good, &[("x-api-key", "rk_partner8_anything")])
            .await
            .status,
        200
    );
    assert_eq!(get(&c, &good, &[]).await.status, 200);
    let m = metrics(&h).await;
    assert!(m.contains("rampart_authn_bans_total{kind=\"api_key\"} 1"), "{m}");
    assert!(!m.contains("rampart_authn_bans_total{kind=\"client_ip\"}"), "{m}");
}

#[tokio::test]
async fn with_redis_failures_are_counted_across_gateways_and_bans_reach_every_one() {
    let redis = RedisServer::start();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let p = format!(
        "[redis]\nurl = \"{}\"\ntimeout = \"100ms\"\nkey_prefix = \"it\"\nshare_bans = true\n\n[brute_force]\nmax_failures = 4\nban = \"10m\"\nstore = \"redis\"\n",
        redis.url()
    );
    let (a, b) = (start(&key, &p).await, start(&key, &p).await);
    wait_redis_up(&a).await;
    wait_redis_up(&b).await;
    let good = token(&key, "tok-good", "customer-a", "fintech-1");
    // Two failures on each gateway from one address: four in all.
    for (i, h) in [&a, &b, &a, &b].into_iter().enumerate() {
        let r = get(&from(h, "127.0.0.31"), &forged(&format!("f-{i}")), &[]).await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    assert!(redis
        .cli(&["KEYS", "it:rl:*"])
        .contains("it:rl:{brute-force|client_ip|"));
    // B banned it; A copies the shared ban within about a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while from(&a, "127.0.0.31")
        .try_send(Method::GET, "/v1/accounts", &[], "")
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "gateway A never saw the ban");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A key id guessed on A is refused on B at once.
    for i in 0..4 {
        let ip = format!("127.0.0.{}", 32 + i);
        let guess = format!("rk_shared_guess{i}");
        let r = get(
            &from(&a, &ip),
            &forged(&format!("k-{i}")),
            &[("x-api-key", &guess)],
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = get(&from(&b, "127.0.0.40"), &good, &[("x-api-key", "rk_shared_x")]).await;
    assert_invalid_token(&r, "key id banned on A, used on B");
    assert_eq!(get(&from(&b, "127.0.0.40"), &good, &[]).await.status, 200);
}
