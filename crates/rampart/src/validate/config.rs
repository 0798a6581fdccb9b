//! What the operator writes: `[[apis]]` (an OpenAPI document that is the
//! inventory of an upstream), `[routes.validate]` (per-route validation,
//! injection and response guarding) and `[signatures]` (RFC 9421 clients,
//! nonce store and the gateway's response-signing key).
//!
//! Every table refuses unknown keys; defaults are the safe choice and are
//! stated in `config/rampart.example.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::body::json::JsonLimits;
use crate::rate_limit::config::StoreKind;
use crate::redact::MaskStyle;

/// `[[apis]]`: one OpenAPI 3.0 or 3.1 document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Name, used by `[routes.validate] api`.
    pub name: String,
    /// The document (YAML or JSON), relative to the policy file.
    pub spec: PathBuf,
    /// The upstream this API is served by. Every route to it is checked
    /// against the document (a route the document does not declare is a
    /// configuration error) and validated, unless it names another API.
    pub upstream: Option<String>,
    /// `check` (default): routes are written by hand and checked against
    /// the document. `generate`: every operation without a route gets one,
    /// guarded as `[apis.generate]` says.
    #[serde(default)]
    pub routes: RoutesMode,
    /// How generated routes authenticate and authorise (required with
    /// `routes = "generate"`).
    pub generate: Option<GenerateConfig>,
}

/// `[[apis]] routes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutesMode {
    /// Routes are the operator's; each must be declared by the document.
    #[default]
    Check,
    /// Operations without a route get a generated one.
    Generate,
}

/// `[apis.generate]`: the guard of generated routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// As a route's `authn` (required: a route is never open by omission).
    pub authn: crate::route::config::AuthnChoice,
    /// As a route's `authz`.
    pub authz: Option<crate::authz::AuthzChoice>,
}

/// What to do with a finding: refuse the request, or let it pass and
/// record it for the threat engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse (400 for requests, 502 for responses).
    #[default]
    Block,
    /// Pass, and record a signal on the exchange (logged; the threat
    /// engine scores it).
    Flag,
    /// Do not check.
    Off,
}

/// `[routes.validate]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteValidateConfig {
    /// The `[[apis]]` whose operation this route is; default: the API of
    /// the route's upstream, if one names it.
    pub api: Option<String>,
    /// Accepted request media types (415 otherwise). Default: those the
    /// operation declares, else `application/json`.
    pub content_types: Option<Vec<String>>,
    /// JSON structure limits (checked while parsing).
    #[serde(default)]
    pub json: JsonLimits,
    /// Injection detection on path, query, declared headers and body
    /// strings: `block` (default), `flag` or `off`.
    #[serde(default)]
    pub injection: Action,
    /// Headers (besides those the operation declares) whose values are
    /// scanned for injection.
    #[serde(default)]
    pub scan_headers: Vec<String>,
    /// Response guarding.
    pub response: Option<ResponseGuardConfig>,
    /// RFC 9421 signature verification.
    pub signature: Option<RouteSignatureConfig>,
}

/// `[routes.validate.response]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseGuardConfig {
    /// Responses checked against the document (status, media type,
    /// schema): `block` (502 instead), `flag` (pass and record) or `off`.
    #[serde(default)]
    pub check: Action,
    /// Remove members the response schema does not declare.
    #[serde(default)]
    pub strip_undeclared: bool,
    /// Members masked for callers without `reveal_scope`: pointer (with
    /// `*` wildcards) → `iban`, `pan`, `last4` or `full`.
    #[serde(default)]
    pub mask: BTreeMap<String, MaskStyle>,
    /// Also mask every string that is a valid card number (Luhn) or IBAN
    /// (mod-97), wherever it is.
    #[serde(default)]
    pub mask_detected: bool,
    /// The scope that sees values unmasked.
    pub reveal_scope: Option<String>,
}

/// `[routes.validate.signature]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSignatureConfig {
    /// Refuse unsigned requests (default true). With false, a signature
    /// that is present is still verified.
    #[serde(default = "yes")]
    pub required: bool,
    /// Clients (`[[signatures.clients]]` names) whose keys are accepted;
    /// default all.
    #[serde(default)]
    pub clients: Vec<String>,
    /// Components every accepted signature must cover.
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// Require a `nonce` parameter (checked against the replay cache).
    #[serde(default = "yes")]
    pub require_nonce: bool,
    /// Sign this route's responses with `[signatures.response]`.
    #[serde(default)]
    pub sign_response: bool,
}

fn yes() -> bool {
    true
}

/// The components a request signature covers by default.
pub fn default_components() -> Vec<String> {
    [
        "@method",
        "@target-uri",
        "@authority",
        "content-digest",
        "authorization",
    ]
    .map(String::from)
    .to_vec()
}

/// `[signatures]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturesConfig {
    /// `[[signatures.clients]]`.
    #[serde(default)]
    pub clients: Vec<SignatureClientConfig>,
    /// Oldest `created` accepted (default 5m).
    #[serde(
        default = "default_max_age",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub max_age: Duration,
    /// How far in the future `created` may be (clock skew, default 10s).
    #[serde(
        default = "default_skew",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub clock_skew: Duration,
    /// Where seen nonces are kept: `memory` (default) or `redis`.
    #[serde(default)]
    pub nonce_store: StoreKind,
    /// Nonces kept in memory at most.
    #[serde(default = "default_nonce_capacity")]
    pub nonce_capacity: usize,
    /// The gateway's response-signing key.
    pub response: Option<ResponseSigningConfig>,
}

impl Default for SignaturesConfig {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            max_age: default_max_age(),
            clock_skew: default_skew(),
            nonce_store: StoreKind::Memory,
            nonce_capacity: default_nonce_capacity(),
            response: None,
        }
    }
}

fn default_max_age() -> Duration {
    Duration::from_secs(300)
}
fn default_skew() -> Duration {
    Duration::from_secs(10)
}
fn default_nonce_capacity() -> usize {
    100_000
}

/// `[[signatures.clients]]`: who may sign, with which keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureClientConfig {
    /// Name (routes list it).
    pub name: String,
    /// Public keys (JWKS; each key's `kid` is its RFC 9421 `keyid`).
    pub jwks_file: PathBuf,
}

/// `[signatures.response]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSigningConfig {
    /// Private key: a JWK (EdDSA or ES256, as `rampart keys gen` writes)
    /// or PKCS#8 PEM.
    pub key_file: PathBuf,
    /// `keyid` of the signatures; default the JWK's `kid`.
    pub keyid: Option<String>,
}
