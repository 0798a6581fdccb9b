//! `rampart keys create|list|rotate|revoke`: API-key management on the
//! store named by the policy's `[api_keys]` section
//! ([`crate::authn::api_keys`]).
//!
//! Threat answered: keys leaking through the tool. A key is printed once,
//! on stdout and alone (details and a warning go to stderr); `list` shows
//! ids, clients, scopes, dates and states, never a key or a hash; a key id
//! argument that is not one is never echoed (it may be a pasted key). How
//! it fails: a message on stderr; exit 1 for bad input, a policy problem or
//! an unknown key id, 2 when the store is unreachable.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use crate::authn::api_keys::{self, ApiKeys, ApiKeysError, ApiKeysPolicy, KeyRecord, NewKey};
use crate::clock::{Clock, SystemClock};

use super::bad;

fn failed(e: &ApiKeysError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// Loads the policy and builds the API-key runtime from `[api_keys]` only
/// (the rest of the policy need not be valid here).
fn open(config: &Path) -> Result<ApiKeys, ExitCode> {
    let loaded = super::load_policy(config)?;
    let Some(section) = &loaded.config.api_keys else {
        return Err(bad(format!(
            "{}: the policy has no [api_keys] section",
            config.display()
        )));
    };
    let policy =
        ApiKeysPolicy::from_config(section, &loaded).map_err(|p| super::section_problems(&loaded, p))?;
    ApiKeys::new(&policy, SystemClock::shared()).map_err(|e| failed(&e))
}

fn duration(flag: &str, value: &str) -> Result<Duration, ExitCode> {
    humantime::parse_duration(value)
        .map_err(|_| bad(format!("invalid {flag} `{value}`: write e.g. 90d, 24h, 30m")))
}

fn key_id(value: &str) -> Result<&str, ExitCode> {
    let ok = value.len() == api_keys::ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    if ok {
        Ok(value)
    } else {
        // Not echoed: it may be a whole key pasted by mistake.
        Err(bad(format!(
            "expected a {}-character key id, as shown by `rampart keys list` (not the key itself)",
            api_keys::ID_LEN
        )))
    }
}

/// Runs one command on a current-thread runtime (the store's pool needs
/// one from the moment it is made).
fn run<T>(f: impl std::future::Future<Output = Result<T, ExitCode>>) -> Result<T, ExitCode> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => Err(bad(format!("cannot start the async runtime: {e}"))),
    }
}

/// Opens the store (inside the runtime) and runs `op` on it.
fn with_keys<T, F>(config: &Path, op: impl FnOnce(ApiKeys) -> F) -> Result<T, ExitCode>
where
    F: std::future::Future<Output = Result<T, ApiKeysError>>,
{
    run(async move {
        let keys = open(config)?;
        op(keys).await.map_err(|e| failed(&e))
    })
}

fn date(secs: Option<i64>) -> String {
    match secs.and_then(|s| u64::try_from(s).ok()) {
        Some(s) => humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string(),
        None => "-".into(),
    }
}

fn print_new(new: &NewKey, what: &str) {
    let r = &new.record;
    eprintln!(
        "{what} API key {} for client `{}` (scopes: {}; expires: {}).",
        new.key_id,
        r.client,
        r.scopes.join(" "),
        r.expires_at.map_or_else(|| "never".into(), |e| date(Some(e)))
    );
    eprintln!(
        "warning: this key is shown once and cannot be recovered (only its hash is stored); store it now."
    );
    println!("{}", new.key.expose());
}

/// `rampart keys create`.
pub fn create(config: &Path, client: &str, scopes: &str, expires: Option<&str>) -> ExitCode {
    let scopes = match api_keys::parse_scopes(scopes) {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    if let Err(e) = api_keys::check_client(client) {
        return failed(&e);
    }
    let expires = match expires.map(|e| duration("--expires", e)).transpose() {
        Ok(e) => e,
        Err(code) => return code,
    };
    match with_keys(config, |keys| async move {
        keys.create(client, scopes, expires).await
    }) {
        Ok(new) => {
            print_new(&new, "Created");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `rampart keys list`.
pub fn list(config: &Path) -> ExitCode {
    let records = match with_keys(config, |keys| async move { keys.list().await }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let now = SystemClock::new()
        .now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    print!("{}", table(&records, now));
    ExitCode::SUCCESS
}

/// The `list` table: ids, clients, scopes, dates, states; nothing secret.
pub fn table(records: &[KeyRecord], now: i64) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "CLIENT".into(),
        "SCOPES".into(),
        "CREATED".into(),
        "EXPIRES".into(),
        "LAST USED".into(),
        "STATE".into(),
    ]];
    for r in records {
        let state = r.state(now);
        let state = match (&r.replaced_by, r.rotation_ends_at) {
            (Some(by), Some(until)) if state.is_valid() => {
                format!("{} (by {by} until {})", state.as_str(), date(Some(until)))
            }
            (Some(by), _) => format!("{} (by {by})", state.as_str()),
            _ => state.as_str().to_string(),
        };
        rows.push([
            r.key_id.clone(),
            r.client.clone(),
            r.scopes.join(" "),
            date(Some(r.created_at)),
            date(r.expires_at),
            date(r.last_used_at),
            state,
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `rampart keys rotate`.
pub fn rotate(config: &Path, id: &str, overlap: Option<&str>, expires: Option<&str>) -> ExitCode {
    let id = match key_id(id) {
        Ok(id) => id,
        Err(code) => return code,
    };
    let overlap = match overlap.map(|o| duration("--overlap", o)).transpose() {
        Ok(d) => d.unwrap_or(crate::authn::api_keys::DEFAULT_OVERLAP),
        Err(code) => return code,
    };
    let expires = match expires.map(|e| duration("--expires", e)).transpose() {
        Ok(e) => e,
        Err(code) => return code,
    };
    match with_keys(
        config,
        |keys| async move { keys.rotate(id, overlap, expires).await },
    ) {
        Ok(new) => {
            eprintln!(
                "Key {id} stays valid until {}, then only the new key works.",
                date(
                    new.record
                        .created_at
                        .checked_add(i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX))
                )
            );
            print_new(&new, "Created");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `rampart keys revoke`.
pub fn revoke(config: &Path, id: &str) -> ExitCode {
    let id = match key_id(id) {
        Ok(id) => id,
        Err(code) => return code,
    };
    match with_keys(config, |keys| async move { keys.revoke(id).await }) {
        Ok(true) => {
            eprintln!("Revoked API key {id}; gateways refuse it within their cache_ttl.");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("API key {id} was already revoked.");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
