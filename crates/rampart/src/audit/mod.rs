//! The audit trail: one typed, redacted record of every request (accepted,
//! refused or abandoned), of every admin action and of every policy reload,
//! hash-chained, signed at checkpoints, encrypted at rest, and never lost.
//!
//! Where it runs in [`pipeline`](crate::pipeline): at the top of `handle`,
//! [`Auditor::admit`] reserves a place in the bounded channel for the
//! request's record (or refuses the request with 503 when the trail cannot
//! take it: `on_failure = "reject"`, the default). When the response is
//! ready, [`Permit::record`] hands the record to the writer and, with
//! `durability = "fsync"` (the default), waits until it is written and
//! fsynced before the response leaves. A request whose client goes away is
//! recorded by the `Observation` guard (status 499).
//!
//! - [`record`]: the typed events and the chain entry; [`crate::redact`]
//!   masks free text when a record is built.
//! - [`writer`]: the thread that group-commits records; [`file`] (encrypted
//!   [`segment`]s + signed head), [`postgres`] (one chain per table, shared
//!   by a cluster), [`export`] (JSON lines to stdout, a file or syslog).
//! - [`crypto`]: AES-256-GCM, Ed25519, the [`KeyProvider`](crypto::KeyProvider) trait.
//! - [`verify`]: replays a trail and names the first bad entry
//!   (`rampart audit verify`).
//!
//! Threat answered: an auditor's two questions. No card number, credential
//! or personal datum in the clear (redaction; encryption at rest), and no
//! edit, deletion, insertion, reordering or truncation unnoticed (chain,
//! checkpoints, signed head). How it fails: closed by default. If the disk
//! or the database fails, new requests get 503 `overloaded` (or wait, or go
//! to the spool, as configured) until a write succeeds again; records
//! already accepted are retried in order, never dropped.

pub mod admin;
pub mod config;
pub mod crypto;
pub mod error;
pub mod export;
pub mod file;
pub mod postgres;
pub mod record;
pub mod segment;
pub mod verify;
pub mod writer;

#[cfg(test)]
mod tests;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use config::{AuditConfig, AuditPolicy, Durability, OnFailure};
pub use error::AuditError;
pub use record::{AdminEvent, Event, ReloadEvent, RequestEvent};
use writer::{Health, Msg};

use crate::clock::SharedClock;
use crate::redact::redact;

/// The running trail: the sending end of the writer's channel. Shared by
/// every snapshot (it outlives reloads).
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
    health: Arc<Health>,
    policy: Arc<AuditPolicy>,
    clock: SharedClock,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("sink", &self.policy.describe())
            .field("healthy", &self.health.healthy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A place reserved in the writer's channel for one record: sending on it
/// cannot fail or wait.
#[derive(Debug)]
pub struct Permit {
    slot: mpsc::OwnedPermit<Msg>,
    durability: Durability,
    ack_timeout: Duration,
    clock: SharedClock,
}

impl Permit {
    /// Sends the record and waits as long as the policy's durability says
    /// (at most `ack_timeout`). `Err` means it was not confirmed: it is
    /// still queued and will be written, but the caller cannot count on it.
    pub async fn record(self, event: Event) -> Result<(), AuditError> {
        let time = self.clock.now();
        if self.durability == Durability::Interval {
            self.slot.send(Msg::Record {
                time,
                event,
                ack: None,
            });
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.slot.send(Msg::Record {
            time,
            event,
            ack: Some(tx),
        });
        match tokio::time::timeout(self.ack_timeout, rx).await {
            Ok(Ok(true)) => Ok(()),
            Ok(_) => Err(AuditError::Unavailable("the writer stopped")),
            Err(_) => Err(AuditError::Timeout(self.ack_timeout)),
        }
    }

    /// Sends the record without waiting (a request whose client is gone).
    pub fn record_detached(self, event: Event) {
        let time = self.clock.now();
        self.slot.send(Msg::Record {
            time,
            event,
            ack: None,
        });
    }
}

/// How long [`Auditor::start`] waits for the trail to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

impl Auditor {
    /// Opens the trail and starts the writer thread. Fails if the trail
    /// cannot be opened (a file sink's directory, a damaged last segment);
    /// an unreachable database is not a start failure: requests are refused
    /// (or spooled) until it answers.
    pub async fn start(policy: Arc<AuditPolicy>, clock: SharedClock) -> Result<Arc<Self>, AuditError> {
        let (tx, rx) = mpsc::channel(policy.config.queue.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        let health = Arc::new(Health::default());
        let (p, c, h) = (policy.clone(), clock.clone(), health.clone());
        let thread = std::thread::Builder::new()
            .name("rampart-audit".into())
            .spawn(
                move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(writer::run(p, c, h, rx, ready_tx)),
                    Err(e) => {
                        let _ =
                            ready_tx.send(Err(AuditError::Unavailable("cannot start the writer's runtime")));
                        tracing::error!(target: "rampart::audit", error = %e, "audit writer runtime");
                    }
                },
            )
            .map_err(|_| AuditError::Unavailable("cannot start the writer thread"))?;
        match tokio::time::timeout(OPEN_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(_)) => return Err(AuditError::Unavailable("the writer stopped while opening")),
            Err(_) => return Err(AuditError::Timeout(OPEN_TIMEOUT)),
        }
        tracing::info!(target: "rampart::audit", sink = %policy.describe(), "audit trail open");
        Ok(Arc::new(Self {
            tx,
            health,
            policy,
            clock,
            thread: std::sync::Mutex::new(Some(thread)),
        }))
    }

    /// The policy it runs.
    pub fn policy(&self) -> &AuditPolicy {
        &self.policy
    }

    /// Whether the last commit succeeded (or was spooled).
    pub fn is_healthy(&self) -> bool {
        self.health.healthy.load(Ordering::SeqCst)
    }

    /// Whether records are going to the spool.
    pub fn is_spooling(&self) -> bool {
        self.health.spooling.load(Ordering::SeqCst)
    }

    /// Entries committed since start.
    pub fn committed(&self) -> u64 {
        self.health.committed.load(Ordering::Relaxed)
    }

    /// The last sequence number this process committed.
    pub fn last_seq(&self) -> u64 {
        self.health.last_seq.load(Ordering::Relaxed)
    }

    /// Reserves a place for a request's record, or says why there is none:
    /// the trail is failing or full (`reject`, the default), or it did not
    /// recover and have room within `block_timeout` (`block`).
    pub async fn admit(&self) -> Result<Permit, AuditError> {
        let c = &self.policy.config;
        let slot = match c.on_failure {
            OnFailure::Reject | OnFailure::Spool => {
                if !self.is_healthy() {
                    return Err(AuditError::Unavailable("the sink is failing"));
                }
                self.tx
                    .clone()
                    .try_reserve_owned()
                    .map_err(|_| AuditError::Unavailable("the queue is full"))?
            }
            OnFailure::Block => {
                // Held while the sink fails (a request forwarded now would
                // have its record only in memory), then while the queue is
                // full: both within one block_timeout.
                let until = tokio::time::Instant::now() + c.block_timeout;
                self.healthy_by(until).await?;
                self.reserve(until.saturating_duration_since(tokio::time::Instant::now()))
                    .await?
            }
        };
        Ok(self.permit(slot))
    }

    /// Waits until the sink is healthy, at most until `until`.
    async fn healthy_by(&self, until: tokio::time::Instant) -> Result<(), AuditError> {
        if self.is_healthy() {
            return Ok(()); // the usual case: no lock taken
        }
        loop {
            // Registered before the check, so a recovery between the two
            // is not missed.
            let recovered = self.health.recovered.notified();
            let mut recovered = std::pin::pin!(recovered);
            recovered.as_mut().enable();
            if self.is_healthy() {
                return Ok(());
            }
            if tokio::time::timeout_at(until, recovered).await.is_err() {
                return Err(AuditError::Unavailable("the sink is failing (block_timeout)"));
            }
        }
    }

    async fn reserve(&self, within: Duration) -> Result<mpsc::OwnedPermit<Msg>, AuditError> {
        match tokio::time::timeout(within, self.tx.clone().reserve_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            Ok(Err(_)) => Err(AuditError::Unavailable("the writer stopped")),
            Err(_) => Err(AuditError::Unavailable("no room within block_timeout")),
        }
    }

    fn permit(&self, slot: mpsc::OwnedPermit<Msg>) -> Permit {
        Permit {
            slot,
            durability: self.policy.config.durability,
            ack_timeout: self.policy.config.ack_timeout,
            clock: self.clock.clone(),
        }
    }

    /// Records a control-plane event, waiting for room (at most
    /// `block_timeout`) whatever `on_failure` says, then for durability.
    async fn control(&self, event: Event) -> Result<(), AuditError> {
        let slot = self.reserve(self.policy.config.block_timeout).await?;
        self.permit(slot).record(event).await
    }

    /// Records an admin action: who (`admin-token`, a user), what (`ban`,
    /// `revoke`, …), on what, and how it ended. Free text is redacted.
    /// Callers decide what an `Err` means (the admin API answers 503).
    pub async fn admin_action(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<(), AuditError> {
        self.control(Event::Admin(AdminEvent {
            actor: redact(actor).into_owned(),
            action: redact(action).into_owned(),
            target: redact(target).into_owned(),
            outcome: redact(outcome).into_owned(),
        }))
        .await
    }

    /// Records a policy reload: what triggered it, the new generation (if
    /// it succeeded), how many problems refused it, and the SHA-256 of the
    /// policy text read.
    pub async fn policy_reload(
        &self,
        trigger: &str,
        generation: Option<u64>,
        problems: usize,
        policy_sha256: Option<String>,
    ) -> Result<(), AuditError> {
        self.control(Event::Reload(ReloadEvent {
            trigger: redact(trigger).into_owned(),
            generation,
            outcome: if generation.is_some() { "ok" } else { "refused" }.into(),
            problems,
            policy_sha256,
        }))
        .await
    }

    /// Waits until every record sent before is committed and fsynced.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Seals the trail (a last checkpoint, fsync, the signed head) and stops
    /// the writer; waits at most `grace`.
    pub async fn close(&self, grace: Duration) {
        let (tx, rx) = oneshot::channel();
        let stop = self.health.clone();
        let _stop_on_timeout = StopGuard(stop);
        let sent = tokio::time::timeout(grace, self.tx.send(Msg::Close(tx))).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(grace, rx).await;
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

/// Tells the writer to stop retrying when dropped.
struct StopGuard(Arc<Health>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for Auditor {
    fn drop(&mut self) {
        self.health.stop.store(true, Ordering::SeqCst);
    }
}

/// The audit state a process keeps across reloads: the running trail, once
/// started.
pub type AuditSlot = std::sync::OnceLock<Arc<Auditor>>;

/// The SHA-256 (hex) of a policy text, for reload records.
pub fn policy_digest(text: &[u8]) -> String {
    record::hex(&record::sha256(text))
}
