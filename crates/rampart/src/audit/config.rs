//! `[audit]`: where the trail goes, how it is keyed, what happens when it
//! cannot be written; validated once into [`AuditPolicy`].
//!
//! Threat answered: a trail that is silently off, unencrypted, unsigned,
//! or that drops records when its disk or database fails. Encryption and
//! signing are not optional: the section needs a master key (segments) and
//! a signing key (checkpoints and the head). The failure policy defaults to
//! `reject` (fail closed: 503 for new requests), the banking default. How it
//! fails: every problem is a [`ConfigProblem`] with its key path
//! (`audit.master_keys[1].file`); key material is never quoted, nor a
//! database password.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::crypto::{parse_master_key, KeyProvider, Signer, StaticKeys, TrustedKeys};
use crate::authn::api_keys::StoreLocation;
use crate::config::{ConfigProblem, LoadedConfig};
use crate::secret::Secret;

/// Where the trail is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Encrypted segment files in `dir` (the default; nothing to install).
    #[default]
    File,
    /// A PostgreSQL table shared by a cluster (one chain for every node).
    Postgres,
}

/// What happens to new requests when the trail cannot take their record
/// (the queue is full, or the sink fails).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Fail closed: 503 `overloaded` at once (the default).
    #[default]
    Reject,
    /// Backpressure: the request waits until the sink works and the queue
    /// has room, at most `block_timeout`, then 503.
    Block,
    /// PostgreSQL only: while the database fails, records go to encrypted
    /// local segments in `spool_dir`, moved into the table when it returns.
    Spool,
}

/// When a response may leave: how durable its record is by then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// The record is written and fsynced (group commit) before the response
    /// is sent: nothing answered is lost to `kill -9` or power loss.
    #[default]
    Fsync,
    /// Written (in the OS) before the response; fsynced every
    /// `fsync_interval`: survives `kill -9`, not power loss within it.
    Write,
    /// The response does not wait; written and fsynced every
    /// `fsync_interval`: at most that much is lost to a crash.
    Interval,
}

/// One master key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKeyConfig {
    /// Its id, recorded in each segment it wraps.
    pub id: String,
    /// A file holding 32 bytes (base64, hex or raw).
    pub file: Option<PathBuf>,
    /// An environment variable holding 32 bytes (base64 or hex).
    pub env: Option<String>,
}

/// What a copy of the trail goes to (for a SIEM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to `path`.
    File,
    /// RFC 5424 syslog, one JSON entry per message, to `address`.
    Syslog,
}

/// `[[audit.export]]`: a redacted copy of every entry as JSON lines.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// `stdout`, `file` or `syslog`.
    pub kind: ExportKind,
    /// For `file`: where (relative to the policy).
    pub path: Option<PathBuf>,
    /// For `syslog`: `udp://HOST:PORT` or `unix:///dev/log`.
    pub address: Option<String>,
}

/// `[audit]`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `file` (default) or `postgres`.
    #[serde(default)]
    pub sink: SinkKind,
    /// The segment directory (file sink), relative to the policy. Default
    /// `audit`.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// `postgres://user[:password]@host[:port]/db` (postgres sink).
    pub postgres_url: Option<String>,
    /// Or the environment variable that holds it.
    pub postgres_url_env: Option<String>,
    /// The table (postgres sink). Default `rampart_audit`.
    #[serde(default = "default_table")]
    pub table: String,
    /// Where `spool` keeps records while PostgreSQL fails. Default
    /// `audit-spool`.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    /// `reject` (default), `block` or `spool`.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// `fsync` (default), `write` or `interval`.
    #[serde(default)]
    pub durability: Durability,
    /// How often records are fsynced when the response does not wait for
    /// it (`write`, `interval`). Default 50ms.
    #[serde(
        default = "default_fsync_interval",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub fsync_interval: Duration,
    /// How long the writer, woken by a record, waits for more before it
    /// commits them as one group: fewer wakes and writes under load, this
    /// much more latency per record. `0s` commits at once. At most 10ms.
    /// Default 200us when responses wait for the group (`fsync`, `write`;
    /// the writer stops early once no request holding a place is still to
    /// send its record), 1ms with `interval` (nobody waits).
    #[serde(default, deserialize_with = "crate::config::duration::deserialize_opt")]
    pub linger: Option<Duration>,
    /// Records waiting for the writer, plus requests in flight holding a
    /// place for theirs, at most. Default 16384.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Longest a response waits for its record to be durable; then it is
    /// sent and the record stays queued (logged). Default 5s.
    #[serde(
        default = "default_wait",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub ack_timeout: Duration,
    /// `block`: longest a request waits for a working sink with room.
    /// Default 5s.
    #[serde(
        default = "default_wait",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub block_timeout: Duration,
    /// A segment is closed past this size (bytes). Default 64 MiB.
    #[serde(default = "default_segment_bytes")]
    pub segment_max_bytes: u64,
    /// A segment is closed past this age. Default 1h.
    #[serde(
        default = "default_segment_age",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub segment_max_age: Duration,
    /// Closed segments older than this are deleted (a retention record
    /// says so in the trail). Default: kept forever.
    #[serde(default, deserialize_with = "crate::config::duration::deserialize_opt")]
    pub retention: Option<Duration>,
    /// Master keys: the first wraps new segments, the others only read old
    /// ones (rotation: put the new key first, keep the old listed).
    #[serde(default)]
    pub master_keys: Vec<MasterKeyConfig>,
    /// The Ed25519 signing key (PKCS#8 PEM).
    pub signing_key_file: Option<PathBuf>,
    /// Public keys of retired signing keys (PEM), still trusted by `verify`.
    #[serde(default)]
    pub verify_keys: Vec<PathBuf>,
    /// A signed checkpoint every this many entries. Default 1000.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// And at least this often while entries come. Default 10s.
    #[serde(
        default = "default_checkpoint_interval",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub checkpoint_interval: Duration,
    /// This gateway's name in the trail (clusters).
    pub node: Option<String>,
    /// Query parameters whose values are kept (redacted); every other
    /// value is `[redacted]`.
    #[serde(default = "default_query_params")]
    pub query_params: Vec<String>,
    /// Redacted copies for a SIEM.
    #[serde(default)]
    pub export: Vec<ExportConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            sink: SinkKind::File,
            dir: default_dir(),
            postgres_url: None,
            postgres_url_env: None,
            table: default_table(),
            spool_dir: default_spool_dir(),
            on_failure: OnFailure::Reject,
            durability: Durability::Fsync,
            fsync_interval: default_fsync_interval(),
            linger: None,
            queue: default_queue(),
            ack_timeout: default_wait(),
            block_timeout: default_wait(),
            segment_max_bytes: default_segment_bytes(),
            segment_max_age: default_segment_age(),
            retention: None,
            master_keys: Vec::new(),
            signing_key_file: None,
            verify_keys: Vec::new(),
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval: default_checkpoint_interval(),
            node: None,
            query_params: default_query_params(),
            export: Vec::new(),
        }
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("audit")
}
fn default_table() -> String {
    "rampart_audit".into()
}
fn default_spool_dir() -> PathBuf {
    PathBuf::from("audit-spool")
}
fn default_fsync_interval() -> Duration {
    Duration::from_millis(50)
}
fn default_queue() -> usize {
    16384
}
fn default_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_segment_age() -> Duration {
    Duration::from_secs(3600)
}
fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_query_params() -> Vec<String> {
    [
        "page",
        "page_size",
        "limit",
        "offset",
        "sort",
        "order",
        "from",
        "to",
        "ms",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Where the trail goes, resolved.
#[derive(Debug, Clone)]
pub enum SinkPolicy {
    /// Segment files.
    File {
        /// The directory.
        dir: PathBuf,
    },
    /// A PostgreSQL table.
    Postgres {
        /// The connection URL (may hold a password: never printed).
        url: Secret<String>,
        /// Host, port and database, for messages.
        location: String,
        /// The table.
        table: String,
        /// Where `spool` puts records while the database fails.
        spool: Option<PathBuf>,
    },
}

/// Where a syslog export goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    /// UDP datagrams.
    Udp(SocketAddr),
    /// A Unix datagram socket (`/dev/log`).
    Unix(PathBuf),
}

/// A SIEM copy, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportPolicy {
    /// Standard output.
    Stdout,
    /// A file (appended).
    File(PathBuf),
    /// Syslog.
    Syslog(SyslogTarget),
}

/// `[audit]`, validated: keys read, paths resolved.
#[derive(Debug, Clone)]
pub struct AuditPolicy {
    /// The section as written (a reload that changes it is refused).
    pub config: AuditConfig,
    /// Where the trail goes.
    pub sink: SinkPolicy,
    /// Master keys (segments and spool).
    pub keys: Arc<dyn KeyProvider>,
    /// The signing key.
    pub signer: Arc<Signer>,
    /// Keys `verify` trusts: the signer's and the retired ones.
    pub trusted: TrustedKeys,
    /// SIEM copies.
    pub exports: Vec<ExportPolicy>,
}

/// Longest `[audit] node` name.
const MAX_NODE: usize = 64;
/// The longest `linger`: past it, group commit costs more latency than it saves.
const MAX_LINGER: Duration = Duration::from_millis(10);

impl AuditPolicy {
    /// `linger`, or its default for the durability.
    pub fn linger(&self) -> Duration {
        self.config.linger.unwrap_or(match self.config.durability {
            Durability::Interval => Duration::from_millis(1),
            Durability::Fsync | Durability::Write => Duration::from_micros(200),
        })
    }

    /// Validates `[audit]` and reads its keys.
    pub fn from_config(c: &AuditConfig, loaded: &LoadedConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut err = |path: &str, msg: String| problems.push(ConfigProblem::error(path, msg));
        let sink = match c.sink {
            SinkKind::File => Some(SinkPolicy::File {
                dir: loaded.resolve(&c.dir),
            }),
            SinkKind::Postgres => {
                let url = match (&c.postgres_url, &c.postgres_url_env) {
                    (Some(u), None) => Some(u.clone()),
                    (None, Some(var)) => match std::env::var(var) {
                        Ok(u) => Some(u),
                        Err(_) => {
                            err(
                                "audit.postgres_url_env",
                                format!("environment variable `{var}` is not set"),
                            );
                            None
                        }
                    },
                    (Some(_), Some(_)) => {
                        err(
                            "audit.postgres_url_env",
                            "set postgres_url or postgres_url_env, not both".into(),
                        );
                        None
                    }
                    (None, None) => {
                        err(
                            "audit.sink",
                            "`postgres` needs postgres_url (or postgres_url_env): postgres://user@host/db"
                                .into(),
                        );
                        None
                    }
                };
                let table_ok = valid_table(&c.table);
                if !table_ok {
                    err(
                        "audit.table",
                        format!(
                            "`{}`: a table name is lowercase letters, digits and _ (at most 50)",
                            c.table
                        ),
                    );
                }
                url.and_then(|u| match StoreLocation::parse(&u, |p| loaded.resolve(p)) {
                    Ok(StoreLocation::Postgres(url)) => Some(url),
                    _ => {
                        err(
                            "audit.postgres_url",
                            "not a valid postgres:// URL: expected postgres://user[:password]@host[:port]/database"
                                .into(),
                        );
                        None
                    }
                })
                .filter(|_| table_ok)
                .map(|url| SinkPolicy::Postgres {
                    location: StoreLocation::Postgres(url.clone()).describe(),
                    url,
                    table: c.table.clone(),
                    spool: (c.on_failure == OnFailure::Spool).then(|| loaded.resolve(&c.spool_dir)),
                })
            }
        };
        if c.on_failure == OnFailure::Spool && c.sink != SinkKind::Postgres {
            err(
                "audit.on_failure",
                "`spool` keeps records on local disk while PostgreSQL fails: it needs sink = \"postgres\""
                    .into(),
            );
        }
        if c.queue == 0 {
            err("audit.queue", "must be at least 1".into());
        }
        if c.linger.is_some_and(|l| l > MAX_LINGER) {
            err(
                "audit.linger",
                format!(
                    "at most {}: every record waits that long",
                    humantime::format_duration(MAX_LINGER)
                ),
            );
        }
        if c.checkpoint_every == 0 {
            err("audit.checkpoint_every", "must be at least 1".into());
        }
        if c.segment_max_bytes < 4096 {
            err("audit.segment_max_bytes", "must be at least 4096".into());
        }
        for (key, d) in [
            ("audit.fsync_interval", c.fsync_interval),
            ("audit.checkpoint_interval", c.checkpoint_interval),
            ("audit.segment_max_age", c.segment_max_age),
            ("audit.ack_timeout", c.ack_timeout),
            ("audit.block_timeout", c.block_timeout),
        ] {
            if d.is_zero() {
                err(key, "must be longer than 0s".into());
            }
        }
        if c.retention.is_some_and(|r| r < c.segment_max_age) {
            err(
                "audit.retention",
                "shorter than segment_max_age: segments would be deleted as soon as they close".into(),
            );
        }
        if let Some(n) = &c.node {
            if n.is_empty()
                || n.len() > MAX_NODE
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                err(
                    "audit.node",
                    "a node name is 1 to 64 letters, digits, `-`, `_` or `.`".into(),
                );
            }
        }
        // Master keys.
        let mut keys = Vec::new();
        if c.master_keys.is_empty() {
            err(
                "audit.master_keys",
                "at least one master key is needed (the trail is encrypted at rest): \
                 [[audit.master_keys]] id = \"k1\", file = \"audit-master.key\" \
                 (`rampart audit keygen` makes one)"
                    .into(),
            );
        }
        for (i, k) in c.master_keys.iter().enumerate() {
            let at = format!("audit.master_keys[{i}]");
            if k.id.is_empty() || k.id.len() > 64 || !k.id.bytes().all(|b| b.is_ascii_graphic()) {
                err(
                    &format!("{at}.id"),
                    "a key id is 1 to 64 visible ASCII characters".into(),
                );
                continue;
            }
            if c.master_keys[..i].iter().any(|o| o.id == k.id) {
                err(&format!("{at}.id"), format!("duplicate key id `{}`", k.id));
                continue;
            }
            let raw = match (&k.file, &k.env) {
                (Some(f), None) => {
                    let path = loaded.resolve(f);
                    std::fs::read(&path).map_err(|e| {
                        (
                            format!("{at}.file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })
                }
                (None, Some(var)) => std::env::var(var).map(String::into_bytes).map_err(|_| {
                    (
                        format!("{at}.env"),
                        format!("environment variable `{var}` is not set"),
                    )
                }),
                _ => Err((at.clone(), "set exactly one of file or env".into())),
            };
            match raw {
                Ok(raw) => match parse_master_key(&raw) {
                    Ok(secret) => keys.push((k.id.clone(), secret)),
                    Err(e) => err(&at, e.to_string()),
                },
                Err((path, msg)) => err(&path, msg),
            }
        }
        // Signing key.
        let signer = match &c.signing_key_file {
            None => {
                err(
                    "audit.signing_key_file",
                    "required: an Ed25519 key (PKCS#8 PEM) that signs checkpoints \
                     (`rampart audit keygen`, or `openssl genpkey -algorithm ed25519`)"
                        .into(),
                );
                None
            }
            Some(f) => match Signer::from_pem_file(&loaded.resolve(f)) {
                Ok(s) => Some(s),
                Err(e) => {
                    err("audit.signing_key_file", e.to_string());
                    None
                }
            },
        };
        let mut trusted = TrustedKeys::default();
        if let Some(s) = &signer {
            trusted.add(s.public_key());
        }
        for (i, f) in c.verify_keys.iter().enumerate() {
            if let Err(e) = trusted.add_pem_file(&loaded.resolve(f)) {
                err(&format!("audit.verify_keys[{i}]"), e.to_string());
            }
        }
        let mut exports = Vec::new();
        for (i, e) in c.export.iter().enumerate() {
            let at = format!("audit.export[{i}]");
            match (e.kind, &e.path, &e.address) {
                (ExportKind::Stdout, None, None) => exports.push(ExportPolicy::Stdout),
                (ExportKind::File, Some(p), None) => exports.push(ExportPolicy::File(loaded.resolve(p))),
                (ExportKind::Syslog, None, Some(a)) => match parse_syslog(a) {
                    Ok(t) => exports.push(ExportPolicy::Syslog(t)),
                    Err(why) => err(&format!("{at}.address"), why),
                },
                (ExportKind::Stdout, _, _) => err(&at, "`stdout` takes neither path nor address".into()),
                (ExportKind::File, _, _) => err(&at, "`file` needs path (and no address)".into()),
                (ExportKind::Syslog, _, _) => err(
                    &at,
                    "`syslog` needs address = \"udp://127.0.0.1:514\" or \"unix:///dev/log\" (and no path)"
                        .into(),
                ),
            }
        }
        let keys = if keys.is_empty() {
            None
        } else {
            StaticKeys::new(keys).ok()
        };
        match (sink, keys, signer) {
            (Some(sink), Some(keys), Some(signer)) if problems.is_empty() => Ok(Self {
                config: c.clone(),
                sink,
                keys: Arc::new(keys),
                signer: Arc::new(signer),
                trusted,
                exports,
            }),
            _ => Err(problems),
        }
    }

    /// How it is described in messages (no credentials).
    pub fn describe(&self) -> String {
        match &self.sink {
            SinkPolicy::File { dir } => dir.display().to_string(),
            SinkPolicy::Postgres { location, table, .. } => format!("{location} table {table}"),
        }
    }
}

fn valid_table(t: &str) -> bool {
    t.len() <= 50
        && t.starts_with(|c: char| c.is_ascii_lowercase())
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn parse_syslog(a: &str) -> Result<SyslogTarget, String> {
    if let Some(hp) = a.strip_prefix("udp://") {
        return hp
            .parse()
            .map(SyslogTarget::Udp)
            .map_err(|_| format!("`{a}`: expected udp://IP:PORT"));
    }
    if let Some(p) = a.strip_prefix("unix://") {
        if p.starts_with('/') {
            return Ok(SyslogTarget::Unix(PathBuf::from(p)));
        }
    }
    Err(format!("`{a}`: expected udp://IP:PORT or unix:///path"))
}

/// Warnings about `[audit]` (or its absence).
pub fn lint(c: Option<&AuditConfig>) -> Vec<ConfigProblem> {
    match c {
        None => vec![ConfigProblem::warning(
            "audit",
            "no [audit] section: requests are not recorded in a tamper-evident trail",
        )],
        Some(c) => {
            let mut w = Vec::new();
            if c.durability == Durability::Interval {
                w.push(ConfigProblem::warning(
                    "audit.durability",
                    format!(
                        "`interval`: responses do not wait for their record; up to {} of records can be lost in a crash",
                        humantime::format_duration(c.fsync_interval)
                    ),
                ));
            }
            w
        }
    }
}
