//! Where API keys live: one [`KeyStore`] trait, two implementations on
//! `sqlx` ([`SqliteStore`], the embedded default; [`PgStore`], shared by a
//! cluster). Both run the same SQL (numbered parameters work on both); only
//! the table definition differs. The schema is created on first use with
//! idempotent `CREATE TABLE IF NOT EXISTS`.
//!
//! What is stored per key: its public id, the client name, scopes, the
//! HMAC-SHA256 of the key under the pepper, creation, expiry, revocation,
//! last use (written in batches, at most once a minute per key), and for a
//! rotated key its successor and the end of the overlap. Never the key.
//!
//! Threat answered: a stolen database yielding usable keys (only keyed
//! hashes are there, and the pepper is not), and a hung database hanging
//! requests. How it fails: every call is bounded by [`STORE_TIMEOUT`]; a
//! connection problem is [`ApiKeysError::StoreUnavailable`], any other
//! failure [`ApiKeysError::Store`]; messages never carry credentials.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};
use tokio::sync::OnceCell;

use super::error::ApiKeysError;

/// The longest any one store call may take (connecting included).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// The default table name.
pub const DEFAULT_TABLE: &str = "rampart_api_keys";

/// A boxed future, so that stores can be used as `dyn KeyStore`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One stored key (without the key). `Debug` does not show the HMAC.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The public key id (the lookup handle, part of the key).
    pub key_id: String,
    /// The client the key belongs to.
    pub client: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// HMAC-SHA256 of the whole key under the pepper.
    pub hmac: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; none: never expires.
    pub expires_at: Option<i64>,
    /// Unix seconds; set: revoked.
    pub revoked_at: Option<i64>,
    /// Unix seconds, to within a minute.
    pub last_used_at: Option<i64>,
    /// The key that replaced this one by rotation.
    pub replaced_by: Option<String>,
    /// End of the rotation overlap (Unix seconds): refused from then on.
    pub rotation_ends_at: Option<i64>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("key_id", &self.key_id)
            .field("client", &self.client)
            .field("scopes", &self.scopes)
            .field("hmac", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("last_used_at", &self.last_used_at)
            .field("replaced_by", &self.replaced_by)
            .field("rotation_ends_at", &self.rotation_ends_at)
            .finish()
    }
}

/// A key's state at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Valid.
    Active,
    /// Rotated, still valid until the overlap ends.
    Rotating,
    /// Rotated and the overlap is over.
    Rotated,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl KeyState {
    /// As shown by `rampart keys list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Rotating => "rotating",
            Self::Rotated => "rotated",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// Whether a request with this key is accepted.
    pub fn is_valid(self) -> bool {
        matches!(self, Self::Active | Self::Rotating)
    }
}

impl KeyRecord {
    /// The state at `now` (Unix seconds). Revocation wins over everything;
    /// an expiry or the end of a rotation overlap is exclusive.
    pub fn state(&self, now: i64) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|e| now >= e) {
            KeyState::Expired
        } else if self.rotation_ends_at.is_some_and(|e| now >= e) {
            KeyState::Rotated
        } else if self.replaced_by.is_some() {
            KeyState::Rotating
        } else {
            KeyState::Active
        }
    }
}

/// Where keys are kept. Every method is bounded by [`STORE_TIMEOUT`].
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Where the store is, for messages (no credentials).
    fn location(&self) -> &str;
    /// Adds a key.
    fn insert<'a>(&'a self, record: &'a KeyRecord) -> BoxFuture<'a, Result<(), ApiKeysError>>;
    /// One key by id.
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<KeyRecord>, ApiKeysError>>;
    /// Every key, oldest first.
    fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, ApiKeysError>>;
    /// Revokes a key at `at`; false if there is no such key or it was
    /// already revoked.
    fn revoke<'a>(&'a self, key_id: &'a str, at: i64) -> BoxFuture<'a, Result<bool, ApiKeysError>>;
    /// In one transaction: marks `old` as replaced by `new` (valid until
    /// `overlap_ends`) and adds `new`. False (and nothing written) if `old`
    /// is missing, revoked or already rotated.
    fn rotate<'a>(
        &'a self,
        old: &'a str,
        new: &'a KeyRecord,
        overlap_ends: i64,
    ) -> BoxFuture<'a, Result<bool, ApiKeysError>>;
    /// Records last-use times (never moving one backwards).
    fn record_last_used<'a>(&'a self, used: &'a [(String, i64)]) -> BoxFuture<'a, Result<(), ApiKeysError>>;
    /// Drops the table (tests clean up with it).
    fn drop_table(&self) -> BoxFuture<'_, Result<(), ApiKeysError>>;
}

/// The statements, for one table name.
#[derive(Debug)]
struct Sql {
    create: Arc<str>,
    insert: Arc<str>,
    get: Arc<str>,
    list: Arc<str>,
    revoke: Arc<str>,
    retire: Arc<str>,
    touch: Arc<str>,
    drop: Arc<str>,
}

const COLUMNS: &str =
    "key_id, client, scopes, hmac, created_at, expires_at, revoked_at, last_used_at, replaced_by, rotation_ends_at";

impl Sql {
    /// `table` must be a plain identifier (checked by the constructors).
    fn new(table: &str, blob: &str, int: &str) -> Self {
        let s = |q: String| Arc::<str>::from(q);
        Self {
            create: s(format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 key_id TEXT PRIMARY KEY NOT NULL, \
                 client TEXT NOT NULL, \
                 scopes TEXT NOT NULL, \
                 hmac {blob} NOT NULL, \
                 created_at {int} NOT NULL, \
                 expires_at {int}, \
                 revoked_at {int}, \
                 last_used_at {int}, \
                 replaced_by TEXT, \
                 rotation_ends_at {int})"
            )),
            insert: s(format!(
                "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            )),
            get: s(format!("SELECT {COLUMNS} FROM {table} WHERE key_id = $1")),
            list: s(format!(
                "SELECT {COLUMNS} FROM {table} ORDER BY created_at, key_id"
            )),
            revoke: s(format!(
                "UPDATE {table} SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL"
            )),
            retire: s(format!(
                "UPDATE {table} SET replaced_by = $1, rotation_ends_at = $2 \
                 WHERE key_id = $3 AND revoked_at IS NULL AND replaced_by IS NULL"
            )),
            touch: s(format!(
                "UPDATE {table} SET last_used_at = $1 \
                 WHERE key_id = $2 AND (last_used_at IS NULL OR last_used_at < $1)"
            )),
            drop: s(format!("DROP TABLE IF EXISTS {table}")),
        }
    }
}

fn check_table(table: &str) -> Result<(), ApiKeysError> {
    let ok = table.len() <= 63
        && table.starts_with(|c: char| c.is_ascii_lowercase())
        && table
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiKeysError::InvalidInput(format!(
            "table name `{table}` must be lowercase letters, digits and _"
        )))
    }
}

fn scopes_text(scopes: &[String]) -> String {
    scopes.join(" ")
}

fn scopes_vec(text: &str) -> Vec<String> {
    text.split_ascii_whitespace().map(str::to_owned).collect()
}

/// Runs `f` within [`STORE_TIMEOUT`], turning sqlx errors into
/// [`ApiKeysError`]s.
async fn bounded<T>(
    location: &str,
    f: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, ApiKeysError> {
    match tokio::time::timeout(STORE_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiKeysError::from_sqlx(location, &e)),
        Err(_) => Err(ApiKeysError::StoreUnavailable {
            location: location.to_string(),
            reason: format!("no answer within {}s", STORE_TIMEOUT.as_secs()),
        }),
    }
}

/// The same implementation for both databases: only the pool type differs.
macro_rules! sql_store {
    ($store:ident, $pool:ty, $row:ty) => {
        impl $store {
            /// The pool, made on first use (inside the runtime) together
            /// with the table.
            async fn ready(&self) -> Result<&$pool, ApiKeysError> {
                self.pool
                    .get_or_try_init(|| async {
                        let pool = self.make_pool();
                        bounded(
                            &self.location,
                            sqlx::query(AssertSqlSafe(self.sql.create.clone())).execute(&pool),
                        )
                        .await?;
                        Ok(pool)
                    })
                    .await
            }

            fn record(row: &$row) -> Result<KeyRecord, sqlx::Error> {
                Ok(KeyRecord {
                    key_id: row.try_get("key_id")?,
                    client: row.try_get("client")?,
                    scopes: scopes_vec(&row.try_get::<String, _>("scopes")?),
                    hmac: row.try_get("hmac")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                    replaced_by: row.try_get("replaced_by")?,
                    rotation_ends_at: row.try_get("rotation_ends_at")?,
                })
            }

            fn bind_insert<'q>(
                sql: &Arc<str>,
                r: &KeyRecord,
            ) -> sqlx::query::Query<
                'q,
                <$pool as PoolDb>::Db,
                <<$pool as PoolDb>::Db as sqlx::Database>::Arguments,
            > {
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(r.key_id.clone())
                    .bind(r.client.clone())
                    .bind(scopes_text(&r.scopes))
                    .bind(r.hmac.clone())
                    .bind(r.created_at)
                    .bind(r.expires_at)
                    .bind(r.revoked_at)
                    .bind(r.last_used_at)
                    .bind(r.replaced_by.clone())
                    .bind(r.rotation_ends_at)
            }
        }

        impl KeyStore for $store {
            fn location(&self) -> &str {
                &self.location
            }

            fn insert<'a>(&'a self, record: &'a KeyRecord) -> BoxFuture<'a, Result<(), ApiKeysError>> {
                Box::pin(async move {
                    let pool = self.ready().await?;
                    bounded(
                        &self.location,
                        Self::bind_insert(&self.sql.insert, record).execute(pool),
                    )
                    .await
                    .map(|_| ())
                })
            }

            fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<KeyRecord>, ApiKeysError>> {
                Box::pin(async move {
                    let pool = self.ready().await?;
                    bounded(&self.location, async {
                        let row = sqlx::query(AssertSqlSafe(self.sql.get.clone()))
                            .bind(key_id)
                            .fetch_optional(pool)
                            .await?;
                        row.as_ref().map(Self::record).transpose()
                    })
                    .await
                })
            }

            fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, ApiKeysError>> {
                Box::pin(async move {
                    let pool = self.ready().await?;
                    bounded(&self.location, async {
                        let rows = sqlx::query(AssertSqlSafe(self.sql.list.clone()))
                            .fetch_all(pool)
                            .await?;
                        rows.iter().map(Self::record).collect()
                    })
                    .await
                })
            }

            fn revoke<'a>(&'a self, key_id: &'a str, at: i64) -> BoxFuture<'a, Result<bool, ApiKeysError>> {
                Box::pin(async move {
                    let pool = self.ready().await?;
                    bounded(
                        &self.location,
                        sqlx::query(AssertSqlSafe(self.sql.revoke.clone()))
                            .bind(at)
                            .bind(key_id)
                            .execute(pool),
                    )
                    .await
                    .map(|r| r.rows_affected() == 1)
                })
            }

            fn rotate<'a>(
                &'a self,
                old: &'a str,
                new: &'a KeyRecord,
                overlap_ends: i64,
            ) -> BoxFuture<'a, Result<bool, ApiKeysError>> {
                Box::pin(async move {
                    let pool = self.ready().await?;
                    bounded(&self.location, async {
                        let mut tx = pool.begin().await?;
                        let retired = sqlx::query(AssertSqlSafe(self.sql.retire.clone()))
                            .bind(new.key_id.clone())
                            .bind(overlap_ends)
                            .bind(old)
                            .execute(&mut *tx)
                            .await?;
                        if retired.rows_affected() != 1 {
                            tx.rollback().await?;
                            return Ok(false);
                        }
                        Self::bind_insert(&self.sql.insert, new)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        Ok(true)
                    })
                    .await
                })
            }

            fn record_last_used<'a>(
                &'a self,
                used: &'a [(String, i64)],
            ) -> BoxFuture<'a, Result<(), ApiKeysError>> {
                Box::pin(async move {
                    if used.is_empty() {
                        return Ok(());
                    }
                    let pool = self.ready().await?;
                    bounded(&self.location, async {
                        let mut tx = pool.begin().await?;
                        for (key_id, at) in used {
                            sqlx::query(AssertSqlSafe(self.sql.touch.clone()))
                                .bind(*at)
                                .bind(key_id.as_str())
                                .execute(&mut *tx)
                                .await?;
                        }
                        tx.commit().await
                    })
                    .await
                })
            }

            fn drop_table(&self) -> BoxFuture<'_, Result<(), ApiKeysError>> {
                Box::pin(async move {
                    let pool = self.ready().await?;
                    bounded(
                        &self.location,
                        sqlx::query(AssertSqlSafe(self.sql.drop.clone())).execute(pool),
                    )
                    .await
                    .map(|_| ())
                })
            }
        }
    };
}

/// Names the database of a pool type (for the macro's signatures).
trait PoolDb {
    type Db: sqlx::Database;
}
impl PoolDb for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
}
impl PoolDb for sqlx::PgPool {
    type Db = sqlx::Postgres;
}

/// The embedded store: one SQLite file, created on first use.
#[derive(Debug)]
pub struct SqliteStore {
    options: sqlx::sqlite::SqliteConnectOptions,
    pool: OnceCell<sqlx::SqlitePool>,
    sql: Sql,
    location: String,
}

impl SqliteStore {
    /// A store on `path` (the file and its table are created on first use;
    /// nothing is opened until then, and no runtime is needed before).
    pub fn open(path: &Path) -> Self {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(2));
        Self {
            options,
            pool: OnceCell::new(),
            sql: Sql::new(DEFAULT_TABLE, "BLOB", "INTEGER"),
            location: format!("sqlite://{}", path.display()),
        }
    }

    fn make_pool(&self) -> sqlx::SqlitePool {
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(STORE_TIMEOUT)
            .connect_lazy_with(self.options.clone())
    }
}

sql_store!(SqliteStore, sqlx::SqlitePool, sqlx::sqlite::SqliteRow);

/// The shared store: a PostgreSQL table.
#[derive(Debug)]
pub struct PgStore {
    options: sqlx::postgres::PgConnectOptions,
    pool: OnceCell<sqlx::PgPool>,
    sql: Sql,
    location: String,
}

impl PgStore {
    /// A store on the database at `url`, in table `table` (default
    /// [`DEFAULT_TABLE`]). Nothing is connected until first use, and no
    /// runtime is needed before.
    pub fn open(url: &str, location: String, table: &str) -> Result<Self, ApiKeysError> {
        check_table(table)?;
        let options: sqlx::postgres::PgConnectOptions =
            url.parse().map_err(|_| ApiKeysError::StoreUnavailable {
                location: location.clone(),
                reason: "invalid connection URL".into(),
            })?;
        Ok(Self {
            options,
            pool: OnceCell::new(),
            sql: Sql::new(table, "BYTEA", "BIGINT"),
            location,
        })
    }

    fn make_pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(STORE_TIMEOUT)
            .connect_lazy_with(self.options.clone())
    }
}

sql_store!(PgStore, sqlx::PgPool, sqlx::postgres::PgRow);
