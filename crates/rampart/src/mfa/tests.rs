//! Second factors under a fake clock: enrolment, codes within the drift,
//! replays, lockouts with backoff, key rotation, and a key that does not
//! open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use super::*;
use crate::clock::{Clock, FakeClock};

const T0: u64 = 1_800_000_010;

struct Env {
    _dir: tempfile::TempDir,
    clock: Arc<FakeClock>,
    loaded: LoadedConfig,
}

fn env(extra: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let b64 = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    std::fs::write(dir.path().join("mfa.key"), b64(1)).unwrap();
    std::fs::write(dir.path().join("mfa-k2.key"), b64(2)).unwrap();
    let text = format!("[mfa]\nstore = \"sqlite://mfa.db\"\nkey_file = \"mfa.key\"\n{extra}");
    let loaded = LoadedConfig::from_text(&dir.path().join("rampart.toml"), text).unwrap();
    Env {
        _dir: dir,
        clock: FakeClock::at_unix(T0),
        loaded,
    }
}

fn mfa(e: &Env, state: &Arc<MfaState>) -> Mfa {
    let cfg = e.loaded.config.mfa.clone().unwrap();
    let policy = MfaPolicy::from_config(&cfg, &e.loaded, false).unwrap();
    Mfa::new(policy, state.clone(), None, e.clock.clone())
}

fn code_now(secret_b32: &str, clock: &FakeClock, alg: Algorithm, digits: u32) -> String {
    let seed = totp::base32_decode(secret_b32).unwrap();
    let unix = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp::totp(alg, &seed, unix, digits)
}

#[tokio::test]
async fn enrol_confirm_once_and_refuse_the_replay() {
    let e = env("");
    let m = mfa(&e, &MfaState::new(e.clock.clone()));
    for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        let user = format!("cust-{}", alg.as_str());
        let en = m.enrol(&user, alg, 8).await.unwrap();
        assert!(en.uri.expose().starts_with("otpauth://totp/Rampart:cust"));
        assert_eq!(
            m.enrol(&user, alg, 8).await.unwrap_err(),
            MfaError::AlreadyEnrolled
        );
        let code = code_now(en.secret_base32.expose(), &e.clock, alg, 8);
        m.confirm(&user, &code).await.unwrap();
        assert_eq!(m.confirm(&user, &code).await, Err(MfaError::Replayed), "{alg:?}");
        // The next step's code is new.
        e.clock.advance(Duration::from_secs(30));
        let next = code_now(en.secret_base32.expose(), &e.clock, alg, 8);
        m.confirm(&user, &next).await.unwrap();
    }
    // The seed is sealed in the store, not written in the clear.
    let listed = m.list().await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .all(|(_, f)| f.secret.key_id == "k1" && f.digits == 8));
    assert_eq!(m.confirm("nobody", "123456").await, Err(MfaError::NotEnrolled));
}

#[tokio::test]
async fn codes_one_step_early_or_late_pass_two_steps_do_not() {
    let e = env("");
    let m = mfa(&e, &MfaState::new(e.clock.clone()));
    let en = m.enrol("alice", Algorithm::Sha1, 6).await.unwrap();
    let seed = totp::base32_decode(en.secret_base32.expose()).unwrap();
    let step = totp::step_of(T0);
    let at = |s: u64| totp::hotp(Algorithm::Sha1, &seed, s, 6);
    m.confirm("alice", &at(step - 1)).await.unwrap();
    m.confirm("alice", &at(step + 1)).await.unwrap();
    assert_eq!(m.confirm("alice", &at(step + 2)).await, Err(MfaError::WrongCode));
    assert_eq!(m.confirm("alice", &at(step - 2)).await, Err(MfaError::WrongCode));
}

#[tokio::test]
async fn failures_lock_out_with_doubling_backoff_and_success_resets() {
    let e = env("max_failures = 3\nlockout = \"1m\"\nmax_lockout = \"3m\"\n");
    let m = mfa(&e, &MfaState::new(e.clock.clone()));
    let en = m.enrol("alice", Algorithm::Sha1, 6).await.unwrap();
    let good = || code_now(en.secret_base32.expose(), &e.clock, Algorithm::Sha1, 6);
    let wrong = || {
        let g = good();
        format!("{:06}", (g.parse::<u32>().unwrap() + 1) % 1_000_000)
    };
    for _ in 0..3 {
        assert_eq!(m.confirm("alice", &wrong()).await, Err(MfaError::WrongCode));
    }
    // Locked: even the right code is refused, with the time left.
    assert_eq!(
        m.confirm("alice", &good()).await,
        Err(MfaError::Locked(Duration::from_secs(60)))
    );
    e.clock.advance(Duration::from_secs(61));
    // The second lockout is twice as long, the third capped at 3m.
    for want in [120, 180] {
        for _ in 0..3 {
            assert_eq!(m.confirm("alice", &wrong()).await, Err(MfaError::WrongCode));
        }
        assert_eq!(
            m.confirm("alice", &good()).await,
            Err(MfaError::Locked(Duration::from_secs(want)))
        );
        e.clock.advance(Duration::from_secs(want + 1));
    }
    // A success clears the count: two failures and a success, then two
    // more failures, do not lock.
    for _ in 0..2 {
        let _ = m.confirm("alice", &wrong()).await;
    }
    m.confirm("alice", &good()).await.unwrap();
    e.clock.advance(Duration::from_secs(30));
    for _ in 0..2 {
        assert_eq!(m.confirm("alice", &wrong()).await, Err(MfaError::WrongCode));
    }
    m.confirm("alice", &good()).await.unwrap();
}

#[tokio::test]
async fn rotation_old_keys_open_rekey_reseals_and_a_missing_key_refuses() {
    let e = env("");
    let state = MfaState::new(e.clock.clone());
    let m1 = mfa(&e, &state);
    let en = m1.enrol("alice", Algorithm::Sha1, 6).await.unwrap();
    // Rotate: k2 current, k1 old.
    let text = e.loaded.text.replace(
        "key_file = \"mfa.key\"",
        "key_file = \"mfa-k2.key\"\nkey_id = \"k2\"\nold_keys = [{ id = \"k1\", file = \"mfa.key\" }]",
    );
    let rotated = LoadedConfig::from_text(&e.loaded.file, text.clone()).unwrap();
    let policy = MfaPolicy::from_config(rotated.config.mfa.as_ref().unwrap(), &rotated, false).unwrap();
    let m2 = Mfa::new(policy, state.clone(), None, e.clock.clone());
    m2.confirm(
        "alice",
        &code_now(en.secret_base32.expose(), &e.clock, Algorithm::Sha1, 6),
    )
    .await
    .unwrap();
    assert_eq!(m2.rekey().await.unwrap(), 1);
    assert_eq!(m2.rekey().await.unwrap(), 0);
    assert_eq!(m2.list().await.unwrap()[0].1.secret.key_id, "k2");
    // Without the old key, a k1 secret does not open (fails closed).
    let m3 = mfa(&e, &state); // k1 only, but the record is now k2's
    e.clock.advance(Duration::from_secs(30));
    let r = m3
        .confirm(
            "alice",
            &code_now(en.secret_base32.expose(), &e.clock, Algorithm::Sha1, 6),
        )
        .await;
    assert_eq!(r, Err(MfaError::Seal(SealError::UnknownKey("k2".into()))));
    assert!(r.unwrap_err().is_unavailable());
    assert!(m2.reset("alice").await.unwrap());
    assert!(!m2.reset("alice").await.unwrap());
}

#[test]
fn policy_problems_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short.key"), "AAAA").unwrap();
    for (text, want) in [
        ("[mfa]\n", "mfa.key_file: required"),
        (
            "[mfa]\nkey_file = \"short.key\"\n",
            "mfa.key_file: the key must be 32 bytes",
        ),
        ("[mfa]\nkey_file = \"missing.key\"\n", "mfa.key_file: cannot read"),
        (
            "[mfa]\nkey_env = \"RAMPART_TEST_NO_SUCH_VAR\"\n",
            "mfa.key_env: environment variable",
        ),
        (
            "[mfa]\nkey_file = \"short.key\"\nkey_env = \"X\"\n",
            "mfa.key_env: set the key's file",
        ),
        (
            "[mfa]\nstore = \"mysql://x\"\nkey_env = \"X\"\n",
            "mfa.store: expected sqlite://",
        ),
        (
            "[mfa]\nkey_env = \"X\"\nreplay_store = \"redis\"\n",
            "mfa.replay_store: `redis` needs",
        ),
        (
            "[mfa]\nkey_env = \"X\"\nold_keys = [{ id = \"k1\", file = \"short.key\" }]\n",
            "mfa.old_keys[0].id",
        ),
    ] {
        let loaded = LoadedConfig::from_text(&dir.path().join("p.toml"), text.into()).unwrap();
        let p = MfaPolicy::from_config(loaded.config.mfa.as_ref().unwrap(), &loaded, false).unwrap_err();
        let all: Vec<String> = p.iter().map(|p| format!("{}: {}", p.path, p.message)).collect();
        assert!(all.iter().any(|m| m.starts_with(want)), "{text}: {all:?}");
    }
}
