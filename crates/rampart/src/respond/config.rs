//! `[response]`: what every response carries, and what it must not.

use serde::Deserialize;

/// Response policy, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Extra response headers to remove, added to the built-in list
    /// (`server`, `x-powered-by`, `x-aspnet-version`, `x-aspnetmvc-version`,
    /// `x-runtime`, `x-backend-server`, `via`).
    pub strip_headers: Vec<String>,
    /// Headers to set on every response, e.g. `{ "x-frame-options" = "DENY" }`.
    pub add_headers: std::collections::BTreeMap<String, String>,
    /// `Strict-Transport-Security` value; `""` turns HSTS off (warned).
    /// Default `max-age=63072000; includeSubDomains`.
    pub hsts: String,
    /// Prefix of problem `type` URIs. Default `https://rampart.dev/problems/`.
    pub problem_type_base: String,
    /// Name of the request id header sent upstream and back. Default
    /// `x-request-id`.
    pub request_id_header: String,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            strip_headers: Vec::new(),
            add_headers: Default::default(),
            hsts: "max-age=63072000; includeSubDomains".into(),
            problem_type_base: "https://rampart.dev/problems/".into(),
            request_id_header: "x-request-id".into(),
        }
    }
}
