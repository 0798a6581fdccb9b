//! Prometheus metrics, all prefixed `rampart_`, served on the admin listener.
//!
//! Label values are bounded: route ids come from the policy (or
//! `unmatched`), methods from a fixed list (or `OTHER`), outcomes from the
//! fixed refusal codes. Nothing from a request's content becomes a label, so
//! a client cannot blow up the series count or smuggle data into metrics.
//! The registry lives for the whole process and survives reloads.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `rampart_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route id, or `unmatched`.
    pub route: Arc<str>,
    /// Method (bounded).
    pub method: &'static str,
    /// Response status.
    pub status: u16,
    /// `forwarded` or a refusal code.
    pub outcome: &'static str,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route id, or `unmatched`.
    pub route: Arc<str>,
}

/// Labels of `rampart_upstream_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// Upstream name.
    pub upstream: Arc<str>,
    /// `connect`, `timeout` or `protocol`.
    pub kind: &'static str,
}

/// Labels naming a listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// Listener name.
    pub listener: Arc<str>,
}

/// Labels of `rampart_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method, status and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from request start to response headers, by route.
    pub latency: HistogramFamily<RouteLabels>,
    /// Upstream failures by upstream and kind.
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Open client connections by listener.
    pub open_connections: Family<ListenerLabels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    /// Accepted client connections by listener.
    pub connections: Family<ListenerLabels, Counter>,
    /// Connections closed at once because the listener was full.
    pub connections_refused: Family<ListenerLabels, Counter>,
    /// Connections dropped before TLS by `[ip_filter] deny`.
    pub connections_denied: Family<ListenerLabels, Counter>,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: Family<ListenerLabels, Counter>,
    /// Policy reloads by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Generation of the running policy (1 at start, +1 per successful reload).
    pub policy_generation: Gauge<u64, AtomicU64>,
    /// 1 while the `[redis]` store answers, 0 while limits apply `on_failure`.
    pub redis_up: Gauge,
    /// Redis calls that failed or timed out, by operation.
    pub redis_errors: Family<RedisErrorLabels, Counter>,
    /// Decisions made by `on_failure` because Redis could not answer, by policy.
    pub rate_limit_fallbacks: Family<FallbackLabels, Counter>,
    /// Refused authentications, by precise cause.
    pub authn_failures: Family<AuthnFailureLabels, Counter>,
    /// Brute-force bans, by kind.
    pub authn_bans: Family<AuthnBanLabels, Counter>,
    /// Authorization refusals, by cause.
    pub authz_refusals: Family<AuthzRefusalLabels, Counter>,
    /// Validation findings (injection, response conformance), by kind and
    /// action.
    pub validation_findings: Family<ValidationFindingLabels, Counter>,
}

/// Labels of `rampart_validation_findings_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationFindingLabels {
    /// `injection:sqli`, `response:schema`, …
    pub kind: String,
    /// `block` or `flag`.
    pub action: &'static str,
}

/// Labels of `rampart_authz_refusals_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthzRefusalLabels {
    /// `scope`, `rule-false`, `step-up`, …
    pub cause: &'static str,
}

/// Labels of `rampart_authn_bans_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthnBanLabels {
    /// `client_ip` or `api_key`.
    pub kind: &'static str,
}

/// Labels of `rampart_authn_failures_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthnFailureLabels {
    /// `authn.expired`, `authn.bad_signature`, …
    pub cause: &'static str,
}

/// Labels of `rampart_redis_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedisErrorLabels {
    /// `rate_limit`, `idempotency` or `bans`.
    pub op: &'static str,
}

/// Labels of `rampart_rate_limit_fallbacks_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    /// `local`, `deny` or `allow`.
    pub on_failure: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

// === impl Metrics ===

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("rampart");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let open_connections = Family::default();
        let connections = Family::<ListenerLabels, Counter>::default();
        let connections_refused = Family::<ListenerLabels, Counter>::default();
        let tls_handshake_failures = Family::<ListenerLabels, Counter>::default();
        let connections_denied = Family::<ListenerLabels, Counter>::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let policy_generation = Gauge::<u64, AtomicU64>::default();
        let redis_up = Gauge::default();
        let redis_errors = Family::<RedisErrorLabels, Counter>::default();
        let rate_limit_fallbacks = Family::<FallbackLabels, Counter>::default();
        let authn_failures = Family::<AuthnFailureLabels, Counter>::default();
        let authn_bans = Family::<AuthnBanLabels, Counter>::default();
        let authz_refusals = Family::<AuthzRefusalLabels, Counter>::default();
        let validation_findings = Family::<ValidationFindingLabels, Counter>::default();
        registry.register(
            "validation_findings",
            "Validation findings (injection classes, non-conforming responses), by kind and action (block, flag)",
            validation_findings.clone(),
        );
        registry.register(
            "authz_refusals",
            "Refused authorizations, by cause (the client only sees the class)",
            authz_refusals.clone(),
        );
        registry.register(
            "authn_bans",
            "Brute-force bans after repeated authentication failures, by kind (client_ip, api_key)",
            authn_bans.clone(),
        );
        registry.register(
            "authn_failures",
            "Refused authentications, by cause (the client only sees the class)",
            authn_failures.clone(),
        );
        registry.register(
            "redis_up",
            "1 while the [redis] store answers, 0 while limits apply on_failure",
            redis_up.clone(),
        );
        registry.register(
            "redis_errors",
            "Redis calls that failed or timed out, by operation",
            redis_errors.clone(),
        );
        registry.register(
            "rate_limit_fallbacks",
            "Limit decisions made by on_failure because Redis could not answer",
            rate_limit_fallbacks.clone(),
        );
        registry.register(
            "requests",
            "Requests handled, by route, method, status and outcome",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request start to response headers, by route",
            latency.clone(),
        );
        registry.register(
            "upstream_errors",
            "Upstream failures, by upstream and kind",
            upstream_errors.clone(),
        );
        registry.register(
            "open_connections",
            "Open client connections, by listener",
            open_connections.clone(),
        );
        registry.register(
            "connections",
            "Accepted client connections, by listener",
            connections.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because the listener was at max_connections",
            connections_refused.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out, by listener",
            tls_handshake_failures.clone(),
        );
        registry.register(
            "connections_denied",
            "Connections closed before TLS because the peer is in [ip_filter] deny",
            connections_denied.clone(),
        );
        registry.register("reloads", "Policy reloads, by result", reloads.clone());
        registry.register(
            "policy_generation",
            "Generation of the running policy",
            policy_generation.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            latency,
            upstream_errors,
            open_connections,
            connections,
            connections_refused,
            tls_handshake_failures,
            connections_denied,
            reloads,
            policy_generation,
            redis_up,
            redis_errors,
            rate_limit_fallbacks,
            authn_failures,
            authn_bans,
            authz_refusals,
            validation_findings,
        })
    }

    /// Records one finished request.
    pub fn observe_request(&self, labels: RequestLabels, latency: Duration) {
        self.latency
            .get_or_create(&RouteLabels {
                route: labels.route.clone(),
            })
            .observe(latency.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
