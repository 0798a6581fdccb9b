//! Integration tests: the real gateway over real TLS on 127.0.0.1:0, a
//! recording upstream, and the real `rampart` binary for the CLI.
//! One test binary (ripgrep's layout); `security/` has one file per threat.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin;
mod api_keys;
mod audit;
mod authz;
mod cli;
mod demo;
mod idempotency;
mod identity;
mod listener;
mod logs;
mod proxy;
mod rate_limit;
mod redis;
mod reload;
mod respond;
mod routing;
mod security;
mod serve;
mod shutdown;
mod tls;
mod upstream_tls;
mod validate;

/// Routes used by most tests, appended to the harness's base policy.
pub const ROUTES: &str = r#"
[[routes]]
id = "accounts-list"
path = "/v1/accounts"
methods = ["GET"]
upstream = "backend"
authn = "none"

[[routes]]
id = "account-get"
path = "/v1/accounts/{account_id}"
methods = ["GET"]
upstream = "backend"
authn = "none"

[[routes]]
id = "payment-create"
path = "/v1/payments"
methods = ["POST"]
upstream = "backend"
authn = "none"

[[routes]]
id = "status"
path = "/status/{code}"
methods = ["GET"]
upstream = "backend"
authn = "none"

[[routes]]
id = "status-pass"
path = "/status/{code}/pass"
methods = ["GET"]
upstream = "backend"
authn = "none"
upstream_errors = "pass"

[[routes]]
id = "redirect"
path = "/redirect/{to}"
methods = ["GET"]
upstream = "backend"
authn = "none"

[[routes]]
id = "slow"
path = "/slow/{chunks}/{ms}"
methods = ["GET"]
upstream = "backend"
authn = "none"

[[routes]]
id = "delay"
path = "/delay/{ms}"
methods = ["GET"]
upstream = "backend"
authn = "none"
timeout = "500ms"
"#;
