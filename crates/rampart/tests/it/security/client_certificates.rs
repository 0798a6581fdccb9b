//! Client certificates as identity (`authn = ["mtls"]`), through the real
//! gateway: only certificates mapped by `[[mtls.clients]]` are anyone, a
//! certificate in the CRL is refused, and the RFC 9440 `Client-Cert` header
//! counts only from a trusted proxy (and never reaches the upstream). Also
//! `mtls+jwt:<issuer>` (both must hold) and `cnf.x5t#S256` binding to a
//! certificate a trusted proxy reports.

use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;
use jsonwebtoken::Algorithm;
use rampart::authn::sign::SigningKey;
use rampart_testkit::{Alpn, Client, Harness, RecordingUpstream, TestResponse};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
};
use serde_json::json;

const ISS: &str = "https://idp.bank.test";
const AUD: &str = "https://api.bank.test";

/// A partner CA (the listener's `client_ca`), three client certificates
/// (PEM cert, PEM key, DER) and a CRL revoking one.
struct Partners {
    ca_pem: String,
    crl_pem: String,
    mapped: (String, String, Vec<u8>),
    stranger: (String, String, Vec<u8>),
    revoked: (String, String, Vec<u8>),
}

fn partners() -> Partners {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "Partner CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = rcgen::date_time_ymd(2025, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let client = |cn: &str, serial: Vec<u8>| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(2035, 1, 1);
        p.serial_number = Some(serial.into());
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    };
    let crl = CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2025, 1, 1),
        next_update: rcgen::date_time_ymd(2035, 1, 1),
        crl_number: vec![1].into(),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: vec![0x10, 0x03].into(),
            revocation_time: rcgen::date_time_ymd(2025, 6, 1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca)
    .unwrap();
    Partners {
        ca_pem: ca.pem(),
        crl_pem: crl.pem().unwrap(),
        mapped: client("demo-fintech", vec![0x10, 0x01]),
        stranger: client("stranger", vec![0x10, 0x02]),
        revoked: client("revoked-fintech", vec![0x10, 0x03]),
    }
}

struct Gw {
    h: Harness,
    p: Partners,
    key: SigningKey,
}

async fn start() -> Gw {
    let p = partners();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        r#"{base}
[ip_filter]
trusted_proxies = ["127.0.0.2/32"]

[mtls]
principal_from = "subject_cn"
crl_file = "crl.pem"
trust_client_cert_header = true

[[mtls.clients]]
subject_cn = "demo-fintech"
client_id = "partner-42"
scopes = ["accounts:read"]

[[mtls.clients]]
subject_cn = "revoked-fintech"
client_id = "partner-43"

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
authn = ["mtls"]
authz = "authenticated"

[[routes]]
id = "payment-create"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = ["mtls+jwt:bank-idp"]
authz = "authenticated"

[[routes]]
id = "balances"
path = "/v1/balances"
methods = ["GET"]
upstream = "backend"
authn = ["jwt:bank-idp"]
authz = "authenticated"
"#,
        base = rampart_testkit::base_policy(&upstream.url()).replace(
            "key = \"server.key\"\n",
            "key = \"server.key\"\nclient_auth = \"optional\"\nclient_ca = \"partners-ca.pem\"\n",
        ),
    );
    let jwks = key.jwks().to_string();
    let h = Harness::start_with_files(
        upstream,
        &policy,
        &[
            ("jwks.json", &jwks),
            ("partners-ca.pem", &p.ca_pem),
            ("crl.pem", &p.crl_pem),
        ],
    )
    .await;
    Gw { h, p, key }
}

impl Gw {
    fn with(&self, cert: &(String, String, Vec<u8>)) -> Client {
        Client::with_identity(
            &self.h.pki.ca_cert_pem,
            self.h.addr(),
            Alpn::Http1,
            &cert.0,
            &cert.1,
        )
    }

    /// A client connecting from 127.0.0.2, the trusted proxy.
    fn proxy(&self) -> Client {
        Client::from_address(
            &self.h.pki.ca_cert_pem,
            self.h.addr(),
            "127.0.0.2".parse().unwrap(),
        )
    }

    fn token(&self, cnf: Option<&[u8]>) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let mut c = json!({
            "iss": ISS, "aud": AUD, "sub": "customer-a", "client_id": "fintech-42",
            "scope": "payments:write", "iat": now, "exp": now + 300,
        });
        if let Some(der) = cnf {
            c["cnf"] = json!({ "x5t#S256": rampart::authn::thumbprint::x5t_s256(der) });
        }
        self.key.mint(&c).unwrap()
    }
}

/// RFC 9440 header value: `:base64(DER):`.
fn client_cert(der: &[u8]) -> String {
    use base64::Engine as _;
    format!(":{}:", base64::engine::general_purpose::STANDARD.encode(der))
}

async fn get(c: &Client, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    c.send(Method::GET, path, headers, "").await
}

#[tokio::test]
async fn only_mapped_unrevoked_certificates_identify_a_client() {
    let gw = start().await;
    // No certificate: 401 without an error code.
    let r = gw.h.client().get("/v1/accounts").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(!r.header("www-authenticate").unwrap().contains("error="));
    // A certificate of the CA, but mapped to nobody.
    let r = get(&gw.with(&gw.p.stranger), "/v1/accounts", &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    // Mapped, but its serial is in the CRL.
    let r = get(&gw.with(&gw.p.revoked), "/v1/accounts", &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(!r.text().to_lowercase().contains("revoked"), "{}", r.text());
    assert_eq!(gw.h.upstream.count(), 0, "a refused request reached the upstream");
    // The mapped certificate: its client id goes upstream.
    let r = get(&gw.with(&gw.p.mapped), "/v1/accounts", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let last = gw.h.upstream.requests().pop().unwrap();
    assert_eq!(last.headers["x-authenticated-client-id"], "partner-42");
    assert_eq!(last.headers["x-authenticated-subject"], "demo-fintech");
    assert_eq!(last.headers["x-authenticated-scopes"], "accounts:read");
    assert_eq!(last.headers["x-authenticated-issuer"], "mtls");
    let m = gw.h.metrics().await;
    for cause in [
        "authn.certificate_unknown",
        "authn.certificate_revoked",
        "authn.client_certificate_missing",
    ] {
        assert!(m.contains(&format!("cause=\"{cause}\"")), "{cause} not counted");
    }
}

#[tokio::test]
async fn client_cert_header_is_ignored_and_stripped_from_anyone_but_a_trusted_proxy() {
    let gw = start().await;
    let mapped = client_cert(&gw.p.mapped.2);
    // From an ordinary client: ignored, without and with a handshake certificate.
    let r = get(&gw.h.client(), "/v1/accounts", &[("client-cert", &mapped)]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = get(
        &gw.with(&gw.p.stranger),
        "/v1/accounts",
        &[("client-cert", &mapped)],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(gw.h.upstream.count(), 0);
    // Its own (mapped) certificate counts; the header does not travel on.
    let r = get(
        &gw.with(&gw.p.mapped),
        "/v1/accounts",
        &[
            ("client-cert", &client_cert(&gw.p.stranger.2)),
            ("client-cert-chain", "x"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let last = gw.h.upstream.requests().pop().unwrap();
    assert!(
        last.headers.get("client-cert").is_none(),
        "Client-Cert reached the upstream"
    );
    assert!(last.headers.get("client-cert-chain").is_none());
    assert_eq!(last.headers["x-authenticated-client-id"], "partner-42");
}

#[tokio::test]
async fn client_cert_header_from_a_trusted_proxy_is_the_certificate() {
    let gw = start().await;
    let proxy = gw.proxy();
    let r = get(
        &proxy,
        "/v1/accounts",
        &[("client-cert", &client_cert(&gw.p.mapped.2))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let last = gw.h.upstream.requests().pop().unwrap();
    assert_eq!(last.headers["x-authenticated-client-id"], "partner-42");
    assert!(last.headers.get("client-cert").is_none());
    let forwarded = gw.h.upstream.count();
    for (what, value) in [
        ("unmapped", client_cert(&gw.p.stranger.2)),
        ("revoked", client_cert(&gw.p.revoked.2)),
        ("not a byte sequence", "MIIB".to_owned()),
        ("not base64", ":***:".to_owned()),
        ("not a certificate", client_cert(b"hello")),
    ] {
        let r = get(&proxy, "/v1/accounts", &[("client-cert", &value)]).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
    }
    // No header from the proxy: no certificate.
    assert_eq!(get(&proxy, "/v1/accounts", &[]).await.status, 401);
    assert_eq!(gw.h.upstream.count(), forwarded);

    // It also feeds the cnf.x5t#S256 binding of tokens.
    let bound = format!("Bearer {}", gw.token(Some(&gw.p.mapped.2)));
    let header = client_cert(&gw.p.mapped.2);
    let r = get(
        &proxy,
        "/v1/balances",
        &[("authorization", &bound), ("client-cert", &header)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The same pair from an untrusted peer: the header is not believed.
    let r = get(
        &gw.h.client(),
        "/v1/balances",
        &[("authorization", &bound), ("client-cert", &header)],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
}

#[tokio::test]
async fn mtls_plus_jwt_needs_both_and_the_principal_is_the_tokens() {
    let gw = start().await;
    let auth = format!("Bearer {}", gw.token(None));
    let post = |c: Client, headers: Vec<(&'static str, String)>| async move {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.send(Method::POST, "/v1/payments", &h, "{}").await
    };
    let r = post(gw.with(&gw.p.mapped), vec![("authorization", auth.clone())]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let last = gw.h.upstream.requests().pop().unwrap();
    assert_eq!(last.headers["x-authenticated-subject"], "customer-a");
    assert_eq!(last.headers["x-authenticated-client-id"], "fintech-42");
    assert_eq!(last.headers["x-authenticated-scopes"], "payments:write");
    let forwarded = gw.h.upstream.count();
    // The token alone, the certificate alone, an unmapped certificate: no.
    assert_eq!(
        post(gw.h.client(), vec![("authorization", auth.clone())])
            .await
            .status,
        401
    );
    assert_eq!(post(gw.with(&gw.p.mapped), vec![]).await.status, 401);
    assert_eq!(
        post(gw.with(&gw.p.stranger), vec![("authorization", auth.clone())])
            .await
            .status,
        401
    );
    assert_eq!(gw.h.upstream.count(), forwarded);
}
