//! Token attacks against a route that needs a JWT, through the real
//! gateway: each answers 401 (400 for a malformed request) with
//! problem+json and `WWW-Authenticate` challenges that never say which
//! check failed; none reaches the upstream. The precise cause is counted on
//! `/metrics` (`rampart_authn_failures_total{cause}`) for operators.

use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;
use jsonwebtoken::Algorithm;
use rampart::authn::sign::SigningKey;
use rampart_testkit::{Alpn, Client, Harness, RecordingUpstream, TestResponse};
use rustls_pki_types::pem::PemObject;
use serde_json::{json, Value};

const ISS: &str = "https://idp.bank.test";
const AUD: &str = "https://api.bank.test";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A gateway whose `/v1/accounts` needs a token from `bank-idp` (keys in a
/// JWKS file), `/v1/payments` a sender-constrained one, and whose
/// listener asks for (but does not require) a client certificate.
struct Idp {
    h: Harness,
    key: SigningKey,
}

async fn start(extra_route: &str) -> Idp {
    start_signed_by(SigningKey::generate(Algorithm::ES256).unwrap(), "", extra_route).await
}

/// [`start`] with the issuer's key `key` and `issuer_extra` (e.g. its
/// `algorithms`) in its section.
async fn start_signed_by(key: SigningKey, issuer_extra: &str, extra_route: &str) -> Idp {
    let jwks = key.jwks().to_string();
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        r#"{base}
# These tests send many bad tokens from one address; brute-force bans are
# tested in revocation.rs.
[brute_force]
enabled = false

[[issuers]]
name = "bank-idp"
issuer = "{ISS}"
audiences = ["{AUD}"]
jwks_file = "jwks.json"
{issuer_extra}

[[routes]]
id = "accounts-list"
path = "/v1/accounts"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = "authenticated"

[[routes]]
id = "payment-create"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = "authenticated"
sender_constrained = true
{extra_route}
"#,
        base = rampart_testkit::base_policy(&upstream.url()).replace(
            "key = \"server.key\"\n",
            "key = \"server.key\"\nclient_auth = \"optional\"\nclient_ca = \"ca.pem\"\n",
        ),
    );
    let h = Harness::start_with_files(upstream, &policy, &[("jwks.json", &jwks)]).await;
    Idp { h, key }
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "customer-a", "client_id": "fintech-42",
        "scope": "accounts:read", "iat": now(), "exp": now() + 300,
    })
}

async fn call(c: &Client, method: Method, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    c.send(method, path, headers, String::new()).await
}

async fn get_with(c: &Client, token: &str) -> TestResponse {
    let auth = format!("Bearer {token}");
    call(c, Method::GET, "/v1/accounts", &[("authorization", &auth)]).await
}

/// Every `WWW-Authenticate` value of a response.
fn challenges(r: &TestResponse) -> Vec<String> {
    r.headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// 401, problem+json, both challenges, nothing about the cause.
fn assert_refused(r: &TestResponse, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let challenges = challenges(r);
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with("Bearer realm=\"rampart\"")),
        "{what}: {challenges:?}"
    );
    assert!(
        challenges.iter().any(|c| c.starts_with("DPoP algs=")),
        "{what}: {challenges:?}"
    );
    // (The DPoP challenge lists the accepted algorithms: `algs="…"`.)
    let everything = format!("{challenges:?}{}", r.text())
        .to_lowercase()
        .replace("dpop algs=", "dpop ");
    for leak in ["expired", "signature", "kid", "audience", "issuer", "alg", "jku"] {
        assert!(
            !everything.contains(leak),
            "{what}: `{leak}` told to the client: {everything}"
        );
    }
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_the_upstream_gets_the_identity_not_the_token() {
    let idp = start("").await;
    let c = idp.h.client();
    let token = idp.key.mint(&claims()).unwrap();
    let r = get_with(&c, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = idp.h.upstream.requests();
    let last = seen.last().unwrap();
    assert!(
        last.headers.get("authorization").is_none(),
        "the token went upstream"
    );
    assert_eq!(last.headers["x-authenticated-subject"], "customer-a");
    assert_eq!(last.headers["x-authenticated-client-id"], "fintech-42");
    assert_eq!(last.headers["x-authenticated-scopes"], "accounts:read");
    // A client cannot assert an identity itself.
    let r = call(
        &c,
        Method::GET,
        "/v1/accounts",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-authenticated-subject", "customer-b"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let last = idp.h.upstream.requests().pop().unwrap();
    assert_eq!(last.headers["x-authenticated-subject"], "customer-a");
}

#[tokio::test]
async fn no_token_is_401_with_bare_challenges() {
    let idp = start("").await;
    let r = idp.h.client().get("/v1/accounts").await;
    assert_refused(&r, "no token");
    assert_eq!(r.json()["type"], "https://rampart.dev/problems/unauthenticated");
    assert!(!r
        .headers
        .get_all("www-authenticate")
        .iter()
        .any(|v| v.to_str().unwrap().contains("error=")));
    assert_eq!(idp.h.upstream.count(), 0);
}

/// RS/HS confusion: a token for [`claims`] under `kid`, signed HS256
/// with `secret` (the issuer's public key, as an attacker has it).
fn hs256_forgery(kid: &str, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "typ": "at+jwt", "kid": kid})
            .to_string()
            .as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    format!(
        "{input}.{}",
        b64(aws_lc_rs::hmac::sign(&k, input.as_bytes()).as_ref())
    )
}

#[tokio::test]
async fn forged_altered_and_stale_tokens_are_refused() {
    let idp = start("").await;
    let c = idp.h.client();
    let good = idp.key.mint(&claims()).unwrap();
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let header = |h: Value| b64(h.to_string().as_bytes());
    let kid = idp.key.kid().to_string();
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        idp.key.mint(&c).unwrap()
    };
    let mut without_exp = claims();
    without_exp.as_object_mut().unwrap().remove("exp");
    let pubkey = serde_json::to_string(&idp.key.public_jwk()).unwrap();
    let hs = hs256_forgery(&kid, pubkey.as_bytes());
    let mut jku_header = serde_json::Map::new();
    jku_header.insert("kid".into(), json!(kid));
    jku_header.insert("jku".into(), json!("https://attacker.example/jwks.json"));
    let mut x5u_header = serde_json::Map::new();
    x5u_header.insert("kid".into(), json!(kid));
    x5u_header.insert("x5u".into(), json!("https://attacker.example/cert.pem"));
    let mut kid_traversal = serde_json::Map::new();
    kid_traversal.insert("kid".into(), json!("../../../../etc/passwd"));
    let mut kid_sql = serde_json::Map::new();
    kid_sql.insert("kid".into(), json!("x' UNION SELECT 'secret' --"));
    let other_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!("{}.{payload}.", header(json!({"alg": "none", "kid": kid}))),
        ),
        (
            "alg none, signature kept",
            format!("{}.{payload}.{sig}", header(json!({"alg": "none", "kid": kid}))),
        ),
        ("HS256 with the public key as secret", hs),
        (
            "jku pointing elsewhere",
            idp.key.sign(jku_header, &claims()).unwrap(),
        ),
        (
            "x5u pointing elsewhere",
            idp.key.sign(x5u_header, &claims()).unwrap(),
        ),
        (
            "kid path traversal",
            idp.key.sign(kid_traversal, &claims()).unwrap(),
        ),
        ("kid SQL injection", idp.key.sign(kid_sql, &claims()).unwrap()),
        ("signed by another key under our kid", {
            let mut h = serde_json::Map::new();
            h.insert("kid".into(), json!(kid));
            other_key.sign(h, &claims()).unwrap()
        }),
        ("signature stripped", format!("{head}.{payload}.")),
        (
            "signature truncated",
            format!("{head}.{payload}.{}", &sig[..sig.len() / 2]),
        ),
        (
            "payload altered",
            format!(
                "{head}.{}.{sig}",
                with("sub", json!("customer-b")).split('.').nth(1).unwrap()
            ),
        ),
        ("expired", with("exp", json!(now() - 60))),
        ("not yet valid", with("nbf", json!(now() + 3600))),
        ("issued in the future", with("iat", json!(now() + 3600))),
        ("wrong issuer", with("iss", json!("https://evil.example"))),
        (
            "wrong audience",
            with("aud", json!("https://other-api.bank.test")),
        ),
        ("no exp", idp.key.mint(&without_exp).unwrap()),
    ];
    for (what, token) in &cases {
        let r = get_with(&c, token).await;
        assert_refused(&r, what);
        assert_eq!(
            r.json()["type"],
            "https://rampart.dev/problems/invalid-token",
            "{what}"
        );
    }
    assert_eq!(idp.h.upstream.count(), 0, "an attack reached the upstream");
    // Operators see the causes.
    let m = idp.h.metrics().await;
    for cause in [
        "authn.expired",
        "authn.bad_signature",
        "authn.wrong_audience",
        "authn.alg_none",
    ] {
        assert!(
            m.contains(&format!("cause=\"{cause}\"")),
            "{cause} not counted:\n{m}"
        );
    }
}

/// The classic RS/HS key confusion, through the gateway: the issuer's
/// JWKS holds an RSA key and allows RS256; a token signed HS256 with that
/// public key, in every form an attacker could take it (PEM text, DER, the
/// JWK's `n`, the JWKS document), is an invalid token, and nothing
/// reaches the upstream. A genuine RS256 token passes.
#[tokio::test]
async fn rs256_issuer_refuses_hs256_signed_with_its_public_key() {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;
    let rsa = SigningKey::generate(Algorithm::RS256).unwrap();
    let idp = start_signed_by(rsa, "algorithms = [\"RS256\"]", "").await;
    let c = idp.h.client();
    let kid = idp.key.kid().to_string();
    // The public key as the attacker finds it.
    let pkcs8 =
        rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(idp.key.to_pkcs8_pem().unwrap().as_bytes())
            .unwrap();
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()).unwrap();
    let spki: PublicKeyX509Der = pair.public_key().as_der().unwrap();
    let spki = spki.as_ref().to_vec();
    let pkcs1 = pair.public_key().as_ref().to_vec();
    let pem = |label: &str, der: &[u8]| {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let spki_pem = pem("PUBLIC KEY", &spki);
    let jwk = idp.key.public_jwk();
    let n = jwk["n"].as_str().unwrap().to_owned();
    let n_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&n)
        .unwrap();
    let jwks = idp.key.jwks().to_string();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", spki_pem.clone().into_bytes()),
        (
            "SPKI PEM without the last newline",
            spki_pem.trim_end().as_bytes().to_vec(),
        ),
        ("PKCS#1 PEM", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()),
        ("SPKI DER", spki),
        ("PKCS#1 DER", pkcs1),
        ("JWK n, raw", n_bytes),
        ("JWK n, base64url", n.into_bytes()),
        ("JWK JSON", serde_json::to_vec(&jwk).unwrap()),
        ("JWKS document", jwks.into_bytes()),
    ];
    for (what, secret) in &secrets {
        let r = get_with(&c, &hs256_forgery(&kid, secret)).await;
        assert_refused(&r, what);
        assert_eq!(
            r.json()["type"],
            "https://rampart.dev/problems/invalid-token",
            "{what}"
        );
        assert!(
            challenges(&r)
                .iter()
                .any(|c| c.starts_with("Bearer ") && c.contains("error=\"invalid_token\"")),
            "{what}: {:?}",
            challenges(&r)
        );
    }
    assert_eq!(idp.h.upstream.count(), 0, "a forgery reached the upstream");
    // The sanity call: the issuer's genuine RS256 token passes.
    let good = idp.key.mint(&claims()).unwrap();
    let head: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(good.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(head["alg"], "RS256");
    let r = get_with(&c, &good).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.h.upstream.count(), 1);
}

#[tokio::test]
async fn a_token_in_the_query_string_or_body_is_not_a_credential() {
    let idp = start("").await;
    let c = idp.h.client();
    let token = idp.key.mint(&claims()).unwrap();
    let r = c.get(&format!("/v1/accounts?access_token={token}")).await;
    assert_refused(&r, "token in the query");
    let r = c
        .send(
            Method::POST,
            "/v1/payments",
            &[("content-type", "application/x-www-form-urlencoded")],
            format!("access_token={token}"),
        )
        .await;
    assert_refused(&r, "token in the body");
    // Malformed Authorization: 400 invalid_request.
    let r = call(
        &c,
        Method::GET,
        "/v1/accounts",
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.header("www-authenticate").unwrap().contains("invalid_request"));
}

/// A DPoP-bound token, its proof key, and helpers to make proofs.
struct Bound {
    token: String,
    proof_key: SigningKey,
}

fn bound(idp: &Idp) -> Bound {
    let proof_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let mut c = claims();
    c["cnf"] = json!({ "jkt": proof_key.thumbprint() });
    Bound {
        token: idp.key.mint(&c).unwrap(),
        proof_key,
    }
}

async fn pay(c: &Client, token: &str, proof: Option<&str>, scheme: &str) -> TestResponse {
    let auth = format!("{scheme} {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(p) = proof {
        headers.push(("dpop", p));
    }
    c.send(Method::POST, "/v1/payments", &headers, "{}").await
}

/// [`assert_refused`], and the refusal names the proof, not the token
/// (RFC 9449 §7.1): problem type `invalid-dpop-proof`, the DPoP challenge
/// carries `error="invalid_dpop_proof"`, the Bearer one no error at all.
fn assert_invalid_dpop_proof(r: &TestResponse, what: &str) {
    assert_refused(r, what);
    let challenges = challenges(r);
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with("DPoP ") && c.contains("error=\"invalid_dpop_proof\"")),
        "{what}: {challenges:?}"
    );
    assert!(
        !challenges
            .iter()
            .any(|c| c.starts_with("Bearer ") && c.contains("error=")),
        "{what}: {challenges:?}"
    );
    assert_eq!(
        r.json()["type"],
        "https://rampart.dev/problems/invalid-dpop-proof",
        "{what}"
    );
}

#[tokio::test]
async fn a_dpop_bound_token_needs_a_fresh_proof_for_this_request() {
    let idp = start("").await;
    let c = idp.h.client();
    let b = bound(&idp);
    let url = c.url("/v1/payments");
    let proof = |method: &str, url: &str, token: Option<&str>| {
        b.proof_key.dpop_proof(method, url, token, now(), None).unwrap()
    };
    // Accepted with a valid proof.
    let good = proof("POST", &url, Some(&b.token));
    let r = pay(&c, &b.token, Some(&good), "DPoP").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(idp
        .h
        .upstream
        .requests()
        .last()
        .unwrap()
        .headers
        .get("dpop")
        .is_none());
    // The same proof again: a replay.
    let r = pay(&c, &b.token, Some(&good), "DPoP").await;
    assert_invalid_dpop_proof(&r, "replayed proof");
    // Without a proof; for another method; another URL; another token.
    let other = idp.key.mint(&claims()).unwrap();
    let mut private_jwk_header = serde_json::Map::new();
    private_jwk_header.insert("typ".into(), json!("dpop+jwt"));
    private_jwk_header.insert("jwk".into(), Value::Object(b.proof_key.private_jwk().unwrap()));
    let with_private = b
        .proof_key
        .sign(
            private_jwk_header,
            &json!({"jti": "x1", "htm": "POST", "htu": url, "iat": now(),
                    "ath": rampart::authn::dpop::access_token_hash(&b.token)}),
        )
        .unwrap();
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    for (what, p) in [
        ("no proof", None),
        ("htm mismatch", Some(proof("GET", &url, Some(&b.token)))),
        (
            "htu mismatch",
            Some(proof("POST", &c.url("/v1/accounts"), Some(&b.token))),
        ),
        ("ath mismatch", Some(proof("POST", &url, Some(&other)))),
        (
            "cnf mismatch (proof by another key)",
            Some(
                stranger
                    .dpop_proof("POST", &url, Some(&b.token), now(), None)
                    .unwrap(),
            ),
        ),
        ("private key in the proof jwk", Some(with_private)),
        (
            "stale proof",
            Some(
                b.proof_key
                    .dpop_proof("POST", &url, Some(&b.token), now() - 3600, None)
                    .unwrap(),
            ),
        ),
    ] {
        let r = pay(&c, &b.token, p.as_deref(), "DPoP").await;
        assert_invalid_dpop_proof(&r, what);
    }
    // The bound token presented as a plain bearer token.
    let r = pay(&c, &b.token, None, "Bearer").await;
    assert_refused(&r, "bound token as bearer");
    assert_eq!(idp.h.upstream.count(), 1);
}

#[tokio::test]
async fn a_plain_bearer_token_is_refused_where_the_route_requires_sender_constraint() {
    let idp = start("").await;
    let c = idp.h.client();
    let token = idp.key.mint(&claims()).unwrap();
    assert_eq!(get_with(&c, &token).await.status, 200, "the token itself is fine");
    let r = pay(&c, &token, None, "Bearer").await;
    assert_refused(&r, "bearer on a sender-constrained route");
    assert_eq!(idp.h.upstream.count(), 1);
}

#[tokio::test]
async fn a_certificate_bound_token_needs_its_client_certificate() {
    let idp = start("").await;
    let pki = &idp.h.pki;
    let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(pki.client_cert_pem.as_bytes()).unwrap();
    let mut c = claims();
    c["cnf"] = json!({ "x5t#S256": rampart::authn::thumbprint::x5t_s256(cert_der.as_ref()) });
    let token = idp.key.mint(&c).unwrap();
    let with_cert = Client::with_identity(
        &pki.ca_cert_pem,
        idp.h.addr(),
        Alpn::Http1,
        &pki.client_cert_pem,
        &pki.client_key_pem,
    );
    // With the certificate: accepted, also on the sender-constrained route.
    assert_eq!(get_with(&with_cert, &token).await.status, 200);
    assert_eq!(pay(&with_cert, &token, None, "Bearer").await.status, 200);
    // Stolen token, no certificate.
    let r = get_with(&idp.h.client(), &token).await;
    assert_refused(&r, "certificate-bound token without the certificate");
}

/// Limits keyed by the principal count each customer apart, whatever
/// address they come from; a tier limit applies to its tier only.
#[tokio::test]
async fn limits_follow_the_principal_and_its_tier() {
    let idp = start(
        r#"
[[routes]]
id = "transactions"
path = "/v1/transactions"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = "authenticated"

[[routes.rate_limit]]
name = "per-customer"
algorithm = "fixed_window"
limit = 2
per = "1h"
key = "subject"

[[routes.rate_limit]]
name = "bronze"
algorithm = "fixed_window"
limit = 1
per = "1h"
key = "client_id"
tier = "bronze"
"#,
    )
    .await;
    let token = |sub: &str, tier: &str| {
        let mut c = claims();
        c["sub"] = json!(sub);
        c["tier"] = json!(tier);
        idp.key.mint(&c).unwrap()
    };
    let (a, b, bronze) = (
        token("customer-a", "gold"),
        token("customer-b", "gold"),
        token("customer-c", "bronze"),
    );
    let here = idp.h.client();
    let elsewhere = Client::from_address(&idp.h.pki.ca_cert_pem, idp.h.addr(), "127.0.0.3".parse().unwrap());
    let get = |c: &Client, t: &str| {
        let (c, auth) = (c.clone(), format!("Bearer {t}"));
        async move {
            c.send(
                Method::GET,
                "/v1/transactions",
                &[("authorization", auth.as_str())],
                "",
            )
            .await
        }
    };
    assert_eq!(get(&here, &a).await.status, 200);
    assert_eq!(
        get(&elsewhere, &a).await.status,
        200,
        "same customer, another address"
    );
    let r = get(&here, &a).await;
    assert_eq!(r.status, 429);
    assert!(r.header("ratelimit").unwrap().starts_with("\"per-customer\";r=0"));
    let r = get(&here, &b).await;
    assert_eq!(r.status, 200, "another customer has their own counter");
    // A gold customer is not told about the bronze tier's limit.
    assert_eq!(r.header("ratelimit-policy"), Some("\"per-customer\";q=2;w=3600"));
    // The bronze tier's own, tighter limit.
    let r = get(&here, &bronze).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"per-customer\";q=2;w=3600, \"bronze\";q=1;w=3600")
    );
    let r = get(&here, &bronze).await;
    assert_eq!(r.status, 429);
    assert!(r.header("ratelimit").unwrap().starts_with("\"bronze\";r=0"));
}

/// A refusal to a request with a body arrives intact over HTTP/2: the
/// gateway drains the unread body (bounded) rather than resetting the
/// stream under the answer. curl is the witness: it reports a reset that
/// overtakes the answer as a stream error (exit 92).
#[tokio::test]
async fn a_refused_upload_still_gets_its_answer_over_http2() {
    let idp = start("").await;
    let body = idp.h.path("upload.json");
    std::fs::write(&body, "x".repeat(512 * 1024)).unwrap();
    let ca = idp.h.path("ca.pem");
    let url = format!("https://localhost:{}/v1/payments", idp.h.addr().port());
    let resolve = format!("localhost:{}:127.0.0.1", idp.h.addr().port());
    for i in 0..10 {
        let out = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--http2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
            ])
            .arg(&ca)
            .args([
                "--resolve",
                &resolve,
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "--data-binary",
            ])
            .arg(format!("@{}", body.display()))
            .arg(&url)
            .output()
            .await
            .expect("curl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "request {i}: curl failed: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "401", "request {i}");
    }
}

/// With `[dpop] replay_store = "redis"`, a proof used on one gateway is a
/// replay on another sharing the Redis server.
#[tokio::test]
async fn a_dpop_proof_used_on_one_gateway_is_a_replay_on_another() {
    let redis = rampart_testkit::RedisServer::start();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwks = key.jwks().to_string();
    let mut gateways = Vec::new();
    for _ in 0..2 {
        let upstream = RecordingUpstream::start().await;
        let policy = format!(
            r#"{}
[redis]
url = "{}"
key_prefix = "dpop-test"

[dpop]
replay_store = "redis"

[brute_force]
enabled = false

[[issuers]]
name = "bank-idp"
issuer = "{ISS}"
audiences = ["{AUD}"]
jwks_file = "jwks.json"

[[routes]]
id = "payment-create"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = "authenticated"
"#,
            rampart_testkit::base_policy(&upstream.url()),
            redis.url()
        );
        gateways.push(Harness::start_with_files(upstream, &policy, &[("jwks.json", &jwks)]).await);
    }
    let (a, b) = (&gateways[0], &gateways[1]);
    let proof_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let mut c = claims();
    c["cnf"] = json!({ "jkt": proof_key.thumbprint() });
    let token = key.mint(&c).unwrap();
    // Both requests name gateway A's URL (B is reached with A's Host), so
    // the proof is valid for both; only its id can make B refuse it.
    let url = a.client().url("/v1/payments");
    let authority = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let send_to_b = |proof: &str| {
        let req = format!(
            "POST /v1/payments HTTP/1.1\r\nHost: {authority}\r\nAuthorization: DPoP {token}\r\nDPoP: {proof}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
        );
        let (ca, addr) = (b.pki.ca_cert_pem.clone(), b.addr());
        async move { rampart_testkit::raw_tls(&ca, addr, req.as_bytes(), std::time::Duration::from_secs(3)).await }
    };
    let proof = |n: i64| {
        proof_key
            .dpop_proof("POST", &url, Some(&token), now() + n, None)
            .unwrap()
    };
    // A fresh proof for A's URL is accepted by B: the Host trick works.
    let fresh = proof(0);
    let r = send_to_b(&fresh).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // A proof used on A is a replay on B.
    let used = proof(1);
    assert_eq!(pay(&a.client(), &token, Some(&used), "DPoP").await.status, 200);
    let r = send_to_b(&used).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(r.to_lowercase().contains("invalid_dpop_proof"), "{r}");
    assert!(redis.cli(&["KEYS", "dpop-test:dpop:*"]).lines().count() >= 2);
}
