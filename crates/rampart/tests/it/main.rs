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

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `rampart` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// What one run of the binary said.
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs `rampart <args>` to completion.
pub fn rampart(args: &[&str]) -> Run {
    let out = Command::new(bin()).args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The commented-out `# [name]` section of `config/rampart.example.toml`,
/// uncommented (its explanations, indented deeper, left out).
pub fn example_section(name: &str) -> Vec<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let example = std::fs::read_to_string(repo.join("config/rampart.example.toml")).unwrap();
    let head = format!("# [{name}]");
    example
        .lines()
        .skip_while(|l| *l != head)
        .take_while(|l| l.starts_with('#'))
        .filter(|l| !l.starts_with("#  "))
        .map(|l| l.trim_start_matches("# ").to_owned())
        .collect()
}

/// Writes `section` into `dir/rampart.toml` beside a plain-HTTP listener
/// and asserts that `rampart check` accepts it. Returns the file.
pub fn checked_policy(dir: &Path, section: &[String]) -> PathBuf {
    let file = dir.join("rampart.toml");
    std::fs::write(
        &file,
        format!(
            "[[listeners]]\nname = \"p\"\nbind = \"127.0.0.1:0\"\n\n[dangerous]\nallow_plain_http = true\n\n{}\n",
            section.join("\n")
        ),
    )
    .unwrap();
    let r = rampart(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    file
}

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
