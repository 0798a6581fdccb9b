//! Authorization decisions per second: a route that only needs an
//! authenticated caller, a BOLA rule on a path parameter against a static
//! entitlement table, and a payment (rule on the body, RFC 9396 details,
//! a step-up condition) with its JSON body parsed strictly first.
//!
//! Run: `cargo bench -p rampart --bench authz`. Numbers go to
//! docs/benchmarks.md; nothing here asserts a time.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jsonwebtoken::Algorithm;
use rampart::authn::jwt::VerdictCache;
use rampart::authn::sign::{unix_now, SigningKey};
use rampart::authn::{Issuer, IssuerConfig, IssuerPolicy, Principal};
use rampart::authz::rules::Input;
use rampart::authz::{Authz, AuthzChoice, RouteAuthz};
use rampart::config::LoadedConfig;
use serde_json::json;

const POLICY: &str = r#"
[[entitlements]]
name = "accounts"
static = { "cust-001" = ["acc-1001", "acc-1002"], "cust-002" = ["acc-1003"] }
"#;

fn principal(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Arc<Principal> {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, key.jwks().to_string()).unwrap();
    let cfg: IssuerConfig = toml::from_str(&format!(
        "name = \"bench\"\nissuer = \"https://idp.bench\"\naudiences = [\"api\"]\njwks_file = \"{}\"\nalgorithms = [\"ES256\"]\n",
        jwks.display()
    ))
    .unwrap();
    let policy = IssuerPolicy::from_config(&cfg, "issuers[0]").unwrap();
    let issuer = Issuer::from_policy(policy, rampart::clock::SystemClock::shared(), "issuers[0]")
        .unwrap()
        .with_cache(VerdictCache::new(8));
    let token = key
        .mint(&json!({
            "iss": "https://idp.bench", "aud": "api", "sub": "cust-001", "client_id": "app",
            "scope": "accounts:read payments:write", "iat": unix_now(), "exp": unix_now() + 3600,
            "acr": "urn:bank:acr:sca", "auth_time": unix_now(),
            "authorization_details": [{"type": "payment_initiation",
                "instructedAmount": {"currency": "EUR", "amount": "5000.00"},
                "creditorAccount": {"iban": "DE89370400440532013000"}}],
        }))
        .unwrap();
    rt.block_on(issuer.verify(&token)).unwrap()
}

fn route(authz: &Authz, toml_authz: &str, params: &[&str]) -> RouteAuthz {
    #[derive(serde::Deserialize)]
    struct W {
        authz: AuthzChoice,
    }
    let w: W = toml::from_str(toml_authz).unwrap();
    let params: Vec<String> = params.iter().map(|s| s.to_string()).collect();
    RouteAuthz::from_config("routes[0].authz", Some(&w.authz), false, &params, authz).unwrap()
}

fn decisions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = principal(&rt, dir.path());
    let loaded = LoadedConfig::from_text(&dir.path().join("p.toml"), POLICY.into()).unwrap();
    let authz = Authz::from_config(&loaded.config, &loaded, None).unwrap();
    let headers = http::HeaderMap::new();
    let mut g = c.benchmark_group("authz decide");
    g.throughput(Throughput::Elements(1));

    let open = route(&authz, "authz = \"authenticated\"", &[]);
    let none: Vec<(Arc<str>, String)> = Vec::new();
    g.bench_function("authenticated", |b| {
        let input = Input {
            principal: Some(&p),
            method: "GET",
            params: &none,
            query: None,
            headers: &headers,
            body: None,
            now: unix_now(),
        };
        b.iter(|| {
            black_box(
                rt.block_on(authz.authorize(&open, Some(&p), &input, Duration::ZERO))
                    .unwrap(),
            )
        })
    });

    let bola = route(
        &authz,
        "authz = { scopes = [\"accounts:read\"], rules = [\"path.account_id in entitlements.accounts\"] }",
        &["account_id"],
    );
    let params: Vec<(Arc<str>, String)> = vec![(Arc::from("account_id"), "acc-1002".into())];
    g.bench_function("BOLA rule on a path parameter (static entitlements)", |b| {
        let input = Input {
            principal: Some(&p),
            method: "GET",
            params: &params,
            query: None,
            headers: &headers,
            body: None,
            now: unix_now(),
        };
        b.iter(|| {
            black_box(
                rt.block_on(authz.authorize(&bola, Some(&p), &input, Duration::ZERO))
                    .unwrap(),
            )
        })
    });

    let payment = route(
        &authz,
        r#"[authz]
scopes = ["payments:write"]
rules = ["body.debtor_account in entitlements.accounts"]
[authz.authorization_details]
type = "payment_initiation"
[[authz.authorization_details.match]]
request = "/instructed_amount/amount"
detail = "/instructedAmount/amount"
compare = "at_most"
[[authz.authorization_details.match]]
request = "/instructed_amount/currency"
detail = "/instructedAmount/currency"
[[authz.authorization_details.match]]
request = "/creditor/iban"
detail = "/creditorAccount/iban"
compare = "iban"
[[authz.step_up]]
when = "double(body.instructed_amount.amount) > 1000.0"
acr_values = ["urn:bank:acr:sca"]
"#,
        &[],
    );
    let body = br#"{"debtor_account":"acc-1001","instructed_amount":{"amount":"2500.00","currency":"EUR"},"creditor":{"name":"ACME Energy GmbH","iban":"DE89370400440532013000"},"remittance_information":"Invoice 2026-117"}"#;
    g.bench_function(
        "payment: strict JSON parse + body rule + RFC 9396 + step-up condition",
        |b| {
            b.iter(|| {
                let doc =
                    rampart::body::json::parse(body, &rampart::body::json::JsonLimits::default()).unwrap();
                let input = Input {
                    principal: Some(&p),
                    method: "POST",
                    params: &none,
                    query: None,
                    headers: &headers,
                    body: Some(&doc),
                    now: unix_now(),
                };
                black_box(
                    rt.block_on(authz.authorize(&payment, Some(&p), &input, Duration::ZERO))
                        .unwrap(),
                )
            })
        },
    );
    g.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
