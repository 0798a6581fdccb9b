//! The running gateway: the current snapshot, reload, listeners, shutdown.
//!
//! [`Runtime`] owns the current [`Gateway`] behind an atomic pointer swap.
//! [`Runtime::reload`] parses, validates and builds a complete new snapshot
//! and swaps it in only if all of that succeeded; otherwise the running
//! policy stays and the problems are returned (and logged). Reloads are
//! serialised. Listener addresses cannot change on reload (that needs a
//! restart, and a reload that tries is refused with a clear problem).
//!
//! [`start`] binds every listener and the admin listener and returns a
//! [`Server`] handle; [`Server::shutdown`] drains in-flight requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{ConfigErrors, ConfigProblem, LoadedConfig};
use crate::gateway::Gateway;
use crate::listener::ConnCounter;
use crate::metrics::{Metrics, ReloadLabels};

/// The current policy and how to replace it.
pub struct Runtime {
    current: ArcSwap<Gateway>,
    config_path: PathBuf,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    reload_lock: Mutex<()>,
    ready: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// Loads and builds a policy without binding anything: what `rampart check`
/// runs.
pub fn check(path: &Path) -> Result<Gateway, ConfigErrors> {
    let loaded = LoadedConfig::from_file(path)?;
    Gateway::build(
        &loaded,
        SystemClock::shared(),
        Metrics::new(),
        crate::gateway::ProcessState::new(),
        1,
    )
}

// === impl Runtime ===

impl Runtime {
    /// The snapshot new requests get.
    pub fn snapshot(&self) -> Arc<Gateway> {
        self.current.load_full()
    }

    /// The process clock.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// People signed in to the admin API (they outlive reloads).
    pub fn admin_sessions(&self) -> Arc<crate::admin::auth::Sessions> {
        self.snapshot().state.admin_sessions.clone()
    }

    /// Process-wide metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether the gateway is accepting traffic (false while shutting down).
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Re-reads the policy file; swaps it in only if it is entirely valid.
    /// Returns the new generation.
    pub async fn reload(&self) -> Result<u64, ConfigErrors> {
        self.reload_by("reload").await
    }

    /// [`Runtime::reload`], recording `trigger` (`sighup`, `admin-api`) in
    /// the audit trail with the outcome.
    pub async fn reload_by(&self, trigger: &str) -> Result<u64, ConfigErrors> {
        let result = self.reload_inner().await;
        if let Some(audit) = self.snapshot().auditor() {
            let (generation, problems) = match &result {
                Ok((g, _)) => (Some(*g), 0),
                Err(e) => (None, e.errors().count()),
            };
            let digest = result.as_ref().ok().and_then(|(_, d)| d.clone());
            if let Err(e) = audit.policy_reload(trigger, generation, problems, digest).await {
                tracing::error!(target: "rampart::audit", error = %e, "the policy reload could not be recorded in the audit trail");
            }
        }
        result.map(|(g, _)| g)
    }

    async fn reload_inner(&self) -> Result<(u64, Option<String>), ConfigErrors> {
        let _serial = self.reload_lock.lock().await;
        // Reading files and building clients blocks: keep it off the
        // threads that serve requests.
        let (path, clock, metrics, old) = (
            self.config_path.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            self.snapshot(),
        );
        let built = tokio::task::spawn_blocking(move || build_next(&path, clock, metrics, &old))
            .await
            .unwrap_or_else(|e| {
                Err(ConfigErrors::new(
                    &self.config_path,
                    vec![ConfigProblem::error("", format!("reload task failed: {e}"))],
                ))
            });
        let mut digest = None;
        let result = built.map(|(new, loaded)| {
            digest = Some(crate::audit::policy_digest(loaded.text.as_bytes()));
            for w in &new.warnings {
                tracing::warn!(warning = %loaded.problems(vec![w.clone()]), "policy warning");
            }
            let generation = new.generation;
            new.start_background();
            self.current.store(Arc::new(new));
            generation
        });
        let label = if result.is_ok() { "success" } else { "failure" };
        self.metrics
            .reloads
            .get_or_create(&ReloadLabels { result: label })
            .inc();
        match &result {
            Ok(generation) => {
                self.metrics.policy_generation.set(*generation);
                tracing::info!(generation, "policy reloaded");
            }
            Err(errors) => {
                for p in errors.errors() {
                    tracing::error!(problem = %errors.render(p), "policy reload refused; the running policy stays");
                }
            }
        }
        result.map(|g| (g, digest))
    }
}

/// Loads and builds the next snapshot, refusing changes that need a
/// restart. Blocking: runs on the blocking pool.
fn build_next(
    path: &Path,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    old: &Gateway,
) -> Result<(Gateway, LoadedConfig), ConfigErrors> {
    let loaded = LoadedConfig::from_file(path)?;
    let new = Gateway::build(&loaded, clock, metrics, old.state.clone(), old.generation + 1)?;
    let mut problems = Vec::new();
    for (i, l) in new.listeners.iter().enumerate() {
        match old.listener(&l.name) {
            Some(o) if o.bind == l.bind => {}
            Some(_) => problems.push(ConfigProblem::error(
                format!("listeners[{i}].bind"),
                "changing a listener's address needs a restart",
            )),
            None => problems.push(ConfigProblem::error(
                format!("listeners[{i}]"),
                "adding a listener needs a restart",
            )),
        }
    }
    if new.listeners.len() != old.listeners.len() {
        problems.push(ConfigProblem::error(
            "listeners",
            "removing a listener needs a restart",
        ));
    }
    if new.audit.as_ref().map(|a| &a.config) != old.audit.as_ref().map(|a| &a.config) {
        problems.push(ConfigProblem::error(
            "audit",
            "changing [audit] (or adding or removing it) needs a restart",
        ));
    }
    if new.admin.bind != old.admin.bind {
        problems.push(ConfigProblem::error(
            "admin.bind",
            "changing the admin address needs a restart",
        ));
    }
    if !problems.is_empty() {
        return Err(loaded.problems(problems));
    }
    Ok((new, loaded))
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The policy is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The audit trail could not be opened.
    #[error("cannot open the audit trail: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// A port could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Which listener.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Server {
    runtime: Arc<Runtime>,
    listeners: Vec<(Arc<str>, SocketAddr, Arc<ConnCounter>)>,
    admin_addr: SocketAddr,
    shutdown: watch::Sender<Option<Duration>>,
    admin_shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

/// Loads the policy, binds every listener and the admin listener, and starts
/// serving.
pub async fn start(config_path: &Path) -> Result<Server, StartError> {
    start_with_clock(config_path, SystemClock::shared()).await
}

/// [`start`] with a given clock.
pub async fn start_with_clock(config_path: &Path, clock: SharedClock) -> Result<Server, StartError> {
    let loaded = LoadedConfig::from_file(config_path)?;
    let metrics = Metrics::new();
    let gw = Gateway::build(
        &loaded,
        clock.clone(),
        metrics.clone(),
        crate::gateway::ProcessState::new(),
        1,
    )?;
    for w in &gw.warnings {
        tracing::warn!(warning = %loaded.problems(vec![w.clone()]), "policy warning");
    }
    metrics.policy_generation.set(1);
    gw.start_background();
    // The trail opens before any listener: every request is recorded.
    if let Some(policy) = &gw.audit {
        let auditor = crate::audit::Auditor::start(policy.clone(), clock.clone()).await?;
        let _ = gw.state.audit.set(auditor);
    }
    let (shutdown, shutdown_rx) = watch::channel(None);
    // The admin listener outlives the drain, so that /readyz says 503 to
    // the load balancer while in-flight requests finish.
    let (admin_shutdown, admin_shutdown_rx) = watch::channel(false);
    let mut bound = Vec::new();
    for l in &gw.listeners {
        let tcp = TcpListener::bind(l.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: l.bind,
                what: format!("listener `{}`", l.name),
                source,
            })?;
        let addr = tcp.local_addr().unwrap_or(l.bind);
        bound.push((l.name.clone(), addr, tcp));
    }
    let admin_tcp = TcpListener::bind(gw.admin.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: gw.admin.bind,
            what: "admin".into(),
            source,
        })?;
    let admin_addr = admin_tcp.local_addr().unwrap_or(gw.admin.bind);
    let runtime = Arc::new(Runtime {
        current: ArcSwap::from_pointee(gw),
        config_path: config_path.to_path_buf(),
        clock,
        metrics,
        reload_lock: Mutex::new(()),
        ready: std::sync::atomic::AtomicBool::new(true),
    });
    let mut tasks = Vec::new();
    let mut listeners = Vec::new();
    for (name, addr, tcp) in bound {
        let counter = Arc::new(ConnCounter::default());
        tracing::info!(listener = %name, %addr, "listening");
        tasks.push(tokio::spawn(crate::listener::serve(
            tcp,
            name.clone(),
            runtime.clone(),
            counter.clone(),
            shutdown_rx.clone(),
        )));
        listeners.push((name, addr, counter));
    }
    tracing::info!(addr = %admin_addr, "admin listening");
    tasks.push(tokio::spawn(crate::admin::serve(
        admin_tcp,
        runtime.clone(),
        admin_shutdown_rx,
    )));
    Ok(Server {
        runtime,
        listeners,
        admin_addr,
        shutdown,
        admin_shutdown,
        tasks,
    })
}

// === impl Server ===

impl Server {
    /// The runtime (current snapshot, reload).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The bound address of a listener.
    pub fn addr(&self, listener: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _, _)| &**n == listener)
            .map(|(_, a, _)| *a)
    }

    /// The bound address of the first listener.
    pub fn first_addr(&self) -> Option<SocketAddr> {
        self.listeners.first().map(|(_, a, _)| *a)
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves until SIGINT or SIGTERM, reloading on SIGHUP, then shuts down
    /// gracefully.
    pub async fn run_until_signal(self) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let hup = signal(SignalKind::hangup());
            let term = signal(SignalKind::terminate());
            match (hup, term) {
                (Ok(mut hup), Ok(mut term)) => loop {
                    tokio::select! {
                        _ = hup.recv() => {
                            tracing::info!("SIGHUP: reloading the policy");
                            let _ = self.runtime.reload_by("sighup").await;
                        }
                        _ = term.recv() => break,
                        _ = tokio::signal::ctrl_c() => break,
                    }
                },
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: draining in-flight requests");
        self.shutdown(Duration::from_secs(30)).await;
    }

    /// Stops accepting, lets in-flight requests finish (at most `grace`),
    /// then returns.
    pub async fn shutdown(self, grace: Duration) {
        self.runtime
            .ready
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = self.shutdown.send(Some(grace));
        let deadline = tokio::time::Instant::now() + grace;
        while self.listeners.iter().any(|(_, _, c)| c.open() > 0) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Seal the trail: a last checkpoint, fsync, the signed head.
        if let Some(audit) = self.runtime.snapshot().auditor() {
            audit.close(Duration::from_secs(5)).await;
        }
        let _ = self.admin_shutdown.send(true);
        for t in self.tasks {
            t.abort();
        }
        tracing::info!("stopped");
    }
}
