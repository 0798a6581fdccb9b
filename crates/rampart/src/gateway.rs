//! The gateway snapshot: everything a request needs, built from one policy.
//!
//! A [`Gateway`] is immutable. Loading or reloading the policy builds a whole
//! new one (parse, validate, read every file, compile the route table and
//! the clients) and only then swaps it in; a request keeps the snapshot it
//! started with until it ends. Building never binds a port, so
//! `rampart check` runs exactly this.

use std::sync::Arc;

use crate::admin::AdminPolicy;
use crate::clock::SharedClock;
use crate::config::{lint, ConfigErrors, ConfigProblem, LoadedConfig, Severity};
use crate::listener::ListenerPolicy;
use crate::metrics::Metrics;
use crate::respond::Responder;
use crate::route::{RoutePolicy, Router};
use crate::telemetry::LoggingConfig;
use crate::upstream::Upstream;

/// What outlives reloads: rate-limit counters, idempotency records, bans,
/// the Redis connection, issuers' keys, the DPoP replay cache, the
/// revocation list and brute-force counters.
#[derive(Debug)]
pub struct ProcessState {
    /// Traffic state.
    pub limits: Arc<crate::rate_limit::Limits>,
    /// Authentication state.
    pub authn: crate::authn::gate::AuthnState,
    /// Revocations held in memory.
    pub revocations: Arc<crate::authn::revocation::RevocationList>,
    /// Brute-force counters and banned key ids held in memory.
    pub brute_force: Arc<crate::authn::brute_force::BruteForceState>,
    /// One-time-code lockouts and the memory replay cache.
    pub mfa: Arc<crate::mfa::MfaState>,
    /// People signed in to the admin API.
    pub admin_sessions: Arc<crate::admin::auth::Sessions>,
    /// The running audit trail (started once, by `runtime::start`).
    pub audit: crate::audit::AuditSlot,
    /// RFC 9421 nonces seen (so a reload does not open a replay window).
    pub signature_nonces: std::sync::OnceLock<Arc<crate::authn::dpop::MemoryReplayCache>>,
}

impl ProcessState {
    /// Fresh state for a new process.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            limits: crate::rate_limit::Limits::new(),
            authn: Default::default(),
            revocations: Arc::default(),
            brute_force: Arc::default(),
            mfa: crate::mfa::MfaState::new(crate::clock::SystemClock::shared()),
            admin_sessions: Arc::default(),
            audit: Default::default(),
            signature_nonces: std::sync::OnceLock::new(),
        })
    }
}

/// One immutable, validated policy, ready to serve.
#[derive(Debug)]
pub struct Gateway {
    /// 1 at start, +1 per successful reload.
    pub generation: u64,
    /// Route table.
    pub router: Router,
    /// Upstreams, indexed by [`RoutePolicy::upstream`].
    pub upstreams: Vec<Upstream>,
    /// Response policy.
    pub respond: Responder,
    /// Data-plane listeners.
    pub listeners: Vec<ListenerPolicy>,
    /// Admin listener.
    pub admin: AdminPolicy,
    /// Gateway-wide in-flight ceiling.
    pub gate: Option<Arc<crate::rate_limit::concurrency::Gate>>,
    /// Gateway-wide IP policy.
    pub ip_filter: crate::ip_filter::IpFilter,
    /// Logging settings (applied at start).
    pub logging: LoggingConfig,
    /// The clock.
    pub clock: SharedClock,
    /// Process-wide metrics.
    pub metrics: Arc<Metrics>,
    /// Process-wide traffic state: rate-limit counters, idempotency records
    /// and bans (they outlive reloads).
    pub limits: Arc<crate::rate_limit::Limits>,
    /// Everything that outlives reloads (handed to the next build).
    pub state: Arc<ProcessState>,
    /// Issuers, DPoP checks and the revocation check.
    pub authn: crate::authn::gate::Authn,
    /// Authorization: the rule environment and entitlement sources.
    pub authz: crate::authz::Authz,
    /// Second factors (`[mfa]`), if configured.
    pub mfa: Option<Arc<crate::mfa::Mfa>>,
    /// Brute-force protection (`[brute_force]`).
    pub brute_force: crate::authn::brute_force::BruteForce,
    /// Identity forwarding (`[identity]`), shared by every upstream.
    pub identity: crate::authn::identity::SharedIdentity,
    /// Global limits and the `[redis]` store.
    pub traffic: crate::rate_limit::TrafficPolicy,
    /// Warnings found while building (insecure but valid choices).
    pub warnings: Vec<ConfigProblem>,
    /// `[audit]`, validated (the trail itself runs in [`ProcessState`]).
    pub audit: Option<Arc<crate::audit::AuditPolicy>>,
    /// `[[apis]]` and `[signatures]` (routes hold their own validation).
    pub validation: Arc<crate::validate::Validation>,
}

// === impl Gateway ===

impl Gateway {
    /// Validates the whole policy and builds the snapshot, reporting every
    /// problem at once (warnings included).
    pub fn build(
        loaded: &LoadedConfig,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        state: Arc<ProcessState>,
        generation: u64,
    ) -> Result<Self, ConfigErrors> {
        let cfg = &loaded.config;
        let limits = state.limits.clone();
        let mut problems = lint::lint(cfg);
        problems.extend(crate::authn::gate::Authn::lint(&cfg.issuers));
        problems.extend(crate::authn::mtls::Mtls::lint(cfg));
        problems.extend(crate::audit::config::lint(cfg.audit.as_ref()));
        let audit = cfg
            .audit
            .as_ref()
            .map(|a| crate::audit::AuditPolicy::from_config(a, loaded).map(Arc::new))
            .transpose()
            .map_err(|p| problems.extend(p));
        let authn = crate::authn::gate::Authn::from_config(cfg, loaded, &state.authn, clock.clone())
            .map_err(|p| problems.extend(p));

        let listeners = crate::listener::policies_from_config(cfg, loaded).map_err(|p| problems.extend(p));
        let admin = AdminPolicy::from_config(&cfg.admin, loaded).map_err(|p| problems.extend(p));

        let mut upstreams = Vec::new();
        for (i, u) in cfg.upstreams.iter().enumerate() {
            if cfg.upstreams[..i].iter().any(|o| o.name == u.name) {
                problems.push(ConfigProblem::error(
                    format!("upstreams[{i}].name"),
                    format!("duplicate upstream name `{}`", u.name),
                ));
            }
            match Upstream::from_config(i, u, loaded, clock.clone()) {
                Ok(up) => upstreams.push(up),
                Err(p) => problems.extend(p),
            }
        }
        let index = |name: &str| cfg.upstreams.iter().position(|u| u.name == name);
        let traffic = crate::rate_limit::TrafficPolicy::from_config(
            cfg.redis.as_ref(),
            &cfg.rate_limit,
            &limits,
            &metrics,
        )
        .unwrap_or_else(|p| {
            problems.extend(p);
            crate::rate_limit::TrafficPolicy::invalid(cfg.redis.is_some())
        });
        let empty_authn;
        let authn_for_routes = match &authn {
            Ok(a) => a,
            Err(()) => {
                // Routes are still checked: against the issuers alone if
                // they are valid, else against none (their own problems
                // are reported already).
                let issuers_only = crate::config::GatewayConfig {
                    issuers: cfg.issuers.clone(),
                    dpop: cfg.dpop.clone(),
                    ..Default::default()
                };
                empty_authn = crate::authn::gate::Authn::from_config(
                    &issuers_only,
                    loaded,
                    &Default::default(),
                    clock.clone(),
                )
                .or_else(|_| {
                    crate::authn::gate::Authn::from_config(
                        &Default::default(),
                        loaded,
                        &Default::default(),
                        clock.clone(),
                    )
                })
                .map_err(|p| loaded.problems(p))?;
                &empty_authn
            }
        };
        let mfa = match &cfg.mfa {
            None => Ok(None),
            Some(m) => crate::mfa::MfaPolicy::from_config(m, loaded, traffic.redis_configured)
                .map(|policy| {
                    Some(Arc::new(crate::mfa::Mfa::new(
                        policy,
                        state.mfa.clone(),
                        traffic.redis.clone(),
                        clock.clone(),
                    )))
                })
                .map_err(|p| problems.extend(p)),
        };
        let authz = crate::authz::Authz::from_config(cfg, loaded, mfa.clone().ok().flatten())
            .map_err(|p| problems.extend(p));
        let authz_empty;
        let authz_for_routes = match &authz {
            Ok(a) => a,
            Err(()) => {
                authz_empty = crate::authz::Authz::empty();
                &authz_empty
            }
        };
        let nonces = state.signature_nonces.get_or_init(|| {
            let capacity = cfg
                .signatures
                .as_ref()
                .map_or(100_000, |s| s.nonce_capacity.max(1));
            Arc::new(crate::authn::dpop::MemoryReplayCache::new(
                capacity,
                clock.clone(),
            ))
        });
        let (validation, validation_problems) = crate::validate::Validation::from_config(
            cfg,
            loaded,
            clock.clone(),
            traffic.redis.as_ref(),
            traffic.redis_configured,
            nonces,
        );
        problems.extend(validation_problems);
        // Routes generated from `[[apis]] routes = "generate"` join the policy's.
        let route_configs = validation.routes(&cfg.routes);
        let router = Router::from_config(
            &route_configs,
            index,
            &traffic,
            authn_for_routes,
            authz_for_routes,
        )
        .map_err(|p| problems.extend(p));
        let router = router.and_then(|mut router| {
            let mut failed = false;
            for (i, (policy, rc)) in router.routes_mut().iter_mut().zip(&route_configs).enumerate() {
                match validation.route(i, rc) {
                    Ok(v) => policy.validate = v.map(Arc::new),
                    Err(p) => {
                        failed = true;
                        problems.extend(p);
                    }
                }
            }
            if failed {
                Err(())
            } else {
                Ok(router)
            }
        });
        if cfg.routes.is_empty() {
            problems.push(ConfigProblem::warning(
                "routes",
                "no [[routes]]: every request will get 404",
            ));
        }
        let revocations = crate::authn::revocation::Revocations::from_config(
            &cfg.revocation,
            state.revocations.clone(),
            traffic.redis.as_ref(),
            traffic.redis_configured,
            clock.clone(),
        )
        .map_err(|p| problems.extend(p));
        let authn = authn.and_then(|a| {
            use crate::rate_limit::config::StoreKind;
            match (cfg.dpop.replay_store, traffic.redis.as_ref()) {
                (StoreKind::Redis, Some(r)) => Ok(a.with_redis_replay(r.clone())),
                (StoreKind::Redis, None) => {
                    if !traffic.redis_configured {
                        problems.push(ConfigProblem::error(
                            "dpop.replay_store",
                            "`redis` needs a [redis] section with the server's url",
                        ));
                    }
                    Err(())
                }
                (StoreKind::Memory, _) => Ok(a),
            }
        });
        let brute_force = crate::authn::brute_force::BruteForce::from_config(
            &cfg.brute_force,
            state.brute_force.clone(),
            traffic.redis.as_ref(),
            traffic.redis_configured,
            clock.clone(),
            metrics.clone(),
        )
        .map(|b| {
            match cfg
                .api_keys
                .as_ref()
                .and_then(|k| http::HeaderName::from_bytes(k.header.to_ascii_lowercase().as_bytes()).ok())
            {
                Some(h) => b.with_key_header(h),
                None => b,
            }
        })
        .map_err(|p| problems.extend(p));
        let respond = Responder::from_config(&cfg.response).map_err(|p| problems.extend(p));
        problems.extend(crate::authn::identity::IdentityPolicy::lint(&cfg.identity));
        let identity = crate::authn::identity::IdentityPolicy::from_config(
            &cfg.identity,
            loaded,
            &cfg.response.request_id_header,
        )
        .map(|p| Arc::new(crate::authn::identity::Identity::new(p, clock.clone())))
        .map_err(|p| problems.extend(p));
        let ip_filter =
            crate::ip_filter::IpFilter::from_config(&cfg.ip_filter).map_err(|p| problems.extend(p));
        if let Err(why) = crate::telemetry::check_level(&cfg.logging.level) {
            problems.push(ConfigProblem::error("logging.level", why));
        }

        if cfg.concurrency.max_in_flight == Some(0) {
            problems.push(ConfigProblem::error(
                "concurrency.max_in_flight",
                "must be at least 1",
            ));
        }
        // (Every section has been validated: nothing more to report.)
        let (Ok(revocations), Ok(brute_force), Ok(identity), Ok(authz), Ok(mfa)) =
            (revocations, brute_force, identity, authz, mfa)
        else {
            return Err(loaded.problems(problems));
        };
        let Ok(audit) = audit else {
            return Err(loaded.problems(problems));
        };
        for u in &mut upstreams {
            u.set_identity(identity.clone());
        }
        let has_errors = problems.iter().any(|p| p.severity == Severity::Error);
        match (listeners, admin, router, respond, ip_filter, authn) {
            (Ok(listeners), Ok(admin), Ok(router), Ok(respond), Ok(ip_filter), Ok(authn))
                if !has_errors && upstreams.len() == cfg.upstreams.len() =>
            {
                Ok(Self {
                    generation,
                    router,
                    upstreams,
                    respond,
                    listeners,
                    admin,
                    ip_filter,
                    gate: cfg
                        .concurrency
                        .max_in_flight
                        .map(crate::rate_limit::concurrency::Gate::new),
                    logging: cfg.logging.clone(),
                    clock,
                    metrics,
                    limits,
                    state,
                    authn: authn.with_revocations(revocations),
                    authz,
                    mfa,
                    brute_force,
                    identity,
                    traffic,
                    warnings: loaded.problems(problems).problems,
                    audit,
                    validation: Arc::new(validation),
                })
            }
            _ => Err(loaded.problems(problems)),
        }
    }

    /// Starts what runs beside the requests: the Redis probe and the copy
    /// of shared bans. Called once this snapshot serves.
    pub fn start_background(&self) {
        self.authn.start();
        if let Some(r) = &self.traffic.redis {
            r.start(&self.limits.bans, self.clock.clone());
        }
    }

    /// The running audit trail, if the policy has one.
    pub fn auditor(&self) -> Option<&Arc<crate::audit::Auditor>> {
        self.state.audit.get()
    }

    /// The upstream a route forwards to.
    pub fn upstream_of(&self, route: &RoutePolicy) -> Option<&Upstream> {
        self.upstreams.get(route.upstream)
    }

    /// A listener's policy by name.
    pub fn listener(&self, name: &str) -> Option<&ListenerPolicy> {
        self.listeners.iter().find(|l| &*l.name == name)
    }
}
