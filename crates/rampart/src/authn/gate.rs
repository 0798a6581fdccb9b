//! Authentication as the pipeline runs it: the policy's issuers, each
//! route's accepted methods, and one call that turns a request into a
//! [`Principal`] or a refusal with its `WWW-Authenticate` challenges.
//!
//! A route lists alternatives (`authn = ["jwt:bank-idp", "introspect:bank-as",
//! "mtls"]`, any of them), each possibly a combination joined by `+` that
//! must all hold (`"mtls+jwt:bank-idp"`: the principal is the token's, with
//! the certificate identity recorded). `authn = "none"` must be written. `sender_constrained = true` on a
//! route refuses plain bearer tokens (FAPI 2.0).
//!
//! Threat answered: calls by nobody, or by someone else (OWASP API2). How it
//! fails: closed: the first alternative that holds wins; if none does, the
//! refusal is the one of the credential the client actually presented, as
//! a generic RFC 6750 class; the precise cause goes to the log only.
//!
//! Issuers whose policy did not change keep their keys, refresher and
//! verdict cache across reloads ([`AuthnState`]), and the DPoP replay cache
//! outlives every reload, so a reload never reopens a replay window.
//!
//! Every principal, from a fresh verification or a cached verdict, is then
//! checked against the revocation list ([`Revocations`]) before it is
//! returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue};

use super::config::{DpopConfig, DpopPolicy, IssuerConfig, IssuerPolicy, KeySourcePolicy};
use super::dpop::MemoryReplayCache;
use super::error::{www_authenticate, ErrorClass};
use super::mtls::Mtls;
use super::revocation::Revocations;
use super::{Authenticator, AuthnError, AuthnRequest, DpopVerifier, Issuer, Principal, Scheme};
use crate::clock::SharedClock;
use crate::config::{ConfigProblem, LoadedConfig};

/// Authentication state that outlives reloads: issuers (keys, refreshers,
/// verdict caches) and the DPoP replay cache.
#[derive(Debug, Default)]
pub struct AuthnState {
    issuers: Mutex<HashMap<String, Arc<Issuer>>>,
    replay: Mutex<Option<Arc<MemoryReplayCache>>>,
}

/// One method a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A JWT from the issuer at this index of [`Authn::issuers`].
    Jwt(usize),
    /// An API key (`[api_keys]`).
    ApiKey,
    /// An opaque token the issuer at this index introspects (RFC 7662).
    Introspect(usize),
    /// The client certificate, mapped by `[mtls]` to a client.
    Mtls,
}

/// How a route authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAuthn {
    /// `authn = "none"`: nobody is asked, by explicit choice.
    None,
    /// Any one of the alternatives, each a set of methods that must all
    /// hold.
    Any {
        /// The alternatives, in the order written.
        alternatives: Vec<Vec<Method>>,
        /// Refuse plain bearer tokens (DPoP or certificate-bound only).
        sender_constrained: bool,
    },
}

/// A refusal: the cause (for logs), and what the client is told.
#[derive(Debug)]
pub struct AuthnRefusal {
    /// The precise cause (never shown to the client).
    pub error: AuthnError,
    /// One `WWW-Authenticate` value per accepted scheme.
    pub challenges: Vec<HeaderValue>,
    /// A fresh `DPoP-Nonce`, when nonces are on.
    pub nonce: Option<HeaderValue>,
}

/// The authentication part of one policy snapshot.
#[derive(Debug)]
pub struct Authn {
    /// The DPoP policy and the memory replay cache (kept to swap in a
    /// Redis-backed cache: [`Authn::with_redis_replay`]).
    dpop_parts: (super::DpopPolicy, Arc<MemoryReplayCache>, SharedClock),
    issuers: Vec<Arc<Issuer>>,
    api_keys: Option<Arc<super::ApiKeys>>,
    /// Issuers built by this snapshot (not reused): started with it.
    fresh: Vec<Arc<Issuer>>,
    authenticator: Authenticator,
    /// The revocation check ([`Authn::with_revocations`]; an empty list
    /// until the gateway build sets the process's).
    revocations: Revocations,
    mtls: Mtls,
}

impl Authn {
    /// Validates `[[issuers]]`, `[dpop]` and `[mtls]`, reusing the issuers
    /// of `state` whose policy is unchanged (a `jwks_file` is always read
    /// again, and so is the CRL).
    pub fn from_config(
        cfg: &crate::config::GatewayConfig,
        loaded: &LoadedConfig,
        state: &AuthnState,
        clock: SharedClock,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let (issuers, dpop): (&[IssuerConfig], &DpopConfig) = (&cfg.issuers, &cfg.dpop);
        let mut problems = Vec::new();
        let api_keys = match cfg
            .api_keys
            .as_ref()
            .map(|c| super::ApiKeysPolicy::from_config(c, loaded))
        {
            None => None,
            Some(Err(p)) => {
                problems.extend(p);
                None
            }
            Some(Ok(policy)) => match super::ApiKeys::new(&policy, clock.clone()) {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    problems.push(ConfigProblem::error("api_keys.store", e.to_string()));
                    None
                }
            },
        };
        let dpop = DpopPolicy::from_config(dpop, "dpop").map_err(|p| problems.extend(p));
        let mtls = Mtls::from_config(&cfg.mtls, loaded, clock.clone()).map_err(|p| problems.extend(p));
        let mut built = Vec::new();
        let mut fresh = Vec::new();
        let mut cache = state
            .issuers
            .lock()
            .map_err(|_| vec![ConfigProblem::error("issuers", "internal: issuer cache unusable")])?;
        for (i, c) in issuers.iter().enumerate() {
            let path = format!("issuers[{i}]");
            if issuers[..i].iter().any(|o| o.name == c.name) {
                problems.push(ConfigProblem::error(
                    format!("{path}.name"),
                    format!("duplicate issuer name `{}`", c.name),
                ));
                continue;
            }
            let mut policy = match IssuerPolicy::from_config(c, &path) {
                Ok(p) => p,
                Err(p) => {
                    problems.extend(p);
                    continue;
                }
            };
            resolve_paths(&mut policy, loaded);
            // A file is read again at each load (and so is the
            // introspection client secret).
            let reusable = !matches!(policy.keys, KeySourcePolicy::File(_)) && policy.introspection.is_none();
            if let Some(old) = cache
                .get(&policy.name)
                .filter(|o| reusable && *o.policy() == policy)
            {
                built.push(old.clone());
                continue;
            }
            match Issuer::from_policy(policy, clock.clone(), &path) {
                Ok(issuer) => {
                    let issuer = Arc::new(issuer);
                    fresh.push(issuer.clone());
                    built.push(issuer);
                }
                Err(p) => problems.extend(p),
            }
        }
        let (Ok(dpop), Ok(mtls)) = (dpop, mtls) else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        for issuer in &fresh {
            cache.insert(issuer.name().to_owned(), issuer.clone());
        }
        cache.retain(|name, _| built.iter().any(|b| b.name() == name));
        let replay = {
            let mut r = state
                .replay
                .lock()
                .map_err(|_| vec![ConfigProblem::error("dpop", "internal: replay cache unusable")])?;
            r.get_or_insert_with(|| {
                Arc::new(MemoryReplayCache::new(dpop.replay_cache_capacity, clock.clone()))
            })
            .clone()
        };
        Ok(Self {
            issuers: built,
            api_keys,
            fresh,
            dpop_parts: (dpop.clone(), replay.clone(), clock.clone()),
            authenticator: Authenticator::new(DpopVerifier::with_replay_cache(dpop, replay, clock.clone())),
            revocations: Revocations::memory(Arc::default(), clock),
            mtls,
        })
    }

    /// Warnings found while validating (insecure but valid choices).
    pub fn lint(issuers: &[IssuerConfig]) -> Vec<ConfigProblem> {
        issuers
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                IssuerPolicy::from_config(c, &format!("issuers[{i}]"))
                    .ok()
                    .map(|p| p.lint(&format!("issuers[{i}]")))
            })
            .flatten()
            .collect()
    }

    /// Checks every principal against `revocations` (`[revocation]`).
    pub fn with_revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = revocations;
        self
    }

    /// Remembers DPoP proofs on Redis (`[dpop] replay_store = "redis"`), so
    /// a proof used on one gateway is refused as a replay on all of them.
    pub fn with_redis_replay(mut self, store: Arc<crate::rate_limit::redis::RedisStore>) -> Self {
        let (policy, local, clock) = self.dpop_parts.clone();
        let replay = Arc::new(super::dpop::RedisReplayCache::new(store, local));
        self.authenticator = Authenticator::new(DpopVerifier::with_replay_cache(policy, replay, clock));
        self
    }

    /// The revocation list this snapshot checks (for the admin API).
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The issuers, in policy order.
    pub fn issuers(&self) -> &[Arc<Issuer>] {
        &self.issuers
    }

    /// Loads the keys of the issuers this snapshot created and starts their
    /// refreshers. Needs a Tokio runtime.
    pub fn start(&self) {
        if let Some(k) = &self.api_keys {
            drop(k.spawn_flusher());
        }
        for issuer in &self.fresh {
            let issuer = issuer.clone();
            tokio::spawn(async move {
                // The refresher ends by itself when the key source is dropped.
                drop(issuer.start().await);
            });
        }
    }

    /// Validates a route's `authn` (`"none"`, or a list of alternatives,
    /// each `jwt:<issuer>` or a `+`-joined combination).
    pub fn route_policy(
        &self,
        path: &str,
        choice: &[String],
        none: bool,
        sender_constrained: bool,
    ) -> Result<RouteAuthn, Vec<ConfigProblem>> {
        if none {
            if sender_constrained {
                return Err(vec![ConfigProblem::error(
                    path.replace(".authn", ".sender_constrained"),
                    "needs token authentication, not authn = \"none\"",
                )]);
            }
            return Ok(RouteAuthn::None);
        }
        let mut problems = Vec::new();
        let mut alternatives = Vec::new();
        if choice.is_empty() {
            problems.push(ConfigProblem::error(
                path,
                "an empty list accepts nobody; write authn = \"none\" to mean no authentication",
            ));
        }
        let at = |j: usize| {
            if choice.len() == 1 {
                path.to_owned()
            } else {
                format!("{path}[{j}]")
            }
        };
        for (j, alt) in choice.iter().enumerate() {
            let mut methods = Vec::new();
            for part in alt.split('+').map(str::trim) {
                match part.split_once(':') {
                    Some(("jwt", name)) => match self.issuers.iter().position(|i| i.name() == name) {
                        Some(k) => methods.push(Method::Jwt(k)),
                        None => problems.push(ConfigProblem::error(
                            at(j),
                            format!("no issuer named `{name}` in [[issuers]]"),
                        )),
                    },
                    Some(("introspect", name)) => match self.issuers.iter().position(|i| i.name() == name) {
                        Some(k) if self.issuers[k].introspector().is_some() => {
                            methods.push(Method::Introspect(k))
                        }
                        Some(_) => problems.push(ConfigProblem::error(
                            at(j),
                            format!("issuer `{name}` has no introspection_url"),
                        )),
                        None => problems.push(ConfigProblem::error(
                            at(j),
                            format!("no issuer named `{name}` in [[issuers]]"),
                        )),
                    },
                    None if part == "mtls" => {
                        if !self.mtls.has_clients() {
                            problems.push(ConfigProblem::error(
                                at(j),
                                "`mtls` needs [[mtls.clients]] mapping certificates to clients",
                            ));
                        }
                        if !methods.contains(&Method::Mtls) {
                            methods.push(Method::Mtls);
                        }
                    }
                    _ if part == "jwt" && self.issuers.len() == 1 => methods.push(Method::Jwt(0)),
                    _ if part == "api_key" => {
                        if self.api_keys.is_some() {
                            methods.push(Method::ApiKey);
                        } else {
                            problems.push(ConfigProblem::error(
                                at(j),
                                "`api_key` needs an [api_keys] section",
                            ));
                        }
                    }
                    _ => problems.push(ConfigProblem::error(
                        at(j),
                        format!(
                            "`{part}`: use \"none\", \"jwt:<issuer name>\" (\"jwt\" alone when there \
                             is one issuer), \"api_key\", \"introspect:<issuer name>\" or \"mtls\"; \
                             see docs/configuration.md"
                        ),
                    )),
                }
            }
            if methods
                .iter()
                .filter(|m| matches!(m, Method::Jwt(_) | Method::Introspect(_)))
                .count()
                > 1
            {
                problems.push(ConfigProblem::error(
                    at(j),
                    "one request carries one token: combine jwt or introspect with other methods, \
                     not with each other",
                ));
            }
            alternatives.push(methods);
        }
        if problems.is_empty() {
            Ok(RouteAuthn::Any {
                alternatives,
                sender_constrained,
            })
        } else {
            Err(problems)
        }
    }

    /// Authenticates a request on a route whose policy is `route`.
    /// `url` is the URL the client addressed (for DPoP `htu`).
    pub async fn authenticate(
        &self,
        route: &RouteAuthn,
        headers: &HeaderMap,
        method: &str,
        url: &str,
        client_cert_der: Option<&[u8]>,
    ) -> Result<Option<Arc<Principal>>, AuthnRefusal> {
        let RouteAuthn::Any {
            alternatives,
            sender_constrained,
        } = route
        else {
            return Ok(None);
        };
        let req = AuthnRequest {
            headers,
            method,
            url,
            client_cert_der,
            require_sender_constrained: *sender_constrained,
        };
        // The refusal to report: the first alternative's, unless a later
        // one got further (a credential it recognised).
        let mut refusal: Option<AuthnError> = None;
        for alt in alternatives {
            let mut principal = None;
            let mut certificate: Option<Principal> = None;
            let mut failed = None;
            for m in alt {
                match m {
                    Method::Mtls => {
                        let identified = req
                            .client_cert_der
                            .ok_or(AuthnError::ClientCertificateMissing)
                            .and_then(|der| self.mtls.identify(der));
                        match identified {
                            Ok(p) => certificate = Some(p),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    Method::Jwt(k) | Method::Introspect(k) => {
                        let Some(issuer) = self.issuers.get(*k) else {
                            failed = Some(AuthnError::KeysUnavailable);
                            break;
                        };
                        let result = if matches!(m, Method::Jwt(_)) {
                            self.authenticator.authenticate(issuer, &req).await
                        } else {
                            self.authenticator.authenticate_introspected(issuer, &req).await
                        };
                        match result {
                            Ok(a) => principal = Some(a.principal),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    Method::ApiKey => {
                        let Some(keys) = &self.api_keys else {
                            failed = Some(AuthnError::MissingCredentials);
                            break;
                        };
                        match keys.authenticate(headers).await {
                            // A token's principal wins in a combination.
                            Ok(p) => principal = principal.or(Some(p)),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                }
            }
            // With a token, the principal is the token's, with the
            // certificate identity recorded; alone, the certificate's.
            let principal = match (principal, certificate) {
                (Some(p), Some(c)) => Some(Arc::new(
                    Principal::clone(&p).with_certificate(c.certificate().cloned()),
                )),
                (p, c) => p.or(c.map(Arc::new)),
            };
            match (failed, principal) {
                (None, Some(p)) => {
                    // Cached verdict or not: revoked tokens, subjects and
                    // clients are refused here.
                    return match self.revocations.check(&p).await {
                        Ok(()) => Ok(Some(p)),
                        Err(e) => Err(self.refusal(e, route)),
                    };
                }
                (Some(e), _) => {
                    let better = match &refusal {
                        None => true,
                        // A credential that was presented says more than
                        // one that was not.
                        Some(AuthnError::MissingCredentials) => !matches!(e, AuthnError::MissingCredentials),
                        // A token from another issuer is "wrong issuer" for
                        // this one; prefer any other, more telling cause.
                        Some(AuthnError::WrongIssuer | AuthnError::UnknownKid) => {
                            !matches!(e, AuthnError::WrongIssuer | AuthnError::UnknownKid)
                        }
                        Some(_) => false,
                    };
                    if better {
                        refusal = Some(e);
                    }
                }
                (None, None) => refusal = refusal.or(Some(AuthnError::MissingCredentials)),
            }
        }
        let error = refusal.unwrap_or(AuthnError::MissingCredentials);
        Err(self.refusal(error, route))
    }

    /// The API keys, when `[api_keys]` is configured.
    pub fn api_keys(&self) -> Option<&Arc<super::ApiKeys>> {
        self.api_keys.as_ref()
    }

    /// The API-key header, when `[api_keys]` is configured.
    pub fn api_key_header(&self) -> Option<&http::HeaderName> {
        self.api_keys.as_ref().map(|k| k.header())
    }

    /// The request's client certificate (DER): the handshake's, or the
    /// RFC 9440 `Client-Cert` header's when the peer is a trusted proxy and
    /// `[mtls] trust_client_cert_header` is on. A malformed header is a
    /// refusal.
    pub fn client_certificate<'a>(
        &self,
        handshake: Option<&'a [u8]>,
        headers: &HeaderMap,
        via_trusted_proxy: bool,
        route: &RouteAuthn,
    ) -> Result<Option<std::borrow::Cow<'a, [u8]>>, AuthnRefusal> {
        self.mtls
            .client_certificate(handshake, headers, via_trusted_proxy)
            .map_err(|e| self.refusal(e, route))
    }

    /// The challenges and nonce for a refusal on `route`: token
    /// challenges where tokens are accepted, an API-key one where keys are.
    pub fn refusal(&self, error: AuthnError, route: &RouteAuthn) -> AuthnRefusal {
        let methods = || match route {
            RouteAuthn::None => [].iter().flatten(),
            RouteAuthn::Any { alternatives, .. } => alternatives.iter().flatten(),
        };
        let tokens = methods().any(|m| matches!(m, Method::Jwt(_)));
        let keys = methods().any(|m| matches!(m, Method::ApiKey));
        let class = error.class();
        let dpop = self.authenticator.dpop();
        let (bearer_class, dpop_class) = match class {
            ErrorClass::InvalidDpopProof | ErrorClass::UseDpopNonce => (ErrorClass::NoCredentials, class),
            _ => (class, class),
        };
        let mut challenges = Vec::new();
        if tokens || !keys {
            challenges.push(www_authenticate(Scheme::Bearer, bearer_class, None));
            challenges.push(www_authenticate(
                Scheme::Dpop,
                dpop_class,
                Some(dpop.algs_param()),
            ));
        }
        if let Some(header) = self.api_key_header().filter(|_| keys) {
            // Not a registered scheme: it tells a client which header to use.
            if let Ok(v) = HeaderValue::from_str(&format!("ApiKey realm=\"rampart\", header=\"{header}\"")) {
                challenges.push(v);
            }
        }
        let nonce = dpop
            .nonces()
            .and_then(|n| HeaderValue::from_str(&n.current()).ok());
        AuthnRefusal {
            error,
            challenges,
            nonce,
        }
    }
}

/// Makes the policy's file paths relative to the policy file.
fn resolve_paths(policy: &mut IssuerPolicy, loaded: &LoadedConfig) {
    match &mut policy.keys {
        KeySourcePolicy::File(f) => *f = loaded.resolve(f),
        KeySourcePolicy::Url { ca_file, .. } | KeySourcePolicy::Discovery { ca_file } => {
            if let Some(ca) = ca_file {
                *ca = loaded.resolve(ca);
            }
        }
        KeySourcePolicy::None => {}
    }
    if let Some(i) = &mut policy.introspection {
        i.client_secret_file = loaded.resolve(&i.client_secret_file);
        if let Some(ca) = &mut i.ca_file {
            *ca = loaded.resolve(ca);
        }
    }
}
