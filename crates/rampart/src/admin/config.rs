//! `[admin]`: the admin listener (health, metrics, reload).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Admin listener, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener. Default `127.0.0.1:9901`. It is never
    /// one of the data-plane listeners' addresses.
    pub bind: SocketAddr,
    /// File holding the admin token (one line). `POST /admin/reload` needs
    /// `Authorization: Bearer <token>`.
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the admin token, instead of a file.
    pub token_env: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 9901)),
            token_file: None,
            token_env: None,
        }
    }
}
