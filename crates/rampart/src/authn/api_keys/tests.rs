//! API keys against real stores: one behavioural suite, run on SQLite (in
//! a temp dir) and on PostgreSQL at 127.0.0.1:5432 (each test in its own
//! table, dropped at the end). PostgreSQL being unreachable fails the
//! tests: they never skip. Time is a [`FakeClock`]; nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::clock::FakeClock;
use crate::config::LoadedConfig;

const T0: u64 = 1_750_000_000;
const DAY: Duration = Duration::from_secs(24 * 3600);

fn pg_url() -> String {
    std::env::var("RAMPART_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn policy(cache_ttl: Duration) -> ApiKeysPolicy {
    ApiKeysPolicy {
        store: StoreLocation::Sqlite("/nonexistent".into()),
        header: http::HeaderName::from_static("x-api-key"),
        pepper: Secret::new(b"0123456789abcdef0123456789abcdef-test-pepper".to_vec()),
        cache_ttl,
    }
}

struct Fixture {
    keys: ApiKeys,
    store: Arc<dyn KeyStore>,
    clock: Arc<FakeClock>,
    dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// A second gateway node on the same store and clock.
    fn node(&self) -> ApiKeys {
        ApiKeys::with_store(
            &policy(Duration::from_secs(10)),
            self.store.clone(),
            self.clock.clone(),
        )
    }

    async fn done(self) {
        self.store.drop_table().await.unwrap();
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn KeyStore> = Arc::new(SqliteStore::open(&dir.path().join("keys.db")));
    let clock = FakeClock::at_unix(T0);
    Fixture {
        keys: ApiKeys::with_store(&policy(Duration::from_secs(10)), store.clone(), clock.clone()),
        store,
        clock,
        dir: Some(dir),
    }
}

async fn postgres() -> Fixture {
    let table = format!(
        "rampart_api_keys_test_{}_{}",
        std::process::id(),
        random_chars(8).unwrap()
    );
    let store: Arc<dyn KeyStore> =
        Arc::new(PgStore::open(&pg_url(), "postgres://test".into(), &table).unwrap());
    if let Err(e) = store.list().await {
        panic!(
            "PostgreSQL is required for these tests and is not usable at {} ({e}); \
             start it or set RAMPART_TEST_POSTGRES_URL",
            pg_url().split('@').next_back().unwrap_or("")
        );
    }
    let clock = FakeClock::at_unix(T0);
    Fixture {
        keys: ApiKeys::with_store(&policy(Duration::from_secs(10)), store.clone(), clock.clone()),
        store,
        clock,
        dir: None,
    }
}

fn with_key(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_str(key).unwrap());
    h
}

fn scopes(s: &str) -> Vec<String> {
    parse_scopes(s).unwrap()
}

/// The key with its last secret character changed.
fn tampered(key: &str) -> String {
    let mut k = key.to_string();
    let last = k.pop().unwrap();
    k.push(if last == 'a' { 'b' } else { 'a' });
    k
}

// --- the suite, run against each store ---

async fn create_then_authenticate(f: Fixture) {
    let new = f
        .keys
        .create("partner-a", scopes("accounts:read payments:write"), None)
        .await
        .unwrap();
    let key = new.key.expose();
    assert!(key.starts_with("rk_") && key.len() == KEY_LEN, "{key}");
    let p = f.keys.authenticate(&with_key(key)).await.unwrap();
    assert_eq!(p.issuer(), ISSUER);
    assert_eq!(p.client_id(), Some("partner-a"));
    assert_eq!(p.subject(), Some("partner-a"));
    assert_eq!(p.token_id(), Some(new.key_id.as_str()));
    assert!(p.has_scope("accounts:read") && p.has_scope("payments:write"));
    assert!(!p.has_scope("admin"));
    // A second node reads it from the store.
    let p = f.node().authenticate(&with_key(key)).await.unwrap();
    assert_eq!(p.client_id(), Some("partner-a"));
    f.done().await;
}

async fn wrong_secret_is_refused(f: Fixture) {
    let new = f.keys.create("c", scopes("a"), None).await.unwrap();
    let bad = tampered(new.key.expose());
    // Cold (from the store) and warm (from the cache).
    assert_eq!(
        f.node().authenticate(&with_key(&bad)).await.unwrap_err(),
        AuthnError::ApiKeyMismatch
    );
    f.keys.authenticate(&with_key(new.key.expose())).await.unwrap();
    assert_eq!(
        f.keys.authenticate(&with_key(&bad)).await.unwrap_err(),
        AuthnError::ApiKeyMismatch
    );
    // Sanity: the real key still works.
    f.keys.authenticate(&with_key(new.key.expose())).await.unwrap();
    f.done().await;
}

async fn unknown_id_is_refused(f: Fixture) {
    let new = f.keys.create("c", scopes("a"), None).await.unwrap();
    let key = new.key.expose();
    let other = format!("rk_{}{}", "a".repeat(ID_LEN), &key[PREFIX.len() + ID_LEN..]);
    assert_eq!(
        f.keys.authenticate(&with_key(&other)).await.unwrap_err(),
        AuthnError::ApiKeyUnknown
    );
    f.keys.authenticate(&with_key(key)).await.unwrap();
    f.done().await;
}

async fn revoked_is_refused(f: Fixture) {
    let new = f.keys.create("c", scopes("a"), None).await.unwrap();
    let key = new.key.expose();
    let other = f.node();
    other.authenticate(&with_key(key)).await.unwrap();
    f.keys.authenticate(&with_key(key)).await.unwrap();
    assert!(f.keys.revoke(&new.key_id).await.unwrap());
    assert!(!f.keys.revoke(&new.key_id).await.unwrap(), "already revoked");
    // The revoking node refuses at once.
    assert_eq!(
        f.keys.authenticate(&with_key(key)).await.unwrap_err(),
        AuthnError::ApiKeyRevoked
    );
    // Another node within cache_ttl (the stated revocation latency)...
    f.clock.advance(Duration::from_secs(9));
    other.authenticate(&with_key(key)).await.unwrap();
    // ...and refuses once it is over.
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        other.authenticate(&with_key(key)).await.unwrap_err(),
        AuthnError::ApiKeyRevoked
    );
    assert!(matches!(
        f.keys.revoke("zzzzzzzzzzzz").await,
        Err(ApiKeysError::UnknownKey(_))
    ));
    f.done().await;
}

async fn expired_is_refused(f: Fixture) {
    let new = f.keys.create("c", scopes("a"), Some(90 * DAY)).await.unwrap();
    let key = new.key.expose();
    let p = f.keys.authenticate(&with_key(key)).await.unwrap();
    assert_eq!(p.expires_at(), i64::try_from(T0).unwrap() + 90 * 86400);
    f.clock.advance(90 * DAY - Duration::from_secs(1));
    f.keys.authenticate(&with_key(key)).await.unwrap();
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        f.keys.authenticate(&with_key(key)).await.unwrap_err(),
        AuthnError::ApiKeyExpired
    );
    assert!(f
        .keys
        .create("c", scopes("a"), Some(Duration::ZERO))
        .await
        .is_err());
    f.done().await;
}

async fn rotation_overlaps_then_retires_the_old_key(f: Fixture) {
    let old = f.keys.create("c", scopes("a b"), Some(30 * DAY)).await.unwrap();
    let other = f.node();
    other.authenticate(&with_key(old.key.expose())).await.unwrap();
    let new = f.keys.rotate(&old.key_id, DAY, None).await.unwrap();
    assert_ne!(new.key_id, old.key_id);
    assert_eq!(new.record.client, "c");
    assert_eq!(new.record.scopes, scopes("a b"));
    // Same lifetime as the old key.
    assert_eq!(
        new.record.expires_at,
        Some(i64::try_from(T0).unwrap() + 30 * 86400)
    );
    for node in [&f.keys, &other] {
        node.authenticate(&with_key(old.key.expose())).await.unwrap();
        node.authenticate(&with_key(new.key.expose())).await.unwrap();
    }
    // A key being rotated out cannot be rotated again.
    assert!(matches!(
        f.keys.rotate(&old.key_id, DAY, None).await,
        Err(ApiKeysError::NotActive {
            state: "rotating",
            ..
        })
    ));
    f.clock.advance(DAY - Duration::from_secs(1));
    f.keys.authenticate(&with_key(old.key.expose())).await.unwrap();
    f.clock.advance(Duration::from_secs(1));
    for node in [&f.keys, &other] {
        assert_eq!(
            node.authenticate(&with_key(old.key.expose())).await.unwrap_err(),
            AuthnError::ApiKeyRotated
        );
        node.authenticate(&with_key(new.key.expose())).await.unwrap();
    }
    let listed = f.keys.list().await.unwrap();
    let old_row = listed.iter().find(|r| r.key_id == old.key_id).unwrap();
    assert_eq!(old_row.replaced_by.as_deref(), Some(new.key_id.as_str()));
    assert!(matches!(
        f.keys.rotate("zzzzzzzzzzzz", DAY, None).await,
        Err(ApiKeysError::UnknownKey(_))
    ));
    f.done().await;
}

async fn the_store_never_holds_the_key(f: Fixture) {
    let new = f.keys.create("c", scopes("a"), None).await.unwrap();
    let key = new.key.expose().clone();
    let secret = &key[PREFIX.len() + ID_LEN + 1..];
    let rows = f.store.list().await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.hmac.len(), 32);
    let dump = format!("{row:?}");
    assert!(!dump.contains(secret), "{dump}");
    assert!(!row.hmac.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert_eq!(
        row.hmac,
        hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, policy(DAY).pepper.expose()),
            key.as_bytes()
        )
        .as_ref()
    );
    if let Some(dir) = &f.dir {
        // Every byte SQLite wrote (database, WAL, shared memory).
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }
    // `list` (the CLI table) shows no key, no secret, no hash.
    let table = crate::cli::api_keys::table(&rows, i64::try_from(T0).unwrap());
    assert!(table.contains(&new.key_id) && table.contains("active"), "{table}");
    assert!(!table.contains(secret), "{table}");
    let hex: String = row.hmac.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!table.contains(&hex[..16]), "{table}");
    f.done().await;
}

async fn last_use_is_written_in_batches(f: Fixture) {
    let new = f.keys.create("c", scopes("a"), None).await.unwrap();
    let key = new.key.expose();
    f.keys.flush_last_used().await.unwrap();
    assert_eq!(
        f.store.get(&new.key_id).await.unwrap().unwrap().last_used_at,
        None
    );
    f.clock.advance(Duration::from_secs(5));
    for _ in 0..3 {
        f.keys.authenticate(&with_key(key)).await.unwrap();
    }
    assert_eq!(
        f.store.get(&new.key_id).await.unwrap().unwrap().last_used_at,
        None,
        "no write per request"
    );
    f.keys.flush_last_used().await.unwrap();
    let t5 = i64::try_from(T0).unwrap() + 5;
    assert_eq!(
        f.store.get(&new.key_id).await.unwrap().unwrap().last_used_at,
        Some(t5)
    );
    // Within the minute nothing new is noted.
    f.clock.advance(Duration::from_secs(5));
    f.keys.authenticate(&with_key(key)).await.unwrap();
    assert!(f.keys.used.lock().unwrap().is_empty());
    f.done().await;
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::postgres().await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    create_then_authenticate,
    wrong_secret_is_refused,
    unknown_id_is_refused,
    revoked_is_refused,
    expired_is_refused,
    rotation_overlaps_then_retires_the_old_key,
    the_store_never_holds_the_key,
    last_use_is_written_in_batches,
);

// --- the request side, without a store ---

/// A store nobody can reach: any call to it fails.
fn unreachable_store() -> ApiKeys {
    let store = PgStore::open(
        "postgres://nobody@127.0.0.1:1/none",
        "postgres://127.0.0.1:1/none".into(),
        "t",
    )
    .unwrap();
    ApiKeys::with_store(
        &policy(Duration::from_secs(10)),
        Arc::new(store),
        FakeClock::at_unix(T0),
    )
}

#[tokio::test]
async fn malformed_keys_are_refused_without_touching_the_store() {
    let keys = unreachable_store();
    let good_shape = format!("rk_{}_{}", "a".repeat(ID_LEN), "b".repeat(SECRET_LEN));
    let malformed = [
        String::new(),
        "rk_".into(),
        "Bearer abc".into(),
        good_shape.to_uppercase(),
        good_shape.replacen("rk_", "rx_", 1),
        format!("{good_shape}c"),
        good_shape[..KEY_LEN - 1].to_string(),
        good_shape.replacen('_', "-", 2),
        format!("rk_{}_{}", "a".repeat(ID_LEN), "1".repeat(SECRET_LEN)),
        format!("rk_{}_{}", "a".repeat(ID_LEN - 1), "b".repeat(SECRET_LEN + 1)),
    ];
    for m in &malformed {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_str(m).unwrap());
        // Unreachable store, yet a malformed key is refused as malformed:
        // the store was not asked.
        assert_eq!(
            keys.authenticate(&h).await.unwrap_err(),
            AuthnError::ApiKeyMalformed,
            "{m:?}"
        );
    }
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_bytes(b"rk_\xff\xfe").unwrap());
    assert_eq!(
        keys.authenticate(&h).await.unwrap_err(),
        AuthnError::ApiKeyMalformed
    );
    // A well-formed key does ask the store; unreachable means refused.
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_str(&good_shape).unwrap());
    assert_eq!(
        keys.authenticate(&h).await.unwrap_err(),
        AuthnError::ApiKeyStoreUnavailable
    );
    // Now marked down: the next request is refused at once, not after
    // another wait on the store.
    let quick = tokio::time::timeout(Duration::from_millis(200), keys.authenticate(&h)).await;
    assert_eq!(quick.unwrap().unwrap_err(), AuthnError::ApiKeyStoreUnavailable);
    assert_eq!(
        AuthnError::ApiKeyStoreUnavailable.class(),
        crate::authn::ErrorClass::InvalidToken
    );
}

#[test]
fn authenticate_can_run_on_any_worker() {
    fn send<T: Send>(_: &T) {}
    fn shared<T: Send + Sync>() {}
    shared::<ApiKeys>();
    // Made outside any runtime (as Gateway::build may).
    let keys = unreachable_store();
    let headers = HeaderMap::new();
    send(&keys.authenticate(&headers));
    send(&keys.flush_last_used());
}

#[tokio::test]
async fn missing_and_repeated_headers() {
    let keys = unreachable_store();
    assert_eq!(
        keys.authenticate(&HeaderMap::new()).await.unwrap_err(),
        AuthnError::MissingCredentials
    );
    let mut h = HeaderMap::new();
    h.append("x-api-key", HeaderValue::from_static("a"));
    h.append("x-api-key", HeaderValue::from_static("b"));
    assert_eq!(
        keys.authenticate(&h).await.unwrap_err(),
        AuthnError::ApiKeyMultiple
    );
    assert_eq!(
        AuthnError::ApiKeyMultiple.class(),
        crate::authn::ErrorClass::InvalidRequest
    );
    // The key in another header is not looked at.
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer rk_x"),
    );
    assert_eq!(
        keys.authenticate(&h).await.unwrap_err(),
        AuthnError::MissingCredentials
    );
}

#[test]
fn generated_keys_have_the_documented_shape() {
    for _ in 0..50 {
        let id = random_chars(ID_LEN).unwrap();
        let key = format!("rk_{id}_{}", random_chars(SECRET_LEN).unwrap());
        assert_eq!(parse_key(key.as_bytes()), Some(id.as_str()));
    }
    assert_ne!(
        random_chars(SECRET_LEN).unwrap(),
        random_chars(SECRET_LEN).unwrap()
    );
}

#[test]
fn scopes_and_clients_are_checked() {
    assert_eq!(parse_scopes(" a:read  b  a:read ").unwrap(), vec!["a:read", "b"]);
    assert!(parse_scopes("").is_err());
    assert!(parse_scopes("a \"b\"").is_err());
    assert!(parse_scopes("a\\b").is_err());
    assert!(check_client("partner-a").is_ok());
    assert!(check_client("").is_err());
    assert!(check_client("a\nb").is_err());
    assert!(check_client(&"x".repeat(129)).is_err());
}

// --- the policy section ---

fn load(dir: &Path, section: &str) -> Result<ApiKeysPolicy, Vec<crate::config::ConfigProblem>> {
    let file = dir.join("rampart.toml");
    let loaded = LoadedConfig::from_text(&file, section.to_string()).unwrap();
    ApiKeysPolicy::from_config(loaded.config.api_keys.as_ref().unwrap(), &loaded)
}

fn messages(problems: &[crate::config::ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn policy_defaults_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper"), format!("{}\n", "p".repeat(32))).unwrap();
    let p = load(dir.path(), "[api_keys]\npepper_file = \"pepper\"\n").unwrap();
    assert_eq!(p.store, StoreLocation::Sqlite(dir.path().join("rampart-keys.db")));
    assert_eq!(p.header.as_str(), "x-api-key");
    assert_eq!(p.cache_ttl, Duration::from_secs(10));
    assert_eq!(p.pepper.expose().len(), 32, "trailing newline dropped");
    let p = load(
        dir.path(),
        "[api_keys]\nstore = \"postgres://u:hunter2@db.internal:5433/keys\"\nheader = \"X-Partner-Key\"\n\
         pepper_file = \"pepper\"\ncache_ttl = \"5m\"\n",
    )
    .unwrap();
    assert_eq!(p.store.describe(), "postgres://db.internal:5433/keys");
    assert!(!format!("{p:?}").contains("hunter2"));
    assert_eq!(p.header.as_str(), "x-partner-key");
}

#[test]
fn policy_problems_are_reported_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short"), "tooshort").unwrap();
    let all = messages(
        &load(
            dir.path(),
            "[api_keys]\nstore = \"mysql://x\"\nheader = \"bad header\"\ncache_ttl = \"6m\"\n",
        )
        .unwrap_err(),
    );
    for want in [
        "api_keys.store:",
        "api_keys.header:",
        "api_keys.pepper_file: required",
        "api_keys.cache_ttl:",
    ] {
        assert!(all.contains(want), "{want} in\n{all}");
    }
    let short = messages(&load(dir.path(), "[api_keys]\npepper_file = \"short\"\n").unwrap_err());
    assert!(
        short.contains("holds 8 byte(s)") && !short.contains("tooshort"),
        "{short}"
    );
    let missing = messages(&load(dir.path(), "[api_keys]\npepper_file = \"nope\"\n").unwrap_err());
    assert!(missing.contains("cannot read"), "{missing}");
    let pw = messages(
        &load(
            dir.path(),
            "[api_keys]\nstore = \"postgres://u:hunter2@[::1\"\npepper_file = \"short\"\n",
        )
        .unwrap_err(),
    );
    assert!(!pw.contains("hunter2"), "{pw}");
    let q = messages(
        &load(
            dir.path(),
            "[api_keys]\nstore = \"sqlite://k.db?mode=ro\"\npepper_file = \"short\"\n",
        )
        .unwrap_err(),
    );
    assert!(q.contains("without ?options"), "{q}");
    let authz = messages(
        &load(
            dir.path(),
            "[api_keys]\nheader = \"Authorization\"\npepper_file = \"short\"\n",
        )
        .unwrap_err(),
    );
    assert!(
        authz.contains("api_keys.header: `Authorization` is used by HTTP itself"),
        "{authz}"
    );
    let unknown = LoadedConfig::from_text(&dir.path().join("r.toml"), "[api_keys]\nstorage = \"x\"\n".into());
    assert!(unknown.is_err());
}
