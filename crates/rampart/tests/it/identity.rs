//! Identity forwarding (`[identity]`) through the real gateway: custom
//! identity header names (client-sent copies stripped, on authenticated and
//! unauthenticated routes alike), the gateway-signed identity JWT the
//! upstream receives (signature checked with the published JWKS from the
//! admin listener and from `rampart identity jwks`), and `rampart check`
//! refusing a bad `[identity]`.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;
use jsonwebtoken::Algorithm;
use rampart::authn::jwks::KeySet;
use rampart::authn::sign::SigningKey;
use rampart_testkit::{admin_request, Harness, RecordingUpstream};
use serde_json::{json, Value};

const ISS: &str = "https://idp.bank.test";
const AUD: &str = "https://api.bank.test";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64d(s: &str) -> Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

const IDENTITY: &str = r#"
[identity]
subject_header = "x-bank-user"
client_id_header = "x-bank-client"
scopes_header = "x-bank-scopes"
issuer_header = "x-bank-idp"
jwt_header = "x-rampart-identity"
jwt_key_file = "identity.key"
jwt_ttl = "45s"
"#;

/// A gateway whose `/v1/accounts` needs a token from `bank-idp` and whose
/// `/status/{code}` is open; identity goes upstream under custom names and
/// as an identity JWT signed with a PKCS#8 PEM (EdDSA) key.
async fn start() -> (Harness, SigningKey, SigningKey) {
    let idp = SigningKey::generate(Algorithm::ES256).unwrap();
    let gw_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
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

[[routes]]
id = "status"
path = "/status/{{code}}"
methods = ["GET"]
upstream = "backend"
authn = "none"
{IDENTITY}"#,
        base = rampart_testkit::base_policy(&upstream.url()),
    );
    let h = Harness::start_with_files(
        upstream,
        &policy,
        &[
            ("jwks.json", &idp.jwks().to_string()),
            ("identity.key", &gw_key.to_pkcs8_pem().unwrap()),
        ],
    )
    .await;
    (h, idp, gw_key)
}

/// Checks `token`'s signature against `jwks`; returns (header, claims).
fn verify(token: &str, jwks: &Value) -> (Value, Value) {
    let keys = KeySet::from_json(jwks.to_string().as_bytes()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let (header, claims) = (b64d(parts[0]), b64d(parts[1]));
    let alg = Algorithm::EdDSA;
    assert_eq!(header["alg"], "EdDSA");
    let key = keys
        .find(header["kid"].as_str(), alg)
        .expect("the kid is in the JWKS");
    assert!(
        key.verify(alg, format!("{}.{}", parts[0], parts[1]).as_bytes(), parts[2]),
        "identity JWT signature"
    );
    (header, claims)
}

#[tokio::test]
async fn the_upstream_gets_the_principal_under_the_configured_names_and_a_signed_identity_jwt() {
    let (h, idp, gw_key) = start().await;
    let c = h.client();
    let issued = now();
    let token = idp
        .mint(&json!({
            "iss": ISS, "aud": AUD, "sub": "customer-a", "client_id": "fintech-42",
            "scope": "accounts:read", "acr": "urn:bank:loa:2", "amr": ["pwd"],
            "auth_time": issued - 60, "iat": issued, "exp": issued + 300,
        }))
        .unwrap();
    let auth = format!("Bearer {token}");
    let spoofed = [
        ("authorization", auth.as_str()),
        ("x-bank-user", "customer-b"),
        ("x-bank-client", "evil"),
        ("x-bank-scopes", "payments:write"),
        ("x-bank-idp", "other-idp"),
        (
            "x-rampart-identity",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjdXN0b21lci1iIn0.",
        ),
        ("x-authenticated-subject", "customer-b"),
    ];
    let r = c.send(Method::GET, "/v1/accounts", &spoofed, String::new()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let request_id = r.header("x-request-id").unwrap().to_string();
    let seen = h.upstream.requests().pop().unwrap();
    let hd = &seen.headers;
    assert!(hd.get("authorization").is_none(), "the token went upstream");
    assert_eq!(hd["x-bank-user"], "customer-a");
    assert_eq!(hd["x-bank-client"], "fintech-42");
    assert_eq!(hd["x-bank-scopes"], "accounts:read");
    assert_eq!(hd["x-bank-idp"], "bank-idp");
    assert_eq!(hd.get_all("x-bank-user").iter().count(), 1);
    assert_eq!(hd.get_all("x-rampart-identity").iter().count(), 1);
    // The default names are stripped too, and not set under the custom ones.
    assert!(hd.get("x-authenticated-subject").is_none());

    // The identity JWT, checked with the JWKS the admin listener publishes.
    let published = admin_request(Method::GET, &h.admin_url("/admin/identity/jwks"), None).await;
    assert_eq!(published.status, 200, "{}", published.text());
    let jwks = published.json();
    assert_eq!(jwks, gw_key.jwks());
    assert!(!published.text().contains("\"d\""), "private key published");
    let (header, claims) = verify(hd["x-rampart-identity"].to_str().unwrap(), &jwks);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], gw_key.kid());
    assert_eq!(claims["iss"], "rampart");
    assert_eq!(claims["aud"], "backend", "audience: the upstream's name");
    assert_eq!(claims["sub"], "customer-a");
    assert_eq!(claims["client_id"], "fintech-42");
    assert_eq!(claims["scope"], "accounts:read");
    assert_eq!(claims["acr"], "urn:bank:loa:2");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["auth_time"], issued - 60);
    assert_eq!(claims["txn"], request_id.as_str());
    assert!(claims.get("cnf").is_none(), "a bearer token has no cnf");
    let iat = claims["iat"].as_i64().unwrap();
    assert!((iat - now()).abs() <= 5, "iat {iat}");
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 45);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    // A second request gets a fresh token.
    let r = c.send(Method::GET, "/v1/accounts", &spoofed, String::new()).await;
    assert_eq!(r.status, 200);
    let again = h.upstream.requests().pop().unwrap();
    let (_, claims2) = verify(again.headers["x-rampart-identity"].to_str().unwrap(), &jwks);
    assert_ne!(claims2["jti"], claims["jti"]);
}

#[tokio::test]
async fn on_an_unauthenticated_route_identity_headers_are_only_stripped() {
    let (h, _, _) = start().await;
    let r = h
        .client()
        .send(
            Method::GET,
            "/status/200",
            &[
                ("x-bank-user", "customer-b"),
                ("x-bank-idp", "bank-idp"),
                ("x-rampart-identity", "forged"),
                ("x-authenticated-subject", "customer-b"),
            ],
            String::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = h.upstream.requests().pop().unwrap();
    for name in [
        "x-bank-user",
        "x-bank-idp",
        "x-rampart-identity",
        "x-authenticated-subject",
    ] {
        assert!(seen.headers.get(name).is_none(), "{name} reached the upstream");
    }
}

#[tokio::test]
async fn rampart_identity_jwks_prints_the_public_jwks_and_check_refuses_a_bad_identity() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    std::fs::write(
        dir.path().join("identity.key"),
        Value::Object(key.private_jwk().unwrap()).to_string(),
    )
    .unwrap();
    let base = r#"
[dangerous]
allow_plain_http = true

[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "backend"
targets = ["http://127.0.0.1:1"]

[[routes]]
id = "status"
path = "/status"
methods = ["GET"]
upstream = "backend"
authn = "none"
"#;
    let policy = dir.path().join("rampart.toml");
    std::fs::write(
        &policy,
        format!("{base}\n[identity]\njwt_header = \"x-rampart-identity\"\njwt_key_file = \"identity.key\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["identity", "jwks", "--config"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, key.jwks());

    std::fs::write(
        &policy,
        format!(
            "{base}\n[identity]\nsubject_header = \"x-forwarded-for\"\nscopes_header = \"bad header\"\njwt_header = \"x-rampart-identity\"\njwt_key_file = \"missing.key\"\njwt_ttl = \"10m\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["check", "--config"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "identity.subject_header",
        "identity.scopes_header",
        "identity.jwt_key_file",
        "identity.jwt_ttl",
    ] {
        assert!(report.contains(needle), "{needle} not reported: {report}");
    }
}
