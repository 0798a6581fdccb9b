//! Unit tests of authorization: rules compiled at load (and their
//! problems), object-level decisions, query/header ambiguity, RFC 9396
//! matching with exact decimals, RFC 9470 challenges, response views.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde_json::{json, Value};

use super::config::{AuthzChoice, AuthzConfig, StepUpConfig, ViewConfig};
use super::rar::Decimal;
use super::rules::Input;
use super::*;
use crate::authn::Principal;

const NOW: i64 = 1_800_000_000;

fn customer(sub: &str, accounts: &[&str]) -> Arc<Principal> {
    Arc::new(Principal::for_tests(
        "bank-idp",
        json!({"sub": sub, "client_id": "app", "scope": "accounts:read",
               "accounts": accounts, "acr": "urn:bank:acr:basic", "auth_time": NOW - 600}),
    ))
}

fn route(cfg: AuthzConfig, params: &[&str]) -> Result<RouteAuthz, Vec<ConfigProblem>> {
    let params: Vec<String> = params.iter().map(|s| s.to_string()).collect();
    RouteAuthz::from_config(
        "routes[0].authz",
        Some(&AuthzChoice::Rules(Box::new(cfg))),
        false,
        &params,
        &Authz::empty(),
    )
}

fn rules(r: &[&str]) -> AuthzConfig {
    AuthzConfig {
        rules: r.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

struct Req {
    params: Vec<(Arc<str>, String)>,
    query: Option<String>,
    headers: HeaderMap,
    body: Option<Value>,
}

impl Req {
    fn path(params: &[(&str, &str)]) -> Self {
        Self {
            params: params
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.to_string()))
                .collect(),
            query: None,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    fn input<'a>(&'a self, p: Option<&'a Principal>) -> Input<'a> {
        Input {
            principal: p,
            method: "GET",
            params: &self.params,
            query: self.query.as_deref(),
            headers: &self.headers,
            body: self.body.as_ref(),
            now: NOW,
        }
    }
}

fn decide(r: &RouteAuthz, p: &Arc<Principal>, req: &Req) -> Result<Permit, AuthzError> {
    let authz = Authz::empty();
    let input = req.input(Some(p));
    let fut = authz.authorize(r, Some(p), &input, Duration::ZERO);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(fut)
}

fn messages(e: Vec<ConfigProblem>) -> Vec<String> {
    e.into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

#[test]
fn a_route_that_authenticates_must_say_what_it_authorises() {
    let e = RouteAuthz::from_config("routes[2].authz", None, false, &[], &Authz::empty()).unwrap_err();
    assert!(messages(e)[0].starts_with("routes[2].authz: required on a route that authenticates"));
    let named = AuthzChoice::Named("everyone".into());
    let e =
        RouteAuthz::from_config("routes[2].authz", Some(&named), false, &[], &Authz::empty()).unwrap_err();
    assert!(messages(e)[0].contains("`everyone` is not a choice"));
    let e = route(AuthzConfig::default(), &[]).unwrap_err();
    assert!(messages(e)[0].contains("an empty [routes.authz] requires nothing"));
    let named = AuthzChoice::Named("authenticated".into());
    let e = RouteAuthz::from_config("routes[2].authz", Some(&named), true, &[], &Authz::empty()).unwrap_err();
    assert!(messages(e)[0].contains("authn = \"none\""));
    assert!(RouteAuthz::from_config("r", Some(&named), false, &[], &Authz::empty()).is_ok());
    assert!(RouteAuthz::from_config("r", None, true, &[], &Authz::empty()).is_ok());
}

#[test]
fn rules_are_checked_at_load_with_their_key_paths() {
    let cases = [
        (
            "path.account_id in principal.claims.accounts &&",
            "not a valid CEL expression at 1:48: Syntax error",
        ),
        (
            "path.acount_id == principal.sub",
            "`path.acount_id` is not a parameter of the route's path (it has account_id)",
        ),
        ("user.id == principal.sub", "unknown variable `user`"),
        (
            "path.account_id in entitlements.accounts",
            "no [[entitlements]] source named `accounts`",
        ),
        ("", "an empty expression"),
    ];
    for (rule, want) in cases {
        let e = route(rules(&["principal.sub != ''", rule]), &["account_id"]).unwrap_err();
        let m = messages(e);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains(want), "{rule}: {m:?}");
        assert!(m[0].starts_with("routes[0].authz.rules[1]"), "{m:?}");
    }
    // Comprehension variables are bound, not unknown.
    assert!(route(
        rules(&["principal.claims.accounts.exists(a, a == path.account_id)"]),
        &["account_id"]
    )
    .is_ok());
}

#[test]
fn object_level_rule_allows_the_owner_and_refuses_everyone_else() {
    let r = route(
        rules(&["path.account_id in principal.claims.accounts"]),
        &["account_id"],
    )
    .unwrap();
    let alice = customer("alice", &["acc-a1", "acc-a2"]);
    let bob = customer("bob", &["acc-b1"]);
    let own = Req::path(&[("account_id", "acc-a2")]);
    let permit = decide(&r, &alice, &own).unwrap();
    assert_eq!(permit.principal().and_then(|p| p.subject()), Some("alice"));
    for id in ["acc-b1", "ACC-A2", "acc-a2 ", "acc-a", ""] {
        let e = decide(&r, &alice, &Req::path(&[("account_id", id)])).unwrap_err();
        assert!(matches!(e, AuthzError::RuleFalse { index: 0, .. }), "{id}: {e:?}");
        assert_eq!(e.class(), AuthzClass::Forbidden);
    }
    assert!(decide(&r, &bob, &own).is_err());
}

#[test]
fn a_rule_that_cannot_be_evaluated_refuses() {
    let r = route(
        rules(&["principal.claims.accounts.exists(a, a == body.debtor)"]),
        &[],
    )
    .unwrap();
    let alice = customer("alice", &["acc-a1"]);
    let mut req = Req::path(&[]);
    // No body: `body.debtor` is an error, hence a refusal.
    assert!(matches!(
        decide(&r, &alice, &req),
        Err(AuthzError::RuleError { .. })
    ));
    req.body = Some(json!({"debtor": "acc-a1"}));
    assert!(decide(&r, &alice, &req).is_ok());
    req.body = Some(json!({"debtor": 7}));
    assert!(decide(&r, &alice, &req).is_err());
    // A rule yielding a non-boolean refuses.
    let r = route(rules(&["principal.sub"]), &[]).unwrap();
    assert!(matches!(
        decide(&r, &alice, &req),
        Err(AuthzError::RuleError { .. })
    ));
}

#[test]
fn repeated_query_parameters_and_headers_a_rule_reads_are_refused() {
    let r = route(
        rules(&[
            "query.account in principal.claims.accounts",
            "headers['x-customer'] == principal.sub",
        ]),
        &[],
    )
    .unwrap();
    let alice = customer("alice", &["acc-a1"]);
    let mut req = Req::path(&[]);
    req.headers.insert("x-customer", "alice".parse().unwrap());
    req.query = Some("account=acc-a1&other=1&other=2".into());
    assert!(decide(&r, &alice, &req).is_ok(), "unrelated repeats are fine");
    req.query = Some("account=acc%2Da1".into());
    assert!(decide(&r, &alice, &req).is_ok(), "percent-decoded");
    for q in [
        "account=acc-a1&account=acc-b1",
        "account=acc-a1&ACCOUNT=acc-b1",
        "account=%FF",
    ] {
        req.query = Some(q.into());
        let e = decide(&r, &alice, &req).unwrap_err();
        assert_eq!(e.class(), AuthzClass::AmbiguousParameter, "{q}");
    }
    req.query = Some("account=acc-a1".into());
    req.headers.append("x-customer", "bob".parse().unwrap());
    assert_eq!(
        decide(&r, &alice, &req).unwrap_err().class(),
        AuthzClass::AmbiguousParameter
    );
}

#[test]
fn function_level_scopes_roles_and_clients() {
    let alice = customer("alice", &[]);
    let req = Req::path(&[]);
    let r = route(
        AuthzConfig {
            scopes: vec!["accounts:read".into(), "payments:write".into()],
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    let e = decide(&r, &alice, &req).unwrap_err();
    assert_eq!(e, AuthzError::MissingScope("payments:write".into()));
    let refusal = AuthzRefusal {
        error: e,
        scheme: "Bearer",
    };
    assert_eq!(
        refusal.challenge().unwrap(),
        "Bearer error=\"insufficient_scope\", scope=\"payments:write\""
    );
    let r = route(
        AuthzConfig {
            any_scopes: vec!["accounts:read".into(), "accounts:read-basic".into()],
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    assert!(decide(&r, &alice, &req).is_ok());
    let r = route(
        AuthzConfig {
            roles: vec!["operator".into()],
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    assert!(matches!(
        decide(&r, &alice, &req),
        Err(AuthzError::MissingRole(_))
    ));
    let operator = Arc::new(Principal::for_tests(
        "bank-idp",
        json!({"sub": "op", "roles": ["operator"]}),
    ));
    assert!(decide(&r, &operator, &req).is_ok());
    let r = route(
        AuthzConfig {
            clients: vec!["partner-a".into()],
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    assert_eq!(
        decide(&r, &alice, &req).unwrap_err(),
        AuthzError::ClientNotAllowed("app".into())
    );
}

#[test]
fn decimals_compare_exactly() {
    let d = |s: &str| Decimal::parse(s).unwrap();
    assert!(d("123.50") == d("123.5"));
    assert!(d("0123.5") == d("123.50"));
    assert!(d("123.49") < d("123.5"));
    assert!(d("0.05") < d("0.1"));
    assert!(d("1000") > d("999.999999999999999999"));
    assert!(d("10000000000000000000000000001") > d("10000000000000000000000000000.99"));
    for bad in ["", "-1", "1e3", "1.", ".5", "+1", "1,5", " 1", "0x10", "१२"] {
        assert!(Decimal::parse(bad).is_none(), "{bad}");
    }
    assert_eq!(Decimal::of(&json!(123.5)), Some(d("123.5")));
    assert_eq!(Decimal::of(&json!(42)), Some(d("42")));
    assert_eq!(Decimal::of(&json!(true)), None);
}

fn rar_principal(details: Value) -> Arc<Principal> {
    Arc::new(Principal::for_tests(
        "bank-idp",
        json!({"sub": "alice", "authorization_details": details}),
    ))
}

#[test]
fn payments_must_fall_within_the_authorization_details() {
    // RFC 9396 §2.1's example detail.
    let detail = json!([{
        "type": "payment_initiation",
        "locations": ["https://example.com/payments"],
        "instructedAmount": {"currency": "EUR", "amount": "123.50"},
        "creditorName": "Merchant A",
        "creditorAccount": {"iban": "DE02100100109307118603"},
        "remittanceInformationUnstructured": "Ref Number Merchant"
    }]);
    let r = route(
        AuthzConfig {
            authorization_details: Some(config::RarConfig {
                detail_type: "payment_initiation".into(),
                matches: vec![],
            }),
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    assert!(r.needs_body());
    let alice = rar_principal(detail.clone());
    let payment = |amount: Value, currency: &str, iban: &str| {
        let mut req = Req::path(&[]);
        req.body = Some(json!({
            "instructedAmount": {"currency": currency, "amount": amount},
            "creditorAccount": {"iban": iban},
        }));
        req
    };
    assert!(decide(
        &r,
        &alice,
        &payment(json!("123.50"), "EUR", "DE02100100109307118603")
    )
    .is_ok());
    assert!(decide(
        &r,
        &alice,
        &payment(json!("100"), "EUR", "de02 1001 0010 9307 1186 03")
    )
    .is_ok());
    assert!(decide(
        &r,
        &alice,
        &payment(json!(99.99), "EUR", "DE02100100109307118603")
    )
    .is_ok());
    for (amount, currency, iban) in [
        (json!("123.51"), "EUR", "DE02100100109307118603"),
        (json!("1e2"), "EUR", "DE02100100109307118603"),
        (json!("-5"), "EUR", "DE02100100109307118603"),
        (json!("100"), "USD", "DE02100100109307118603"),
        (json!("100"), "EUR", "DE89370400440532013000"),
    ] {
        let e = decide(&r, &alice, &payment(amount.clone(), currency, iban)).unwrap_err();
        assert_eq!(
            e.class(),
            AuthzClass::AuthorizationDetails,
            "{amount} {currency} {iban}"
        );
    }
    // Without details, or with details of another type: refused.
    let none = Arc::new(Principal::for_tests("bank-idp", json!({"sub": "alice"})));
    assert!(decide(&r, &none, &payment(json!("1"), "EUR", "DE02100100109307118603")).is_err());
    let other = rar_principal(json!([{"type": "account_information", "actions": ["read"]}]));
    assert!(decide(&r, &other, &payment(json!("1"), "EUR", "DE02100100109307118603")).is_err());
    // Any one detail that covers it suffices.
    let two = rar_principal(json!([
        {"type": "payment_initiation", "instructedAmount": {"currency": "EUR", "amount": "10"},
         "creditorAccount": {"iban": "DE02100100109307118603"}},
        detail[0].clone()
    ]));
    assert!(decide(&r, &two, &payment(json!("50"), "EUR", "DE02100100109307118603")).is_ok());
}

#[test]
fn step_up_challenges_are_exactly_rfc_9470s() {
    let r = route(
        AuthzConfig {
            step_up: vec![StepUpConfig {
                when: Some("double(body.amount) > 1000.0".into()),
                acr_values: vec!["urn:bank:acr:sca".into()],
                max_age: None,
            }],
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    let alice = customer("alice", &[]);
    let mut req = Req::path(&[]);
    req.body = Some(json!({"amount": "20.00"}));
    assert!(decide(&r, &alice, &req).is_ok(), "below the threshold");
    req.body = Some(json!({"amount": "1500.00"}));
    let e = decide(&r, &alice, &req).unwrap_err();
    assert_eq!(e.class(), AuthzClass::StepUp);
    let c = AuthzRefusal {
        error: e,
        scheme: "Bearer",
    }
    .challenge()
    .unwrap();
    assert_eq!(
        c,
        "Bearer error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required\", acr_values=\"urn:bank:acr:sca\""
    );
    let strong = Arc::new(Principal::for_tests(
        "bank-idp",
        json!({"sub": "alice", "acr": "urn:bank:acr:sca", "auth_time": NOW - 5}),
    ));
    assert!(decide(&r, &strong, &req).is_ok());
    // A condition that cannot be evaluated counts as met.
    req.body = Some(json!({"amount": "lots"}));
    assert_eq!(decide(&r, &alice, &req).unwrap_err().class(), AuthzClass::StepUp);

    let r = route(
        AuthzConfig {
            step_up: vec![StepUpConfig {
                when: None,
                acr_values: vec![],
                max_age: Some(Duration::from_secs(300)),
            }],
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    let e = decide(&r, &alice, &req).unwrap_err();
    let c = AuthzRefusal {
        error: e,
        scheme: "DPoP",
    }
    .challenge()
    .unwrap();
    assert_eq!(
        c,
        "DPoP error=\"insufficient_user_authentication\", error_description=\"More recent authentication is required\", max_age=\"300\""
    );
    assert!(decide(&r, &strong, &req).is_ok());
    let no_time = Arc::new(Principal::for_tests("bank-idp", json!({"sub": "alice"})));
    assert!(decide(&r, &no_time, &req).is_err(), "no auth_time: step up");
}

#[test]
fn views_allow_remove_and_mask_by_scope() {
    let view = |cfg: ViewConfig| views::View::from_config("v", &cfg).unwrap();
    let doc = || {
        json!({"accounts": [
            {"id": "a1", "iban": "DE89370400440532013000", "owner": {"name": "Alice", "dob": "1980-01-01"}, "balance": 10},
            {"id": "a2", "iban": "not an iban", "owner": {"name": "Alice", "dob": "1980-01-01"}, "balance": 20}
        ], "next": null})
    };
    let masked = view(ViewConfig {
        scope: Some("accounts:read-basic".into()),
        mask: [("/accounts/*/iban".to_string(), crate::redact::MaskStyle::Iban)].into(),
        remove: vec!["/accounts/*/owner/dob".into(), "/accounts/*/balance".into()],
        ..Default::default()
    });
    let mut d = doc();
    masked.apply(&mut d);
    assert_eq!(
        d,
        json!({"accounts": [
            {"id": "a1", "iban": "DE89 **** **** **** 3000", "owner": {"name": "Alice"}},
            {"id": "a2", "iban": "****", "owner": {"name": "Alice"}}
        ], "next": null})
    );
    let allow = view(ViewConfig {
        allow: vec!["/accounts/*/id".into(), "/accounts/*/owner".into()],
        remove: vec!["/accounts/1".into()],
        ..Default::default()
    });
    let mut d = doc();
    allow.apply(&mut d);
    assert_eq!(
        d,
        json!({"accounts": [{"id": "a1", "owner": {"name": "Alice", "dob": "1980-01-01"}}]})
    );
    assert!(masked.applies(|s| s == "accounts:read-basic"));
    assert!(!masked.applies(|s| s == "accounts:read"));
    assert!(views::Pattern::parse("accounts").is_err());
    assert!(views::Pattern::parse("/a~2b").is_err());
}

#[test]
fn the_first_view_the_caller_qualifies_for_applies_and_none_refuses() {
    let r = route(
        AuthzConfig {
            views: vec![
                ViewConfig {
                    scope: Some("accounts:read".into()),
                    ..Default::default()
                },
                ViewConfig {
                    scope: Some("accounts:read-basic".into()),
                    mask: [("/iban".to_string(), crate::redact::MaskStyle::Iban)].into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    let req = Req::path(&[]);
    let full = customer("alice", &[]);
    assert_eq!(
        decide(&r, &full, &req).unwrap().view(),
        None,
        "a full view streams"
    );
    let basic = Arc::new(Principal::for_tests(
        "i",
        json!({"sub": "b", "scope": "accounts:read-basic"}),
    ));
    assert_eq!(decide(&r, &basic, &req).unwrap().view(), Some(1));
    let neither = Arc::new(Principal::for_tests(
        "i",
        json!({"sub": "c", "scope": "payments:write"}),
    ));
    assert_eq!(decide(&r, &neither, &req).unwrap_err(), AuthzError::NoView);
}

#[test]
fn a_condition_without_variables_is_still_evaluated() {
    let r = route(
        AuthzConfig {
            step_up: vec![StepUpConfig {
                when: Some("1 > 2".into()),
                acr_values: vec!["urn:bank:acr:sca".into()],
                max_age: None,
            }],
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    assert!(decide(&r, &customer("alice", &[]), &Req::path(&[])).is_ok());
}
