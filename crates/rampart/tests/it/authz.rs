//! Authorization through the real gateway, one test per rule class:
//! function level (scopes, roles, clients), object level (CEL rules over
//! path, query, headers and body; static and HTTPS entitlements),
//! property level (response views), RFC 9396 authorization details and
//! RFC 9470 step-up. Every refusal is checked at the client (status,
//! problem type, challenge) and at the recording upstream (nothing
//! arrived); every case ends with a sanity call that passes, so no refusal
//! is vacuous.

use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;
use jsonwebtoken::Algorithm;
use rampart::authn::sign::SigningKey;
use rampart_testkit::{Client, Harness, RecordingUpstream, TestPki, TestResponse};
use serde_json::{json, Value};

pub const ISS: &str = "https://idp.bank.test";
pub const AUD: &str = "https://api.bank.test";

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A gateway with an issuer (`bank-idp`, keys in a JWKS file) and the
/// routes in `routes`, plus its signing key.
pub struct Bank {
    pub h: Harness,
    pub key: SigningKey,
}

impl Bank {
    pub async fn start(routes: &str) -> Self {
        Self::start_on(RecordingUpstream::start().await, routes, &[]).await
    }

    pub async fn start_on(upstream: RecordingUpstream, routes: &str, files: &[(&str, &str)]) -> Self {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwks = key.jwks().to_string();
        let policy = format!(
            r#"{base}
[brute_force]
enabled = false

[[issuers]]
name = "bank-idp"
issuer = "{ISS}"
audiences = ["{AUD}"]
jwks_file = "jwks.json"
{routes}
"#,
            base = rampart_testkit::base_policy(&upstream.url()),
        );
        let mut all = vec![("jwks.json", jwks.as_str())];
        all.extend_from_slice(files);
        let h = Harness::start_with_files(upstream, &policy, &all).await;
        Self { h, key }
    }

    /// A token for `sub` with `extra` claims merged in.
    pub fn token(&self, sub: &str, extra: Value) -> String {
        let mut claims = json!({
            "iss": ISS, "aud": AUD, "sub": sub, "client_id": "bank-app",
            "scope": "accounts:read payments:write", "iat": now(), "exp": now() + 300,
            "acr": "urn:bank:acr:basic", "auth_time": now() - 600,
        });
        if let (Some(m), Value::Object(e)) = (claims.as_object_mut(), extra) {
            m.extend(e);
        }
        self.key.mint(&claims).unwrap()
    }

    pub async fn send(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> TestResponse {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        if !text.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        self.h.client().send(method, path, &headers, text).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.send(Method::GET, path, token, None).await
    }
}

/// The stable code at the end of a problem's `type`.
pub fn problem(r: &TestResponse) -> String {
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    r.json()["type"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Refused with `status` and problem `code`, and nothing reached the
/// upstream since `before` requests.
pub fn refused(b: &Bank, r: &TestResponse, status: u16, code: &str, before: usize, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(problem(r), code, "{what}");
    assert_eq!(b.h.upstream.count(), before, "{what}: reached the upstream");
}

#[tokio::test]
async fn function_level_scopes_roles_and_clients() {
    let b = Bank::start(
        r#"
[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { scopes = ["payments:write"] }

[[routes]]
id = "ops"
path = "/ops/limits"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { roles = ["operator", "security-admin"] }

[[routes]]
id = "partner"
path = "/partner/report"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { clients = ["partner-a"], any_scopes = ["reports:read", "reports:admin"] }
"#,
    )
    .await;
    let read_only = b.token("alice", json!({"scope": "accounts:read"}));
    let r = b
        .send(Method::POST, "/v1/payments", &read_only, Some(json!({})))
        .await;
    refused(&b, &r, 403, "insufficient-scope", 0, "missing scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"insufficient_scope\", scope=\"payments:write\"")
    );
    // A customer on an operator route.
    let customer = b.token("alice", json!({}));
    refused(
        &b,
        &b.get("/ops/limits", &customer).await,
        403,
        "forbidden",
        0,
        "customer on ops",
    );
    let wrong_client = b.token("alice", json!({"scope": "reports:read"}));
    refused(
        &b,
        &b.get("/partner/report", &wrong_client).await,
        403,
        "forbidden",
        0,
        "client",
    );
    let no_scope = b.token("x", json!({"client_id": "partner-a", "scope": "accounts:read"}));
    refused(
        &b,
        &b.get("/partner/report", &no_scope).await,
        403,
        "insufficient-scope",
        0,
        "any_scopes",
    );
    // Sanity: each passes with what it needs.
    assert_eq!(
        b.send(Method::POST, "/v1/payments", &customer, Some(json!({})))
            .await
            .status,
        200
    );
    let operator = b.token("op-1", json!({"roles": ["operator"]}));
    assert_eq!(b.get("/ops/limits", &operator).await.status, 200);
    let partner = b.token("x", json!({"client_id": "partner-a", "scope": "reports:admin"}));
    assert_eq!(b.get("/partner/report", &partner).await.status, 200);
    assert_eq!(b.h.upstream.count(), 3);
    // Operators see the causes on /metrics.
    let m = b.h.metrics().await;
    assert!(
        m.contains("rampart_authz_refusals_total{cause=\"scope\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn object_level_rules_on_path_query_headers_and_body() {
    let b = Bank::start(
        r#"
[[routes]]
id = "account"
path = "/v1/accounts/{account_id}"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { rules = ["path.account_id in principal.claims.accounts"] }

[[routes]]
id = "statements"
path = "/v1/statements"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { rules = ["query.account in principal.claims.accounts", "headers['x-customer-id'] == principal.sub"] }

[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = { rules = ["body.debtor_account in principal.claims.accounts"] }
"#,
    )
    .await;
    let alice = b.token("alice", json!({"accounts": ["acc-a1", "acc-a2"]}));
    refused(
        &b,
        &b.get("/v1/accounts/acc-b1", &alice).await,
        403,
        "forbidden",
        0,
        "path",
    );
    let auth = format!("Bearer {alice}");
    let c = b.h.client();
    let r = c
        .send(
            Method::GET,
            "/v1/statements?account=acc-b1",
            &[("authorization", &auth), ("x-customer-id", "alice")],
            "",
        )
        .await;
    refused(&b, &r, 403, "forbidden", 0, "query");
    let r = c
        .send(
            Method::GET,
            "/v1/statements?account=acc-a1",
            &[("authorization", &auth), ("x-customer-id", "bob")],
            "",
        )
        .await;
    refused(&b, &r, 403, "forbidden", 0, "header");
    let r = b
        .send(
            Method::POST,
            "/v1/payments",
            &alice,
            Some(json!({"debtor_account": "acc-b1", "amount": "1"})),
        )
        .await;
    refused(&b, &r, 403, "forbidden", 0, "body");
    // Sanity, each variant with the customer's own account.
    assert_eq!(b.get("/v1/accounts/acc-a2", &alice).await.status, 200);
    let r = c
        .send(
            Method::GET,
            "/v1/statements?account=acc-a1",
            &[("authorization", &auth), ("x-customer-id", "alice")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = b
        .send(
            Method::POST,
            "/v1/payments",
            &alice,
            Some(json!({"debtor_account": "acc-a1", "amount": "1"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The upstream got exactly the bytes the gateway checked.
    let seen = b.h.upstream.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[2].body,
        json!({"debtor_account": "acc-a1", "amount": "1"}).to_string()
    );
    assert!(
        seen.iter().all(|r| r.headers.get("authorization").is_none()),
        "token forwarded"
    );
}

#[tokio::test]
async fn entitlements_from_a_table_and_from_an_https_service_that_fails_closed() {
    // The entitlement service: HTTPS with its own CA.
    let pki = TestPki::generate(&["localhost", "127.0.0.1"]).unwrap();
    let svc = RecordingUpstream::start_tls(&pki.server_cert_pem, &pki.server_key_pem, None).await;
    svc.answer("/v1/customers/alice/accounts", 200, r#"{"accounts": ["acc-a1"]}"#);
    svc.answer(
        "/v1/customers/carol%40bank/accounts",
        200,
        r#"{"accounts": ["acc-c1"]}"#,
    );
    svc.answer("/v1/customers/dave/accounts", 500, r#"{"error": "boom"}"#);
    svc.answer(
        "/v1/customers/erin/accounts",
        404,
        r#"{"error": "no such customer"}"#,
    );
    let svc_url = format!("https://localhost:{}", svc.addr.port());
    let routes = format!(
        r#"
[[entitlements]]
name = "owned"
static = {{ "alice" = ["acc-a1", "acc-a2"], "bob" = ["acc-b1"] }}

[[entitlements]]
name = "service"
url = "{svc_url}/v1/customers/{{key}}/accounts"
pointer = "/accounts"
ca_file = "entitlements-ca.pem"
timeout = "1s"
cache_ttl = "1m"

[[routes]]
id = "account"
path = "/v1/accounts/{{account_id}}"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = {{ rules = ["path.account_id in entitlements.owned"] }}

[[routes]]
id = "cards"
path = "/v1/cards/{{account_id}}"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = {{ rules = ["path.account_id in entitlements.service"] }}
"#
    );
    let b = Bank::start_on(
        RecordingUpstream::start().await,
        &routes,
        &[("entitlements-ca.pem", &pki.ca_cert_pem)],
    )
    .await;
    let alice = b.token("alice", json!({}));
    let bob = b.token("bob", json!({}));
    refused(
        &b,
        &b.get("/v1/accounts/acc-a1", &bob).await,
        403,
        "forbidden",
        0,
        "static: bob",
    );
    let nobody = b.token("nobody", json!({}));
    refused(
        &b,
        &b.get("/v1/accounts/acc-a1", &nobody).await,
        403,
        "forbidden",
        0,
        "static: unlisted",
    );
    assert_eq!(b.get("/v1/accounts/acc-a1", &alice).await.status, 200);

    // The service: alice owns acc-a1; carol's key is percent-encoded; erin
    // is unknown to it (404: no entitlement); dave's lookup fails (503).
    assert_eq!(b.get("/v1/cards/acc-a1", &alice).await.status, 200);
    refused(
        &b,
        &b.get("/v1/cards/acc-a2", &alice).await,
        403,
        "forbidden",
        2,
        "service: not owned",
    );
    let carol = b.token("carol@bank", json!({}));
    assert_eq!(b.get("/v1/cards/acc-c1", &carol).await.status, 200);
    let erin = b.token("erin", json!({}));
    refused(
        &b,
        &b.get("/v1/cards/acc-e1", &erin).await,
        403,
        "forbidden",
        3,
        "service: 404",
    );
    let dave = b.token("dave", json!({}));
    let r = b.get("/v1/cards/acc-d1", &dave).await;
    refused(&b, &r, 503, "authorization-unavailable", 3, "service: 500");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Answers are cached for cache_ttl: alice's second call did not ask.
    let asked: Vec<String> = svc.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(
        asked.iter().filter(|t| t.contains("/alice/")).count(),
        1,
        "{asked:?}"
    );
    // The service down: fails closed for a key not cached, still answers
    // from the cache for one that is.
    drop(svc);
    let r = b.get("/v1/cards/acc-x", &erin).await;
    assert_eq!(r.status, 403, "erin's 404 is cached too: {}", r.text());
    let frank = b.token("frank", json!({}));
    refused(
        &b,
        &b.get("/v1/cards/acc-f1", &frank).await,
        503,
        "authorization-unavailable",
        3,
        "down",
    );
    assert_eq!(b.get("/v1/cards/acc-a1", &alice).await.status, 200);
}

#[tokio::test]
async fn response_views_mask_and_remove_fields_by_scope() {
    let upstream = RecordingUpstream::start().await;
    upstream.answer(
        "/v1/accounts",
        200,
        r#"{"accounts":[{"id":"acc-a1","iban":"DE89370400440532013000","balance":"10.00","owner":"Alice"},{"id":"acc-a2","iban":"GB29NWBK60161331926819","balance":"5.00","owner":"Alice"}]}"#,
    );
    upstream.answer("/v1/accounts/text", 200, "not json");
    let b = Bank::start_on(
        upstream,
        r#"
[[routes]]
id = "accounts"
path = "/v1/accounts"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
[routes.authz]
any_scopes = ["accounts:read", "accounts:read-basic"]
[[routes.authz.views]]
scope = "accounts:read"
[[routes.authz.views]]
scope = "accounts:read-basic"
mask = { "/accounts/*/iban" = "iban" }
remove = ["/accounts/*/balance"]

[[routes]]
id = "text"
path = "/v1/accounts/text"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
[routes.authz]
[[routes.authz.views]]
mask = { "/iban" = "iban" }
"#,
        &[],
    )
    .await;
    let full = b.token("alice", json!({"scope": "accounts:read"}));
    let r = b.get("/v1/accounts", &full).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["accounts"][0]["iban"], "DE89370400440532013000");
    let basic = b.token("partner", json!({"scope": "accounts:read-basic"}));
    let r = b.get("/v1/accounts", &basic).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"accounts":[
            {"id":"acc-a1","iban":"DE89 **** **** **** 3000","owner":"Alice"},
            {"id":"acc-a2","iban":"GB29 **** **** **** 6819","owner":"Alice"}
        ]})
    );
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(!r.text().contains("370400440532"), "{}", r.text());
    // The gateway asked for an uncompressed answer it can filter.
    let seen = b.h.upstream.requests();
    assert!(seen.last().unwrap().headers.get("accept-encoding").is_none());
    // A response that cannot be filtered is not passed on.
    let r = b.get("/v1/accounts/text", &full).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.text().contains("not json"));
}

fn rar(amount: &str, iban: &str) -> Value {
    json!([{
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": amount},
        "creditorName": "Merchant A",
        "creditorAccount": {"iban": iban}
    }])
}

fn payment(amount: &str, currency: &str, iban: &str) -> Value {
    json!({
        "instructedAmount": {"currency": currency, "amount": amount},
        "creditorAccount": {"iban": iban},
    })
}

#[tokio::test]
async fn payments_outside_the_authorization_details_are_refused() {
    let b = Bank::start(
        r#"
[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
[routes.authz]
scopes = ["payments:write"]
authorization_details = { type = "payment_initiation" }
"#,
    )
    .await;
    const IBAN: &str = "DE02100100109307118603";
    let t = b.token("alice", json!({"authorization_details": rar("123.50", IBAN)}));
    for (what, body) in [
        ("more than consented", payment("123.51", "EUR", IBAN)),
        ("another currency", payment("100.00", "USD", IBAN)),
        (
            "another creditor",
            payment("100.00", "EUR", "DE89370400440532013000"),
        ),
        ("no amount", json!({"creditorAccount": {"iban": IBAN}})),
    ] {
        let r = b.send(Method::POST, "/v1/payments", &t, Some(body)).await;
        refused(&b, &r, 403, "insufficient-authorization-details", 0, what);
    }
    let no_details = b.token("alice", json!({}));
    let r = b
        .send(
            Method::POST,
            "/v1/payments",
            &no_details,
            Some(payment("1", "EUR", IBAN)),
        )
        .await;
    refused(
        &b,
        &r,
        403,
        "insufficient-authorization-details",
        0,
        "token without details",
    );
    // Sanity: within the consent, in any spelling of the same IBAN.
    let r = b
        .send(
            Method::POST,
            "/v1/payments",
            &t,
            Some(payment("123.5", "EUR", "de02 1001 0010 9307 1186 03")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_large_payment_needs_a_stepped_up_token() {
    let b = Bank::start(
        r#"
[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
[routes.authz]
scopes = ["payments:write"]
[[routes.authz.step_up]]
when = "double(body.instructedAmount.amount) > 1000.0"
acr_values = ["urn:bank:acr:sca"]
max_age = "5m"
"#,
    )
    .await;
    let basic = b.token("alice", json!({}));
    let big = payment("2500.00", "EUR", "DE02100100109307118603");
    let r = b
        .send(Method::POST, "/v1/payments", &basic, Some(big.clone()))
        .await;
    refused(
        &b,
        &r,
        401,
        "step-up-required",
        0,
        "big payment, basic acr, old auth",
    );
    // RFC 9470 §3, to the letter (both requirements unmet).
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required\", acr_values=\"urn:bank:acr:sca\", max_age=\"300\"")
    );
    // The right acr but an old authentication: only max_age is asked for.
    let stale = b.token(
        "alice",
        json!({"acr": "urn:bank:acr:sca", "auth_time": now() - 3600}),
    );
    let r = b
        .send(Method::POST, "/v1/payments", &stale, Some(big.clone()))
        .await;
    refused(&b, &r, 401, "step-up-required", 0, "stale");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"insufficient_user_authentication\", error_description=\"More recent authentication is required\", max_age=\"300\"")
    );
    // A small payment needs no step-up.
    let small = payment("20.00", "EUR", "DE02100100109307118603");
    assert_eq!(
        b.send(Method::POST, "/v1/payments", &basic, Some(small))
            .await
            .status,
        200
    );
    // Stepped up: succeeds.
    let strong = b.token(
        "alice",
        json!({"acr": "urn:bank:acr:sca", "auth_time": now() - 10}),
    );
    let r = b.send(Method::POST, "/v1/payments", &strong, Some(big)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.h.upstream.count(), 2);
}

#[tokio::test]
async fn bodies_rules_read_are_strict_json_within_limits() {
    let b = Bank::start(
        r#"
[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
max_body = 1024
authz = { rules = ["body.debtor_account in principal.claims.accounts"] }
"#,
    )
    .await;
    let alice = b.token("alice", json!({"accounts": ["acc-a1"]}));
    let auth = format!("Bearer {alice}");
    let c: Client = b.h.client();
    let post = |body: String| {
        let c = c.clone();
        let auth = auth.clone();
        async move {
            c.send(
                Method::POST,
                "/v1/payments",
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    // Duplicate keys: the gateway would check one, the backend use the other.
    let r = post(r#"{"debtor_account":"acc-a1","debtor_account":"acc-b1"}"#.into()).await;
    refused(&b, &r, 400, "invalid-json", 0, "duplicate key");
    assert_eq!(r.json()["pointer"], "/debtor_account");
    assert!(!r.text().contains("acc-b1"), "the value is never echoed");
    let r = post(format!(
        "{{\"debtor_account\":\"acc-a1\",\"pad\":\"{}\"}}",
        "x".repeat(2000)
    ))
    .await;
    refused(&b, &r, 413, "body-too-large", 0, "over max_body");
    let r = post("{\"debtor_account\":".into()).await;
    refused(&b, &r, 400, "invalid-json", 0, "truncated");
    let r = post(format!("{}1{}", "[".repeat(40), "]".repeat(40))).await;
    refused(&b, &r, 400, "invalid-json", 0, "too deep");
    // Not JSON at all: the rule has no body to read, and refuses.
    let r = c
        .send(
            Method::POST,
            "/v1/payments",
            &[("authorization", auth.as_str()), ("content-type", "text/plain")],
            "{\"debtor_account\":\"acc-a1\"}",
        )
        .await;
    refused(&b, &r, 403, "forbidden", 0, "text/plain");
    let r = post(r#"{"debtor_account":"acc-a1"}"#.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
