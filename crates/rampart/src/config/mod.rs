//! The policy file: load, validate, report.
//!
//! One TOML file is parsed into `XConfig` structs (what the operator wrote,
//! defined next to each capability), then turned once into a runnable
//! [`Gateway`](crate::gateway::Gateway) snapshot by
//! [`Gateway::build`](crate::gateway::Gateway::build), which validates
//! everything and reads every file the policy names. Unknown keys are errors;
//! every problem is reported at once with its line and key path
//! (`routes[3].upstream`). Insecure but valid choices are reported as
//! warnings by [`lint`].
//!
//! Threat answered: a typo or an unsafe default silently weakening the
//! gateway. How it fails: loading refuses the whole file; a reload that fails
//! keeps the running policy.

pub mod duration;
pub mod error;
pub mod lint;
pub mod parse;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use error::{ConfigErrors, ConfigProblem, Severity};

use crate::admin::config::AdminConfig;
use crate::listener::config::ListenerConfig;
use crate::respond::config::ResponseConfig;
use crate::route::config::RouteConfig;
use crate::telemetry::LoggingConfig;
use crate::upstream::config::UpstreamConfig;

/// The whole policy file, as written.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// `[[listeners]]`: where clients connect.
    pub listeners: Vec<ListenerConfig>,
    /// `[admin]`: the admin listener.
    pub admin: AdminConfig,
    /// `[[upstreams]]`: the bank's services.
    pub upstreams: Vec<UpstreamConfig>,
    /// `[[routes]]`: every endpoint the gateway exposes.
    pub routes: Vec<RouteConfig>,
    /// `[response]`: headers and error bodies.
    pub response: ResponseConfig,
    /// `[logging]`.
    pub logging: LoggingConfig,
    /// `[dangerous]`: switches that weaken security, flagged by `rampart check`.
    pub dangerous: DangerousConfig,
    /// `[ip_filter]`: pre-TLS deny list and trusted proxies.
    pub ip_filter: crate::ip_filter::config::IpFilterConfig,
    /// `[concurrency]`: gateway-wide load shedding.
    pub concurrency: ConcurrencyConfig,
    /// `[[rate_limit]]`: limits on every route, checked before the route's own.
    pub rate_limit: Vec<crate::rate_limit::config::RateLimitConfig>,
    /// `[redis]`: the store shared by a cluster of gateways.
    pub redis: Option<crate::rate_limit::config::RedisConfig>,
    /// `[[issuers]]`: who may issue access tokens.
    pub issuers: Vec<crate::authn::IssuerConfig>,
    /// `[dpop]`: DPoP proof checks.
    pub dpop: crate::authn::DpopConfig,
    /// `[api_keys]`: the API-key store, header and pepper.
    pub api_keys: Option<crate::authn::api_keys::ApiKeysConfig>,
    /// `[revocation]`: where the token denylist lives.
    pub revocation: crate::authn::revocation::RevocationConfig,
    /// `[brute_force]`: bans after repeated authentication failures.
    pub brute_force: crate::authn::brute_force::BruteForceConfig,
    /// `[mtls]`: client certificates as identity.
    pub mtls: crate::authn::mtls::MtlsConfig,
    /// `[identity]`: how upstreams learn who is calling.
    pub identity: crate::authn::identity::IdentityConfig,
    /// `[[entitlements]]`: what principals are entitled to, for
    /// authorization rules.
    pub entitlements: Vec<crate::authz::EntitlementConfig>,
    /// `[mfa]`: second factors (TOTP enrolments, admin users) and the key
    /// that seals them.
    pub mfa: Option<crate::mfa::MfaConfig>,
    /// `[audit]`: the tamper-evident, encrypted audit trail.
    pub audit: Option<crate::audit::AuditConfig>,
    /// `[[apis]]`: OpenAPI documents, the inventory of the bank's APIs.
    pub apis: Vec<crate::validate::config::ApiConfig>,
    /// `[signatures]`: RFC 9421 message signatures.
    pub signatures: Option<crate::validate::config::SignaturesConfig>,
}

/// `[concurrency]`: gateway-wide load shedding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// Requests in flight in the whole gateway at most; more get 503 with
    /// `Retry-After`. Default: no ceiling.
    pub max_in_flight: Option<usize>,
}

/// `[dangerous]`: each switch weakens a default and is reported by
/// `rampart check`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DangerousConfig {
    /// Allow listeners without `tls` (plain HTTP). Default false.
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// A parsed policy file and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The policy.
    pub config: GatewayConfig,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its directory: relative paths in the policy are resolved against it.
    pub base_dir: PathBuf,
    /// Its text, kept to locate problems found after parsing.
    pub text: String,
}

impl LoadedConfig {
    /// Reads and parses a policy file.
    pub fn from_file(file: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            ConfigErrors::new(
                file,
                vec![ConfigProblem::error(
                    "",
                    format!("cannot read the policy file: {e}"),
                )],
            )
        })?;
        Self::from_text(file, text)
    }

    /// Parses policy text as if read from `file`.
    pub fn from_text(file: &Path, text: String) -> Result<Self, ConfigErrors> {
        let config = parse::parse(&text).map_err(|p| ConfigErrors::new(file, p))?;
        let base_dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self {
            config,
            file: file.to_path_buf(),
            base_dir,
            text,
        })
    }

    /// A path from the policy, resolved against the policy's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Wraps problems found after parsing, filling in their lines.
    pub fn problems(&self, mut problems: Vec<ConfigProblem>) -> ConfigErrors {
        let locator = parse::Locator::new(&self.text);
        for p in &mut problems {
            if p.line.is_none() {
                p.line = locator.line_of_path(&p.path);
            }
        }
        problems.sort_by_key(|p| p.line.unwrap_or(0));
        ConfigErrors::new(&self.file, problems)
    }
}
