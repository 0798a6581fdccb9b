//! `rampart keys create|list|rotate|revoke`, the real binary on a SQLite
//! store: exit codes (0 ok, 1 bad input or unknown key id, 2 store
//! unreachable), the key printed once and never listed, and the keys it
//! prints accepted (or refused) by the library the gateway uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use rampart::authn::api_keys::{ApiKeys, ApiKeysPolicy};
use rampart::authn::AuthnError;
use rampart::clock::SystemClock;
use rampart::config::LoadedConfig;

use crate::{checked_policy, example_section, rampart, Run};

fn keys(args: &[&str]) -> Run {
    rampart(&[&["keys"], args].concat())
}

/// A policy with only `[api_keys]` (the rest need not be valid for key
/// management), its pepper, and a SQLite store beside it.
fn policy(dir: &Path, store: &str) -> PathBuf {
    std::fs::write(
        dir.join("api-keys.pepper"),
        "c2VjcmV0LXBlcHBlci1mb3ItdGhlLXRlc3RzLW9ubHkK\n",
    )
    .unwrap();
    let file = dir.join("rampart.toml");
    std::fs::write(
        &file,
        format!("[api_keys]\nstore = \"{store}\"\npepper_file = \"api-keys.pepper\"\ncache_ttl = \"1s\"\n"),
    )
    .unwrap();
    file
}

fn library(policy: &Path) -> ApiKeys {
    let loaded = LoadedConfig::from_file(policy).unwrap();
    let p = ApiKeysPolicy::from_config(loaded.config.api_keys.as_ref().unwrap(), &loaded).unwrap();
    ApiKeys::new(&p, SystemClock::shared()).unwrap()
}

async fn authenticate(keys: &ApiKeys, key: &str) -> Result<String, AuthnError> {
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_str(key).unwrap());
    keys.authenticate(&h)
        .await
        .map(|p| p.client_id().unwrap_or_default().to_string())
}

fn the_key(run: &Run) -> String {
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    let key = run.out.trim().to_string();
    assert_eq!(run.out.lines().count(), 1, "only the key on stdout: {}", run.out);
    assert!(key.starts_with("rk_") && key.len() == 56, "{key}");
    assert!(run.err.contains("shown once"), "{}", run.err);
    key
}

fn id_of(key: &str) -> &str {
    &key[3..15]
}

#[tokio::test]
async fn create_list_rotate_revoke_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = policy(dir.path(), "sqlite://keys/rampart-keys.db");
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let c = cfg.to_str().unwrap();

    let key = the_key(&keys(&[
        "create",
        "--config",
        c,
        "--client",
        "partner-a",
        "--scopes",
        "accounts:read payments:write",
        "--expires",
        "90d",
    ]));
    assert!(
        dir.path().join("keys/rampart-keys.db").exists(),
        "relative to the policy"
    );
    let id = id_of(&key).to_string();
    let secret = key[16..].to_string();
    let lib = library(&cfg);
    assert_eq!(authenticate(&lib, &key).await.unwrap(), "partner-a");

    let list = keys(&["list", "--config", c]);
    assert_eq!(list.code, 0, "{}", list.err);
    assert!(list.out.starts_with("ID"), "{}", list.out);
    for want in [id.as_str(), "partner-a", "accounts:read payments:write", "active"] {
        assert!(list.out.contains(want), "{want} in\n{}", list.out);
    }
    assert!(
        !list.out.contains(&secret) && !list.err.contains(&secret),
        "{}",
        list.out
    );

    // Rotation: both keys work during the overlap.
    let rotated = keys(&["rotate", "--config", c, &id, "--overlap", "1h"]);
    let new_key = the_key(&rotated);
    assert_ne!(new_key, key);
    let new_id = id_of(&new_key).to_string();
    let fresh = library(&cfg);
    assert_eq!(authenticate(&fresh, &new_key).await.unwrap(), "partner-a");
    assert_eq!(authenticate(&fresh, &key).await.unwrap(), "partner-a");
    let list = keys(&["list", "--config", c]);
    assert!(
        list.out.contains(&new_id) && list.out.contains("rotating (by"),
        "{}",
        list.out
    );
    assert!(
        !list.out.contains(&new_key[16..]) && !list.out.contains(&secret),
        "{}",
        list.out
    );

    // Revocation: the old key now, not just at the end of the overlap.
    let r = keys(&["revoke", "--config", c, &id]);
    assert_eq!(r.code, 0, "{}", r.err);
    let again = keys(&["revoke", "--config", c, &id]);
    assert_eq!(again.code, 0, "{}", again.err);
    assert!(again.err.contains("already revoked"), "{}", again.err);
    let fresh = library(&cfg);
    assert_eq!(
        authenticate(&fresh, &key).await.unwrap_err(),
        AuthnError::ApiKeyRevoked
    );
    assert_eq!(authenticate(&fresh, &new_key).await.unwrap(), "partner-a");
    let list = keys(&["list", "--config", c]);
    assert!(list.out.contains("revoked"), "{}", list.out);

    // Without --overlap, the replaced key works a day more.
    let r = keys(&["rotate", "--config", c, &new_id]);
    assert_eq!(r.code, 0, "{}", r.err);
    let until = r
        .err
        .split("stays valid until ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no end of overlap in: {}", r.err));
    let left = until.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(24 * 3600 - 60) && left <= Duration::from_secs(24 * 3600),
        "{left:?}"
    );

    // A revoked key cannot be rotated back to life.
    let r = keys(&["rotate", "--config", c, &id]);
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(r.err.contains("revoked"), "{}", r.err);

    // Unknown ids: exit 1.
    for cmd in ["rotate", "revoke"] {
        let r = keys(&[cmd, "--config", c, "aaaaaaaaaaaa"]);
        assert_eq!(r.code, 1, "{cmd}: {}", r.err);
        assert!(r.err.contains("no API key with id"), "{}", r.err);
    }
    // A whole key where an id belongs: refused, and not echoed.
    let r = keys(&["revoke", "--config", c, &new_key]);
    assert_eq!(r.code, 1);
    assert!(
        !r.err.contains(&new_key[16..]) && !r.out.contains(&new_key[16..]),
        "{}",
        r.err
    );
    assert_eq!(authenticate(&fresh, &new_key).await.unwrap(), "partner-a");
}

#[test]
fn bad_input_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = policy(dir.path(), "sqlite://rampart-keys.db");
    let c = cfg.to_str().unwrap();
    for args in [
        vec!["create", "--config", c, "--client", "a", "--scopes", ""],
        vec!["create", "--config", c, "--client", "a", "--scopes", "a \"b\""],
        vec!["create", "--config", c, "--client", "", "--scopes", "a"],
        vec![
            "create",
            "--config",
            c,
            "--client",
            "a",
            "--scopes",
            "a",
            "--expires",
            "soon",
        ],
        vec![
            "create",
            "--config",
            c,
            "--client",
            "a",
            "--scopes",
            "a",
            "--expires",
            "0s",
        ],
        vec!["rotate", "--config", c, "aaaaaaaaaaaa", "--overlap", "90d"],
        vec!["revoke", "--config", c, "not-an-id"],
    ] {
        let r = keys(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.err);
        assert!(r.err.starts_with("error: "), "{args:?}: {}", r.err);
        assert!(r.out.is_empty(), "{args:?}: {}", r.out);
    }
    // A policy without [api_keys], or with a missing pepper file: exit 1.
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, "").unwrap();
    let r = keys(&["list", "--config", bare.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no [api_keys] section"), "{}", r.err);
    std::fs::remove_file(dir.path().join("api-keys.pepper")).unwrap();
    let r = keys(&["list", "--config", c]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("api_keys.pepper_file: cannot read"), "{}", r.err);
}

#[test]
fn unreachable_store_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = policy(dir.path(), "postgres://rampart:hunter2@127.0.0.1:1/keys");
    let c = cfg.to_str().unwrap();
    for args in [
        vec!["create", "--config", c, "--client", "a", "--scopes", "a"],
        vec!["list", "--config", c],
        vec!["revoke", "--config", c, "aaaaaaaaaaaa"],
    ] {
        let r = keys(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.err);
        assert!(
            r.err.contains("unreachable") && r.err.contains("127.0.0.1:1"),
            "{}",
            r.err
        );
        assert!(!r.err.contains("hunter2"), "{}", r.err);
    }
    // The SQLite file's directory does not exist: unreachable too.
    let cfg = policy(dir.path(), "sqlite://no/such/dir/keys.db");
    let r = keys(&["list", "--config", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.err);
}

#[test]
fn the_example_api_keys_section_passes_check() {
    let section = example_section("api_keys");
    assert!(section.len() >= 5, "{section:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-keys.pepper"), "x".repeat(44)).unwrap();
    let file = checked_policy(dir.path(), &section);
    // And the CLI uses it.
    let r = keys(&["list", "--config", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.err);
}
