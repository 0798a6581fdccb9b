//! Why an API-key operation failed: for the CLI (`rampart keys …`) and for
//! logs. A failed *request* authentication is an
//! [`AuthnError`](crate::authn::AuthnError) instead, whose client-facing text
//! is one generic class.
//!
//! Threat answered: leaking a key, a hash or a store password through an
//! error message. No variant carries a secret; store errors are reduced to
//! their kind and the store's location without credentials. How it fails:
//! each error maps to an exit code (1 bad input or unknown key, 2 store
//! unreachable).

/// Every way an API-key operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeysError {
    /// The store could not be reached, or did not answer in time.
    #[error("the API-key store at {location} is unreachable: {reason}")]
    StoreUnavailable {
        /// Where the store is (no credentials).
        location: String,
        /// What went wrong (no credentials).
        reason: String,
    },
    /// The store answered with an error (a query failed, bad data).
    #[error("the API-key store at {location} failed: {reason}")]
    Store {
        /// Where the store is (no credentials).
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// No key with this id.
    #[error("no API key with id `{0}`")]
    UnknownKey(String),
    /// The key cannot be rotated: it is revoked, expired or already rotated.
    #[error("API key `{id}` cannot be rotated: it is {state}")]
    NotActive {
        /// The key id.
        id: String,
        /// Its state (`revoked`, `expired`, `rotated`).
        state: &'static str,
    },
    /// A client name, scope list or duration is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// The system random generator failed.
    #[error("the random generator failed")]
    Random,
}

impl ApiKeysError {
    /// The CLI's exit code: 2 when the store is unreachable, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::StoreUnavailable { .. } => 2,
            _ => 1,
        }
    }

    /// Reduces a sqlx error to a message without credentials: connection
    /// problems become [`ApiKeysError::StoreUnavailable`].
    pub(crate) fn from_sqlx(location: &str, e: &sqlx::Error) -> Self {
        use sqlx::Error as E;
        let location = location.to_string();
        match e {
            E::Io(io) => Self::StoreUnavailable {
                location,
                reason: io.kind().to_string(),
            },
            E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => Self::StoreUnavailable {
                location,
                reason: "no connection could be made in time".into(),
            },
            E::Tls(_) => Self::StoreUnavailable {
                location,
                reason: "TLS handshake failed".into(),
            },
            // Authentication failures, unknown databases, a file that cannot
            // be opened: the store is not usable from here.
            E::Database(db) if is_connection_problem(db.code().as_deref()) => Self::StoreUnavailable {
                location,
                reason: db.message().to_string(),
            },
            E::Database(db) => Self::Store {
                location,
                reason: db.message().to_string(),
            },
            E::Configuration(_) => Self::StoreUnavailable {
                location,
                reason: "invalid connection settings".into(),
            },
            other => Self::Store {
                location,
                reason: other.to_string(),
            },
        }
    }
}

/// SQLSTATE classes 08 (connection), 28 (authorization), 3D (no such
/// database), 57P (server shutting down); SQLite 14 (`SQLITE_CANTOPEN`).
fn is_connection_problem(code: Option<&str>) -> bool {
    match code {
        Some(c) => {
            c.starts_with("08") || c.starts_with("28") || c == "3D000" || c.starts_with("57P") || c == "14"
        }
        None => false,
    }
}
