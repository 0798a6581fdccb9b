//! RFC 9421 message signatures and RFC 9530 digests through the real
//! gateway: a signed payment is accepted; a replayed signature, an expired
//! one, a body changed after signing, a header changed after signing, a
//! required header not covered, an unknown key and an unsigned request are
//! all refused before the upstream. Responses carry the gateway's
//! signature, which verifies with its public key.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use jsonwebtoken::Algorithm;
use rampart::authn::sign::SigningKey;
use rampart::validate::signature::{self, Message};
use rampart_testkit::{Harness, RecordingUpstream, TestResponse};

use crate::validate::code;

const PAYMENT: &str =
    r#"{"debtor_account":"acc-1001","instructed_amount":{"amount":"125.00","currency":"EUR"}}"#;

struct Signed {
    h: Harness,
    key: SigningKey,
    gateway_jwks: String,
}

async fn start() -> Signed {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let gateway = SigningKey::generate(Algorithm::ES256).unwrap();
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        "{}\n{}",
        rampart_testkit::base_policy(&upstream.url()),
        r#"
[signatures]
max_age = "5m"
[[signatures.clients]]
name = "partner"
jwks_file = "partner.jwks.json"
[signatures.response]
key_file = "gateway.jwk"
keyid = "gateway-2026"

[[routes]]
id = "payments"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = "none"
[routes.validate.signature]
clients = ["partner"]
components = ["@method", "@target-uri", "@authority", "content-digest", "x-request-nonce"]
sign_response = true
"#
    );
    let jwks = key.jwks().to_string();
    let private = serde_json::Value::Object(gateway.private_jwk().unwrap()).to_string();
    let h = Harness::start_with_files(
        upstream,
        &policy,
        &[("partner.jwks.json", &jwks), ("gateway.jwk", &private)],
    )
    .await;
    Signed {
        h,
        key,
        gateway_jwks: gateway.jwks().to_string(),
    }
}

/// Changes one header of a signed request (after signing).
fn set(headers: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in headers.iter_mut() {
        if k == name {
            *v = value.to_owned();
        }
    }
}

fn now() -> i64 {
    rampart::authn::sign::unix_now()
}

impl Signed {
    fn authority(&self) -> String {
        format!("localhost:{}", self.h.addr().port())
    }

    /// Signature headers for `body` (`created` at `created`, nonce
    /// `nonce`), covering `components`, over the headers `extra`.
    fn sign(
        &self,
        body: &str,
        created: i64,
        nonce: &str,
        components: &[&str],
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        self.sign_by(&self.key, body, created, nonce, components, extra)
    }

    /// [`Signed::sign`] with another key.
    fn sign_by(
        &self,
        key: &SigningKey,
        body: &str,
        created: i64,
        nonce: &str,
        components: &[&str],
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut h = HeaderMap::new();
        h.insert(
            "content-digest",
            HeaderValue::from_str(&signature::content_digest(body.as_bytes())).unwrap(),
        );
        for (k, v) in extra {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let authority = self.authority();
        let m = Message::request("POST", "https", &authority, "/v1/payments", None, &h);
        let components: Vec<String> = components.iter().map(|s| s.to_string()).collect();
        let (input, sig) =
            signature::sign_message(key, key.kid(), &components, created, Some(nonce), &m, "sig1").unwrap();
        let mut out: Vec<(String, String)> = h
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        out.push(("signature-input".into(), input));
        out.push(("signature".into(), sig));
        out
    }

    async fn send(&self, headers: &[(String, String)], body: &str) -> TestResponse {
        let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.push(("content-type", "application/json"));
        self.h
            .client()
            .send(Method::POST, "/v1/payments", &all, body.to_owned())
            .await
    }
}

const ALL: &[&str] = &[
    "@method",
    "@target-uri",
    "@authority",
    "content-digest",
    "x-request-nonce",
];

fn refused(s: &Signed, r: &TestResponse, status: u16, problem: &str, what: &str, before: usize) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(code(r), problem, "{what}");
    assert_eq!(s.h.upstream.count(), before, "{what} reached the upstream");
}

#[tokio::test]
async fn a_signed_request_passes_once_and_every_tampering_is_refused() {
    let s = start().await;
    let extra = [("x-request-nonce", "abc")];
    let ok = s.sign(PAYMENT, now(), "n-1", ALL, &extra);
    let r = s.send(&ok, PAYMENT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.h.upstream.requests()[0].body, PAYMENT.as_bytes());
    // Replayed: the same signature (same nonce) again.
    refused(
        &s,
        &s.send(&ok, PAYMENT).await,
        401,
        "invalid-signature",
        "replay",
        1,
    );
    // Expired: created ten minutes ago.
    let old = s.sign(PAYMENT, now() - 600, "n-2", ALL, &extra);
    refused(
        &s,
        &s.send(&old, PAYMENT).await,
        401,
        "invalid-signature",
        "expired",
        1,
    );
    // Created in the future.
    let future = s.sign(PAYMENT, now() + 600, "n-3", ALL, &extra);
    refused(
        &s,
        &s.send(&future, PAYMENT).await,
        401,
        "invalid-signature",
        "future",
        1,
    );
    // The body changed after signing (its digest still the old one).
    let tampered = PAYMENT.replace("125.00", "9125.00");
    let sig = s.sign(PAYMENT, now(), "n-4", ALL, &extra);
    refused(
        &s,
        &s.send(&sig, &tampered).await,
        400,
        "invalid-digest",
        "body changed",
        1,
    );
    // ... and with a digest recomputed by the attacker: the signature fails.
    let mut sig = s.sign(PAYMENT, now(), "n-5", ALL, &extra);
    set(
        &mut sig,
        "content-digest",
        &signature::content_digest(tampered.as_bytes()),
    );
    refused(
        &s,
        &s.send(&sig, &tampered).await,
        401,
        "invalid-signature",
        "digest replaced",
        1,
    );
    // A covered header changed after signing.
    let mut sig = s.sign(PAYMENT, now(), "n-6", ALL, &extra);
    set(&mut sig, "x-request-nonce", "xyz");
    refused(
        &s,
        &s.send(&sig, PAYMENT).await,
        401,
        "invalid-signature",
        "header changed",
        1,
    );
    // A header the route requires, not covered.
    let partial = s.sign(
        PAYMENT,
        now(),
        "n-7",
        &["@method", "@target-uri", "@authority", "content-digest"],
        &extra,
    );
    refused(
        &s,
        &s.send(&partial, PAYMENT).await,
        401,
        "invalid-signature",
        "header not covered",
        1,
    );
    // Unsigned.
    refused(
        &s,
        &s.send(&[("x-request-nonce".into(), "abc".into())], PAYMENT).await,
        401,
        "invalid-signature",
        "unsigned",
        1,
    );
    // Signed by an unknown key.
    let stranger = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let sig = s.sign_by(&stranger, PAYMENT, now(), "n-8", ALL, &extra);
    refused(
        &s,
        &s.send(&sig, PAYMENT).await,
        401,
        "invalid-signature",
        "unknown key",
        1,
    );
    // Sanity: a fresh signature still works.
    let fresh = s.sign(PAYMENT, now(), "n-9", ALL, &extra);
    assert_eq!(s.send(&fresh, PAYMENT).await.status, 200);
}

#[tokio::test]
async fn responses_are_signed_by_the_gateway() {
    let s = start().await;
    let r = s
        .send(
            &s.sign(PAYMENT, now(), "r-1", ALL, &[("x-request-nonce", "abc")]),
            PAYMENT,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let input = r.header("signature-input").unwrap().to_owned();
    assert!(
        input.starts_with("rampart=(\"@status\" \"content-type\" \"content-digest\")"),
        "{input}"
    );
    assert!(input.contains("keyid=\"gateway-2026\""), "{input}");
    signature::check_content_digest(r.header("content-digest").unwrap(), &r.body).unwrap();
    // Verify the signature with the gateway's public key.
    let keys = signature::keys_from_jwks(&s.gateway_jwks).unwrap();
    let params = input.strip_prefix("rampart=").unwrap();
    let m = Message::response(200, &r.headers);
    let base = signature::signature_base(
        &["@status".into(), "content-type".into(), "content-digest".into()],
        params,
        &m,
    )
    .unwrap();
    let sig = r.header("signature").unwrap();
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig.trim_start_matches("rampart=:").trim_end_matches(':'))
        .unwrap();
    assert!(
        keys[0].1.verify(base.as_bytes(), &raw),
        "the response signature verifies"
    );
    // A changed status would not.
    let m = Message {
        status: Some(201),
        ..m
    };
    let base = signature::signature_base(
        &["@status".into(), "content-type".into(), "content-digest".into()],
        params,
        &m,
    )
    .unwrap();
    assert!(!keys[0].1.verify(base.as_bytes(), &raw));
}
