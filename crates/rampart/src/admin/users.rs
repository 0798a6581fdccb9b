//! People of the admin plane: accounts with a role, an Argon2id password
//! hash and a TOTP factor, kept in the `[mfa]` store (`rampart admin user
//! add|passwd|list|remove`), and their sign-in (password, then code).
//!
//! Threat answered: an admin account taken over with a guessed or leaked
//! password (a second factor is always required; the password policy of
//! [`super::password`] applies; failures lock the account out with
//! doubling backoff, shared with the code's failures), and user
//! enumeration (an unknown user costs the same Argon2 verification as a
//! known one and gets the same answer). How it fails: closed. A store that
//! cannot answer refuses every sign-in ([`SignInError::Unavailable`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::Role;
use super::password::{self, PasswordProblem};
use crate::mfa::totp::Algorithm;
use crate::mfa::{Enrolment, Factor, Mfa, MfaError};

/// The record kind of admin users in the store.
pub const KIND: &str = "admin_user";

/// One admin user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    /// What they may do.
    pub role: Role,
    /// Argon2id PHC string.
    pub password: String,
    /// Their second factor (sealed seed).
    pub totp: Factor,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub password_changed_at: i64,
}

/// Why a user could not be added or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsersError {
    /// A bad user name.
    #[error("a user name is 2 to 64 letters, digits, `.`, `_`, `-` or `@`")]
    InvalidName,
    /// The password does not meet the policy.
    #[error("the password is refused: {0}")]
    Password(#[from] PasswordProblem),
    /// The user exists.
    #[error("the user exists")]
    Exists,
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// The store or the keys failed.
    #[error(transparent)]
    Mfa(#[from] MfaError),
}

impl UsersError {
    /// Exit code for the CLI: 2 when the store cannot be reached, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Mfa(e) if e.is_unavailable() => 2,
            _ => 1,
        }
    }
}

/// Why a sign-in failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// Wrong name, password or code (which one is not told).
    #[error("sign-in refused")]
    Refused,
    /// Too many failures; locked for this long.
    #[error("locked for {0:?}")]
    Locked(Duration),
    /// The store, keys or replay cache failed.
    #[error("sign-in unavailable: {0}")]
    Unavailable(String),
}

fn valid_name(user: &str) -> Result<(), UsersError> {
    let ok = (2..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(UsersError::InvalidName)
    }
}

fn lock_key(user: &str) -> String {
    format!("{KIND}:{user}")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn hash(password: &str) -> Result<String, UsersError> {
    let pw = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| MfaError::Corrupt(e.to_string()))?
        .map_err(|e| UsersError::Mfa(MfaError::Corrupt(e)))
}

async fn verify(password: &str, phc: &str) -> bool {
    let (pw, phc) = (password.to_owned(), phc.to_owned());
    tokio::task::spawn_blocking(move || password::verify(&pw, &phc))
        .await
        .unwrap_or(false)
}

/// The user's record.
pub async fn get(mfa: &Mfa, user: &str) -> Result<Option<AdminUser>, UsersError> {
    match mfa.store().get(KIND, user).await.map_err(MfaError::from)? {
        None => Ok(None),
        Some(r) => serde_json::from_str(&r)
            .map(Some)
            .map_err(|e| UsersError::Mfa(MfaError::Corrupt(e.to_string()))),
    }
}

async fn put(mfa: &Mfa, user: &str, rec: &AdminUser) -> Result<(), UsersError> {
    let text = serde_json::to_string(rec).map_err(|e| MfaError::Corrupt(e.to_string()))?;
    mfa.store()
        .put(KIND, user, &text, now())
        .await
        .map_err(MfaError::from)?;
    Ok(())
}

/// Adds a user with `role` and `password` (checked against the policy) and
/// a new TOTP factor, whose enrolment (seed and URI, shown once) is
/// returned.
pub async fn add(mfa: &Mfa, user: &str, role: Role, pw: &str) -> Result<Enrolment, UsersError> {
    valid_name(user)?;
    password::check(user, pw)?;
    let enrolment = mfa.new_factor(KIND, user, &format!("admin:{user}"), Algorithm::Sha1, 6)?;
    let t = now();
    let rec = AdminUser {
        role,
        password: hash(pw).await?,
        totp: enrolment.factor.clone(),
        created_at: t,
        password_changed_at: t,
    };
    let text = serde_json::to_string(&rec).map_err(|e| MfaError::Corrupt(e.to_string()))?;
    if !mfa
        .store()
        .insert_new(KIND, user, &text, t)
        .await
        .map_err(MfaError::from)?
    {
        return Err(UsersError::Exists);
    }
    Ok(enrolment)
}

/// Changes a user's password (checked against the policy).
pub async fn passwd(mfa: &Mfa, user: &str, pw: &str) -> Result<(), UsersError> {
    valid_name(user)?;
    password::check(user, pw)?;
    let mut rec = get(mfa, user).await?.ok_or(UsersError::NotFound)?;
    rec.password = hash(pw).await?;
    rec.password_changed_at = now();
    put(mfa, user, &rec).await
}

/// Every user, by name.
pub async fn list(mfa: &Mfa) -> Result<Vec<(String, AdminUser)>, UsersError> {
    mfa.store()
        .list(KIND)
        .await
        .map_err(MfaError::from)?
        .into_iter()
        .map(|(id, r)| {
            serde_json::from_str(&r)
                .map(|u| (id, u))
                .map_err(|e| UsersError::Mfa(MfaError::Corrupt(e.to_string())))
        })
        .collect()
}

/// Removes a user; false if there was none.
pub async fn remove(mfa: &Mfa, user: &str) -> Result<bool, UsersError> {
    valid_name(user)?;
    Ok(mfa.store().delete(KIND, user).await.map_err(MfaError::from)?)
}

/// Signs a person in with password and code: their role, or a refusal
/// that does not say what was wrong.
pub async fn sign_in(mfa: &Mfa, user: &str, pw: &str, code: &str) -> Result<Role, SignInError> {
    let key = lock_key(user);
    if let Some(left) = mfa.locked_for(&key) {
        return Err(SignInError::Locked(left));
    }
    let rec = if valid_name(user).is_ok() {
        get(mfa, user)
            .await
            .map_err(|e| SignInError::Unavailable(e.to_string()))?
    } else {
        None
    };
    // The same Argon2 cost whether or not the user exists.
    let phc = rec
        .as_ref()
        .map_or_else(|| password::decoy().to_owned(), |r| r.password.clone());
    let ok = verify(pw, &phc).await;
    let Some(rec) = rec.filter(|_| ok) else {
        mfa.failed(&key, MfaError::WrongCode);
        return Err(match mfa.locked_for(&key) {
            Some(left) => SignInError::Locked(left),
            None => SignInError::Refused,
        });
    };
    match mfa.check(KIND, user, &key, &rec.totp, code).await {
        Ok(()) => Ok(rec.role),
        Err(MfaError::Locked(d)) => Err(SignInError::Locked(d)),
        Err(e) if e.is_unavailable() => Err(SignInError::Unavailable(e.to_string())),
        Err(_) => Err(match mfa.locked_for(&key) {
            Some(left) => SignInError::Locked(left),
            None => SignInError::Refused,
        }),
    }
}
