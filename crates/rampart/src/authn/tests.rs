#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::Algorithm;
use serde_json::{json, Map, Value};

use super::config::{DpopConfig, DpopPolicy, IssuerConfig, IssuerPolicy};
use super::dpop::{normalize_htu, DpopVerifier, ProofRequest};
use super::error::{AuthnError, ErrorClass, Scheme};
use super::fetch::{DiscoveryFetcher, HttpsClient, UrlFetcher};
use super::jwks::{JwksFetcher, KeySet, KeySource, Refresh, VerifyingKey};
use super::jwt::{Issuer, VerdictCache};
use super::sign::SigningKey;
use super::thumbprint::{jwk_thumbprint, x5t_s256};
use super::{b64url, credential, Authenticator, AuthnRequest, SenderBinding};
use crate::clock::{FakeClock, SharedClock};

const ISS: &str = "https://idp.bank.example";
const NOW: u64 = 1_700_000_000;

fn now() -> i64 {
    NOW as i64
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors")
}

fn vector(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(vectors().join(name)).unwrap()).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": "bank-api",
        "sub": "customer-a",
        "client_id": "fintech-1",
        "exp": now() + 300,
        "iat": now(),
        "jti": "t-1",
        "scope": "accounts:read payments:write",
        "roles": ["customer"],
        "acr": "urn:bank:loa:2",
        "amr": ["pwd", "otp"],
        "auth_time": now() - 60,
        "account_ids": ["ACC-1"],
    })
}

/// Compact JWS from raw parts (for malformed and unsigned tokens).
fn raw(header: &Value, claims: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        sig
    )
}

fn jwks_of(keys: &[&SigningKey]) -> Vec<u8> {
    let list: Vec<Value> = keys.iter().map(|k| Value::Object(k.public_jwk())).collect();
    json!({ "keys": list }).to_string().into_bytes()
}

fn issuer_config(extra: &str, jwks_file: &Path) -> IssuerConfig {
    toml::from_str(&format!(
        "name = \"bank-idp\"\nissuer = \"{ISS}\"\naudiences = [\"bank-api\"]\njwks_file = \"{}\"\n{extra}",
        jwks_file.display()
    ))
    .unwrap()
}

struct Fixture {
    issuer: Issuer,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
}

/// An issuer whose JWKS file holds `keys`, built through config and policy.
fn file_issuer(keys: &[&SigningKey], extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks_of(keys)).unwrap();
    let policy = IssuerPolicy::from_config(&issuer_config(extra, &path), "issuers[0]").unwrap();
    let clock = FakeClock::at_unix(NOW);
    let issuer = Issuer::from_policy(policy, clock.clone(), "issuers[0]").unwrap();
    Fixture {
        issuer,
        clock,
        _dir: dir,
    }
}

fn es256() -> SigningKey {
    SigningKey::generate(Algorithm::ES256).unwrap()
}

// ---------------------------------------------------------------- config

#[test]
fn issuer_defaults_are_the_fapi_profile() {
    let c = issuer_config("", Path::new("/x"));
    assert_eq!(c.algorithms, ["PS256", "ES256", "EdDSA"]);
    assert_eq!(c.leeway, Duration::from_secs(10));
    let p = IssuerPolicy::from_config(&c, "issuers[0]").unwrap();
    assert_eq!(
        p.algorithms,
        [Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA]
    );
    assert!(p.hs256_secret.is_none());
    assert!(p.lint("issuers[0]").is_empty());
}

#[test]
fn issuer_config_refuses_unknown_keys() {
    let r: Result<IssuerConfig, _> = toml::from_str(
        "name = \"a\"\nissuer = \"https://a\"\naudiences = [\"x\"]\njwks_file = \"f\"\nalgorithm = [\"ES256\"]",
    );
    assert!(r.is_err());
}

fn problems(extra: &str) -> Vec<String> {
    let c: IssuerConfig = toml::from_str(&format!("name = \"bank-idp\"\n{extra}")).unwrap();
    match IssuerPolicy::from_config(&c, "issuers[0]") {
        Ok(_) => Vec::new(),
        Err(p) => p
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
    }
}

#[test]
fn issuer_config_validation() {
    let base = format!("issuer = \"{ISS}\"\naudiences = [\"api\"]\njwks_file = \"k.json\"\n");
    assert!(problems(&base).is_empty());
    // HS256 needs the dangerous secret, of at least 32 bytes.
    let p = problems(&format!("{base}algorithms = [\"HS256\"]"));
    assert!(p.iter().any(|m| m.contains("dangerous_hs256_secret")), "{p:?}");
    let p = problems(&format!(
        "{base}algorithms = [\"HS256\"]\ndangerous_hs256_secret = \"short\""
    ));
    assert!(p.iter().any(|m| m.contains("at least 32 bytes")), "{p:?}");
    assert!(problems(&format!(
        "{base}algorithms = [\"HS256\"]\ndangerous_hs256_secret = \"0123456789abcdef0123456789abcdef\""
    ))
    .is_empty());
    // `none`, unknown algorithms, HS384.
    let p = problems(&format!("{base}algorithms = [\"none\", \"XS256\", \"HS384\"]"));
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].starts_with("issuers[0].algorithms[0]"));
    // Audiences, https, one key source.
    assert!(!problems(&format!("issuer = \"{ISS}\"\njwks_file = \"k\"")).is_empty());
    assert!(!problems("issuer = \"http://idp\"\naudiences = [\"a\"]\njwks_file = \"k\"").is_empty());
    assert!(!problems(&format!(
        "issuer = \"{ISS}\"\naudiences = [\"a\"]\njwks_url = \"http://idp/jwks\""
    ))
    .is_empty());
    assert!(!problems(&format!("{base}discovery = true")).is_empty());
    assert!(!problems(&format!("issuer = \"{ISS}\"\naudiences = [\"a\"]")).is_empty());
    assert!(!problems(&format!(
        "{base}jwks_min_refresh = \"10m\"\njwks_refresh = \"1m\""
    ))
    .is_empty());
    // RS256 is accepted when listed, with a lint warning.
    let c: IssuerConfig = toml::from_str(&format!("name = \"i\"\n{base}algorithms = [\"RS256\"]")).unwrap();
    let pol = IssuerPolicy::from_config(&c, "issuers[0]").unwrap();
    assert_eq!(pol.algorithms, [Algorithm::RS256]);
    assert_eq!(pol.lint("issuers[0]").len(), 1);
}

#[test]
fn dpop_config_defaults_and_validation() {
    let c: DpopConfig = toml::from_str("").unwrap();
    let p = DpopPolicy::from_config(&c, "dpop").unwrap();
    assert_eq!(p.iat_window, Duration::from_secs(60));
    assert!(!p.nonce);
    assert_eq!(p.algs_param(), "PS256 ES256 EdDSA");
    let c: DpopConfig = toml::from_str("algorithms = [\"HS256\"]").unwrap();
    assert!(DpopPolicy::from_config(&c, "dpop").is_err());
    assert!(toml::from_str::<DpopConfig>("nonces = true").is_err());
}

// ---------------------------------------------------------------- vectors

fn vector_key_and_token(name: &str) -> (VerifyingKey, String, Algorithm) {
    let v = vector(name);
    let key = VerifyingKey::from_jwk(v["jwk"].as_object().unwrap()).unwrap();
    let alg: Algorithm = v["alg"].as_str().unwrap().parse().unwrap();
    (key, v["jws"].as_str().unwrap().to_owned(), alg)
}

fn check_vector(name: &str) {
    let (key, jws, alg) = vector_key_and_token(name);
    let (input, sig) = jws.rsplit_once('.').unwrap();
    assert!(
        key.verify(alg, input.as_bytes(), sig),
        "{name}: published signature verifies"
    );
    // One changed byte of the payload, or a truncated signature: refused.
    let mut tampered = input.as_bytes().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(!key.verify(alg, &tampered, sig));
    assert!(!key.verify(alg, input.as_bytes(), &sig[..sig.len() - 4]));
    assert!(!key.verify(alg, input.as_bytes(), ""));
    // The payload is the RFC's.
    let payload = super::b64url_decode(input.split('.').nth(1).unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        vector(name)["payload"].as_str().unwrap()
    );
}

#[test]
fn rfc7515_a2_rs256_vector_verifies() {
    check_vector("rfc7515-a2-rs256.json");
    // The same key without `alg` permits the RSA family, never HMAC or EC.
    let (key, jws, _) = vector_key_and_token("rfc7515-a2-rs256.json");
    let (input, sig) = jws.rsplit_once('.').unwrap();
    assert!(!key.verify(Algorithm::PS256, input.as_bytes(), sig));
    assert!(!key.permits(Algorithm::HS256));
    assert!(!key.permits(Algorithm::ES256));
}

#[test]
fn rfc7515_a3_es256_vector_verifies() {
    check_vector("rfc7515-a3-es256.json");
}

#[tokio::test]
async fn rfc7515_vectors_through_the_issuer() {
    // The RFC tokens are `iss: joe`, `exp: 1300819380`, no `aud`: with the
    // clock before exp, the signature passes and the audience check refuses.
    for name in ["rfc7515-a2-rs256.json", "rfc7515-a3-es256.json"] {
        let v = vector(name);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({"keys": [v["jwk"]]}).to_string()).unwrap();
        let cfg: IssuerConfig = toml::from_str(&format!(
            "name = \"joe\"\nissuer = \"https://joe\"\naudiences = [\"x\"]\njwks_file = \"{}\"\nalgorithms = [\"RS256\", \"ES256\"]",
            path.display()
        ))
        .unwrap();
        let mut policy = IssuerPolicy::from_config(&cfg, "i").unwrap();
        policy.issuer = "joe".into();
        let clock: SharedClock = FakeClock::at_unix(1_300_819_000);
        let issuer = Issuer::from_policy(policy.clone(), clock.clone(), "i").unwrap();
        let jws = v["jws"].as_str().unwrap();
        assert_eq!(
            issuer.verify(jws).await.unwrap_err(),
            AuthnError::WrongAudience,
            "{name}"
        );
        // Without RS256/ES256 on the allow-list the token is refused first.
        policy.algorithms = vec![Algorithm::PS256];
        let strict = Issuer::from_policy(policy, clock, "i").unwrap();
        assert!(matches!(
            strict.verify(jws).await,
            Err(AuthnError::AlgNotAllowed(_))
        ));
    }
}

#[tokio::test]
async fn rfc7515_a1_hs256_vector_verifies_only_with_the_dangerous_secret() {
    // HS256 is accepted only under a configured secret, never a JWKS key.
    // The RFC's key is binary, so it is set on the policy directly.
    let v = vector("rfc7515-a1-hs256.json");
    let k = super::b64url_decode(v["jwk"]["k"].as_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let es = vector("rfc7515-a3-es256.json");
    std::fs::write(&path, json!({"keys": [es["jwk"]]}).to_string()).unwrap();
    let cfg: IssuerConfig = toml::from_str(&format!(
        "name = \"joe\"\nissuer = \"https://joe\"\naudiences = [\"x\"]\njwks_file = \"{}\"\n\
         algorithms = [\"HS256\"]\ndangerous_hs256_secret = \"replaced-by-the-rfc-key-0123456789abcdef\"",
        path.display()
    ))
    .unwrap();
    let mut policy = IssuerPolicy::from_config(&cfg, "i").unwrap();
    policy.issuer = "joe".into();
    policy.hs256_secret = Some(crate::secret::Secret::new(k));
    let clock: SharedClock = FakeClock::at_unix(1_300_819_000);
    let jws = v["jws"].as_str().unwrap();
    // The signature verifies; the token (no `aud`) is then refused for its
    // audience, as the other RFC tokens are.
    let issuer = Issuer::from_policy(policy.clone(), clock.clone(), "i").unwrap();
    assert_eq!(issuer.verify(jws).await.unwrap_err(), AuthnError::WrongAudience);
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", sig.replace('d', "e"));
    assert_eq!(
        issuer.verify(&forged).await.unwrap_err(),
        AuthnError::BadSignature
    );
    // Another secret: refused.
    let mut other = policy.clone();
    other.hs256_secret = Some(crate::secret::Secret::new(vec![7u8; 64]));
    let other = Issuer::from_policy(other, clock.clone(), "i").unwrap();
    assert_eq!(other.verify(jws).await.unwrap_err(), AuthnError::BadSignature);
    // HS256 not on the allow-list: refused before any key is looked at.
    policy.algorithms = vec![Algorithm::ES256];
    let strict = Issuer::from_policy(policy, clock, "i").unwrap();
    assert!(matches!(
        strict.verify(jws).await,
        Err(AuthnError::AlgNotAllowed(_))
    ));
}

#[test]
fn rfc7638_thumbprint_vector() {
    let v = vector("rfc7638-3.1-thumbprint.json");
    let jwk = v["jwk"].as_object().unwrap();
    assert_eq!(jwk_thumbprint(jwk).unwrap(), v["thumbprint"].as_str().unwrap());
    // Optional members do not change it; a missing required one is an error.
    let mut bare = jwk.clone();
    bare.remove("kid");
    bare.remove("alg");
    assert_eq!(jwk_thumbprint(&bare).unwrap(), v["thumbprint"].as_str().unwrap());
    bare.remove("e");
    assert!(jwk_thumbprint(&bare).is_err());
}

#[test]
fn x5t_s256_is_the_sha256_of_the_der() {
    use rustls_pki_types::pem::PemObject;
    let pki = crate::demo::pki::TestPki::generate(&["localhost"]).unwrap();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pki.client_cert_pem.as_bytes()).unwrap();
    let t = x5t_s256(&der);
    assert_eq!(t.len(), 43);
    assert!(super::thumbprint::certificate_matches(&t, &der));
    assert!(!super::thumbprint::certificate_matches(&t, &der[1..]));
}

// ---------------------------------------------------------------- JWKS

#[test]
fn jwks_keys_are_used_only_with_their_algorithm() {
    let ec = es256();
    let mut jwk = ec.public_jwk();
    let key = VerifyingKey::from_jwk(&jwk).unwrap();
    assert!(key.permits(Algorithm::ES256));
    assert!(!key.permits(Algorithm::ES384));
    // A declared alg that does not fit the key type: refused.
    jwk.insert("alg".into(), json!("RS256"));
    assert!(VerifyingKey::from_jwk(&jwk).is_err());
    jwk.insert("alg".into(), json!("HS256"));
    assert!(VerifyingKey::from_jwk(&jwk).is_err());
    // Encryption keys, private keys and symmetric keys are skipped.
    let mut enc = ec.public_jwk();
    enc.insert("use".into(), json!("enc"));
    assert!(VerifyingKey::from_jwk(&enc).is_err());
    assert!(VerifyingKey::from_jwk(&ec.private_jwk().unwrap()).is_err());
    assert!(VerifyingKey::from_jwk(&obj(json!({"kty": "oct", "k": "c2VjcmV0"}))).is_err());
    // Short RSA moduli are refused.
    assert!(VerifyingKey::from_jwk(&obj(
        json!({"kty": "RSA", "n": b64url(&[0xc5; 128]), "e": "AQAB"})
    ))
    .is_err());
    // A set with nothing usable is an error, not an empty success.
    let bad = json!({"keys": [enc]}).to_string();
    assert!(KeySet::from_json(bad.as_bytes()).is_err());
    assert!(KeySet::from_json(b"{\"keys\": 1}").is_err());
    assert!(KeySet::from_json(b"not json").is_err());
}

#[test]
fn keyset_lookup_by_kid_and_alg() {
    let (a, b) = (es256(), SigningKey::generate(Algorithm::EdDSA).unwrap());
    let set = KeySet::from_json(&jwks_of(&[&a, &b])).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.find(Some(a.kid()), Algorithm::ES256).is_some());
    assert!(set.find(Some(a.kid()), Algorithm::EdDSA).is_none());
    assert!(set.find(Some(b.kid()), Algorithm::EdDSA).is_some());
    // No kid: only if exactly one key permits the alg.
    assert!(set.find(None, Algorithm::ES256).is_some());
    let two = KeySet::from_json(&jwks_of(&[&a, &es256()])).unwrap();
    assert!(two.find(None, Algorithm::ES256).is_none());
}

// ---------------------------------------------------------------- JWT

#[tokio::test]
async fn valid_tokens_of_each_fapi_algorithm_verify() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256] {
        let key = SigningKey::generate(alg).unwrap();
        let f = file_issuer(&[&key], "require_typ_at_jwt = true");
        let token = key.mint(&claims()).unwrap();
        let p = f.issuer.verify(&token).await.unwrap();
        assert_eq!(p.issuer(), "bank-idp");
        assert_eq!(p.subject(), Some("customer-a"));
        assert_eq!(p.client_id(), Some("fintech-1"));
        assert_eq!(p.scopes(), ["accounts:read", "payments:write"]);
        assert!(p.has_scope("payments:write"));
        assert_eq!(p.roles(), ["customer"]);
        assert_eq!(p.acr(), Some("urn:bank:loa:2"));
        assert_eq!(p.amr(), ["pwd", "otp"]);
        assert_eq!(p.auth_time(), Some(now() - 60));
        assert_eq!(p.token_id(), Some("t-1"));
        assert_eq!(p.expires_at(), now() + 300);
        assert!(!p.cnf().is_bound());
        assert_eq!(p.extra().get("account_ids"), Some(&json!(["ACC-1"])));
        assert!(p.extra().get("sub").is_none());
    }
}

#[tokio::test]
async fn scp_array_is_read_as_scopes() {
    let key = es256();
    let f = file_issuer(&[&key], "");
    let mut c = claims();
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["a", "b"]);
    c["aud"] = json!(["other", "bank-api"]);
    let p = f.issuer.verify(&key.mint(&c).unwrap()).await.unwrap();
    assert_eq!(p.scopes(), ["a", "b"]);
}

#[tokio::test]
async fn jsonwebtoken_encoder_tokens_verify() {
    // A token made by jsonwebtoken's own encoder (HS256 with the configured
    // secret) verifies: the two implementations agree on the JWS format.
    let secret = "0123456789abcdef0123456789abcdef";
    let key = es256();
    let f = file_issuer(
        &[&key],
        &format!("algorithms = [\"ES256\", \"HS256\"]\ndangerous_hs256_secret = \"{secret}\""),
    );
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert!(f.issuer.verify(&token).await.is_ok());
}

#[tokio::test]
async fn alg_none_is_refused() {
    let key = es256();
    let f = file_issuer(&[&key], "");
    for alg in ["none", "None", "NONE"] {
        let t = raw(&json!({"alg": alg, "kid": key.kid()}), &claims(), "c2ln");
        assert_eq!(f.issuer.verify(&t).await.unwrap_err(), AuthnError::AlgNone);
        assert_eq!(
            f.issuer.verify(&t).await.unwrap_err().class(),
            ErrorClass::InvalidToken
        );
    }
    // The classic unsigned form (empty signature) is not even a JWS here.
    let t = format!(
        "{}.",
        raw(&json!({"alg": "none"}), &claims(), "").trim_end_matches('.')
    );
    assert!(matches!(f.issuer.verify(&t).await, Err(AuthnError::Malformed(_))));
}

#[tokio::test]
async fn rs_hs_key_confusion_is_refused() {
    // An RSA issuer; the attacker signs HS256 with the public key as secret.
    let rsa = SigningKey::generate(Algorithm::PS256).unwrap();
    let jwks = jwks_of(&[&rsa]);
    let n = rsa.public_jwk()["n"].as_str().unwrap().to_owned();
    let forge = |secret: &[u8]| {
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.kid = Some(rsa.kid().to_owned());
        jsonwebtoken::encode(&h, &claims(), &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
    };
    let f = file_issuer(&[&rsa], "");
    for secret in [jwks.as_slice(), n.as_bytes(), &super::b64url_decode(&n).unwrap()] {
        let t = forge(secret);
        assert_eq!(
            f.issuer.verify(&t).await.unwrap_err(),
            AuthnError::AlgNotAllowed("HS256".into())
        );
    }
    // Even where HS256 is enabled, only the configured secret is an HMAC
    // key: the JWKS's RSA key never is.
    let f = file_issuer(
        &[&rsa],
        "algorithms = [\"PS256\", \"HS256\"]\ndangerous_hs256_secret = \"0123456789abcdef0123456789abcdef\"",
    );
    for secret in [jwks.as_slice(), n.as_bytes()] {
        assert_eq!(
            f.issuer.verify(&forge(secret)).await.unwrap_err(),
            AuthnError::BadSignature
        );
    }
    // A genuine PS256 token still verifies (the sanity call).
    assert!(f.issuer.verify(&rsa.mint(&claims()).unwrap()).await.is_ok());
}

#[tokio::test]
async fn hostile_kids_just_fail_lookup() {
    let key = es256();
    let f = file_issuer(&[&key], "");
    let attacker = es256();
    for kid in [
        "../../../../../../etc/passwd",
        "/dev/null",
        "' OR '1'='1' --",
        "x'; DROP TABLE keys; --",
        "http://attacker.example/jwks.json",
        "\u{0000}",
        "",
    ] {
        let mut h = Map::new();
        h.insert("kid".into(), json!(kid));
        let t = attacker.sign(h, &claims()).unwrap();
        assert_eq!(
            f.issuer.verify(&t).await.unwrap_err(),
            AuthnError::UnknownKid,
            "{kid:?}"
        );
    }
    assert!(f.issuer.verify(&key.mint(&claims()).unwrap()).await.is_ok());
}

#[tokio::test]
async fn jku_x5u_jwk_crit_are_never_followed() {
    let key = es256();
    let f = file_issuer(&[&key], "");
    for (name, value) in [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("jwk", Value::Object(key.public_jwk())),
        ("crit", json!(["exp"])),
    ] {
        let mut h = Map::new();
        h.insert("kid".into(), json!(key.kid()));
        h.insert(name.into(), value);
        // Validly signed by the issuer's own key, and still refused.
        let t = key.sign(h, &claims()).unwrap();
        assert!(matches!(f.issuer.verify(&t).await, Err(AuthnError::ForbiddenHeader(n)) if n == name));
    }
}

#[tokio::test]
async fn time_claims_use_the_clock_and_leeway() {
    let key = es256();
    let f = file_issuer(&[&key], "");
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        key.mint(&c).unwrap()
    };
    assert_eq!(
        f.issuer.verify(&with("exp", json!(now() - 1))).await.unwrap_err(),
        AuthnError::Expired
    );
    assert_eq!(
        f.issuer.verify(&with("exp", json!(now()))).await.unwrap_err(),
        AuthnError::Expired
    );
    assert_eq!(
        f.issuer
            .verify(&with("nbf", json!(now() + 60)))
            .await
            .unwrap_err(),
        AuthnError::NotYetValid
    );
    assert!(
        f.issuer.verify(&with("nbf", json!(now() + 10))).await.is_ok(),
        "within leeway"
    );
    assert_eq!(
        f.issuer
            .verify(&with("iat", json!(now() + 11)))
            .await
            .unwrap_err(),
        AuthnError::IssuedInFuture
    );
    assert!(matches!(
        f.issuer.verify(&with("exp", json!("tomorrow"))).await,
        Err(AuthnError::Claim(_))
    ));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert!(matches!(
        f.issuer.verify(&key.mint(&c).unwrap()).await,
        Err(AuthnError::Claim(_))
    ));
    // A valid token expires as the (fake) clock moves, cached or not.
    let t = key.mint(&claims()).unwrap();
    assert!(f.issuer.verify(&t).await.is_ok());
    f.clock.advance(Duration::from_secs(301));
    assert_eq!(f.issuer.verify(&t).await.unwrap_err(), AuthnError::Expired);
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_refused() {
    let key = es256();
    let f = file_issuer(&[&key], "required_claims = [\"sub\", \"client_id\"]");
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        key.mint(&c).unwrap()
    };
    let v = f
        .issuer
        .verify(&with("iss", json!("https://idp.bank.example/")))
        .await;
    assert_eq!(v.unwrap_err(), AuthnError::WrongIssuer);
    let v = f.issuer.verify(&with("aud", json!("other-api"))).await;
    assert_eq!(v.unwrap_err(), AuthnError::WrongAudience);
    let v = f.issuer.verify(&with("aud", json!(["a", "b"]))).await;
    assert_eq!(v.unwrap_err(), AuthnError::WrongAudience);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("client_id");
    let v = f.issuer.verify(&key.mint(&c).unwrap()).await;
    assert_eq!(v.unwrap_err(), AuthnError::Claim("client_id".into()));
}

#[tokio::test]
async fn stripped_truncated_or_altered_signatures_are_refused() {
    let key = es256();
    let f = file_issuer(&[&key], "");
    let t = key.mint(&claims()).unwrap();
    let (input, sig) = t.rsplit_once('.').unwrap();
    assert!(matches!(
        f.issuer.verify(&format!("{input}.")).await,
        Err(AuthnError::Malformed(_))
    ));
    assert!(matches!(
        f.issuer.verify(input).await,
        Err(AuthnError::Malformed(_))
    ));
    let truncated = format!("{input}.{}", &sig[..sig.len() - 6]);
    assert_eq!(
        f.issuer.verify(&truncated).await.unwrap_err(),
        AuthnError::BadSignature
    );
    // Another payload under the original signature.
    let mut c = claims();
    c["sub"] = json!("customer-b");
    let forged = format!(
        "{}.{}.{sig}",
        input.split('.').next().unwrap(),
        b64url(c.to_string().as_bytes())
    );
    assert_eq!(
        f.issuer.verify(&forged).await.unwrap_err(),
        AuthnError::BadSignature
    );
    assert!(matches!(
        f.issuer.verify("a.b.c.d").await,
        Err(AuthnError::Malformed(_))
    ));
    assert!(matches!(
        f.issuer.verify(&"x".repeat(20_000)).await,
        Err(AuthnError::Malformed(_))
    ));
    assert!(f.issuer.verify(&t).await.is_ok());
}

#[tokio::test]
async fn typ_rules() {
    let key = es256();
    let f = file_issuer(&[&key], "require_typ_at_jwt = true");
    let with_typ = |typ: &str| {
        let mut h = Map::new();
        h.insert("kid".into(), json!(key.kid()));
        h.insert("typ".into(), json!(typ));
        key.sign(h, &claims()).unwrap()
    };
    assert_eq!(
        f.issuer.verify(&with_typ("JWT")).await.unwrap_err(),
        AuthnError::WrongTyp
    );
    assert_eq!(
        f.issuer.verify(&with_typ("dpop+jwt")).await.unwrap_err(),
        AuthnError::WrongTyp
    );
    assert!(f.issuer.verify(&with_typ("application/at+jwt")).await.is_ok());
    let lax = file_issuer(&[&key], "");
    assert!(lax.issuer.verify(&with_typ("JWT")).await.is_ok());
    assert_eq!(
        lax.issuer.verify(&with_typ("dpop+jwt")).await.unwrap_err(),
        AuthnError::WrongTyp
    );
}

#[tokio::test]
async fn a_key_is_not_used_with_another_algorithm() {
    // The token claims ES256 with the kid of the issuer's Ed25519 key.
    let ed = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let f = file_issuer(&[&ed], "");
    let attacker = es256();
    let mut h = Map::new();
    h.insert("kid".into(), json!(ed.kid()));
    let t = attacker.sign(h, &claims()).unwrap();
    assert_eq!(f.issuer.verify(&t).await.unwrap_err(), AuthnError::UnknownKid);
}

#[tokio::test]
async fn verdicts_are_cached_until_exp() {
    let key = es256();
    let f = file_issuer(&[&key], "");
    let t = key.mint(&claims()).unwrap();
    let a = f.issuer.verify(&t).await.unwrap();
    let b = f.issuer.verify(&t).await.unwrap();
    assert!(Arc::ptr_eq(&a, &b), "second verification comes from the cache");
    assert_eq!(f.issuer.cache().len(), 1);
    // Failures are not cached.
    let _ = f.issuer.verify(&format!("{t}x")).await;
    assert_eq!(f.issuer.cache().len(), 1);
}

#[tokio::test]
async fn verdict_cache_is_bounded() {
    let key = es256();
    let f = file_issuer(&[&key], "");
    let issuer = f.issuer.with_cache(VerdictCache::new(32));
    for i in 0..200 {
        let mut c = claims();
        c["jti"] = json!(format!("t-{i}"));
        c["exp"] = json!(now() + 100 + i);
        issuer.verify(&key.mint(&c).unwrap()).await.unwrap();
    }
    assert!(issuer.cache().len() <= 32, "{}", issuer.cache().len());
}

// ---------------------------------------------------------------- a real JWKS endpoint

/// An HTTPS server on 127.0.0.1:0 serving a JWKS at `/jwks` and an OIDC
/// discovery document, counting JWKS fetches; `fail` makes `/jwks` answer 503.
struct JwksServer {
    url: String,
    hits: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
    jwks: Arc<Mutex<Vec<u8>>>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl JwksServer {
    async fn start(jwks: Vec<u8>) -> Self {
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        use rustls_pki_types::pem::PemObject;

        let pki = crate::demo::pki::TestPki::generate(&["127.0.0.1"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_cert_pem).unwrap();
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let jwks = Arc::new(Mutex::new(jwks));
        let (h, fl, j, issuer) = (hits.clone(), fail.clone(), jwks.clone(), url.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, h, fl, j, issuer) =
                    (acceptor.clone(), h.clone(), fl.clone(), j.clone(), issuer.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (h, fl, j, issuer) = (h.clone(), fl.clone(), j.clone(), issuer.clone());
                        async move {
                            let (status, body) = match req.uri().path() {
                                "/jwks" => {
                                    h.fetch_add(1, Ordering::SeqCst);
                                    if fl.load(Ordering::SeqCst) {
                                        (503, b"down".to_vec())
                                    } else {
                                        (200, j.lock().unwrap().clone())
                                    }
                                }
                                "/.well-known/openid-configuration" => (
                                    200,
                                    json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")})
                                        .to_string()
                                        .into_bytes(),
                                ),
                                _ => (404, Vec::new()),
                            };
                            let resp = http::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self {
            url,
            hits,
            fail,
            jwks,
            ca_file,
            _dir: dir,
        }
    }

    fn client(&self) -> HttpsClient {
        HttpsClient::new(Some(&self.ca_file)).unwrap()
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn url_issuer(server: &JwksServer, clock: &Arc<FakeClock>) -> Issuer {
    let fetcher: Arc<dyn JwksFetcher> =
        Arc::new(UrlFetcher::new(server.client(), format!("{}/jwks", server.url)));
    let source = Arc::new(KeySource::new(
        fetcher,
        clock.clone(),
        Duration::from_secs(30),
        Duration::from_secs(300),
    ));
    let cfg: IssuerConfig = toml::from_str(&format!(
        "name = \"bank-idp\"\nissuer = \"{ISS}\"\naudiences = [\"bank-api\"]\njwks_url = \"{}/jwks\"",
        server.url
    ))
    .unwrap();
    let policy = IssuerPolicy::from_config(&cfg, "issuers[0]").unwrap();
    Issuer::with_key_source(policy, Some(source), clock.clone())
}

#[tokio::test]
async fn unknown_kid_flood_triggers_one_fetch_per_floor() {
    let key = es256();
    let server = JwksServer::start(jwks_of(&[&key])).await;
    let clock = FakeClock::at_unix(NOW);
    let issuer = Arc::new(url_issuer(&server, &clock));
    assert_eq!(issuer.key_source().unwrap().refresh().await, Refresh::Updated);
    assert_eq!(server.hits(), 1);
    assert!(issuer.verify(&key.mint(&claims()).unwrap()).await.is_ok());

    // Within the floor: a flood of unknown kids fetches nothing.
    let attacker = es256();
    let flood = |n: usize| {
        let mut tasks = Vec::new();
        for i in 0..n {
            let issuer = issuer.clone();
            let mut h = Map::new();
            h.insert("kid".into(), json!(format!("unknown-{i}")));
            let t = attacker.sign(h, &claims()).unwrap();
            tasks.push(tokio::spawn(async move { issuer.verify(&t).await }));
        }
        tasks
    };
    for t in flood(50) {
        assert_eq!(t.await.unwrap().unwrap_err(), AuthnError::UnknownKid);
    }
    assert_eq!(server.hits(), 1);

    // After the floor: the whole concurrent flood causes exactly one fetch.
    clock.advance(Duration::from_secs(31));
    for t in flood(50) {
        assert_eq!(t.await.unwrap().unwrap_err(), AuthnError::UnknownKid);
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn jwks_endpoint_down_keeps_cached_keys_and_rotation_is_picked_up() {
    let key = es256();
    let server = JwksServer::start(jwks_of(&[&key])).await;
    let clock = FakeClock::at_unix(NOW);
    let issuer = url_issuer(&server, &clock);
    issuer.key_source().unwrap().refresh().await;

    server.fail.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(31));
    let refresh = issuer.key_source().unwrap().refresh().await;
    assert!(matches!(refresh, Refresh::Failed(_)), "{refresh:?}");
    assert_eq!(server.hits(), 2);
    assert_eq!(issuer.key_source().unwrap().keys().len(), 1);
    let mut c = claims();
    c["jti"] = json!("during-outage");
    assert!(
        issuer.verify(&key.mint(&c).unwrap()).await.is_ok(),
        "cached keys still verify"
    );

    // The IdP comes back with a rotated key: the first token with the new
    // kid (after the floor) triggers the refresh and verifies.
    let rotated = es256();
    *server.jwks.lock().unwrap() = jwks_of(&[&rotated]);
    server.fail.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(31));
    assert!(issuer.verify(&rotated.mint(&claims()).unwrap()).await.is_ok());
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn oidc_discovery_and_tls_verification() {
    let key = es256();
    let server = JwksServer::start(jwks_of(&[&key])).await;
    let discovery = DiscoveryFetcher::new(server.client(), server.url.clone());
    assert_eq!(
        discovery.jwks_uri().await.unwrap(),
        format!("{}/jwks", server.url)
    );
    let bytes = discovery.fetch().await.unwrap();
    assert_eq!(KeySet::from_json(&bytes).unwrap().len(), 1);
    // A discovery document for another issuer is refused.
    let other = DiscoveryFetcher::new(server.client(), format!("{}/other", server.url));
    assert!(other.fetch().await.is_err());
    // Without the test CA (system roots), the server is not trusted.
    let untrusted = UrlFetcher::new(HttpsClient::new(None).unwrap(), format!("{}/jwks", server.url));
    assert!(untrusted.fetch().await.is_err());
    // http:// is never fetched.
    let plain = UrlFetcher::new(server.client(), "http://127.0.0.1:1/jwks");
    assert!(plain.fetch().await.is_err());
}

// ---------------------------------------------------------------- DPoP

const URL: &str = "https://api.bank.example/accounts/ACC-1";

struct Dpop {
    verifier: DpopVerifier,
    clock: Arc<FakeClock>,
    key: SigningKey,
}

fn dpop_setup(cfg: &str) -> Dpop {
    let c: DpopConfig = toml::from_str(cfg).unwrap();
    let clock = FakeClock::at_unix(NOW);
    Dpop {
        verifier: DpopVerifier::new(DpopPolicy::from_config(&c, "dpop").unwrap(), clock.clone()),
        clock,
        key: es256(),
    }
}

impl Dpop {
    fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.key
            .dpop_proof(method, url, Some(token), now(), None)
            .unwrap()
    }

    async fn check(&self, proof: &str, token: &str) -> Result<(), AuthnError> {
        let jkt = self.key.thumbprint();
        let req = ProofRequest {
            method: "GET",
            url: URL,
            access_token: token,
            jkt: &jkt,
        };
        self.verifier.verify(proof, &req).await.map(|_| ())
    }
}

#[tokio::test]
async fn dpop_valid_proof_then_replay() {
    let d = dpop_setup("");
    let proof = d.proof("GET", URL, "tok");
    d.check(&proof, "tok").await.unwrap();
    let e = d.check(&proof, "tok").await.unwrap_err();
    assert_eq!(e, AuthnError::DpopReplayed);
    assert_eq!(e.class(), ErrorClass::InvalidDpopProof);
    // A fresh proof for the same request is fine.
    d.check(&d.proof("GET", URL, "tok"), "tok").await.unwrap();
    // Every FAPI algorithm works for proofs.
    for alg in [Algorithm::EdDSA, Algorithm::PS256] {
        let k = SigningKey::generate(alg).unwrap();
        let jkt = k.thumbprint();
        let proof = k.dpop_proof("GET", URL, Some("tok"), now(), None).unwrap();
        let req = ProofRequest {
            method: "GET",
            url: URL,
            access_token: "tok",
            jkt: &jkt,
        };
        d.verifier.verify(&proof, &req).await.unwrap();
    }
}

#[tokio::test]
async fn dpop_request_binding_mismatches() {
    let d = dpop_setup("");
    assert_eq!(
        d.check(&d.proof("POST", URL, "tok"), "tok").await.unwrap_err(),
        AuthnError::DpopHtmMismatch
    );
    assert_eq!(
        d.check(&d.proof("get", URL, "tok"), "tok").await.unwrap_err(),
        AuthnError::DpopHtmMismatch
    );
    let other = "https://api.bank.example/accounts/ACC-2";
    assert_eq!(
        d.check(&d.proof("GET", other, "tok"), "tok").await.unwrap_err(),
        AuthnError::DpopHtuMismatch
    );
    let evil = "https://evil.example/accounts/ACC-1";
    assert_eq!(
        d.check(&d.proof("GET", evil, "tok"), "tok").await.unwrap_err(),
        AuthnError::DpopHtuMismatch
    );
    // Query and fragment are ignored; scheme/host case and the default port too.
    d.check(&d.proof("GET", &format!("{URL}?x=1#f"), "tok"), "tok")
        .await
        .unwrap();
    d.check(
        &d.proof("GET", "HTTPS://API.bank.example:443/accounts/ACC-1", "tok"),
        "tok",
    )
    .await
    .unwrap();
    // ath of another token.
    assert_eq!(
        d.check(&d.proof("GET", URL, "other"), "tok").await.unwrap_err(),
        AuthnError::DpopAthMismatch
    );
    let no_ath = d.key.dpop_proof("GET", URL, None, now(), None).unwrap();
    assert_eq!(
        d.check(&no_ath, "tok").await.unwrap_err(),
        AuthnError::DpopAthMismatch
    );
    // A proof by another key than the token's cnf.jkt.
    let thief = es256();
    let p = thief.dpop_proof("GET", URL, Some("tok"), now(), None).unwrap();
    assert_eq!(d.check(&p, "tok").await.unwrap_err(), AuthnError::DpopCnfMismatch);
}

#[tokio::test]
async fn dpop_iat_window() {
    let d = dpop_setup("");
    let at = |iat: i64| d.key.dpop_proof("GET", URL, Some("tok"), iat, None).unwrap();
    assert_eq!(
        d.check(&at(now() - 61), "tok").await.unwrap_err(),
        AuthnError::DpopIatOutOfWindow
    );
    assert_eq!(
        d.check(&at(now() + 6), "tok").await.unwrap_err(),
        AuthnError::DpopIatOutOfWindow
    );
    d.check(&at(now() - 59), "tok").await.unwrap();
    d.check(&at(now() + 4), "tok").await.unwrap();
    // A proof made now is refused once the clock has moved past the window.
    let p = at(now());
    d.clock.advance(Duration::from_secs(61));
    assert_eq!(
        d.check(&p, "tok").await.unwrap_err(),
        AuthnError::DpopIatOutOfWindow
    );
}

#[tokio::test]
async fn dpop_header_rules() {
    let d = dpop_setup("");
    let claims = json!({"jti": "j1", "htm": "GET", "htu": URL, "iat": now(), "ath": super::dpop::access_token_hash("tok")});
    let signed = |header: Value| d.key.sign(obj(header), &claims).unwrap();
    let jwk = Value::Object(d.key.public_jwk());
    // Wrong typ, missing jwk.
    let e = d
        .check(&signed(json!({"typ": "JWT", "jwk": jwk.clone()})), "tok")
        .await
        .unwrap_err();
    assert_eq!(e, AuthnError::DpopWrongTyp);
    let e = d
        .check(&signed(json!({"typ": "dpop+jwt"})), "tok")
        .await
        .unwrap_err();
    assert!(matches!(e, AuthnError::DpopMalformed(_)));
    // A private key in the proof's jwk is refused.
    let private = Value::Object(d.key.private_jwk().unwrap());
    let e = d
        .check(&signed(json!({"typ": "dpop+jwt", "jwk": private})), "tok")
        .await
        .unwrap_err();
    assert_eq!(e, AuthnError::DpopPrivateKey);
    // A jwk that is not the signer's: bad signature.
    let other = Value::Object(es256().public_jwk());
    let e = d
        .check(&signed(json!({"typ": "dpop+jwt", "jwk": other})), "tok")
        .await
        .unwrap_err();
    assert_eq!(e, AuthnError::DpopBadSignature);
    // Symmetric and `none` algorithms.
    let hs = jsonwebtoken::encode(
        &{
            let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
            h.typ = Some("dpop+jwt".into());
            h
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    assert!(matches!(
        d.check(&hs, "tok").await,
        Err(AuthnError::DpopAlgNotAllowed(_))
    ));
    let none = raw(
        &json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk.clone()}),
        &claims,
        "c2ln",
    );
    assert!(matches!(
        d.check(&none, "tok").await,
        Err(AuthnError::DpopAlgNotAllowed(_))
    ));
    // jku in a proof is refused too.
    let e = d
        .check(
            &signed(json!({"typ": "dpop+jwt", "jwk": jwk.clone(), "jku": "https://x"})),
            "tok",
        )
        .await;
    assert!(matches!(e, Err(AuthnError::DpopMalformed(_))));
    // The same header, well-formed: accepted (the sanity call).
    d.check(&signed(json!({"typ": "dpop+jwt", "jwk": jwk.clone()})), "tok")
        .await
        .unwrap();
}

#[tokio::test]
async fn dpop_server_nonces() {
    let d = dpop_setup("nonce = true\nnonce_lifetime = \"5m\"");
    let e = d.check(&d.proof("GET", URL, "tok"), "tok").await.unwrap_err();
    assert_eq!(e, AuthnError::DpopNonce);
    assert_eq!(e.class(), ErrorClass::UseDpopNonce);
    let nonces = d.verifier.nonces().unwrap();
    let n = nonces.current();
    let with = |n: &str| d.key.dpop_proof("GET", URL, Some("tok"), now(), Some(n)).unwrap();
    assert_eq!(
        d.check(&with("made-up"), "tok").await.unwrap_err(),
        AuthnError::DpopNonce
    );
    d.check(&with(&n), "tok").await.unwrap();
    // The previous nonce stays valid for one more lifetime, then not.
    d.clock.advance(Duration::from_secs(300));
    assert_ne!(nonces.current(), n);
    assert!(nonces.accepts(&n));
    d.clock.advance(Duration::from_secs(300));
    assert!(!nonces.accepts(&n));
}

#[test]
fn htu_normalisation() {
    assert_eq!(
        normalize_htu("https://A.example/p?q#f").unwrap(),
        "https://a.example/p"
    );
    assert_eq!(
        normalize_htu("https://a.example:443").unwrap(),
        "https://a.example/"
    );
    assert_eq!(
        normalize_htu("https://a.example:8443/p").unwrap(),
        "https://a.example:8443/p"
    );
    assert_eq!(
        normalize_htu("http://a.example:80/p").unwrap(),
        "http://a.example/p"
    );
    assert_eq!(normalize_htu("https://[::1]:443/p").unwrap(), "https://[::1]/p");
    assert!(normalize_htu("https://user@a.example/p").is_none());
    assert!(normalize_htu("ftp://a.example/p").is_none());
    assert!(normalize_htu("/relative").is_none());
    // Paths are compared as written (case-sensitive).
    assert_ne!(normalize_htu("https://a/P"), normalize_htu("https://a/p"));
}

#[test]
fn memory_replay_cache_is_bounded_and_expires() {
    use super::dpop::{MemoryReplayCache, ReplayCache};
    let clock = FakeClock::at_unix(NOW);
    let cache = MemoryReplayCache::new(32, clock.clone());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let k = [7u8; 32];
        assert!(cache.check_and_insert(k, Duration::from_secs(60)).await.unwrap());
        assert!(!cache.check_and_insert(k, Duration::from_secs(60)).await.unwrap());
        clock.advance(Duration::from_secs(61));
        assert!(
            cache.check_and_insert(k, Duration::from_secs(60)).await.unwrap(),
            "expired entries are forgotten"
        );
        for i in 0..=255u8 {
            for j in 0..4u8 {
                let mut key = [i; 32];
                key[1] = j;
                cache
                    .check_and_insert(key, Duration::from_secs(60))
                    .await
                    .unwrap();
            }
        }
    });
}

// ---------------------------------------------------------------- the request

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn authorization_header_parsing() {
    assert_eq!(
        credential(&headers(&[])).unwrap_err(),
        AuthnError::MissingCredentials
    );
    let h = headers(&[("authorization", "Bearer abc.def.ghi")]);
    let c = credential(&h).unwrap();
    assert_eq!((c.scheme, c.token), (Scheme::Bearer, "abc.def.ghi"));
    let h = headers(&[("authorization", "dpop abc.def.ghi")]);
    let c = credential(&h).unwrap();
    assert_eq!(c.scheme, Scheme::Dpop);
    let two = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
    assert_eq!(credential(&two).unwrap_err(), AuthnError::MultipleAuthorization);
    for bad in [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer a,b",
        "Bearer =",
        "Bearer a\"b",
    ] {
        assert_eq!(
            credential(&headers(&[("authorization", bad)])).unwrap_err(),
            AuthnError::MalformedAuthorization,
            "{bad:?}"
        );
    }
    let basic = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(credential(&basic).unwrap_err(), AuthnError::UnsupportedScheme);
}

struct Gate {
    issuer: Fixture,
    auth: Authenticator,
    idp: SigningKey,
    client: SigningKey,
}

fn gate(extra: &str) -> Gate {
    let idp = es256();
    let issuer = file_issuer(&[&idp], extra);
    let auth = Authenticator::new(DpopVerifier::new(DpopPolicy::default(), issuer.clock.clone()));
    Gate {
        issuer,
        auth,
        idp,
        client: es256(),
    }
}

impl Gate {
    async fn run(
        &self,
        h: &HeaderMap,
        cert: Option<&[u8]>,
        route_requires: bool,
    ) -> Result<SenderBinding, AuthnError> {
        let req = AuthnRequest {
            headers: h,
            method: "GET",
            url: URL,
            client_cert_der: cert,
            require_sender_constrained: route_requires,
        };
        self.auth
            .authenticate(&self.issuer.issuer, &req)
            .await
            .map(|a| a.binding)
    }

    fn bound_token(&self) -> String {
        let mut c = claims();
        c["cnf"] = json!({"jkt": self.client.thumbprint()});
        self.idp.mint(&c).unwrap()
    }
}

#[tokio::test]
async fn dpop_bound_tokens_need_the_dpop_scheme_and_a_proof() {
    let g = gate("");
    let token = g.bound_token();
    let auth = format!("DPoP {token}");
    let bearer = format!("Bearer {token}");
    let r = g.run(&headers(&[("authorization", &bearer)]), None, false).await;
    assert_eq!(r.unwrap_err(), AuthnError::SchemeMismatch);
    let r = g.run(&headers(&[("authorization", &auth)]), None, false).await;
    assert_eq!(r.unwrap_err(), AuthnError::DpopMissing);
    let proof = g
        .client
        .dpop_proof("GET", URL, Some(&token), now(), None)
        .unwrap();
    let h = headers(&[("authorization", &auth), ("dpop", &proof)]);
    assert_eq!(g.run(&h, None, true).await.unwrap(), SenderBinding::Dpop);
    // The same proof again is a replay.
    assert_eq!(
        g.run(&h, None, false).await.unwrap_err(),
        AuthnError::DpopReplayed
    );
    // Two DPoP headers.
    let p2 = g
        .client
        .dpop_proof("GET", URL, Some(&token), now(), None)
        .unwrap();
    let h = headers(&[("authorization", &auth), ("dpop", &p2), ("dpop", &p2)]);
    assert_eq!(
        g.run(&h, None, false).await.unwrap_err(),
        AuthnError::DpopMultiple
    );
    // An unbound token under the DPoP scheme.
    let plain = g.idp.mint(&claims()).unwrap();
    let p3 = g
        .client
        .dpop_proof("GET", URL, Some(&plain), now(), None)
        .unwrap();
    let h = headers(&[("authorization", &format!("DPoP {plain}")), ("dpop", &p3)]);
    assert_eq!(
        g.run(&h, None, false).await.unwrap_err(),
        AuthnError::SchemeMismatch
    );
}

#[tokio::test]
async fn sender_constraint_required_refuses_plain_bearer() {
    let g = gate("");
    let plain = format!("Bearer {}", g.idp.mint(&claims()).unwrap());
    assert_eq!(
        g.run(&headers(&[("authorization", &plain)]), None, false)
            .await
            .unwrap(),
        SenderBinding::None
    );
    let e = g
        .run(&headers(&[("authorization", &plain)]), None, true)
        .await
        .unwrap_err();
    assert_eq!(e, AuthnError::SenderConstraintRequired);
    let fapi = gate("require_sender_constrained = true");
    let plain = format!("Bearer {}", fapi.idp.mint(&claims()).unwrap());
    let e = fapi
        .run(&headers(&[("authorization", &plain)]), None, false)
        .await
        .unwrap_err();
    assert_eq!(e, AuthnError::SenderConstraintRequired);
    assert_eq!(e.class(), ErrorClass::InvalidToken);
}

#[tokio::test]
async fn certificate_bound_tokens() {
    use rustls_pki_types::pem::PemObject;
    let pki = crate::demo::pki::TestPki::generate(&["localhost"]).unwrap();
    let cert = rustls_pki_types::CertificateDer::from_pem_slice(pki.client_cert_pem.as_bytes()).unwrap();
    let other = rustls_pki_types::CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).unwrap();
    let g = gate("require_sender_constrained = true");
    let mut c = claims();
    c["cnf"] = json!({"x5t#S256": x5t_s256(&cert)});
    let h = headers(&[("authorization", &format!("Bearer {}", g.idp.mint(&c).unwrap()))]);
    assert_eq!(
        g.run(&h, Some(&cert), false).await.unwrap(),
        SenderBinding::Certificate
    );
    assert_eq!(
        g.run(&h, Some(&other), false).await.unwrap_err(),
        AuthnError::CertificateMismatch
    );
    assert_eq!(
        g.run(&h, None, false).await.unwrap_err(),
        AuthnError::CertificateMissing
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn clients_see_only_the_class() {
    let e = AuthnError::Expired;
    assert_eq!(e.cause(), "authn.expired");
    let v = e.www_authenticate(Scheme::Bearer);
    assert_eq!(
        v.to_str().unwrap(),
        "Bearer realm=\"rampart\", error=\"invalid_token\", error_description=\"The access token is invalid\""
    );
    // Different causes, identical challenges.
    for e in [
        AuthnError::BadSignature,
        AuthnError::UnknownKid,
        AuthnError::WrongAudience,
        AuthnError::AlgNone,
    ] {
        assert_eq!(e.www_authenticate(Scheme::Bearer), v);
    }
    assert_eq!(
        AuthnError::MissingCredentials
            .www_authenticate(Scheme::Bearer)
            .to_str()
            .unwrap(),
        "Bearer realm=\"rampart\""
    );
    let d = AuthnError::DpopReplayed.www_authenticate(Scheme::Bearer);
    assert!(d
        .to_str()
        .unwrap()
        .starts_with("DPoP algs=\"PS256 ES256 EdDSA\", error=\"invalid_dpop_proof\""));
    assert_eq!(
        AuthnError::MalformedAuthorization.class().status(),
        http::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        AuthnError::Expired.class().status(),
        http::StatusCode::UNAUTHORIZED
    );
    let n = AuthnError::DpopNonce.www_authenticate(Scheme::Dpop);
    assert!(n.to_str().unwrap().contains("error=\"use_dpop_nonce\""));
}

// ---------------------------------------------------------------- signing keys

#[tokio::test]
async fn exported_keys_load_back_and_sign_for_the_same_jwks() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256] {
        let key = SigningKey::generate(alg).unwrap();
        let text = match key.private_jwk() {
            Ok(jwk) => Value::Object(jwk).to_string(),
            Err(_) => key.to_pkcs8_pem().unwrap(),
        };
        let loaded = SigningKey::load(&text, Some(alg)).unwrap();
        assert_eq!(loaded.thumbprint(), key.thumbprint(), "{alg:?}");
        assert_eq!(loaded.kid(), key.kid());
        // A token from the reloaded key verifies against the original JWKS.
        let f = file_issuer(&[&key], "");
        assert!(
            f.issuer.verify(&loaded.mint(&claims()).unwrap()).await.is_ok(),
            "{alg:?}"
        );
        // PKCS#8 PEM works for every type.
        let pem = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap(), alg).unwrap();
        assert_eq!(pem.thumbprint(), key.thumbprint());
    }
    assert!(SigningKey::load("{\"kty\":\"oct\",\"k\":\"AAAA\"}", None).is_err());
    assert!(SigningKey::generate(Algorithm::HS256).is_err());
}
