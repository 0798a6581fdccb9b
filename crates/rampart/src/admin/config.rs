//! `[admin]`: the admin listener and who may use it.
//!
//! ```toml
//! [admin]
//! bind = "127.0.0.1:9901"
//! token_file = "admin.token"      # a machine token; its role is token_role
//! [[admin.tokens]]                # more machine tokens, each with a role
//! name = "ci"
//! file = "ci.token"
//! role = "operator"
//! [admin.tls]                     # HTTPS, and client certificates for machines
//! cert = "admin.pem"
//! key = "admin.key"
//! client_auth = "optional"        # as for listeners: none | optional | required
//! client_ca = "admin-clients-ca.pem"
//! [[admin.clients]]
//! subject = "deploy-bot"          # the certificate's CN
//! role = "operator"
//! ```
//!
//! People sign in with a password and a one-time code (`rampart admin user
//! add`; the users live in the `[mfa]` store).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Admin listener, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener. Default `127.0.0.1:9901`. It is never
    /// one of the data-plane listeners' addresses.
    pub bind: SocketAddr,
    /// File holding an admin token (one line): `Authorization: Bearer
    /// <token>`, with the role `token_role`.
    pub token_file: Option<PathBuf>,
    /// Environment variable holding that token, instead of a file.
    pub token_env: Option<String>,
    /// The role of `token_file`/`token_env`. Default `operator`.
    pub token_role: Role,
    /// `[[admin.tokens]]`: more machine tokens, each with its role.
    pub tokens: Vec<AdminTokenConfig>,
    /// `[admin.tls]`: serve the admin API over HTTPS (and accept client
    /// certificates from machines).
    pub tls: Option<crate::listener::config::ListenerTlsConfig>,
    /// `[[admin.clients]]`: client certificates (by CN) and their roles.
    pub clients: Vec<AdminClientConfig>,
    /// How long a person's sign-in lasts. Default 30m, at most 12h.
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub session_ttl: Duration,
    /// Whether `GET /metrics` needs a credential (role `viewer`). Default
    /// true; false lets anyone who reaches the admin port scrape it
    /// (`rampart check` warns).
    pub metrics_auth: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 9901)),
            token_file: None,
            token_env: None,
            token_role: Role::Operator,
            tokens: Vec::new(),
            tls: None,
            clients: Vec::new(),
            session_ttl: Duration::from_secs(30 * 60),
            metrics_auth: true,
        }
    }
}

/// What an admin may do. Each role includes those below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read: metrics, bans, revocations, keys and users lists.
    Viewer,
    /// And change traffic state: reload, bans, revocations.
    Operator,
    /// And credentials: API keys, admin users, MFA enrolments.
    SecurityAdmin,
}

impl Role {
    /// As written in the policy and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::SecurityAdmin => "security-admin",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "security-admin" => Some(Self::SecurityAdmin),
            _ => None,
        }
    }
}

/// One `[[admin.tokens]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenConfig {
    /// A name for logs and the audit trail (never the token).
    pub name: String,
    /// File holding the token (at least 24 characters).
    pub file: Option<PathBuf>,
    /// Or the environment variable holding it.
    pub env: Option<String>,
    /// Its role.
    pub role: Role,
}

/// One `[[admin.clients]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminClientConfig {
    /// The client certificate's subject CN.
    pub subject: String,
    /// Its role.
    pub role: Role,
}
