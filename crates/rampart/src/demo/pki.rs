//! A throw-away PKI for the demo and the tests: a CA, a server certificate
//! for the loopback names, and a client certificate.
//!
//! Keys are ECDSA P-256 generated at start and never reused. Nothing here is
//! fit for production: it exists so that a newcomer gets real HTTPS (and
//! later mTLS) without running a CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// PEM material of a generated PKI.
pub struct TestPki {
    /// The CA certificate (PEM): what clients trust.
    pub ca_cert_pem: String,
    /// Server certificate (PEM) for the hosts given at generation.
    pub server_cert_pem: String,
    /// Server private key (PEM, PKCS#8).
    pub server_key_pem: String,
    /// Client certificate (PEM), CN `demo-fintech`.
    pub client_cert_pem: String,
    /// Client private key (PEM, PKCS#8).
    pub client_key_pem: String,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestPki { [keys redacted] }")
    }
}

/// Where [`TestPki::write`] put each file.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// Server certificate.
    pub server_cert: PathBuf,
    /// Server key (mode 0600).
    pub server_key: PathBuf,
    /// Client certificate.
    pub client_cert: PathBuf,
    /// Client key (mode 0600).
    pub client_key: PathBuf,
}

impl TestPki {
    /// Generates a CA, a server certificate for `hosts` (DNS names or IP
    /// addresses) and a client certificate.
    pub fn generate(hosts: &[&str]) -> Result<Self, rcgen::Error> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name.push(DnType::CommonName, "Rampart Demo CA");
        ca.distinguished_name
            .push(DnType::OrganizationName, "Rampart demo (not for production)");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = rcgen::date_time_ymd(2025, 1, 1);
        ca.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let ca_key = KeyPair::generate()?;
        let ca = CertifiedIssuer::self_signed(ca, ca_key)?;

        let mut server = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
        server
            .distinguished_name
            .push(DnType::CommonName, hosts.first().copied().unwrap_or("localhost"));
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.not_before = rcgen::date_time_ymd(2025, 1, 1);
        server.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let server_key = KeyPair::generate()?;
        let server_cert = server.signed_by(&server_key, &ca)?;

        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client.distinguished_name.push(DnType::CommonName, "demo-fintech");
        client
            .distinguished_name
            .push(DnType::OrganizationName, "Demo Fintech Ltd");
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client.not_before = rcgen::date_time_ymd(2025, 1, 1);
        client.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let client_key = KeyPair::generate()?;
        let client_cert = client.signed_by(&client_key, &ca)?;

        Ok(Self {
            ca_cert_pem: ca.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// Writes the PEM files into `dir` (keys with mode 0600).
    pub fn write(&self, dir: &Path) -> std::io::Result<PkiFiles> {
        std::fs::create_dir_all(dir)?;
        let files = PkiFiles {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        };
        std::fs::write(&files.ca_cert, &self.ca_cert_pem)?;
        std::fs::write(&files.server_cert, &self.server_cert_pem)?;
        write_private(&files.server_key, &self.server_key_pem)?;
        std::fs::write(&files.client_cert, &self.client_cert_pem)?;
        write_private(&files.client_key, &self.client_key_pem)?;
        Ok(files)
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, contents)
    }
}
