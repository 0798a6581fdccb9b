//! `[mfa]`: where second factors live and the key that seals them.
//!
//! ```toml
//! [mfa]
//! store = "sqlite://mfa.db"      # or postgres://… (a cluster shares it)
//! key_file = "mfa.key"           # 32 random bytes, base64: head -c 32 /dev/urandom | base64
//! key_id = "k1"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::rate_limit::config::StoreKind;

/// `[mfa]`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaConfig {
    /// Where enrolments (and admin users) live: `sqlite://PATH` (default
    /// `sqlite://rampart-mfa.db`, next to the policy) or `postgres://…`.
    #[serde(default = "default_store")]
    pub store: String,
    /// File holding the sealing key: 32 bytes, base64.
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the sealing key (base64), instead.
    pub key_env: Option<String>,
    /// The key's id, stored with every secret it seals. Default `k1`.
    #[serde(default = "default_key_id")]
    pub key_id: String,
    /// Earlier keys: they open secrets sealed under them, and never seal.
    /// `rampart mfa rekey` reseals everything under the current key.
    #[serde(default)]
    pub old_keys: Vec<OldKeyConfig>,
    /// Shown in authenticator apps next to the account. Default `Rampart`.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Where used codes are remembered (a code is accepted once):
    /// `memory` (default) or `redis` (every gateway of a cluster).
    #[serde(default)]
    pub replay_store: StoreKind,
    /// Failed codes in a row before a lockout. Default 5.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// The first lockout; each further one doubles it. Default 1m.
    #[serde(
        default = "default_lockout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub lockout: Duration,
    /// The longest lockout. Default 1h.
    #[serde(
        default = "default_max_lockout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub max_lockout: Duration,
}

/// One earlier sealing key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OldKeyConfig {
    /// Its id.
    pub id: String,
    /// Its file (base64, 32 bytes).
    pub file: Option<PathBuf>,
    /// Or its environment variable.
    pub env: Option<String>,
}

/// The default store.
pub const DEFAULT_STORE: &str = "sqlite://rampart-mfa.db";

fn default_store() -> String {
    DEFAULT_STORE.to_owned()
}
fn default_key_id() -> String {
    "k1".to_owned()
}
fn default_issuer() -> String {
    "Rampart".to_owned()
}
fn default_max_failures() -> u32 {
    5
}
fn default_lockout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_lockout() -> Duration {
    Duration::from_secs(3600)
}
