//! The writer: one thread that takes records off the bounded channel,
//! links them into the chain and commits them in groups.
//!
//! Each turn takes every record waiting (up to [`MAX_BATCH`]; when only a
//! few are, it lingers `[audit] linger` for more), adds a
//! signed checkpoint when one is due, links the batch after the chain's
//! head, writes it in one write (files) or one transaction (PostgreSQL),
//! fsyncs it (`durability = "fsync"`), updates the signed head, and only
//! then tells the requests waiting on those records that they may answer.
//! Between turns it rotates segments, applies retention, fsyncs on the
//! interval, checkpoints on the interval and drains the spool.
//!
//! Threat answered: records lost between a response and the disk, and a
//! slow disk slowing every request (one fsync covers the whole batch). How
//! it fails: a commit that fails is retried with backoff, the same records
//! in the same order, until it succeeds; meanwhile the trail is reported
//! unhealthy, so new requests are refused (`reject`), wait (`block`) or
//! are spooled (`spool`). It runs on its own thread with its own
//! single-threaded runtime, so blocking file I/O and fsync never stall a
//! request worker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::config::{AuditPolicy, Durability, SinkPolicy};
use super::error::AuditError;
use super::export::Exports;
use super::file::FileSink;
use super::postgres::PgSink;
use super::record::{link_all, timestamp, Event, Link, Pending};
use super::verify::Item;
use crate::clock::SharedClock;

/// Most records committed in one group.
pub const MAX_BATCH: usize = 4096;

/// The signed head is rewritten at most this often (and at every flush and
/// at close): a signature and a file rename per group commit
/// cost more than the commit itself under load.
pub const HEAD_INTERVAL: Duration = Duration::from_millis(50);

/// Spool segments are kept small: each is moved in one transaction.
const SPOOL_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// What the request path and the admin plane send the writer.
#[derive(Debug)]
pub enum Msg {
    /// A record; `ack` is told once it is as durable as the policy says.
    Record {
        /// When it happened.
        time: SystemTime,
        /// What.
        event: Event,
        /// Who waits for it.
        ack: Option<oneshot::Sender<bool>>,
    },
    /// Answered once everything sent before is committed and fsynced.
    Flush(oneshot::Sender<bool>),
    /// Seal (checkpoint, fsync, head) and stop.
    Close(oneshot::Sender<()>),
}

/// What the writer tells the rest of the process.
#[derive(Debug, Default)]
pub struct Health {
    /// The last commit succeeded (or was spooled).
    pub healthy: AtomicBool,
    /// Records are going to the spool.
    pub spooling: AtomicBool,
    /// Entries committed since start.
    pub committed: AtomicU64,
    /// Commits that failed (and were retried).
    pub failed_commits: AtomicU64,
    /// The last sequence number committed (files; on a table, this node's).
    pub last_seq: AtomicU64,
    /// The auditor is gone or closing: stop retrying.
    pub stop: AtomicBool,
    /// Told when the sink works again after failing (`block` waits on it).
    pub recovered: tokio::sync::Notify,
}

#[derive(Debug)]
enum Primary {
    File(Box<FileSink>),
    Postgres(Box<PgSink>),
}

/// One group of messages.
#[derive(Debug, Default)]
struct Batch {
    pending: Vec<Pending>,
    acks: Vec<oneshot::Sender<bool>>,
    flushes: Vec<oneshot::Sender<bool>>,
    close: Option<oneshot::Sender<()>>,
    /// Records (not checkpoints) in it.
    records: u64,
}

/// A group that holds this many records already is committed without
/// lingering for more.
const LINGER_UNTIL: usize = 64;

/// While responses wait for a group, the writer looks this often whether
/// more records are still to come.
const LINGER_STEP: Duration = Duration::from_micros(50);

impl Batch {
    /// Takes what is waiting, without waiting.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        while self.pending.len() < MAX_BATCH && self.close.is_none() {
            match rx.try_recv() {
                Ok(m) => self.add(m),
                Err(_) => break,
            }
        }
    }

    /// Whether waiting for more records is worth it: a small group of
    /// records, and nobody asking for a flush or a close.
    fn wants_more(&self) -> bool {
        self.records > 0
            && self.pending.len() < LINGER_UNTIL
            && self.flushes.is_empty()
            && self.close.is_none()
    }

    fn add(&mut self, m: Msg) {
        match m {
            Msg::Record { time, event, ack } => {
                self.pending.push(Pending::Event {
                    time: timestamp(time),
                    event,
                });
                self.records += 1;
                if let Some(a) = ack {
                    self.acks.push(a);
                }
            }
            Msg::Flush(tx) => self.flushes.push(tx),
            Msg::Close(tx) => self.close = Some(tx),
        }
    }
}

struct Writer {
    policy: Arc<AuditPolicy>,
    clock: SharedClock,
    health: Arc<Health>,
    primary: Primary,
    spool: Option<FileSink>,
    exports: Exports,
    since_checkpoint: u64,
    last_checkpoint: Duration,
    last_sync: Duration,
    dirty: bool,
    /// Retry cadence of the spool drain (real time: a backoff, not a fact
    /// of the trail).
    last_drain: Option<tokio::time::Instant>,
    last_retention: Duration,
    failing: bool,
    head_failing: bool,
    /// When the signed head was last written (real time: a cadence), and
    /// whether commits since are not yet covered by it.
    last_head: Option<tokio::time::Instant>,
    head_behind: bool,
}

/// Runs the writer until `Close` or until every sender is gone. `ready` is
/// told once the trail is open (or why it cannot be).
pub async fn run(
    policy: Arc<AuditPolicy>,
    clock: SharedClock,
    health: Arc<Health>,
    mut rx: mpsc::Receiver<Msg>,
    ready: oneshot::Sender<Result<(), AuditError>>,
) {
    let (mut w, start) = match Writer::open(policy, clock, health) {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // The start record first: once it is in, the trail is healthy. If the
    // sink fails now (a database not yet up), the gateway starts anyway and
    // refuses requests (or spools) until it answers.
    let start = Batch {
        pending: vec![Pending::Event {
            time: timestamp(w.clock.now()),
            event: Event::Start(start),
        }],
        ..Default::default()
    };
    let retry = Batch {
        pending: start.pending.clone(),
        ..Default::default()
    };
    let started = w.commit(start, false).await;
    let _ = ready.send(Ok(()));
    if !started {
        w.commit(retry, true).await;
    }
    loop {
        let wait = w.next_wakeup();
        let first = tokio::select! {
            m = rx.recv() => m,
            () = tokio::time::sleep(wait) => {
                w.maintain().await;
                continue;
            }
        };
        let Some(first) = first else {
            w.finish().await;
            return;
        };
        let mut batch = Batch::default();
        batch.add(first);
        batch.drain(&mut rx);
        let linger = w.policy.linger();
        if !linger.is_zero() && batch.wants_more() {
            // Let the group gather: records sent meanwhile wake nobody (the
            // receiver is not waiting), and the whole group costs one write
            // and one fsync. Blocking sleeps: this thread is the writer's
            // own, and tokio's timer cannot wait less than a millisecond.
            if w.policy.config.durability == Durability::Interval {
                // Nobody waits for the group.
                std::thread::sleep(linger);
                batch.drain(&mut rx);
            } else {
                // Responses wait for the group: stop as soon as every
                // request holding a place has sent its record (lingering
                // then would only idle the gateway).
                let until = std::time::Instant::now() + linger;
                loop {
                    let to_come = rx.max_capacity().saturating_sub(rx.capacity() + rx.len());
                    let now = std::time::Instant::now();
                    if to_come == 0 || now >= until || !batch.wants_more() {
                        break;
                    }
                    std::thread::sleep((until - now).min(LINGER_STEP));
                    batch.drain(&mut rx);
                }
            }
        }
        let close = batch.close.take();
        w.commit(batch, true).await;
        w.maintain().await;
        if let Some(tx) = close {
            w.finish().await;
            let _ = tx.send(());
            return;
        }
    }
}

impl Writer {
    fn open(
        policy: Arc<AuditPolicy>,
        clock: SharedClock,
        health: Arc<Health>,
    ) -> Result<(Self, super::record::StartEvent), AuditError> {
        let c = &policy.config;
        let (primary, start) = match &policy.sink {
            SinkPolicy::File { dir } => {
                let (sink, start) = FileSink::open(
                    dir,
                    policy.keys.clone(),
                    policy.signer.clone(),
                    c.segment_max_bytes,
                    c.segment_max_age,
                )?;
                health.last_seq.store(sink.head().seq, Ordering::Relaxed);
                health.healthy.store(true, Ordering::SeqCst);
                (Primary::File(Box::new(sink)), start)
            }
            SinkPolicy::Postgres {
                url, location, table, ..
            } => {
                let sink = PgSink::new(url, location, table, policy.signer.clone())?;
                // Healthy once the start record is in the table (or spooled).
                (
                    Primary::Postgres(Box::new(sink)),
                    super::record::StartEvent {
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        resumed_after: None,
                        torn_bytes: 0,
                        lost: None,
                    },
                )
            }
        };
        // A spool left by an earlier run is drained when the table answers.
        let spool = match &policy.sink {
            SinkPolicy::Postgres { spool: Some(dir), .. } => {
                let (s, _) = FileSink::open(
                    dir,
                    policy.keys.clone(),
                    policy.signer.clone(),
                    SPOOL_SEGMENT_BYTES.min(c.segment_max_bytes),
                    c.segment_max_age,
                )?;
                if s.has_segments() {
                    health.spooling.store(true, Ordering::SeqCst);
                }
                Some(s)
            }
            _ => None,
        };
        let exports = Exports::new(&policy.exports);
        let mono = clock.monotonic();
        Ok((
            Self {
                policy,
                clock,
                health,
                primary,
                spool,
                exports,
                since_checkpoint: 0,
                last_checkpoint: mono,
                last_sync: mono,
                dirty: false,
                last_drain: None,
                last_retention: mono,
                failing: false,
                head_failing: false,
                last_head: None,
                head_behind: false,
            },
            start,
        ))
    }

    /// How long the loop may sleep before maintenance is due.
    fn next_wakeup(&self) -> Duration {
        let c = &self.policy.config;
        let mono = self.clock.monotonic();
        let mut due = Duration::from_secs(1);
        if self.dirty {
            due = due.min((self.last_sync + c.fsync_interval).saturating_sub(mono));
        }
        if self.since_checkpoint > 0 {
            due = due.min((self.last_checkpoint + c.checkpoint_interval).saturating_sub(mono));
        }
        if self.head_behind {
            due = due.min(HEAD_INTERVAL);
        }
        due.max(Duration::from_millis(1))
    }

    /// Commits a batch, retrying until it succeeds (`retry`) or once.
    /// Adds a checkpoint when one is due. Answers the batch's waiters.
    async fn commit(&mut self, mut batch: Batch, retry: bool) -> bool {
        let c = &self.policy.config;
        let mono = self.clock.monotonic();
        let due = self.since_checkpoint + batch.records >= c.checkpoint_every
            || (self.since_checkpoint + batch.records > 0
                && mono.saturating_sub(self.last_checkpoint) >= c.checkpoint_interval);
        if due && batch.records > 0 {
            batch.pending.push(Pending::Checkpoint {
                time: timestamp(self.clock.now()),
            });
        }
        let force_sync = !batch.flushes.is_empty();
        let mut backoff = Duration::from_millis(50);
        let ok = loop {
            match self.try_commit(&batch.pending, force_sync).await {
                Ok(()) => {
                    if self.failing {
                        tracing::info!(target: "rampart::audit", sink = %self.policy.describe(), "the audit trail is written again");
                    }
                    self.failing = false;
                    self.health.healthy.store(true, Ordering::SeqCst);
                    self.health.recovered.notify_waiters();
                    break true;
                }
                Err(e) => {
                    self.health.failed_commits.fetch_add(1, Ordering::Relaxed);
                    self.health.healthy.store(false, Ordering::SeqCst);
                    if !self.failing {
                        tracing::error!(
                            target: "rampart::audit",
                            error = %e,
                            on_failure = ?self.policy.config.on_failure,
                            "the audit trail cannot be written; retrying (new requests are refused or held)"
                        );
                    }
                    self.failing = true;
                    if self.health.stop.load(Ordering::SeqCst) {
                        // Abandoned: the next batch is another one, and
                        // must not be taken for this one.
                        if let Primary::Postgres(pg) = &mut self.primary {
                            pg.take_in_doubt();
                        }
                        break false;
                    }
                    if !retry {
                        break false; // retried by the caller, the same entries
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        };
        if ok {
            // Entries after the last checkpoint of this batch.
            let n = batch.pending.len() as u64;
            match batch
                .pending
                .iter()
                .rposition(|p| matches!(p, Pending::Checkpoint { .. }))
            {
                Some(i) => {
                    self.since_checkpoint = n - 1 - i as u64;
                    self.last_checkpoint = self.clock.monotonic();
                }
                None => self.since_checkpoint += n,
            }
        }
        for a in batch.acks {
            let _ = a.send(ok);
        }
        for f in batch.flushes {
            let _ = f.send(ok);
        }
        ok
    }

    /// One attempt at writing `pending` durably (as the policy says).
    async fn try_commit(&mut self, pending: &[Pending], force_sync: bool) -> Result<(), AuditError> {
        let now = self.clock.now();
        let time = timestamp(now);
        let mono = self.clock.monotonic();
        let durability = self.policy.config.durability;
        let interval = self.policy.config.fsync_interval;
        let node = self.policy.config.node.clone();
        let spooling = self.health.spooling.load(Ordering::SeqCst);
        let links = match &mut self.primary {
            Primary::File(f) => {
                if pending.is_empty() {
                    if force_sync || self.dirty {
                        self.dirty = false;
                        self.last_sync = mono;
                        if let Err(e) = f.sync() {
                            // What it covered was acknowledged already: the
                            // segment is closed, the next write opens another.
                            tracing::error!(target: "rampart::audit", error = %e, "fsync of the audit segment failed");
                            let _ = f.rotate();
                        }
                    }
                    return Ok(());
                }
                let before = f.head();
                let mut head = before;
                let links = link_all(&mut head, node.as_deref(), &self.policy.signer, pending)
                    .map_err(|e| AuditError::Keys(format!("cannot serialise an entry: {e}")))?;
                f.append(&links, now)?;
                let sync_now = force_sync
                    || durability == Durability::Fsync
                    || mono.saturating_sub(self.last_sync) >= interval;
                if sync_now {
                    if let Err(e) = f.sync() {
                        // Not durable: taken back, retried in a new segment.
                        f.undo(before);
                        return Err(e);
                    }
                    self.last_sync = mono;
                    self.dirty = false;
                } else {
                    self.dirty = true;
                }
                self.head_behind = true;
                if force_sync || self.last_head.is_none_or(|t| t.elapsed() >= HEAD_INTERVAL) {
                    self.write_head(now);
                }
                links
            }
            Primary::Postgres(pg) => {
                if pending.is_empty() {
                    return Ok(());
                }
                if spooling {
                    Self::spool_append(
                        self.spool.as_mut(),
                        pending,
                        node.as_deref(),
                        &self.policy.signer,
                        now,
                    )?;
                    return Ok(());
                }
                // A retry of a batch whose first try failed after it was
                // sent: if that try committed, these records are in already.
                let appended = match pg.settle(pending.len()).await {
                    Ok(Some(links)) => Ok(links),
                    Ok(None) => pg.append(pending, node.as_deref(), &time).await,
                    Err(e) => Err(e),
                };
                match appended {
                    Ok(links) => links,
                    Err(e) => match self.spool.as_mut() {
                        Some(spool) => {
                            tracing::warn!(
                                target: "rampart::audit",
                                error = %e,
                                spool = %spool.dir().display(),
                                "PostgreSQL is failing: audit records go to the local spool until it returns"
                            );
                            // The spool is empty: this batch comes first in
                            // it. A note left from an earlier episode speaks
                            // of records long moved: it goes first.
                            if !spool.has_segments() {
                                SpoolDoubt::remove(spool.dir())?;
                            }
                            if let Some((seq, hash)) = pg.in_doubt() {
                                let events = pending.iter().filter(|p| movable(p)).count();
                                SpoolDoubt {
                                    known: 0,
                                    doubt: Some(InDoubt { seq, hash, events }),
                                }
                                .write(spool.dir())?;
                                // Only once the note is down (else the retry
                                // settles it).
                                pg.take_in_doubt();
                            }
                            self.health.spooling.store(true, Ordering::SeqCst);
                            Self::spool_append(
                                Some(spool),
                                pending,
                                node.as_deref(),
                                &self.policy.signer,
                                now,
                            )?;
                            return Ok(());
                        }
                        None => return Err(e),
                    },
                }
            }
        };
        self.record_committed(&links, &time);
        Ok(())
    }

    /// Rewrites the signed head (files). The records are committed
    /// already; a head that cannot be written only lags (it covers less).
    fn write_head(&mut self, now: SystemTime) {
        let Primary::File(f) = &self.primary else { return };
        self.last_head = Some(tokio::time::Instant::now());
        match f.write_head(now) {
            Ok(()) => {
                self.head_failing = false;
                self.head_behind = false;
            }
            Err(e) => {
                if !self.head_failing {
                    tracing::error!(target: "rampart::audit", error = %e, "the audit trail's signed head cannot be written");
                }
                self.head_failing = true;
            }
        }
    }

    fn record_committed(&mut self, links: &[Link], time: &str) {
        if let Some(l) = links.last() {
            self.health.last_seq.store(l.seq, Ordering::Relaxed);
        }
        self.health
            .committed
            .fetch_add(links.len() as u64, Ordering::Relaxed);
        self.exports.write(links, time);
    }

    fn spool_append(
        spool: Option<&mut FileSink>,
        pending: &[Pending],
        node: Option<&str>,
        signer: &super::crypto::Signer,
        now: SystemTime,
    ) -> Result<(), AuditError> {
        let spool = spool.ok_or(AuditError::Unavailable("no spool"))?;
        let mut head = spool.head();
        let links = link_all(&mut head, node, signer, pending)
            .map_err(|e| AuditError::Keys(format!("cannot serialise an entry: {e}")))?;
        spool.append(&links, now)?;
        spool.sync()?;
        spool.write_head(now)
    }

    /// Between turns: rotation, retention, interval fsync and checkpoint,
    /// spool drain.
    async fn maintain(&mut self) {
        let policy = self.policy.clone();
        let c = &policy.config;
        let now = self.clock.now();
        let mono = self.clock.monotonic();
        if self.dirty && mono.saturating_sub(self.last_sync) >= c.fsync_interval {
            self.commit(Batch::sync_only(), true).await;
        }
        if self.head_behind && self.last_head.is_none_or(|t| t.elapsed() >= HEAD_INTERVAL) {
            self.write_head(now);
        }
        if self.since_checkpoint > 0 && mono.saturating_sub(self.last_checkpoint) >= c.checkpoint_interval {
            self.commit(Batch::checkpoint(now), true).await;
        }
        let rotate = matches!(&self.primary, Primary::File(f) if f.should_rotate(now));
        if rotate {
            // The segment's last entry is a checkpoint: each closed segment
            // ends signed.
            if self.commit(Batch::checkpoint(now), true).await {
                if let Primary::File(f) = &mut self.primary {
                    if let Err(e) = f.rotate() {
                        tracing::error!(target: "rampart::audit", error = %e, "closing an audit segment failed");
                    }
                }
            }
        }
        if let Some(retention) = c.retention {
            if rotate || mono.saturating_sub(self.last_retention) >= Duration::from_secs(60) {
                self.last_retention = mono;
                self.apply_retention(now, retention).await;
            }
        }
        let drain_due = self
            .last_drain
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if self.health.spooling.load(Ordering::SeqCst) && drain_due {
            self.last_drain = Some(tokio::time::Instant::now());
            self.drain_spool().await;
        }
    }

    async fn apply_retention(&mut self, now: SystemTime, retention: Duration) {
        let Primary::File(f) = &self.primary else { return };
        let expired = match f.expired(now, retention) {
            Ok(Some(x)) => x,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(target: "rampart::audit", error = %e, "audit retention could not read the trail");
                return;
            }
        };
        let (event, paths) = expired;
        let batch = Batch {
            pending: vec![Pending::Event {
                time: timestamp(now),
                event: Event::Retention(event),
            }],
            ..Default::default()
        };
        if self.commit(batch, true).await {
            if let Primary::File(f) = &self.primary {
                match f.delete(&paths) {
                    Ok(()) => {
                        tracing::info!(target: "rampart::audit", segments = paths.len(), "audit segments past retention deleted")
                    }
                    Err(e) => {
                        tracing::error!(target: "rampart::audit", error = %e, "deleting audit segments failed")
                    }
                }
            }
        }
    }

    /// Moves the spool into the table, one segment per transaction, oldest
    /// first. Only the spooled events move (the spool's own start records
    /// and checkpoints belong to its chain); the table's chain links them
    /// anew. A move that fails after it was sent may have committed: the
    /// spool's [`SpoolDoubt`] says so, and the next drain asks the table
    /// before it moves those events again.
    async fn drain_spool(&mut self) {
        let (Primary::Postgres(pg), Some(spool)) = (&mut self.primary, self.spool.as_mut()) else {
            return;
        };
        if pg.ready().await.is_err() {
            return;
        }
        if let Err(e) = spool.rotate() {
            tracing::error!(target: "rampart::audit", error = %e, "closing the spool segment failed");
            return;
        }
        let dir = spool.dir().to_path_buf();
        let segments = match super::segment::list_segments(&dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: "rampart::audit", error = %e, "reading the audit spool failed");
                return;
            }
        };
        // How many events of the oldest segment are in the table already.
        let doubt = SpoolDoubt::read(&dir);
        let mut known = match &doubt {
            None => 0,
            Some(d) => match &d.doubt {
                None => d.known,
                Some(x) => match pg.contains(x.seq, &x.hash).await {
                    Ok(true) => x.events,
                    Ok(false) => d.known,
                    Err(_) => return,
                },
            },
        };
        let time = timestamp(self.clock.now());
        let node = self.policy.config.node.clone();
        for (_, path) in segments {
            let mut pending = Vec::new();
            let mut bad = None;
            let mut skip = known;
            let scanned = scan_segment(&path, self.policy.keys.as_ref(), |item| match item {
                Item::Entry { body, .. } => match serde_json::from_slice::<super::record::Entry>(body) {
                    Ok(e) => {
                        let p = Pending::Event {
                            time: e.time,
                            event: e.event,
                        };
                        if movable(&p) {
                            if skip > 0 {
                                skip -= 1; // in the table already
                            } else {
                                pending.push(p);
                            }
                        }
                    }
                    Err(_) => bad = Some("an entry does not parse"),
                },
                Item::Corrupt { .. } => bad = Some("a frame does not authenticate"),
                Item::Torn { .. } => {}
            });
            if let Some(why) = bad.or(scanned.err()) {
                tracing::error!(
                    target: "rampart::audit",
                    spool = %path.display(),
                    why,
                    "the audit spool is damaged: left in place for `rampart audit verify`"
                );
                return;
            }
            match pg.append(&pending, node.as_deref(), &time).await {
                Ok(links) => {
                    if let Some(l) = links.last() {
                        self.health.last_seq.store(l.seq, Ordering::Relaxed);
                    }
                    self.health
                        .committed
                        .fetch_add(links.len() as u64, Ordering::Relaxed);
                    self.exports.write(&links, &time);
                    // The note speaks of this segment: it goes first. A
                    // crash between the two moves this segment again (a
                    // duplicate); the other order could apply the note to
                    // the next segment (a loss).
                    if known > 0 || doubt.is_some() {
                        if let Err(e) = SpoolDoubt::remove(&dir) {
                            tracing::error!(target: "rampart::audit", error = %e, "removing the audit spool's note failed");
                            return;
                        }
                    }
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::error!(target: "rampart::audit", error = %e, "removing a drained spool segment failed");
                        return;
                    }
                    // The next segment starts from nothing known.
                    known = 0;
                }
                Err(_) => {
                    let moved = known + pending.len();
                    let next = SpoolDoubt {
                        known,
                        doubt: pg.take_in_doubt().map(|(seq, hash)| InDoubt {
                            seq,
                            hash,
                            events: moved,
                        }),
                    };
                    if next.known > 0 || next.doubt.is_some() {
                        if let Err(e) = next.write(&dir) {
                            tracing::error!(target: "rampart::audit", error = %e, "writing the audit spool's note failed");
                        }
                    }
                    return;
                }
            }
        }
        if let Err(e) = spool.clear() {
            tracing::error!(target: "rampart::audit", error = %e, "clearing the audit spool failed");
            return;
        }
        if let Err(e) = SpoolDoubt::remove(&dir) {
            tracing::error!(target: "rampart::audit", error = %e, "removing the audit spool's note failed (a new spool removes it first)");
        }
        self.health.spooling.store(false, Ordering::SeqCst);
        tracing::info!(target: "rampart::audit", "the audit spool was moved into PostgreSQL");
    }

    /// Seals the trail: a last checkpoint, fsync, the head.
    async fn finish(&mut self) {
        let now = self.clock.now();
        if self.since_checkpoint > 0 {
            self.commit(Batch::checkpoint(now), false).await;
        } else {
            self.commit(Batch::sync_only(), false).await;
        }
        if let Primary::File(f) = &mut self.primary {
            let _ = f.sync();
        }
        if self.head_behind {
            self.write_head(now);
        }
    }
}

impl Batch {
    fn checkpoint(now: SystemTime) -> Self {
        Self {
            pending: vec![Pending::Checkpoint { time: timestamp(now) }],
            ..Default::default()
        }
    }

    /// An empty batch that forces the pending fsync.
    fn sync_only() -> Self {
        let (tx, _rx) = oneshot::channel();
        Self {
            flushes: vec![tx],
            ..Default::default()
        }
    }
}

/// Whether the spool's drain moves this entry into the table (the
/// spool's own start records and checkpoints stay behind).
fn movable(p: &Pending) -> bool {
    matches!(
        p,
        Pending::Event {
            event: Event::Request(_) | Event::Admin(_) | Event::Reload(_),
            ..
        }
    )
}

/// The spool's file for [`SpoolDoubt`].
const DOUBT_FILE: &str = "IN-DOUBT.json";

/// Kept beside the spool (`IN-DOUBT.json`) when an append failed after
/// its rows were sent, so the answer to COMMIT may have been lost: the
/// batch that started the spool, or a move of the oldest segment. The
/// first `known` events the drain would move from the oldest segment are
/// in the table; so are the first `doubt.events` if the table holds entry
/// `doubt.seq` with `doubt.hash`. Without it, a commit whose answer was
/// lost would be written twice.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SpoolDoubt {
    known: usize,
    doubt: Option<InDoubt>,
}

/// An append that may have committed: its last entry, and how many events
/// of the oldest segment are in the table if it did.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct InDoubt {
    seq: u64,
    hash: super::record::Hash,
    events: usize,
}

impl SpoolDoubt {
    /// Written (and fsynced) before the records it speaks of.
    fn write(&self, dir: &std::path::Path) -> Result<(), AuditError> {
        use std::io::Write as _;
        let fail = |e: &dyn std::fmt::Display| super::file::sink_err(dir, format!("{DOUBT_FILE}: {e}"));
        let tmp = dir.join(format!("{DOUBT_FILE}.tmp"));
        let body = serde_json::to_vec(self).map_err(|e| fail(&e))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| fail(&e))?;
        f.write_all(&body).map_err(|e| fail(&e))?;
        f.sync_all().map_err(|e| fail(&e))?;
        std::fs::rename(&tmp, dir.join(DOUBT_FILE)).map_err(|e| fail(&e))?;
        super::segment::sync_dir(dir).map_err(|e| fail(&e))
    }

    /// Removes the note (and makes the removal durable); none is fine.
    fn remove(dir: &std::path::Path) -> Result<(), AuditError> {
        let fail = |e: &dyn std::fmt::Display| super::file::sink_err(dir, format!("{DOUBT_FILE}: {e}"));
        match std::fs::remove_file(dir.join(DOUBT_FILE)) {
            Ok(()) => super::segment::sync_dir(dir).map_err(|e| fail(&e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fail(&e)),
        }
    }

    fn read(dir: &std::path::Path) -> Option<Self> {
        let text = std::fs::read(dir.join(DOUBT_FILE)).ok()?;
        match serde_json::from_slice(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!(target: "rampart::audit", error = %e, "the audit spool's {DOUBT_FILE} does not parse: its records are moved as they are");
                None
            }
        }
    }
}

/// Hands the frames of one segment to `visit` (the spool drains segment
/// by segment).
fn scan_segment(
    path: &std::path::Path,
    keys: &dyn super::crypto::KeyProvider,
    mut visit: impl FnMut(Item<'_>),
) -> Result<(), &'static str> {
    let contents = super::segment::read_segment(path, keys).map_err(|_| "the segment does not open")?;
    let location = path.display().to_string();
    for f in &contents.frames {
        visit(match f {
            super::segment::Frame::Entry { hash, body } => Item::Entry {
                location: &location,
                hash,
                body,
            },
            super::segment::Frame::Corrupt => Item::Corrupt { location: &location },
        });
    }
    Ok(())
}
