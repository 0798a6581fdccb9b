//! The PostgreSQL sink: one chain in one table, shared by every gateway of
//! a cluster.
//!
//! ```sql
//! CREATE TABLE rampart_audit (seq BIGINT PRIMARY KEY, prev_hash BYTEA, hash BYTEA,
//!                             time TEXT, kind TEXT, body TEXT);   -- body: the exact entry bytes
//! CREATE TABLE rampart_audit_head (id INT PRIMARY KEY, seq BIGINT, hash BYTEA,
//!                                  time TEXT, key_id TEXT, signature TEXT);
//! ```
//!
//! Each batch is one transaction: a transaction-scoped advisory lock (so
//! nodes append one after another, never interleaved), the last row's
//! sequence number and hash, the batch linked after it, inserted with one
//! `UNNEST`, and the signed head updated. The body is `TEXT`, not `JSONB`:
//! the hash is over its exact bytes. `rampart audit verify` reads the table
//! in sequence order through the same [`Verifier`] as files.
//!
//! Threat answered: a cluster's nodes forking the chain, and a database
//! operator editing rows unnoticed. How it fails: every call is bounded by
//! [`PG_TIMEOUT`]; an error is an [`AuditError::Sink`] without credentials,
//! and the transaction is rolled back (nothing half-written).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};

use super::crypto::Signer;
use super::error::AuditError;
use super::record::{link_all, sign_head, Hash, Head, Link, Pending};
use super::verify::{Report, SignedHead, Verifier, VerifyFailure};
use crate::secret::Secret;

/// The longest any one database call may take.
pub const PG_TIMEOUT: Duration = Duration::from_secs(3);

/// Rows read per query by `verify` and `show`.
const PAGE: i64 = 5000;

/// The statements for one table.
#[derive(Debug)]
struct Sql {
    create: Arc<str>,
    create_head: Arc<str>,
    lock: i64,
    last: Arc<str>,
    has: Arc<str>,
    insert: Arc<str>,
    head: Arc<str>,
    read_head: Arc<str>,
    page: Arc<str>,
    drop: Arc<str>,
}

impl Sql {
    fn new(table: &str) -> Self {
        let s = |q: String| Arc::<str>::from(q);
        // The advisory lock's key: the table's name, hashed.
        let h = super::record::sha256(table.as_bytes());
        let mut k = [0u8; 8];
        k.copy_from_slice(&h[..8]);
        Self {
            create: s(format!(
                "CREATE TABLE IF NOT EXISTS {table} (seq BIGINT PRIMARY KEY, prev_hash BYTEA NOT NULL, \
                 hash BYTEA NOT NULL, time TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL)"
            )),
            create_head: s(format!(
                "CREATE TABLE IF NOT EXISTS {table}_head (id INT PRIMARY KEY, seq BIGINT NOT NULL, \
                 hash TEXT NOT NULL, time TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL)"
            )),
            lock: i64::from_be_bytes(k),
            last: s(format!("SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1")),
            has: s(format!("SELECT 1 FROM {table} WHERE seq = $1 AND hash = $2")),
            insert: s(format!(
                "INSERT INTO {table} (seq, prev_hash, hash, time, kind, body) \
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[], $3::BYTEA[], $4::TEXT[], $5::TEXT[], $6::TEXT[])"
            )),
            head: s(format!(
                "INSERT INTO {table}_head (id, seq, hash, time, key_id, signature) VALUES (1, $1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, time = EXCLUDED.time, \
                 key_id = EXCLUDED.key_id, signature = EXCLUDED.signature"
            )),
            read_head: s(format!(
                "SELECT seq, hash, time, key_id, signature FROM {table}_head WHERE id = 1"
            )),
            page: s(format!(
                "SELECT seq, hash, body FROM {table} WHERE seq > $1 ORDER BY seq LIMIT {PAGE}"
            )),
            drop: s(format!("DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_head")),
        }
    }
}

/// A trail table.
#[derive(Debug)]
pub struct PgSink {
    options: sqlx::postgres::PgConnectOptions,
    pool: Option<sqlx::PgPool>,
    location: String,
    table: String,
    sql: Sql,
    signer: Arc<Signer>,
    /// The entries of the last append that failed after they were sent:
    /// the commit may have reached the database with its answer lost.
    in_doubt: Option<Vec<Link>>,
}

async fn bounded<T>(
    location: &str,
    f: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, AuditError> {
    match tokio::time::timeout(PG_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(AuditError::from_sqlx(location, &e)),
        Err(_) => Err(AuditError::Sink {
            location: location.to_string(),
            reason: format!("no answer within {}s", PG_TIMEOUT.as_secs()),
        }),
    }
}

/// A transaction holding the table's advisory lock: appends (one chain
/// per table, whatever the node) and the questions about them take turns.
async fn locked(
    pool: &sqlx::PgPool,
    lock: i64,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

fn bytes32(v: &[u8]) -> Option<Hash> {
    (v.len() == 32).then(|| {
        let mut h = [0u8; 32];
        h.copy_from_slice(v);
        h
    })
}

impl PgSink {
    /// A sink on `table` at `url` (nothing connects until first use).
    pub fn new(
        url: &Secret<String>,
        location: &str,
        table: &str,
        signer: Arc<Signer>,
    ) -> Result<Self, AuditError> {
        let options =
            sqlx::postgres::PgConnectOptions::from_str(url.expose()).map_err(|_| AuditError::Sink {
                location: location.to_string(),
                reason: "invalid connection URL".into(),
            })?;
        Ok(Self {
            options,
            pool: None,
            location: format!("{location} table {table}"),
            table: table.to_string(),
            sql: Sql::new(table),
            signer,
            in_doubt: None,
        })
    }

    /// Where, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The pool, made (with the tables) on first use.
    pub async fn ready(&mut self) -> Result<&sqlx::PgPool, AuditError> {
        if self.pool.is_none() {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(PG_TIMEOUT)
                .connect_lazy_with(self.options.clone());
            bounded(&self.location, async {
                sqlx::query(AssertSqlSafe(self.sql.create.clone()))
                    .execute(&pool)
                    .await?;
                sqlx::query(AssertSqlSafe(self.sql.create_head.clone()))
                    .execute(&pool)
                    .await
            })
            .await?;
            self.pool = Some(pool);
        }
        self.pool
            .as_ref()
            .ok_or(AuditError::Unavailable("no database pool"))
    }

    /// Appends `pending` after the table's last row, in one transaction,
    /// under the table's advisory lock; returns the links written.
    pub async fn append(
        &mut self,
        pending: &[Pending],
        node: Option<&str>,
        now: &str,
    ) -> Result<Vec<Link>, AuditError> {
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let location = self.location.clone();
        let signer = self.signer.clone();
        let (lock, last, insert, head_sql) = (
            self.sql.lock,
            self.sql.last.clone(),
            self.sql.insert.clone(),
            self.sql.head.clone(),
        );
        let pool = self.ready().await?.clone();
        // Set once the rows are on their way: from then on a failure leaves
        // the append in doubt (see `settle`).
        let mut attempted: Option<Vec<Link>> = None;
        let sent = &mut attempted;
        let result = bounded(&location, async {
            let mut tx = locked(&pool, lock).await?;
            let row = sqlx::query(AssertSqlSafe(last)).fetch_optional(&mut *tx).await?;
            let mut head = Head::default();
            if let Some(row) = row {
                let seq: i64 = row.try_get("seq")?;
                let hash: Vec<u8> = row.try_get("hash")?;
                head = Head {
                    seq: u64::try_from(seq).unwrap_or(0),
                    hash: bytes32(&hash).unwrap_or([0; 32]),
                };
            }
            let before = head.hash;
            let links = link_all(&mut head, node, &signer, pending)
                .map_err(|e| sqlx::Error::Protocol(format!("cannot serialise an entry: {e}")))?;
            let mut seqs = Vec::with_capacity(links.len());
            let mut prevs = Vec::with_capacity(links.len());
            let mut hashes = Vec::with_capacity(links.len());
            let mut times = Vec::with_capacity(links.len());
            let mut kinds = Vec::with_capacity(links.len());
            let mut bodies = Vec::with_capacity(links.len());
            let mut prev = before;
            for (l, p) in links.iter().zip(pending) {
                seqs.push(i64::try_from(l.seq).unwrap_or(i64::MAX));
                prevs.push(prev.to_vec());
                hashes.push(l.hash.to_vec());
                let (time, kind) = match p {
                    Pending::Event { time, event } => (time.clone(), event.kind()),
                    Pending::Checkpoint { time } => (time.clone(), "checkpoint"),
                };
                times.push(time);
                kinds.push(kind.to_string());
                bodies.push(String::from_utf8_lossy(&l.body).into_owned());
                prev = l.hash;
            }
            *sent = Some(links);
            sqlx::query(AssertSqlSafe(insert))
                .bind(seqs)
                .bind(prevs)
                .bind(hashes)
                .bind(times)
                .bind(kinds)
                .bind(bodies)
                .execute(&mut *tx)
                .await?;
            let signed = sign_head(&signer, &head, now);
            sqlx::query(AssertSqlSafe(head_sql))
                .bind(i64::try_from(signed.seq).unwrap_or(i64::MAX))
                .bind(signed.hash)
                .bind(signed.time)
                .bind(signed.key_id)
                .bind(signed.signature)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await;
        match result {
            Ok(()) => {
                self.in_doubt = None;
                Ok(attempted.unwrap_or_default())
            }
            Err(e) => {
                self.in_doubt = attempted;
                self.drop_pool().await;
                Err(e)
            }
        }
    }

    /// The last entry (sequence number, hash) of the append left in doubt
    /// by the last failure, handed over to the caller: it spools those
    /// records and keeps this beside them, to ask [`PgSink::contains`]
    /// before it moves them back.
    pub fn take_in_doubt(&mut self) -> Option<(u64, Hash)> {
        let doubt = self.in_doubt();
        self.in_doubt = None;
        doubt
    }

    /// The last entry of the append left in doubt, if any (kept).
    pub fn in_doubt(&self) -> Option<(u64, Hash)> {
        self.in_doubt
            .as_ref()
            .and_then(|links| links.last().map(|l| (l.seq, l.hash)))
    }

    /// Settles the last failed append before the same `entries` are sent
    /// again: `Some(links)` if it committed after all (its last row is in
    /// the table: do not send them again), `None` if it did not or nothing
    /// was in doubt. `Err` (the database still away) keeps the doubt. A
    /// doubt about another batch (a different number of entries) is
    /// dropped: it cannot be these entries'.
    pub async fn settle(&mut self, entries: usize) -> Result<Option<Vec<Link>>, AuditError> {
        let Some(links) = &self.in_doubt else {
            return Ok(None);
        };
        let Some(last) = links.last().filter(|_| links.len() == entries) else {
            if !links.is_empty() {
                tracing::error!(target: "rampart::audit", "an append left in doubt is not the batch being retried; its doubt is dropped");
            }
            self.in_doubt = None;
            return Ok(None);
        };
        let (seq, hash) = (last.seq, last.hash);
        let committed = self.contains(seq, &hash).await?;
        let links = self.in_doubt.take();
        Ok(if committed { links } else { None })
    }

    /// A broken connection is not reused: the next call connects anew.
    async fn drop_pool(&mut self) {
        if let Some(p) = self.pool.take() {
            p.close().await;
        }
    }

    /// Whether the entry `seq` with `hash` is in the table. Asked under
    /// the table's lock: an append whose commit is still under way (its
    /// client gone, its answer lost) finishes first, so the answer is
    /// final.
    pub async fn contains(&mut self, seq: u64, hash: &Hash) -> Result<bool, AuditError> {
        let location = self.location.clone();
        let sql = self.sql.has.clone();
        let lock = self.sql.lock;
        let pool = self.ready().await?.clone();
        let row = bounded(&location, async {
            let mut tx = locked(&pool, lock).await?;
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(hash.to_vec())
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(row)
        })
        .await;
        if row.is_err() {
            self.drop_pool().await;
        }
        Ok(row?.is_some())
    }

    /// Verifies the table.
    pub async fn verify(&mut self, trusted: &super::crypto::TrustedKeys) -> Result<Report, VerifyFailure> {
        let head = self
            .read_head()
            .await
            .map_err(|e| VerifyFailure::Unreadable(e.to_string()))?;
        let mut v = Verifier::new(trusted, head.as_ref())?;
        let table = self.table.clone();
        self.scan(|seq, hash, body| {
            let location = format!("table {table} row seq={seq}");
            match bytes32(hash) {
                Some(h) => v.push(&location, &h, body.as_bytes()),
                None => Err(v.corrupt(&location)),
            }
            .map(|()| true)
        })
        .await
        .map_err(|e| VerifyFailure::Unreadable(e.to_string()))??;
        Ok(v.finish()?)
    }

    /// The signed head row, if any.
    pub async fn read_head(&mut self) -> Result<Option<SignedHead>, AuditError> {
        let location = self.location.clone();
        let sql = self.sql.read_head.clone();
        let pool = self.ready().await?.clone();
        let row = bounded(&location, sqlx::query(AssertSqlSafe(sql)).fetch_optional(&pool)).await?;
        let Some(row) = row else { return Ok(None) };
        let get = |e: sqlx::Error| AuditError::from_sqlx(&location, &e);
        Ok(Some(SignedHead {
            seq: u64::try_from(row.try_get::<i64, _>("seq").map_err(get)?).unwrap_or(0),
            hash: row.try_get("hash").map_err(get)?,
            time: row.try_get("time").map_err(get)?,
            key_id: row.try_get("key_id").map_err(get)?,
            signature: row.try_get("signature").map_err(get)?,
        }))
    }

    /// Hands every row, in sequence order, to `visit` (seq column, stored
    /// hash, body) until it returns `Ok(false)` or an error.
    pub async fn scan<E>(
        &mut self,
        mut visit: impl FnMut(i64, &[u8], &str) -> Result<bool, E>,
    ) -> Result<Result<(), E>, AuditError> {
        let location = self.location.clone();
        let sql = self.sql.page.clone();
        let pool = self.ready().await?.clone();
        let mut after = i64::MIN;
        loop {
            let rows = bounded(
                &location,
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(after)
                    .fetch_all(&pool),
            )
            .await?;
            if rows.is_empty() {
                return Ok(Ok(()));
            }
            for row in &rows {
                let get = |e: sqlx::Error| AuditError::from_sqlx(&location, &e);
                let seq: i64 = row.try_get("seq").map_err(get)?;
                let hash: Vec<u8> = row.try_get("hash").map_err(get)?;
                let body: String = row.try_get("body").map_err(get)?;
                after = seq;
                match visit(seq, &hash, &body) {
                    Ok(true) => {}
                    Ok(false) => return Ok(Ok(())),
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
    }

    /// Drops both tables (tests clean up with it).
    pub async fn drop_tables(&mut self) -> Result<(), AuditError> {
        let location = self.location.clone();
        let sql = self.sql.drop.clone();
        let pool = self.ready().await?.clone();
        bounded(&location, sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool))
            .await
            .map(|_| ())
    }
}
