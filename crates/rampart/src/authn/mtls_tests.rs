#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::HeaderMap;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
};

use super::{Mtls, PrincipalFrom};
use crate::authn::error::AuthnError;
use crate::clock::FakeClock;
use crate::config::LoadedConfig;

/// 2030-01-01, inside the test certificates' validity.
const NOW: u64 = 1_893_456_000;

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

fn pki() -> Pki {
    pki_named("Partner CA")
}

fn pki_named(name: &str) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Pki {
        ca: CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap(),
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Pki {
    fn cert(&self, cn: Option<&str>, sans: Vec<SanType>, serial: u8) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.subject_alt_names = sans;
        p.serial_number = Some(vec![0x20, serial].into());
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(2035, 1, 1);
        p.signed_by(&KeyPair::generate().unwrap(), &self.ca)
            .unwrap()
            .der()
            .to_vec()
    }

    fn crl(&self, serials: &[u8]) -> String {
        CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2025, 1, 1),
            next_update: rcgen::date_time_ymd(2035, 1, 1),
            crl_number: vec![1].into(),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: vec![0x20, *s].into(),
                    revocation_time: rcgen::date_time_ymd(2025, 6, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca)
        .unwrap()
        .pem()
        .unwrap()
    }

    fn loaded(&self, mtls: &str) -> LoadedConfig {
        LoadedConfig::from_text(&self.dir.path().join("rampart.toml"), format!("[mtls]\n{mtls}")).unwrap()
    }

    fn mtls(&self, text: &str) -> Result<Mtls, Vec<String>> {
        let loaded = self.loaded(text);
        Mtls::from_config(&loaded.config.mtls, &loaded, FakeClock::at_unix(NOW)).map_err(|p| {
            p.into_iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect()
        })
    }
}

#[test]
fn defaults_and_validation() {
    let pki = pki();
    let m = pki.mtls("").unwrap();
    assert_eq!(m.principal_from, PrincipalFrom::SubjectCn);
    assert!(!m.has_clients() && !m.trust_header);
    let p = pki
        .mtls(
            r#"
[[mtls.clients]]
subject_cn = "a"
san_dns = "a.example"
client_id = "x"
[[mtls.clients]]
client_id = "y"
[[mtls.clients]]
x5t_s256 = "short"
client_id = "z"
[[mtls.clients]]
subject_cn = "b"
client_id = ""
[[mtls.clients]]
subject_cn = "b"
client_id = "w"
"#,
        )
        .unwrap_err();
    assert!(p[0].starts_with("mtls.clients[0]: give exactly one"), "{p:?}");
    assert!(p[1].starts_with("mtls.clients[1]: give exactly one"), "{p:?}");
    assert!(p[2].starts_with("mtls.clients[2].x5t_s256: "), "{p:?}");
    assert!(p[3].starts_with("mtls.clients[3].client_id: "), "{p:?}");
    assert!(
        p[4].starts_with("mtls.clients[4]: the same certificate matcher"),
        "{p:?}"
    );
    // Unknown keys and values are parse errors.
    assert!(LoadedConfig::from_text(
        &pki.dir.path().join("r.toml"),
        "[mtls]\nprincipal_from = \"email\"".into()
    )
    .is_err());
    assert!(LoadedConfig::from_text(&pki.dir.path().join("r.toml"), "[mtls]\ncrl = \"x\"".into()).is_err());
}

#[test]
fn an_unreadable_or_unparsable_crl_is_a_policy_error() {
    let pki = pki();
    let p = pki.mtls("crl_file = \"missing.pem\"").unwrap_err();
    assert!(p[0].starts_with("mtls.crl_file: cannot read"), "{p:?}");
    std::fs::write(
        pki.dir.path().join("bad.pem"),
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let p = pki.mtls("crl_file = \"bad.pem\"").unwrap_err();
    assert!(p[0].starts_with("mtls.crl_file: "), "{p:?}");
    std::fs::write(
        pki.dir.path().join("empty.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let p = pki.mtls("crl_file = \"empty.pem\"").unwrap_err();
    assert!(p[0].contains("no X509 CRL"), "{p:?}");
}

#[test]
fn certificates_map_by_cn_san_or_thumbprint_and_crl_revokes() {
    let pki = pki();
    let by_cn = pki.cert(Some("demo-fintech"), vec![], 1);
    let by_dns = pki.cert(
        Some("ignored"),
        vec![SanType::DnsName("Partner.Example".try_into().unwrap())],
        2,
    );
    let by_uri = pki.cert(
        None,
        vec![SanType::URI("spiffe://bank/partner-7".try_into().unwrap())],
        3,
    );
    let pinned = pki.cert(Some("pinned"), vec![], 4);
    let revoked = pki.cert(Some("demo-fintech"), vec![], 5);
    let stranger = pki.cert(Some("stranger"), vec![], 6);
    std::fs::write(pki.dir.path().join("crl.pem"), pki.crl(&[5])).unwrap();
    let m = pki
        .mtls(&format!(
            r#"crl_file = "crl.pem"
[[mtls.clients]]
subject_cn = "demo-fintech"
client_id = "partner-42"
scopes = ["accounts:read"]
[[mtls.clients]]
san_dns = "partner.example"
client_id = "partner-5"
[[mtls.clients]]
san_uri = "spiffe://bank/partner-7"
client_id = "partner-7"
[[mtls.clients]]
x5t_s256 = "{}"
client_id = "partner-9"
"#,
            crate::authn::thumbprint::x5t_s256(&pinned)
        ))
        .unwrap();
    let p = m.identify(&by_cn).unwrap();
    assert_eq!(p.subject(), Some("demo-fintech"));
    assert_eq!(p.client_id(), Some("partner-42"));
    assert_eq!(p.scopes(), ["accounts:read"]);
    assert_eq!(p.issuer(), "mtls");
    let id = p.certificate().unwrap();
    assert_eq!(id.x5t_s256, crate::authn::thumbprint::x5t_s256(&by_cn));
    assert_eq!(m.identify(&by_dns).unwrap().client_id(), Some("partner-5"));
    assert_eq!(m.identify(&pinned).unwrap().client_id(), Some("partner-9"));
    // principal_from = subject_cn and no CN: refused rather than guessed.
    assert_eq!(
        m.identify(&by_uri).unwrap_err(),
        AuthnError::CertificateInvalid("no field for principal_from")
    );
    assert_eq!(m.identify(&revoked).unwrap_err(), AuthnError::CertificateRevoked);
    assert_eq!(m.identify(&stranger).unwrap_err(), AuthnError::CertificateUnknown);
    assert!(matches!(
        m.identify(b"junk").unwrap_err(),
        AuthnError::CertificateInvalid(_)
    ));

    // principal_from picks the subject.
    let m = pki
        .mtls("principal_from = \"san_uri\"\n[[mtls.clients]]\nsan_uri = \"spiffe://bank/partner-7\"\nclient_id = \"p7\"")
        .unwrap();
    assert_eq!(
        m.identify(&by_uri).unwrap().subject(),
        Some("spiffe://bank/partner-7")
    );
    let m = pki
        .mtls("principal_from = \"san_dns\"\n[[mtls.clients]]\nsubject_cn = \"ignored\"\nclient_id = \"p5\"")
        .unwrap();
    assert_eq!(m.identify(&by_dns).unwrap().subject(), Some("Partner.Example"));

    // A CRL of another issuer (same serial) revokes nothing here.
    let other = pki_named("Other CA");
    std::fs::write(pki.dir.path().join("other.pem"), other.crl(&[1])).unwrap();
    let m = pki
        .mtls("crl_file = \"other.pem\"\n[[mtls.clients]]\nsubject_cn = \"demo-fintech\"\nclient_id = \"p\"")
        .unwrap();
    m.identify(&by_cn).unwrap();
}

#[test]
fn validity_dates_are_read_against_the_clock() {
    let pki = pki();
    let cert = pki.cert(Some("demo-fintech"), vec![], 1);
    let loaded = pki.loaded("[[mtls.clients]]\nsubject_cn = \"demo-fintech\"\nclient_id = \"p\"");
    // 2035-01-01 is not_after.
    let clock = FakeClock::at_unix(2_051_222_400 - 10);
    let m = Mtls::from_config(&loaded.config.mtls, &loaded, clock.clone()).unwrap();
    m.identify(&cert).unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        m.identify(&cert).unwrap_err(),
        AuthnError::CertificateInvalid("outside its validity period")
    );
    let early = Mtls::from_config(&loaded.config.mtls, &loaded, FakeClock::at_unix(1_700_000_000)).unwrap();
    assert!(early.identify(&cert).is_err(), "before not_before (2025)");
}

#[test]
fn client_cert_header_only_from_trusted_proxies_when_enabled() {
    let pki = pki();
    let der = pki.cert(Some("demo-fintech"), vec![], 1);
    use base64::Engine as _;
    let value = format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&der));
    let mut h = HeaderMap::new();
    h.insert("client-cert", value.parse().unwrap());
    let handshake: &[u8] = b"handshake";
    let on = pki.mtls("trust_client_cert_header = true").unwrap();
    let off = pki.mtls("").unwrap();
    let got = |m: &Mtls, h: &HeaderMap, trusted: bool| {
        m.client_certificate(Some(handshake), h, trusted)
            .map(|c| c.map(|c| c.into_owned()))
    };
    assert_eq!(got(&on, &h, true).unwrap().unwrap(), der);
    assert_eq!(got(&on, &h, false).unwrap().unwrap(), handshake, "untrusted peer");
    assert_eq!(
        got(&off, &h, true).unwrap().unwrap(),
        handshake,
        "header trust off"
    );
    assert_eq!(
        got(&on, &HeaderMap::new(), true).unwrap(),
        None,
        "never the proxy's own"
    );
    for bad in ["MIIB", ":MIIB", ":***:", ""] {
        let mut h = HeaderMap::new();
        h.insert("client-cert", bad.parse().unwrap());
        assert!(got(&on, &h, true).is_err(), "{bad:?}");
    }
    let mut twice = h.clone();
    twice.append("client-cert", value.parse().unwrap());
    assert!(got(&on, &twice, true).is_err());
}

#[test]
fn lints_settings_that_cannot_take_effect() {
    let pki = pki();
    let loaded = pki.loaded("trust_client_cert_header = true");
    let w = Mtls::lint(&loaded.config);
    assert_eq!(w[0].path, "mtls.trust_client_cert_header");
    let loaded = pki.loaded("[[mtls.clients]]\nsubject_cn = \"a\"\nclient_id = \"b\"");
    let w = Mtls::lint(&loaded.config);
    assert_eq!(w[0].path, "mtls.clients");
}

#[test]
fn routes_name_mtls_only_with_mapped_clients() {
    let pki = pki();
    let build = |text: &str| {
        let loaded = pki.loaded(text);
        let cfg = crate::config::GatewayConfig {
            mtls: loaded.config.mtls.clone(),
            ..Default::default()
        };
        crate::authn::gate::Authn::from_config(&cfg, &loaded, &Default::default(), FakeClock::at_unix(NOW))
            .unwrap()
    };
    let none = build("");
    let p = none
        .route_policy("routes[0].authn", &["mtls".into()], false, false)
        .unwrap_err();
    assert!(p[0].message.contains("[[mtls.clients]]"), "{p:?}");
    let some = build("[[mtls.clients]]\nsubject_cn = \"a\"\nclient_id = \"b\"");
    let r = some
        .route_policy(
            "routes[0].authn",
            &["mtls".into(), "mtls + mtls".into()],
            false,
            false,
        )
        .unwrap();
    use crate::authn::gate::{Method, RouteAuthn};
    assert_eq!(
        r,
        RouteAuthn::Any {
            alternatives: vec![vec![Method::Mtls], vec![Method::Mtls]],
            sender_constrained: false
        }
    );
}
