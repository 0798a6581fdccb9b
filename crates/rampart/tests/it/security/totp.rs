//! Transaction confirmation with gateway-verified one-time codes (RFC
//! 6238), through the real gateway: a payment needs the customer's current
//! code in `X-Confirmation-Code`; a missing, wrong or replayed code is
//! refused and reaches nothing; repeated failures lock the customer out
//! (429 with Retry-After); the code never reaches the upstream.

use http::Method;
use rampart::mfa::totp::{self, Algorithm};
use serde_json::json;

use crate::authz::{now, problem, refused, Bank};

const ROUTES: &str = r#"
[mfa]
store = "sqlite://mfa.db"
key_file = "mfa.key"
max_failures = 3
lockout = "1m"

[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
[routes.authz]
scopes = ["payments:write"]
[routes.authz.confirm]
header = "X-Confirmation-Code"
when = "double(body.amount) > 100.0"
"#;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn pay(b: &Bank, token: &str, amount: &str, code: Option<&str>) -> rampart_testkit::TestResponse {
    let auth = format!("Bearer {token}");
    let mut h = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(c) = code {
        h.push(("x-confirmation-code", c));
    }
    let body = json!({"amount": amount, "creditor": "DE89370400440532013000"}).to_string();
    b.h.client().send(Method::POST, "/v1/payments", &h, body).await
}

fn code_at(seed: &[u8], step: u64) -> String {
    totp::hotp(Algorithm::Sha1, seed, step, 6)
}

#[tokio::test]
async fn a_payment_is_confirmed_once_by_the_customers_current_code() {
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let b = Bank::start_on(upstream, ROUTES, &[("mfa.key", KEY)]).await;
    // Enrol alice in the gateway's store, as `rampart mfa enrol` does.
    let m = rampart::cli::mfa::open(&b.h.policy_path).unwrap();
    let e = m.enrol("alice", Algorithm::Sha1, 6).await.unwrap();
    let seed = totp::base32_decode(e.secret_base32.expose()).unwrap();
    // Steps are read when each code is made, so a 30 s boundary during
    // the test changes nothing.
    let step = || totp::step_of(now() as u64);
    let alice = b.token("alice", json!({}));

    // Small payments need no code.
    assert_eq!(pay(&b, &alice, "20.00", None).await.status, 200);
    // A large one needs it.
    let r = pay(&b, &alice, "2500.00", None).await;
    refused(&b, &r, 403, "confirmation-required", 1, "no code");
    let wrong = code_at(&seed, step() + 50);
    let r = pay(&b, &alice, "2500.00", Some(&wrong)).await;
    refused(&b, &r, 403, "confirmation-failed", 1, "wrong code");
    // The current code passes, and is not forwarded.
    let code = code_at(&seed, step());
    let r = pay(&b, &alice, "2500.00", Some(&code)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = b.h.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].headers.get("x-confirmation-code").is_none(),
        "code forwarded"
    );
    // The same code again: a replay.
    let r = pay(&b, &alice, "2500.00", Some(&code)).await;
    refused(&b, &r, 403, "confirmation-failed", 2, "replayed code");
    // A code of the previous step (clock drift) is fine once.
    let r = pay(&b, &alice, "2500.00", Some(&code_at(&seed, step() - 1))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A customer without enrolment cannot confirm.
    let bob = b.token("bob", json!({}));
    let r = pay(&b, &bob, "2500.00", Some(&code)).await;
    refused(&b, &r, 403, "confirmation-failed", 3, "not enrolled");
}

#[tokio::test]
async fn repeated_failures_lock_the_customer_out() {
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let b = Bank::start_on(upstream, ROUTES, &[("mfa.key", KEY)]).await;
    let m = rampart::cli::mfa::open(&b.h.policy_path).unwrap();
    let e = m.enrol("carol", Algorithm::Sha1, 6).await.unwrap();
    let seed = totp::base32_decode(e.secret_base32.expose()).unwrap();
    let carol = b.token("carol", json!({}));
    // A code that matches no step near now: no step within ±1 of this
    // one, whatever the clock does in between.
    let far = code_at(&seed, totp::step_of(now() as u64) + 100);
    for _ in 0..3 {
        let r = pay(&b, &carol, "500.00", Some(&far)).await;
        assert_eq!(problem(&r), "confirmation-failed");
    }
    let good = code_at(&seed, totp::step_of(now() as u64));
    let r = pay(&b, &carol, "500.00", Some(&good)).await;
    refused(&b, &r, 429, "confirmation-locked", 0, "locked");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry), "{retry}");
    // Other customers are not affected.
    let e2 = m.enrol("dave", Algorithm::Sha1, 6).await.unwrap();
    let seed2 = totp::base32_decode(e2.secret_base32.expose()).unwrap();
    let dave = b.token("dave", json!({}));
    let r = pay(
        &b,
        &dave,
        "500.00",
        Some(&code_at(&seed2, totp::step_of(now() as u64))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// With `replay_store = "redis"`, a code is accepted once across a
/// cluster: two gateways share one Redis and one enrolment store, and a
/// code confirmed on A is a replay on B.
#[tokio::test]
async fn a_code_used_on_one_gateway_is_a_replay_on_another_sharing_redis() {
    let redis = rampart_testkit::RedisServer::start();
    let shared = tempfile::tempdir().unwrap();
    let routes = format!(
        "{}\n[redis]\nurl = \"{}\"\nkey_prefix = \"mfa-test\"\n",
        ROUTES.replace(
            "store = \"sqlite://mfa.db\"\n",
            &format!(
                "store = \"sqlite://{}\"\nreplay_store = \"redis\"\n",
                shared.path().join("mfa.db").display()
            ),
        ),
        redis.url()
    );
    assert!(routes.contains("replay_store = \"redis\""));
    let a = Bank::start_on(
        rampart_testkit::RecordingUpstream::start().await,
        &routes,
        &[("mfa.key", KEY)],
    )
    .await;
    let b = Bank::start_on(
        rampart_testkit::RecordingUpstream::start().await,
        &routes,
        &[("mfa.key", KEY)],
    )
    .await;
    // Until Redis answers, each gateway would remember codes locally.
    crate::redis::wait_redis_up(&a.h, true).await;
    crate::redis::wait_redis_up(&b.h, true).await;
    // Enrolled once, through A's policy: B reads the same store.
    let m = rampart::cli::mfa::open(&a.h.policy_path).unwrap();
    let e = m.enrol("erin", Algorithm::Sha1, 6).await.unwrap();
    let seed = totp::base32_decode(e.secret_base32.expose()).unwrap();
    let code = code_at(&seed, totp::step_of(now() as u64));

    let r = pay(&a, &a.token("erin", json!({})), "2500.00", Some(&code)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(a.h.upstream.count(), 1);

    // The same code on B (the same customer, B's own token) is a replay.
    let r = pay(&b, &b.token("erin", json!({})), "2500.00", Some(&code)).await;
    refused(&b, &r, 403, "confirmation-failed", 0, "code replayed on B");
    // What B knew came from Redis: the one used code is there.
    assert_eq!(redis.cli(&["KEYS", "mfa-test:dpop:*"]).lines().count(), 1);
    // B knows erin's enrolment: a fresh code (the next step, within the
    // drift) is accepted there.
    let next = code_at(&seed, totp::step_of(now() as u64) + 1);
    let r = pay(&b, &b.token("erin", json!({})), "2500.00", Some(&next)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.h.upstream.count(), 1);
}
