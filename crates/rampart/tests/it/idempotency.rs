//! `Idempotency-Key` on money-moving routes: required, replayed, refused
//! when reused for another request or while in flight, never kept for an
//! upstream failure. The recording upstream proves a replay never reaches
//! the bank.

use std::time::Duration;

use http::Method;
use rampart_testkit::{Client, Harness};
use serde_json::json;

use crate::ROUTES;

fn routes() -> String {
    let idem = "authn = \"none\"\nidempotency = { ttl = \"1h\", max_body = 1024 }\n";
    ROUTES
        .replace(
            "id = \"payment-create\"\npath = \"/v1/payments\"\nmethods = [\"POST\"]\nupstream = \"backend\"\nauthn = \"none\"\n",
            &format!("id = \"payment-create\"\npath = \"/v1/payments\"\nmethods = [\"POST\"]\nupstream = \"backend\"\n{idem}"),
        )
        .replace(
            "id = \"status\"\npath = \"/status/{code}\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\n",
            &format!("id = \"status\"\npath = \"/status/{{code}}\"\nmethods = [\"GET\"]\nupstream = \"backend\"\n{idem}"),
        )
        .replace(
            "id = \"delay\"\npath = \"/delay/{ms}\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\ntimeout = \"500ms\"",
            &format!("id = \"delay\"\npath = \"/delay/{{ms}}\"\nmethods = [\"GET\"]\nupstream = \"backend\"\n{idem}timeout = \"5s\""),
        )
}

const PAYMENT: &str =
    r#"{"debtor_account":"acc-1001","instructed_amount":{"amount":"125.00","currency":"EUR"}}"#;

async fn pay(c: &Client, key: Option<&str>, body: &str) -> rampart_testkit::TestResponse {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    c.send(Method::POST, "/v1/payments", &headers, body.to_string())
        .await
}

#[tokio::test]
async fn a_retried_payment_is_replayed_not_executed_twice() {
    let r = routes();
    assert_eq!(
        r.matches("idempotency =").count(),
        3,
        "the test policy did not apply"
    );
    let h = Harness::start(&r).await;
    let c = h.client();
    let first = pay(&c, Some("pay-001"), PAYMENT).await;
    assert_eq!(first.status, 200);
    assert!(first.header("idempotent-replayed").is_none());
    let again = pay(&c, Some("pay-001"), PAYMENT).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("content-type"), Some("application/json"));
    assert!(
        again.header("x-request-id").is_some()
            && again.header("x-request-id") != first.header("x-request-id")
    );
    assert_eq!(h.upstream.count(), 1, "the retry reached the upstream");
    // Another key is another payment.
    assert_eq!(pay(&c, Some("pay-002"), PAYMENT).await.status, 200);
    assert_eq!(h.upstream.count(), 2);
    // The same key from another client is that client's own.
    let other = Client::from_address(&h.pki.ca_cert_pem, h.addr(), "127.0.0.2".parse().unwrap());
    assert!(pay(&other, Some("pay-001"), PAYMENT)
        .await
        .header("idempotent-replayed")
        .is_none());
    assert_eq!(h.upstream.count(), 3);
}

#[tokio::test]
async fn the_key_is_required_and_cannot_be_reused_for_another_request() {
    let h = Harness::start(&routes()).await;
    let c = h.client();
    let r = pay(&c, None, PAYMENT).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["type"],
        "https://rampart.dev/problems/idempotency-key-required"
    );
    assert_eq!(pay(&c, Some("k-1"), PAYMENT).await.status, 200);
    let r = pay(&c, Some("k-1"), &PAYMENT.replace("125.00", "9125.00")).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["type"],
        "https://rampart.dev/problems/idempotency-key-reused"
    );
    let r = pay(&c, Some("k-2"), &"x".repeat(2000)).await;
    assert_eq!(r.status, 413);
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn a_duplicate_while_the_first_is_in_flight_gets_409() {
    let h = Harness::start(&routes()).await;
    let c = h.client();
    let first = {
        let c = c.clone();
        tokio::spawn(async move {
            c.send(Method::GET, "/delay/700", &[("idempotency-key", "slow-1")], "")
                .await
                .status
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c
        .send(Method::GET, "/delay/700", &[("idempotency-key", "slow-1")], "")
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["type"],
        "https://rampart.dev/problems/idempotency-conflict"
    );
    assert_eq!(first.await.unwrap(), 200);
    let replay = c
        .send(Method::GET, "/delay/700", &[("idempotency-key", "slow-1")], "")
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn an_upstream_failure_is_not_kept_so_the_client_can_retry() {
    let h = Harness::start(&routes()).await;
    let c = h.client();
    let r = c
        .send(Method::GET, "/status/503", &[("idempotency-key", "fail-1")], "")
        .await;
    assert_eq!(r.status, 503);
    let r = c
        .send(Method::GET, "/status/503", &[("idempotency-key", "fail-1")], "")
        .await;
    assert!(r.header("idempotent-replayed").is_none());
    assert_eq!(
        h.upstream.count(),
        2,
        "the retry after a failure must reach the upstream"
    );
}

/// On an authenticated route, keys belong to the principal, not to the
/// connection: another customer using the same key (from the same
/// address) runs their own payment; the first customer retrying from
/// another address gets their replay.
#[tokio::test]
async fn keys_are_scoped_per_principal() {
    let b = crate::authz::Bank::start(
        r#"
[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { scopes = ["payments:write"] }
idempotency = { ttl = "1h" }
"#,
    )
    .await;
    let (alice, bob) = (b.token("alice", json!({})), b.token("bob", json!({})));
    let pay_as = |c: Client, token: String| async move {
        let auth = format!("Bearer {token}");
        c.send(
            Method::POST,
            "/v1/payments",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", "pay-7"),
            ],
            PAYMENT.to_string(),
        )
        .await
    };
    let subject = |i: usize| b.h.upstream.requests()[i].headers["x-authenticated-subject"].clone();
    let first = pay_as(b.h.client(), alice.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.header("idempotent-replayed").is_none());
    // Bob, same key, same body, same address: his own payment.
    let r = pay_as(b.h.client(), bob.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("idempotent-replayed").is_none(),
        "bob got alice's stored response"
    );
    assert_eq!(b.h.upstream.count(), 2, "bob's payment never ran");
    assert_eq!(
        (subject(0), subject(1)),
        ("alice".parse().unwrap(), "bob".parse().unwrap())
    );
    // Alice retrying from another address gets her replay.
    let elsewhere = Client::from_address(&b.h.pki.ca_cert_pem, b.h.addr(), "127.0.0.2".parse().unwrap());
    let again = pay_as(elsewhere, alice).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    // And Bob his.
    let again = pay_as(b.h.client(), bob).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(b.h.upstream.count(), 2, "a retry ran the payment again");
}
