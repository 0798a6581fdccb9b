//! The embedded-or-shared database behind the stores of people's and
//! clients' credentials: a SQLite file by default (nothing to install),
//! PostgreSQL for a cluster (DESIGN.md §4).
//!
//! - [`StoreLocation`]: a store URL as the policy writes it
//!   (`sqlite://PATH`, `postgres://…`), parsed once; never printed with
//!   its password.
//! - [`RecordStore`]: JSON records by kind and id (`totp` enrolments,
//!   `admin_user` accounts) in one table, `rampart_records`, with the same
//!   SQL on both databases. Records that hold secrets are sealed by their
//!   owners before they get here ([`crate::mfa::KeyRing`]).
//!
//! Threat answered: a hung or unreachable database hanging requests or
//! commands. How it fails: every call is bounded by [`STORE_TIMEOUT`]; a
//! connection problem is [`StoreError::Unavailable`], anything else
//! [`StoreError::Failed`]; messages name the store's host and database,
//! never a password.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::OnceCell;

use crate::secret::Secret;

/// The longest any one store call may take (connecting included).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// The table.
pub const TABLE: &str = "rampart_records";

/// Where a store lives, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file (created on first use).
    Sqlite(PathBuf),
    /// A PostgreSQL database. The URL may hold a password: never printed.
    Postgres(Secret<String>),
}

impl StoreLocation {
    /// Parses a store URL; a relative SQLite path is resolved with
    /// `resolve`. The error never quotes the URL (it may hold a password).
    pub fn parse(url: &str, resolve: impl Fn(&std::path::Path) -> PathBuf) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.contains('?') {
                return Err("a sqlite:// store takes a file path only, without ?options".into());
            }
            if path.is_empty() {
                return Err("a sqlite:// store needs a file path, e.g. sqlite://rampart-keys.db".into());
            }
            return Ok(Self::Sqlite(resolve(std::path::Path::new(path))));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return match sqlx::postgres::PgConnectOptions::from_str(url) {
                Ok(_) => Ok(Self::Postgres(Secret::new(url.to_string()))),
                Err(_) => Err(
                    "not a valid postgres:// URL: expected postgres://user[:password]@host[:port]/database"
                        .into(),
                ),
            };
        }
        Err("expected sqlite://PATH or postgres://user@host/database".into())
    }

    /// Where it is, for messages: the SQLite path, or PostgreSQL's host,
    /// port and database (no user, no password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres(url) => match sqlx::postgres::PgConnectOptions::from_str(url.expose()) {
                Ok(o) => format!(
                    "postgres://{}:{}/{}",
                    o.get_host(),
                    o.get_port(),
                    o.get_database().unwrap_or("")
                ),
                Err(_) => "postgres://[invalid]".into(),
            },
        }
    }
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (or did not answer in time).
    #[error("store {location} unavailable: {reason}")]
    Unavailable {
        /// Where (no password).
        location: String,
        /// Why.
        reason: String,
    },
    /// The database answered with an error.
    #[error("store {location} failed: {reason}")]
    Failed {
        /// Where (no password).
        location: String,
        /// Why.
        reason: String,
    },
}

#[derive(Debug)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// JSON records by (kind, id), in SQLite or PostgreSQL.
#[derive(Debug)]
pub struct RecordStore {
    location: StoreLocation,
    describe: String,
    pool: OnceCell<Pool>,
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS rampart_records (\
     kind TEXT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL, updated_at BIGINT NOT NULL, \
     PRIMARY KEY (kind, id))";
const GET: &str = "SELECT record FROM rampart_records WHERE kind = $1 AND id = $2";
const LIST: &str = "SELECT id, record FROM rampart_records WHERE kind = $1 ORDER BY id";
const INSERT_NEW: &str =
    "INSERT INTO rampart_records (kind, id, record, updated_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (kind, id) DO NOTHING";
const UPSERT: &str = "INSERT INTO rampart_records (kind, id, record, updated_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (kind, id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at";
const DELETE: &str = "DELETE FROM rampart_records WHERE kind = $1 AND id = $2";

/// Runs the same statement on whichever pool, bound the same way.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Pg($p) => $body,
        }
    };
}

impl RecordStore {
    /// A store at `location`; nothing is opened until first use (so no
    /// runtime is needed to make one).
    pub fn new(location: StoreLocation) -> Self {
        let describe = location.describe();
        Self {
            location,
            describe,
            pool: OnceCell::new(),
        }
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(STORE_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(&e)),
            Err(_) => Err(StoreError::Unavailable {
                location: self.describe.clone(),
                reason: format!("no answer within {}s", STORE_TIMEOUT.as_secs()),
            }),
        }
    }

    fn error(&self, e: &sqlx::Error) -> StoreError {
        let location = self.describe.clone();
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed => StoreError::Unavailable {
                location,
                reason: e.to_string(),
            },
            sqlx::Error::Database(d) => StoreError::Failed {
                location,
                reason: d.message().to_owned(),
            },
            other => StoreError::Failed {
                location,
                reason: other.to_string(),
            },
        }
    }

    async fn ready(&self) -> Result<&Pool, StoreError> {
        self.pool
            .get_or_try_init(|| async {
                let pool = match &self.location {
                    StoreLocation::Sqlite(path) => {
                        let options = sqlx::sqlite::SqliteConnectOptions::new()
                            .filename(path)
                            .create_if_missing(true)
                            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                            .busy_timeout(Duration::from_secs(2));
                        Pool::Sqlite(
                            sqlx::sqlite::SqlitePoolOptions::new()
                                .max_connections(4)
                                .acquire_timeout(STORE_TIMEOUT)
                                .connect_lazy_with(options),
                        )
                    }
                    StoreLocation::Postgres(url) => {
                        let options =
                            sqlx::postgres::PgConnectOptions::from_str(url.expose()).map_err(|_| {
                                StoreError::Unavailable {
                                    location: self.describe.clone(),
                                    reason: "invalid connection URL".into(),
                                }
                            })?;
                        Pool::Pg(
                            sqlx::postgres::PgPoolOptions::new()
                                .max_connections(4)
                                .acquire_timeout(STORE_TIMEOUT)
                                .connect_lazy_with(options),
                        )
                    }
                };
                on_pool!(&pool, |p| self
                    .bounded(sqlx::query(CREATE).execute(p))
                    .await
                    .map(|_| ()))?;
                Ok(pool)
            })
            .await
    }

    /// The record `(kind, id)`.
    pub async fn get(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        let pool = self.ready().await?;
        on_pool!(pool, |p| {
            self.bounded(async {
                let row = sqlx::query(GET).bind(kind).bind(id).fetch_optional(p).await?;
                row.map(|r| r.try_get::<String, _>("record")).transpose()
            })
            .await
        })
    }

    /// Every record of `kind`, by id.
    pub async fn list(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        let pool = self.ready().await?;
        on_pool!(pool, |p| {
            self.bounded(async {
                let rows = sqlx::query(LIST).bind(kind).fetch_all(p).await?;
                rows.iter()
                    .map(|r| Ok((r.try_get::<String, _>("id")?, r.try_get::<String, _>("record")?)))
                    .collect()
            })
            .await
        })
    }

    /// Adds a record; false (nothing written) if `(kind, id)` exists.
    pub async fn insert_new(&self, kind: &str, id: &str, record: &str, now: i64) -> Result<bool, StoreError> {
        let pool = self.ready().await?;
        on_pool!(pool, |p| {
            self.bounded(
                sqlx::query(INSERT_NEW)
                    .bind(kind)
                    .bind(id)
                    .bind(record)
                    .bind(now)
                    .execute(p),
            )
            .await
            .map(|r| r.rows_affected() == 1)
        })
    }

    /// Writes a record, replacing any.
    pub async fn put(&self, kind: &str, id: &str, record: &str, now: i64) -> Result<(), StoreError> {
        let pool = self.ready().await?;
        on_pool!(pool, |p| {
            self.bounded(
                sqlx::query(UPSERT)
                    .bind(kind)
                    .bind(id)
                    .bind(record)
                    .bind(now)
                    .execute(p),
            )
            .await
            .map(|_| ())
        })
    }

    /// Deletes a record; false if there was none.
    pub async fn delete(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        let pool = self.ready().await?;
        on_pool!(pool, |p| {
            self.bounded(sqlx::query(DELETE).bind(kind).bind(id).execute(p))
                .await
                .map(|r| r.rows_affected() == 1)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn exercise(store: &RecordStore, kind: &str) {
        assert_eq!(store.get(kind, "u1").await.unwrap(), None);
        assert!(store.insert_new(kind, "u1", "{\"a\":1}", 1).await.unwrap());
        assert!(
            !store.insert_new(kind, "u1", "{\"a\":2}", 2).await.unwrap(),
            "no overwrite"
        );
        assert_eq!(store.get(kind, "u1").await.unwrap().as_deref(), Some("{\"a\":1}"));
        store.put(kind, "u1", "{\"a\":3}", 3).await.unwrap();
        store.put(kind, "u0", "{}", 3).await.unwrap();
        assert_eq!(store.get(kind, "u1").await.unwrap().as_deref(), Some("{\"a\":3}"));
        let ids: Vec<String> = store
            .list(kind)
            .await
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ids, ["u0", "u1"]);
        assert!(store.list("other-kind").await.unwrap().is_empty());
        assert!(store.delete(kind, "u1").await.unwrap());
        assert!(!store.delete(kind, "u1").await.unwrap());
    }

    #[tokio::test]
    async fn sqlite_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::new(StoreLocation::Sqlite(dir.path().join("r.db")));
        exercise(&store, "t").await;
    }

    /// The same on the real PostgreSQL of scripts/test.sh (a kind unique
    /// to this run, so parallel runs do not meet).
    #[tokio::test]
    async fn postgres_records() {
        let url = std::env::var("RAMPART_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let store = RecordStore::new(StoreLocation::Postgres(Secret::new(url)));
        let kind = format!("test-{}", uuid::Uuid::new_v4());
        exercise(&store, &kind).await;
        store.delete(&kind, "u0").await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_store_is_unavailable_in_bounded_time() {
        let store = RecordStore::new(StoreLocation::Postgres(Secret::new(
            "postgres://nobody:secret-pw@127.0.0.1:1/db".into(),
        )));
        let started = std::time::Instant::now();
        let e = store.get("t", "x").await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        assert!(started.elapsed() < STORE_TIMEOUT + Duration::from_secs(1));
        assert!(!e.to_string().contains("secret-pw"), "{e}");
    }
}
