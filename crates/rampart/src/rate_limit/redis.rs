//! The Redis store: counters, idempotency records, bans, revocations and
//! brute-force counts shared by every gateway of a cluster.
//!
//! Each rate-limit algorithm is one Lua script (`lua/*.lua`, the same
//! promise as its twin in [`algorithm`](super::algorithm)), so a decision is
//! one atomic round trip. Scripts are sent by `EVALSHA` and loaded again on
//! `NOSCRIPT` (a restarted or failed-over Redis). Time comes from the Redis
//! server (`TIME`), so the gateways' clocks never have to agree. Every key
//! carries a hash tag (`{…}`) around the whole counter identity, so each
//! counter lives in one slot of a Redis Cluster and counters spread over
//! the slots. Header values in keys are hashed: a client cannot choose key
//! names or make them long.
//!
//! Threat answered: a limit split over N gateways is N times the limit; a
//! ban, a revocation, a brute-force count or an idempotency record on one
//! node only is bypassed through another.
//!
//! How it fails: every call is bounded by `timeout` (default 50 ms). A call
//! that fails or times out marks the store down; while it is down no request
//! waits on Redis: each limit applies `on_failure` at once (`local`: count
//! in memory, `deny`: 503, `allow`: skip). A background task probes Redis
//! (`PING`) every half second and marks it up again when it answers, so
//! recovery needs nobody. The state is on `/metrics` as `rampart_redis_up`
//! and `rampart_redis_errors_total`.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::algorithm::{Decision, Rate};
use super::config::{AlgorithmKind, FailurePolicy, RedisConfig};
use crate::clock::{Clock, SharedClock};
use crate::config::ConfigProblem;
use crate::ip_filter::bans::BanList;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// How often a down store is probed, and shared bans are read.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// How long an idempotency claim holds a key if its gateway dies before
/// settling it.
pub const CLAIM_TTL: Duration = Duration::from_secs(300);

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/prelude.lua"),
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

static TOKEN_BUCKET: LazyLock<Script> = script!("token_bucket.lua");
static FIXED_WINDOW: LazyLock<Script> = script!("fixed_window.lua");
static SLIDING_WINDOW_LOG: LazyLock<Script> = script!("sliding_window_log.lua");
static SLIDING_WINDOW_COUNTER: LazyLock<Script> = script!("sliding_window_counter.lua");
static GCRA: LazyLock<Script> = script!("gcra.lua");
static IDEM_BEGIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/idempotency_begin.lua")));
static IDEM_SETTLE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/idempotency_settle.lua")));

/// `[redis]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisPolicy {
    url: Secret<String>,
    /// Where it is, for logs (no password).
    pub endpoint: String,
    /// Bound on every call.
    pub timeout: Duration,
    /// What limits do while Redis cannot answer.
    pub on_failure: FailurePolicy,
    /// Key prefix.
    pub prefix: String,
    /// Whether bans are shared.
    pub share_bans: bool,
}

impl RedisPolicy {
    /// Validates `[redis]`.
    pub fn from_config(c: &RedisConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let endpoint = match redis::Client::open(c.url.as_str()) {
            Ok(client) => match client.get_connection_info().addr() {
                redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
                other => {
                    problems.push(ConfigProblem::error(
                        "redis.url",
                        format!("only redis:// over TCP is supported so far, not {other}"),
                    ));
                    String::new()
                }
            },
            Err(_) => {
                // The error may quote the URL, password included: not shown.
                problems.push(ConfigProblem::error(
                    "redis.url",
                    "not a Redis URL: expected redis://[:password@]host:port[/db]",
                ));
                String::new()
            }
        };
        if c.timeout.is_zero() || c.timeout > Duration::from_secs(5) {
            problems.push(ConfigProblem::error(
                "redis.timeout",
                "must be more than 0 and at most 5s: a request waits this long at worst",
            ));
        }
        if c.key_prefix.is_empty()
            || !c
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            problems.push(ConfigProblem::error(
                "redis.key_prefix",
                "letters, digits, '-', '_', '.' and ':' only, not empty",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            url: Secret::new(c.url.clone()),
            endpoint,
            timeout: c.timeout,
            on_failure: c.on_failure,
            prefix: c.key_prefix.clone(),
            share_bans: c.share_bans,
        })
    }
}

/// Why a Redis call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is marked down; nothing was sent.
    #[error("redis is down")]
    Down,
    /// No answer within the timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(String),
    /// A stored value could not be read back.
    #[error("unreadable record in redis")]
    Corrupt,
}

/// One Redis server, shared by every snapshot built from the same
/// `[redis]` section.
pub struct RedisStore {
    policy: RedisPolicy,
    client: redis::Client,
    conn: OnceLock<ConnectionManager>,
    up: AtomicBool,
    started: AtomicBool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.policy.endpoint)
            .field("up", &self.is_up())
            .finish()
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn hex16(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = String::with_capacity(32);
    for b in &digest.as_ref()[..16] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// A key part the operator wrote, made safe for a hash tag.
fn tag_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '{' || c == '}' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

// === impl RedisStore ===

impl RedisStore {
    /// A store for `policy`. Nothing connects until [`RedisStore::start`].
    pub fn new(policy: RedisPolicy, metrics: Arc<Metrics>) -> Result<Arc<Self>, StoreError> {
        let client = redis::Client::open(policy.url.expose().as_str())
            .map_err(|e| StoreError::Redis(format!("{:?}", e.kind())))?;
        Ok(Arc::new(Self {
            policy,
            client,
            conn: OnceLock::new(),
            // Assumed up until a call or the first probe says otherwise:
            // the first requests after a start or reload go to Redis
            // (bounded by the timeout) rather than to the fallback.
            up: AtomicBool::new(true),
            started: AtomicBool::new(false),
            metrics,
        }))
    }

    /// The validated policy.
    pub fn policy(&self) -> &RedisPolicy {
        &self.policy
    }

    /// Whether the last call or probe succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool) {
        let was = self.up.swap(up, Ordering::Relaxed);
        self.metrics.redis_up.set(i64::from(up));
        if was != up {
            if up {
                tracing::info!(endpoint = %self.policy.endpoint, "redis store up");
            } else {
                tracing::warn!(endpoint = %self.policy.endpoint, "redis store down; limits apply on_failure");
            }
        }
    }

    /// Connects (lazily) and starts the probe task, once; also shares bans
    /// into `bans` when the policy says so. Needs a Tokio runtime; the task
    /// ends when the store is dropped.
    pub fn start(self: &Arc<Self>, bans: &Arc<BanList>, clock: SharedClock) {
        if self.started.swap(true, Ordering::AcqRel) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.policy.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(self.policy.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        match ConnectionManager::new_lazy_with_config(self.client.clone(), config) {
            Ok(c) => {
                let _ = self.conn.set(c);
            }
            Err(e) => tracing::error!(endpoint = %self.policy.endpoint, error = ?e.kind(), "redis client"),
        }
        let weak = Arc::downgrade(self);
        let bans = Arc::downgrade(bans);
        tokio::spawn(async move {
            loop {
                let Some(store) = weak.upgrade() else { return };
                let ok = store.probe().await;
                store.set_up(ok);
                if ok && store.policy.share_bans {
                    if let Some(bans) = bans.upgrade() {
                        if let Err(e) = store.sync_bans(&bans, &*clock).await {
                            tracing::warn!(error = %e, "ban sync");
                        }
                    }
                }
                drop(store);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
    }

    async fn probe(&self) -> bool {
        let Some(conn) = self.conn.get() else { return false };
        let mut conn = conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(
            tokio::time::timeout(self.policy.timeout.max(Duration::from_millis(200)), ping).await,
            Ok(Ok(_))
        )
    }

    /// Runs one call, bounded by the timeout; a failure marks the store
    /// down until the probe sees it answer again.
    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(StoreError::Down);
        }
        let Some(conn) = self.conn.get() else {
            return Err(StoreError::Down);
        };
        let result = match tokio::time::timeout(self.policy.timeout, f(conn.clone())).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => StoreError::Redis(format!("{:?}", e.kind())),
            Err(_) => StoreError::Timeout(self.policy.timeout),
        };
        self.metrics
            .redis_errors
            .get_or_create(&crate::metrics::RedisErrorLabels { op })
            .inc();
        tracing::warn!(op, error = %result, "redis call failed");
        self.set_up(false);
        Err(result)
    }

    /// The Redis key of a counter: `prefix:rl:{scope|limit|hash}:algorithm`.
    pub fn counter_key(&self, kind: AlgorithmKind, scope: &str, limit: &str, value: &str) -> String {
        let alg = match kind {
            AlgorithmKind::TokenBucket => "tb",
            AlgorithmKind::FixedWindow => "fw",
            AlgorithmKind::SlidingWindowLog => "swl",
            AlgorithmKind::SlidingWindowCounter => "swc",
            AlgorithmKind::Gcra => "gcra",
        };
        format!(
            "{}:rl:{{{}|{}|{}}}:{alg}",
            self.policy.prefix,
            tag_safe(scope),
            tag_safe(limit),
            hex16(value.as_bytes())
        )
    }

    /// Decides for one request against the counter at `key`, by the Redis
    /// server's clock.
    pub async fn decide(&self, kind: AlgorithmKind, rate: &Rate, key: &str) -> Result<Decision, StoreError> {
        self.decide_at(kind, rate, key, None).await
    }

    /// [`RedisStore::decide`] at a given time in microseconds instead of
    /// the server's clock: for tests that compare the scripts with the
    /// algorithms under one fake clock, and for benchmarks.
    pub async fn decide_at(
        &self,
        kind: AlgorithmKind,
        rate: &Rate,
        key: &str,
        now_us: Option<u64>,
    ) -> Result<Decision, StoreError> {
        let script: &Script = match kind {
            AlgorithmKind::TokenBucket => &TOKEN_BUCKET,
            AlgorithmKind::FixedWindow => &FIXED_WINDOW,
            AlgorithmKind::SlidingWindowLog => &SLIDING_WINDOW_LOG,
            AlgorithmKind::SlidingWindowCounter => &SLIDING_WINDOW_COUNTER,
            AlgorithmKind::Gcra => &GCRA,
        };
        let now = now_us.map(|t| t.to_string()).unwrap_or_default();
        let (allowed, remaining, reset, retry): (i64, i64, i64, i64) = self
            .call("rate_limit", |mut c| async move {
                script
                    .key(key)
                    .arg(now)
                    .arg(rate.limit.max(1))
                    .arg(us(rate.per))
                    .arg(rate.capacity())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let d = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(if allowed == 1 {
            Decision::Allow {
                remaining: u32::try_from(remaining).unwrap_or(0),
                reset: d(reset),
            }
        } else {
            Decision::Deny {
                retry_after: d(retry),
                reset: d(reset),
            }
        })
    }

    /// Records `key` for `ttl` unless it is there already (`SET NX PX`):
    /// whether it was new. For one-time values such as DPoP proof ids.
    pub async fn insert_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.call("replay", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async::<Option<String>>(&mut c)
                .await
        })
        .await
        .map(|set| set.is_some())
    }

    /// The Redis key of a DPoP proof id (its SHA-256, hex).
    pub fn replay_key(&self, digest: &[u8; 32]) -> String {
        format!("{}:dpop:{}", self.policy.prefix, hex16(digest))
    }

    /// The Redis key of an idempotency record.
    pub fn idempotency_key(&self, route: &str, client: &str, key: &str) -> String {
        let scope = hex16(format!("{client}\n{key}").as_bytes());
        format!("{}:idem:{{{}|{scope}}}", self.policy.prefix, tag_safe(route))
    }

    /// Claims `key` with `marker` for [`CLAIM_TTL`]: `None` if claimed now,
    /// else the record already there.
    pub async fn idempotency_begin(&self, key: &str, marker: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.call("idempotency", |mut c| async move {
            IDEM_BEGIN
                .key(key)
                .arg(marker)
                .arg(u64::try_from(CLAIM_TTL.as_millis()).unwrap_or(u64::MAX))
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// Replaces our claim `marker` at `key` by `record` for `ttl`, or
    /// releases it (`record` = `None`). Someone else's claim is left alone.
    pub async fn idempotency_settle(
        &self,
        key: &str,
        marker: &[u8],
        record: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.call("idempotency", |mut c| async move {
            IDEM_SETTLE
                .key(key)
                .arg(marker)
                .arg(record.unwrap_or(b""))
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    /// The Redis key of a revocation: `prefix:rv:{revoked}:kind:hash`. Every
    /// revocation shares one hash tag, so the 1–3 keys of a principal are
    /// read by one `MGET` even on a Redis Cluster.
    pub fn revocation_key(&self, kind: &str, value: &str) -> String {
        format!(
            "{}:rv:{{revoked}}:{}:{}",
            self.policy.prefix,
            tag_safe(kind),
            hex16(value.as_bytes())
        )
    }

    /// The `SCAN` pattern matching every revocation key.
    pub fn revocation_key_pattern(&self) -> String {
        format!("{}:rv:{{revoked}}:*", self.policy.prefix)
    }

    /// The Redis key of a brute-force flag (e.g. a banned API-key id):
    /// `prefix:bf:{what|hash}`.
    pub fn flag_key(&self, what: &str, value: &str) -> String {
        format!(
            "{}:bf:{{{}|{}}}",
            self.policy.prefix,
            tag_safe(what),
            hex16(value.as_bytes())
        )
    }

    /// `MGET` of `keys` (which must share a hash tag on a Cluster): one
    /// round trip.
    pub async fn mget(&self, op: &'static str, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        self.call(op, |mut c| async move {
            redis::cmd("MGET").arg(keys).query_async(&mut c).await
        })
        .await
    }

    /// `SET key value PX ttl`.
    pub async fn set_px(
        &self,
        op: &'static str,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.call(op, |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// `DEL key`; whether it existed.
    pub async fn del(&self, op: &'static str, key: &str) -> Result<bool, StoreError> {
        self.call(op, |mut c| async move {
            redis::cmd("DEL").arg(key).query_async::<i64>(&mut c).await
        })
        .await
        .map(|n| n > 0)
    }

    /// The values of at most `max` keys matching `pattern` (`SCAN`, then
    /// `MGET` per batch; keys that expire in between are skipped). For the
    /// admin API, never on the request path.
    pub async fn scan_values(
        &self,
        op: &'static str,
        pattern: &str,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .call(op, |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                out.extend(self.mget(op, &keys).await?.into_iter().flatten());
            }
            if next == 0 || out.len() >= max {
                out.truncate(max);
                return Ok(out);
            }
            cursor = next;
        }
    }

    fn bans_key(&self) -> String {
        format!("{}:bans", self.policy.prefix)
    }

    /// Records a ban for every gateway.
    pub async fn put_ban(&self, net: IpNet, until: SystemTime, reason: &str) -> Result<(), StoreError> {
        let ms = until.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let value = format!("{ms} {reason}");
        let key = self.bans_key();
        self.call("bans", |mut c| async move {
            redis::cmd("HSET")
                .arg(&key)
                .arg(net.to_string())
                .arg(value)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Lifts a ban for every gateway; whether there was one.
    pub async fn delete_ban(&self, net: IpNet) -> Result<bool, StoreError> {
        let key = self.bans_key();
        self.call("bans", |mut c| async move {
            redis::cmd("HDEL")
                .arg(&key)
                .arg(net.to_string())
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|n| n > 0)
    }

    /// Makes `bans` hold exactly the bans in Redis (plus any added here
    /// since the read began), and drops expired ones from Redis.
    async fn sync_bans(&self, bans: &BanList, clock: &dyn Clock) -> Result<(), StoreError> {
        let key = self.bans_key();
        let started = bans.generation();
        let all: Vec<(String, String)> = self
            .call("bans", |mut c| {
                let key = key.clone();
                async move { redis::cmd("HGETALL").arg(&key).query_async(&mut c).await }
            })
            .await?;
        let now = clock.now();
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for (field, value) in all {
            let (ms, reason) = value.split_once(' ').unwrap_or((value.as_str(), ""));
            let (Ok(net), Ok(ms)) = (IpNet::from_str(&field), ms.parse::<u64>()) else {
                expired.push(field);
                continue;
            };
            let until = UNIX_EPOCH + Duration::from_millis(ms);
            match until.duration_since(now) {
                Ok(left) if !left.is_zero() => live.push((net, left, reason.to_owned())),
                _ => expired.push(field),
            }
        }
        bans.replace_shared(live, started, clock.monotonic(), now);
        if !expired.is_empty() {
            self.call("bans", |mut c| async move {
                redis::cmd("HDEL")
                    .arg(&key)
                    .arg(expired)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await?;
        }
        Ok(())
    }
}

/// Encodes a finished response for Redis: `D`, fingerprint, status, headers
/// (length-prefixed), body.
pub fn encode_record(fingerprint: &[u8; 32], stored: &super::idempotency::Stored) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + stored.body.len());
    out.push(b'D');
    out.extend_from_slice(fingerprint);
    out.extend_from_slice(&stored.status.as_u16().to_be_bytes());
    let headers: Vec<_> = stored.headers.iter().collect();
    out.extend_from_slice(&u16::try_from(headers.len()).unwrap_or(0).to_be_bytes());
    for (name, value) in headers {
        for part in [name.as_str().as_bytes(), value.as_bytes()] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out.extend_from_slice(&stored.body);
    out
}

/// What a record in Redis says.
#[derive(Debug)]
pub enum Record {
    /// Claimed by a request still in flight, with this fingerprint.
    InFlight([u8; 32]),
    /// Finished.
    Done([u8; 32], super::idempotency::Stored),
}

/// Reads a record written by [`encode_record`] or a claim marker.
pub fn decode_record(bytes: &[u8]) -> Result<Record, StoreError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
        if b.len() < n {
            return Err(StoreError::Corrupt);
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Ok(head)
    }
    let mut b = bytes;
    let tag = take(&mut b, 1)?[0];
    let mut fp = [0u8; 32];
    fp.copy_from_slice(take(&mut b, 32)?);
    match tag {
        b'I' => Ok(Record::InFlight(fp)),
        b'D' => {
            let status = u16::from_be_bytes([take(&mut b, 1)?[0], take(&mut b, 1)?[0]]);
            let status = http::StatusCode::from_u16(status).map_err(|_| StoreError::Corrupt)?;
            let n = u16::from_be_bytes([take(&mut b, 1)?[0], take(&mut b, 1)?[0]]);
            let mut headers = http::HeaderMap::new();
            for _ in 0..n {
                let mut part = || -> Result<&[u8], StoreError> {
                    let len = take(&mut b, 4)?;
                    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                    take(&mut b, usize::try_from(len).map_err(|_| StoreError::Corrupt)?)
                };
                let name = http::HeaderName::from_bytes(part()?).map_err(|_| StoreError::Corrupt)?;
                let value = http::HeaderValue::from_bytes(part()?).map_err(|_| StoreError::Corrupt)?;
                headers.append(name, value);
            }
            Ok(Record::Done(
                fp,
                super::idempotency::Stored {
                    status,
                    headers,
                    body: bytes::Bytes::copy_from_slice(b),
                },
            ))
        }
        _ => Err(StoreError::Corrupt),
    }
}

/// Random bytes for claim markers.
pub fn claim_marker(fingerprint: &[u8; 32]) -> Vec<u8> {
    let mut id = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut id);
    let mut m = Vec::with_capacity(49);
    m.push(b'I');
    m.extend_from_slice(fingerprint);
    m.extend_from_slice(&id);
    m
}
