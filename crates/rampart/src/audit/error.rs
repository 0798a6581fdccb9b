//! Why the audit trail could not take or keep a record: for logs, the CLI
//! and the pipeline's fail-closed answer.
//!
//! Threat answered: an audit failure leaking credentials (a database URL)
//! through its message, or passing unnoticed. No variant carries a secret;
//! database errors are reduced to their kind and the store's location. How
//! it fails: each error maps to an exit code for `rampart audit`
//! (2: the trail or its keys cannot be reached; 1: anything else).

/// Every way an audit operation can fail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The sink (disk or database) refused or is unreachable.
    #[error("the audit sink at {location} failed: {reason}")]
    Sink {
        /// Where (no credentials).
        location: String,
        /// What went wrong (no credentials).
        reason: String,
    },
    /// The record could not be queued (full, or the writer stopped).
    #[error("the audit trail cannot take more records: {0}")]
    Unavailable(&'static str),
    /// The record was queued but not confirmed durable in time.
    #[error("the audit record was not confirmed within {0:?}")]
    Timeout(std::time::Duration),
    /// A key or a file is not usable.
    #[error("{0}")]
    Keys(String),
}

impl AuditError {
    /// The CLI's exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Sink { .. } | Self::Keys(_) | Self::Unavailable(_) => 2,
            Self::Timeout(_) => 1,
        }
    }

    /// Reduces a sqlx error to a message without credentials.
    pub(crate) fn from_sqlx(location: &str, e: &sqlx::Error) -> Self {
        let reason = match e {
            sqlx::Error::Io(io) => io.kind().to_string(),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                "no connection could be made in time".into()
            }
            sqlx::Error::Tls(_) => "TLS handshake failed".into(),
            sqlx::Error::Database(db) => db.message().to_string(),
            sqlx::Error::Configuration(_) => "invalid connection settings".into(),
            other => other.to_string(),
        };
        Self::Sink {
            location: location.to_string(),
            reason,
        }
    }
}
