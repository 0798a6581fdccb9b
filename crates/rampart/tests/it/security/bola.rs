//! Broken object-level authorization (OWASP API1): customer A's valid token
//! naming customer B's account, in the path, the query and the body, with
//! the case, encoding, normalisation, duplication and type tricks that make
//! a gateway check one value while the backend uses another. Each answers
//! 403 (400 where the request is malformed or ambiguous) and reaches
//! nothing; A's own account passes after each batch.

use http::Method;
use serde_json::json;

use crate::authz::{problem, Bank};

const ROUTES: &str = r#"
[[entitlements]]
name = "accounts"
static = { "alice" = ["acc-a1", "acc-a2"], "bob" = ["acc-b1"] }

[[routes]]
id = "account"
path = "/v1/accounts/{account_id}"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { rules = ["path.account_id in entitlements.accounts"] }

[[routes]]
id = "transactions"
path = "/v1/transactions"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { rules = ["query.account_id in entitlements.accounts"] }

[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { rules = ["body.debtor_account in entitlements.accounts"] }
"#;

#[tokio::test]
async fn another_customers_account_in_the_path() {
    let b = Bank::start(ROUTES).await;
    let alice = b.token("alice", json!({}));
    let auth = format!("Bearer {alice}");
    let c = b.h.client();
    for (path, status) in [
        ("/v1/accounts/acc-b1", 403),
        ("/v1/accounts/ACC-B1", 403),           // case
        ("/v1/accounts/acc%2Db1", 403),         // an encoded unreserved character decodes to acc-b1
        ("/v1/accounts/acc-b1%20", 403),        // trailing space
        ("/v1/accounts/acc-a1/../acc-b1", 403), // normalised to acc-b1 before the rule
        ("/v1/accounts/./acc-b1", 403),
        ("/v1/accounts//acc-b1", 403),              // collapsed to acc-b1
        ("/v1/accounts/acc-a1%2F..%2Facc-b1", 400), // encoded separators are refused
        ("/v1/accounts/acc-a1;acc-b1", 403),        // a matrix parameter is part of the value
        ("/v1/accounts/acc-b1%00", 400),            // NUL
        ("/v1/accounts/%61cc-b1", 403),
    ] {
        let r = c.send(Method::GET, path, &[("authorization", &auth)], "").await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(b.h.upstream.count(), 0, "{path} reached the upstream");
        if status == 403 {
            assert_eq!(problem(&r), "forbidden", "{path}");
        }
    }
    // Bob's own token works on his account, and alice's on hers, also
    // percent-encoded: the rule sees what the upstream will see.
    assert_eq!(
        b.get("/v1/accounts/acc-b1", &b.token("bob", json!({})))
            .await
            .status,
        200
    );
    let r = c
        .send(
            Method::GET,
            "/v1/accounts/acc%2Da1",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = b.h.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].target, "/v1/accounts/acc-a1");
}

#[tokio::test]
async fn another_customers_account_in_the_query() {
    let b = Bank::start(ROUTES).await;
    let alice = b.token("alice", json!({}));
    let auth = format!("Bearer {alice}");
    let c = b.h.client();
    for (query, status, code) in [
        ("account_id=acc-b1", 403, "forbidden"),
        ("account_id=acc%2Db1", 403, "forbidden"),
        ("account_id=acc-a1&account_id=acc-b1", 400, "ambiguous-parameter"), // parameter pollution
        ("account_id=acc-b1&account_id=acc-a1", 400, "ambiguous-parameter"),
        ("account_id=acc-a1&ACCOUNT_ID=acc-b1", 400, "ambiguous-parameter"), // case-insensitive backends
        ("account_id=acc-a1%00", 403, "forbidden"),
        ("account_id=%FF", 400, "ambiguous-parameter"),
        ("account_id[]=acc-a1", 403, "forbidden"), // not the parameter the rule reads
        ("", 403, "forbidden"),
    ] {
        let r = c
            .send(
                Method::GET,
                &format!("/v1/transactions?{query}"),
                &[("authorization", &auth)],
                "",
            )
            .await;
        assert_eq!(r.status, status, "{query}: {}", r.text());
        assert_eq!(problem(&r), code, "{query}");
        assert_eq!(b.h.upstream.count(), 0, "{query} reached the upstream");
    }
    let r = c
        .send(
            Method::GET,
            "/v1/transactions?account_id=acc-a1&page=2&page=3",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn another_customers_account_in_the_body() {
    let b = Bank::start(ROUTES).await;
    let alice = b.token("alice", json!({}));
    let auth = format!("Bearer {alice}");
    let c = b.h.client();
    for (body, status, code) in [
        (r#"{"debtor_account":"acc-b1"}"#, 403, "forbidden"),
        (r#"{"debtor_account":"acc\u002db1"}"#, 403, "forbidden"), // an escape spelling acc-b1
        (
            r#"{"debtor_account":"acc-a1","debtor_account":"acc-b1"}"#,
            400,
            "invalid-json",
        ), // duplicate key
        (
            r#"{"debtor_account":"acc-a1","Debtor_Account":"acc-b1"}"#,
            400,
            "invalid-json",
        ), // case-folding backends
        (r#"{"debtor_account":["acc-a1","acc-b1"]}"#, 403, "forbidden"), // type confusion
        (r#"{"debtor_account":{"id":"acc-a1"}}"#, 403, "forbidden"),
        (r#"{"Debtor_account":"acc-b1"}"#, 403, "forbidden"),
        (
            r#"{"debtor_account":"acc-a1"} {"debtor_account":"acc-b1"}"#,
            400,
            "invalid-json",
        ), // two documents
        ("", 403, "forbidden"),
    ] {
        let r = c
            .send(
                Method::POST,
                "/v1/payments",
                &[("authorization", &auth), ("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert_eq!(problem(&r), code, "{body}");
        assert_eq!(b.h.upstream.count(), 0, "{body} reached the upstream");
    }
    // Declared as something else, it is not read as JSON, and refused.
    let r = c
        .send(
            Method::POST,
            "/v1/payments",
            &[("authorization", &auth), ("content-type", "text/plain")],
            r#"{"debtor_account":"acc-a1"}"#,
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .send(
            Method::POST,
            "/v1/payments",
            &[
                ("authorization", &auth),
                ("content-type", "application/json; charset=utf-8"),
            ],
            r#"{"debtor_account":"acc-a1","amount":"5.00"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
