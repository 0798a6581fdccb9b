//! The admin listener: health, readiness, metrics, reload, bans,
//! revocations, the identity JWT's public keys, and the management of
//! credentials (API keys, admin users, MFA enrolments).
//!
//! Threat answered: the control plane reachable by API clients, or usable
//! by anyone who reaches its port (invariant 5). The admin router is served
//! only on its own listener (loopback by default, HTTPS with `[admin.tls]`;
//! a data-plane listener can never share its port); it is never mounted on
//! a data-plane listener. Every endpoint but health, readiness, the public
//! JWKS and sign-in needs a credential and a role ([`auth`]): machine
//! tokens, client certificates, or people signed in with password and
//! one-time code ([`users`]). Every action is logged with who did it and,
//! with `[audit]`, every call that changes something (any method but
//! GET/HEAD, authorised or not) is recorded in the audit trail and refused
//! with 503 while the trail cannot record it ([`crate::audit::admin`]).
//!
//! | Endpoint | Role | Answer |
//! |---|---|---|
//! | `GET /healthz` | none | 200 while the process runs |
//! | `GET /readyz` | none | 200 when serving, 503 while draining |
//! | `GET /metrics` | viewer (none with `metrics_auth = false`) | OpenMetrics text (Prometheus scrapes it) |
//! | `GET /admin/identity/jwks` | none | the public JWKS of the identity JWT (`[identity]`); 404 when none is signed |
//! | `POST /admin/login` | none | `{"user", "password", "code"}`: 200 `{"token", "expires_in", "role"}`; 401 (which part was wrong is not told); 429 + Retry-After while locked out |
//! | `POST /admin/logout` | viewer | ends the session |
//! | `GET /admin/whoami` | viewer | `{"who", "role"}` |
//! | `POST /admin/reload` | operator | 200 with the new generation; 422 with every problem, running policy kept |
//! | `GET /admin/bans` | viewer | the bans in force |
//! | `POST /admin/bans` | operator | `{"cidr", "ttl", "reason"}`: 201 with the ban; 400 on bad input; 503 when the list is full, or when shared bans cannot reach Redis (the ban then holds on this gateway only) |
//! | `DELETE /admin/bans?cidr=…` | operator | 200 `{"removed": bool}`; 503 when shared bans cannot reach Redis (nothing changed) |
//! | `GET /admin/revocations` | viewer | the revocations in force (from Redis with `[revocation] store = "redis"`; 503 if it cannot answer) |
//! | `POST /admin/revocations` | operator | `{"jti"\|"sub"\|"client_id": "…", "ttl", "reason"}`: 201 with the entry; 400 on bad input; 503 when the list is full, or when Redis cannot be written (the revocation then holds on this gateway only) |
//! | `DELETE /admin/revocations?jti=…` (or `sub=`, `client_id=`) | operator | 200 `{"removed": bool}`; 503 when Redis cannot answer (nothing changed) |
//! | `GET /admin/keys` | viewer | API keys: ids, clients, scopes, dates, states (never keys) |
//! | `DELETE /admin/keys?id=…` | security-admin | revokes an API key: 200 `{"revoked": bool}` |
//! | `GET /admin/users` | viewer | admin users: names, roles, dates (never hashes) |
//! | `DELETE /admin/users?user=…` | security-admin | removes an admin user and ends their sessions |
//! | `GET /admin/mfa` | viewer | customers' TOTP enrolments: users, parameters, key ids (never seeds) |
//! | `DELETE /admin/mfa?user=…` | security-admin | resets a customer's enrolment |

pub mod auth;
pub mod config;
pub mod password;
pub mod users;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::config::AdminConfig;
use crate::config::{ConfigProblem, LoadedConfig};
use crate::runtime::Runtime;
use crate::secret::Secret;

/// Validated admin settings.
#[derive(Debug)]
pub struct AdminPolicy {
    /// Admin listener address.
    pub bind: std::net::SocketAddr,
    /// Machine tokens (`token_file`/`token_env` first, named `admin`).
    pub tokens: Vec<auth::MachineToken>,
    /// Client certificate CNs and their roles.
    pub clients: Vec<(String, config::Role)>,
    /// HTTPS for the admin listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long a person's sign-in lasts.
    pub session_ttl: std::time::Duration,
    /// Whether `/metrics` needs a credential.
    pub metrics_auth: bool,
}

/// Shortest admin token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 24;

/// Longest `session_ttl`.
pub const MAX_SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Reads a token from `file` or `env` (exactly one); `at` names the keys.
fn read_token(
    file: Option<&std::path::Path>,
    env: Option<&str>,
    (file_key, env_key): (&str, &str),
    loaded: &LoadedConfig,
) -> Result<Option<Secret<Vec<u8>>>, ConfigProblem> {
    let (key, text) = match (file, env) {
        (Some(_), Some(_)) => {
            return Err(ConfigProblem::error(
                env_key,
                "set the file or the environment variable, not both",
            ))
        }
        (None, None) => return Ok(None),
        (Some(f), None) => {
            let path = loaded.resolve(f);
            match std::fs::read_to_string(&path) {
                Ok(s) => (file_key, s.trim().to_string()),
                Err(e) => {
                    return Err(ConfigProblem::error(
                        file_key,
                        format!("cannot read {}: {e}", path.display()),
                    ))
                }
            }
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(s) => (env_key, s.trim().to_string()),
            Err(_) => {
                return Err(ConfigProblem::error(
                    env_key,
                    format!("environment variable `{var}` is not set"),
                ))
            }
        },
    };
    if text.len() < MIN_TOKEN_LEN {
        return Err(ConfigProblem::error(
            key,
            format!("the admin token must be at least {MIN_TOKEN_LEN} characters"),
        ));
    }
    Ok(Some(Secret::new(text.into_bytes())))
}

// === impl AdminPolicy ===

impl AdminPolicy {
    /// Validates `[admin]` and reads its tokens and certificates.
    pub fn from_config(cfg: &AdminConfig, loaded: &LoadedConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut tokens = Vec::new();
        match read_token(
            cfg.token_file.as_deref(),
            cfg.token_env.as_deref(),
            ("admin.token_file", "admin.token_env"),
            loaded,
        ) {
            Ok(Some(secret)) => tokens.push(auth::MachineToken {
                name: "admin".into(),
                secret,
                role: cfg.token_role,
            }),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
        for (i, t) in cfg.tokens.iter().enumerate() {
            let at = |k: &str| format!("admin.tokens[{i}].{k}");
            let name_ok = !t.name.is_empty()
                && t.name != "admin"
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok || cfg.tokens[..i].iter().any(|o| o.name == t.name) {
                problems.push(ConfigProblem::error(
                    at("name"),
                    "a unique name: letters, digits, `-`, `_`, `.` (not `admin`)",
                ));
            }
            match read_token(
                t.file.as_deref(),
                t.env.as_deref(),
                (&at("file"), &at("env")),
                loaded,
            ) {
                Ok(Some(secret)) => tokens.push(auth::MachineToken {
                    name: t.name.clone(),
                    secret,
                    role: t.role,
                }),
                Ok(None) => problems.push(ConfigProblem::error(
                    at("file"),
                    "required: the file holding the token (or `env`)",
                )),
                Err(p) => problems.push(p),
            }
        }
        for (i, a) in tokens.iter().enumerate() {
            if tokens[..i].iter().any(|b| b.secret == a.secret) {
                problems.push(ConfigProblem::error(
                    "admin.tokens",
                    format!("token `{}` is the same as another", a.name),
                ));
            }
        }
        let tls = match &cfg.tls {
            None => None,
            Some(t) => match crate::listener::server_config("admin.tls", t, loaded) {
                Ok(c) => Some(Arc::new(c)),
                Err(p) => {
                    problems.extend(p);
                    None
                }
            },
        };
        let mut clients = Vec::new();
        for (i, c) in cfg.clients.iter().enumerate() {
            if c.subject.trim().is_empty() || cfg.clients[..i].iter().any(|o| o.subject == c.subject) {
                problems.push(ConfigProblem::error(
                    format!("admin.clients[{i}].subject"),
                    "a unique, non-empty CN",
                ));
            }
            clients.push((c.subject.clone(), c.role));
        }
        if !clients.is_empty() && cfg.tls.as_ref().and_then(|t| t.client_ca.as_ref()).is_none() {
            problems.push(ConfigProblem::error(
                "admin.clients",
                "client certificates need [admin.tls] with client_auth and client_ca",
            ));
        }
        if cfg.session_ttl.is_zero() || cfg.session_ttl > MAX_SESSION_TTL {
            problems.push(ConfigProblem::error(
                "admin.session_ttl",
                "must be more than 0 and at most 12h",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            bind: cfg.bind,
            tokens,
            clients,
            tls,
            session_ttl: cfg.session_ttl,
            metrics_auth: cfg.metrics_auth,
        })
    }
}

/// The admin router.
pub fn router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/login", post(auth::login))
        .route("/admin/logout", post(auth::logout))
        .route("/admin/whoami", get(auth::whoami))
        .route("/admin/keys", get(list_keys).post(create_key).delete(revoke_key))
        .route("/admin/keys/rotate", post(rotate_key))
        .route("/admin/users", get(list_users).post(add_user).delete(remove_user))
        .route("/admin/mfa", get(list_mfa).post(enrol_mfa).delete(reset_mfa))
        .route("/admin/reload", post(reload))
        .route("/admin/identity/jwks", get(identity_jwks))
        .route("/admin/bans", get(list_bans).post(add_ban).delete(remove_ban))
        .route(
            "/admin/revocations",
            get(list_revocations)
                .post(add_revocation)
                .delete(remove_revocation),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"title": "Not found", "status": 404})),
            )
        })
        .layer(axum::middleware::from_fn_with_state(runtime.clone(), auth::guard))
        // Every changing call is recorded in the audit trail (refused with
        // 503 while the trail is failing).
        .layer(axum::middleware::from_fn_with_state(
            runtime.clone(),
            crate::audit::admin::record_admin_calls,
        ))
        .with_state(runtime)
}

/// Serves the admin router on `tcp` until shutdown.
/// Longest TLS handshake on the admin listener.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the admin router on `tcp` until shutdown: plain HTTP, or HTTPS
/// when the current policy has `[admin.tls]` (read per connection, so a
/// reload renews the certificate). A verified client certificate's CN
/// reaches the handlers as [`auth::AdminPeer`].
pub async fn serve(tcp: TcpListener, runtime: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let app = router(runtime.clone());
    loop {
        let accepted = tokio::select! {
            a = tcp.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let tls = runtime.snapshot().admin.tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            match tls {
                None => {
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                }
                Some(cfg) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let cert_cn = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| auth::common_name(c.as_ref()));
                    let app = app.layer(axum::Extension(auth::AdminPeer { cert_cn }));
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                }
            }
        });
    }
}

/// The public JWKS of the identity JWT (public keys: no token needed); 404
/// when the current policy signs none.
async fn identity_jwks(State(rt): State<Arc<Runtime>>) -> Response {
    match rt.snapshot().identity.jwks() {
        Some(jwks) => ([(header::CACHE_CONTROL, "no-store")], Json(jwks)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"title": "No identity JWT is configured", "status": 404})),
        )
            .into_response(),
    }
}

async fn readyz(State(rt): State<Arc<Runtime>>) -> Response {
    if rt.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    }
}

async fn metrics(State(rt): State<Arc<Runtime>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        rt.metrics().encode(),
    )
        .into_response()
}

async fn reload(State(rt): State<Arc<Runtime>>) -> Response {
    match rt.reload_by("admin-api").await {
        Ok(generation) => (
            StatusCode::OK,
            Json(json!({"status": "reloaded", "generation": generation})),
        )
            .into_response(),
        Err(errors) => {
            let problems: Vec<_> = errors
                .errors()
                .map(|p| json!({"path": p.path, "line": p.line, "message": p.message, "text": errors.render(p)}))
                .collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(
                    json!({"status": "refused", "detail": "the running policy stays", "problems": problems}),
                ),
            )
                .into_response()
        }
    }
}

/// Longest ban accepted.
const MAX_BAN_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

fn ban_json(b: &crate::ip_filter::bans::Ban) -> serde_json::Value {
    json!({
        "cidr": b.net.to_string(),
        "expires_at": humantime::format_rfc3339_seconds(b.until_wall).to_string(),
        "reason": b.reason,
    })
}

fn bad_request(detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"title": "Bad request", "status": 400, "detail": detail})),
    )
        .into_response()
}

async fn list_bans(State(rt): State<Arc<Runtime>>) -> Response {
    let gw = rt.snapshot();
    let bans: Vec<_> = gw
        .limits
        .bans
        .list(gw.clock.monotonic())
        .iter()
        .map(ban_json)
        .collect();
    Json(json!({ "bans": bans })).into_response()
}

async fn add_ban(State(rt): State<Arc<Runtime>>, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_request(
            "the body must be JSON: {\"cidr\": \"203.0.113.7/32\", \"ttl\": \"10m\", \"reason\": \"…\"}",
        );
    };
    let Some(net) = req
        .get("cidr")
        .and_then(|v| v.as_str())
        .and_then(crate::ip_filter::parse_net)
    else {
        return bad_request("`cidr` must be an IP address or CIDR");
    };
    let ttl = match req
        .get("ttl")
        .and_then(|v| v.as_str())
        .map(humantime::parse_duration)
    {
        Some(Ok(d)) if !d.is_zero() && d <= MAX_BAN_TTL => d,
        _ => return bad_request("`ttl` must be a duration such as \"10m\", at most 30 days"),
    };
    let reason = req.get("reason").and_then(|v| v.as_str()).unwrap_or("");
    let gw = rt.snapshot();
    match gw
        .limits
        .ban(
            gw.traffic.redis.as_deref(),
            net,
            ttl,
            gw.clock.monotonic(),
            gw.clock.now(),
            reason,
        )
        .await
    {
        Ok(ban) => {
            tracing::warn!(target: "rampart::admin", action = "ban", cidr = %ban.net, ttl_s = ttl.as_secs(), "address banned");
            (StatusCode::CREATED, Json(ban_json(&ban))).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"title": e.to_string(), "status": 503})),
        )
            .into_response(),
    }
}

async fn remove_ban(
    State(rt): State<Arc<Runtime>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(net) = q.get("cidr").and_then(|c| crate::ip_filter::parse_net(c)) else {
        return bad_request("`cidr` query parameter must be an IP address or CIDR");
    };
    let gw = rt.snapshot();
    let removed = match gw.limits.unban(gw.traffic.redis.as_deref(), net).await {
        Ok(removed) => removed,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"title": e.to_string(), "status": 503})),
            )
                .into_response()
        }
    };
    tracing::warn!(target: "rampart::admin", action = "unban", cidr = %net, removed, "ban lifted");
    Json(json!({ "removed": removed })).into_response()
}

fn revocation_json(r: &crate::authn::revocation::Revocation) -> serde_json::Value {
    json!({
        r.kind.as_str(): r.value,
        "expires_at": humantime::format_rfc3339_seconds(r.expires_at).to_string(),
        "reason": r.reason,
    })
}

fn unavailable(e: &crate::authn::revocation::RevocationError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"title": e.to_string(), "status": 503})),
    )
        .into_response()
}

/// The one `jti`, `sub` or `client_id` named in `get`.
fn revocation_target<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<(crate::authn::revocation::RevocationKind, &'a str), Box<Response>> {
    use crate::authn::revocation::RevocationKind;
    let named: Vec<_> = RevocationKind::ALL
        .into_iter()
        .filter_map(|k| get(k.as_str()).map(|v| (k, v)))
        .collect();
    match named.as_slice() {
        [(k, v)] if !v.is_empty() => Ok((*k, v)),
        _ => Err(Box::new(bad_request(
            "name exactly one of `jti`, `sub` or `client_id`, not empty",
        ))),
    }
}

async fn list_revocations(State(rt): State<Arc<Runtime>>) -> Response {
    let gw = rt.snapshot();
    match gw.authn.revocations().list().await {
        Ok(list) => {
            let list: Vec<_> = list.iter().map(revocation_json).collect();
            Json(json!({ "revocations": list })).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

async fn add_revocation(State(rt): State<Arc<Runtime>>, body: axum::body::Bytes) -> Response {
    use crate::authn::revocation::RevocationError;
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_request(
            "the body must be JSON: {\"jti\": \"…\", \"ttl\": \"1h\", \"reason\": \"…\"} (or \"sub\", \"client_id\")",
        );
    };
    let (kind, value) = match revocation_target(|k| req.get(k).and_then(|v| v.as_str())) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let ttl = match req
        .get("ttl")
        .and_then(|v| v.as_str())
        .map(humantime::parse_duration)
    {
        Some(Ok(d)) if !d.is_zero() && d <= crate::authn::revocation::MAX_TTL => d,
        _ => return bad_request("`ttl` must be a duration such as \"1h\", at most 366 days"),
    };
    let reason = req.get("reason").and_then(|v| v.as_str()).unwrap_or("");
    let gw = rt.snapshot();
    match gw.authn.revocations().revoke(kind, value, ttl, reason).await {
        Ok(r) => {
            tracing::warn!(target: "rampart::admin", action = "revoke", kind = kind.as_str(), ttl_s = ttl.as_secs(), "credential revoked");
            (StatusCode::CREATED, Json(revocation_json(&r))).into_response()
        }
        Err(RevocationError::Invalid(why)) => bad_request(why),
        Err(e) => unavailable(&e),
    }
}

async fn remove_revocation(
    State(rt): State<Arc<Runtime>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    use crate::authn::revocation::RevocationError;
    let (kind, value) = match revocation_target(|k| q.get(k).map(String::as_str)) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let gw = rt.snapshot();
    match gw.authn.revocations().unrevoke(kind, value).await {
        Ok(removed) => {
            tracing::warn!(target: "rampart::admin", action = "unrevoke", kind = kind.as_str(), removed, "revocation lifted");
            Json(json!({ "removed": removed })).into_response()
        }
        Err(RevocationError::Invalid(why)) => bad_request(why),
        Err(e) => unavailable(&e),
    }
}

/// `{"title", "status"}` with that status.
fn answer(status: StatusCode, title: &dyn std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"title": title.to_string(), "status": status.as_u16()})),
    )
        .into_response()
}

fn unavailable_store(e: impl std::fmt::Display) -> Response {
    answer(StatusCode::SERVICE_UNAVAILABLE, &e)
}

fn not_configured(what: &str) -> Response {
    answer(StatusCode::NOT_FOUND, &format!("No {what} section is configured"))
}

fn unix_date(secs: Option<i64>) -> serde_json::Value {
    match secs.and_then(|s| u64::try_from(s).ok()) {
        Some(s) => json!(humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)
        )
        .to_string()),
        None => serde_json::Value::Null,
    }
}

type Query = axum::extract::Query<std::collections::HashMap<String, String>>;

async fn list_keys(State(rt): State<Arc<Runtime>>) -> Response {
    let gw = rt.snapshot();
    let Some(keys) = gw.authn.api_keys() else {
        return not_configured("[api_keys]");
    };
    let now = crate::authn::sign::unix_now();
    match keys.list().await {
        Ok(list) => Json(json!({"keys": list.iter().map(|k| json!({
            "id": k.key_id, "client": k.client, "scopes": k.scopes,
            "created_at": unix_date(Some(k.created_at)), "expires_at": unix_date(k.expires_at),
            "last_used_at": unix_date(k.last_used_at), "state": k.state(now).as_str(),
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => unavailable_store(e),
    }
}

/// `POST /admin/keys` `{"client": "partner-a", "scopes": "accounts:read",
/// "expires": "90d"}`: a new key, shown in this answer only (and recorded
/// in the audit trail without it).
async fn create_key(State(rt): State<Arc<Runtime>>, body: axum::body::Bytes) -> Response {
    let gw = rt.snapshot();
    let Some(keys) = gw.authn.api_keys() else {
        return not_configured("[api_keys]");
    };
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_request(
            "the body must be JSON: {\"client\": \"partner-a\", \"scopes\": \"accounts:read\", \"expires\": \"90d\"}",
        );
    };
    let Some(client) = req.get("client").and_then(|v| v.as_str()) else {
        return bad_request("`client` is required");
    };
    let scopes = match req.get("scopes") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) if a.iter().all(|v| v.is_string()) => {
            a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" ")
        }
        _ => return bad_request("`scopes` must be a string (space-separated) or an array of strings"),
    };
    let (scopes, expires) = match (
        crate::authn::api_keys::parse_scopes(&scopes),
        key_duration(&req, "expires"),
    ) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) => return bad_request(&e.to_string()),
        (_, Err(m)) => return bad_request(&m),
    };
    match keys.create(client, scopes, expires).await {
        Ok(new) => new_key(StatusCode::CREATED, &new, None),
        Err(e) => key_error(e),
    }
}

/// `POST /admin/keys/rotate` `{"id": "…", "overlap": "24h", "expires":
/// "90d"}`: the replacement key, shown in this answer only; the old one
/// works `overlap` more (default 24h).
async fn rotate_key(State(rt): State<Arc<Runtime>>, body: axum::body::Bytes) -> Response {
    let gw = rt.snapshot();
    let Some(keys) = gw.authn.api_keys() else {
        return not_configured("[api_keys]");
    };
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_request("the body must be JSON: {\"id\": \"…\", \"overlap\": \"24h\"}");
    };
    let Some(id) = req
        .get("id")
        .and_then(|v| v.as_str())
        .filter(|id| id.len() == crate::authn::api_keys::ID_LEN)
    else {
        return bad_request("`id` must be a key id, as GET /admin/keys shows it (not the key)");
    };
    let (overlap, expires) = match (key_duration(&req, "overlap"), key_duration(&req, "expires")) {
        (Ok(o), Ok(e)) => (o.unwrap_or(crate::authn::api_keys::DEFAULT_OVERLAP), e),
        (Err(m), _) | (_, Err(m)) => return bad_request(&m),
    };
    match keys.rotate(id, overlap, expires).await {
        Ok(new) => new_key(StatusCode::OK, &new, Some(id)),
        Err(e) => key_error(e),
    }
}

/// A duration member (`"90d"`), if present.
fn key_duration(req: &serde_json::Value, name: &str) -> Result<Option<std::time::Duration>, String> {
    match req.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| humantime::parse_duration(s).ok())
            .map(Some)
            .ok_or_else(|| format!("`{name}` must be a duration such as \"90d\" or \"24h\"")),
    }
}

/// The answer that carries a new key: never cached, never logged.
fn new_key(status: StatusCode, new: &crate::authn::api_keys::NewKey, replaces: Option<&str>) -> Response {
    let mut body = json!({
        "id": new.key_id,
        "key": new.key.expose(),
        "client": new.record.client,
        "scopes": new.record.scopes,
        "expires_at": unix_date(new.record.expires_at),
    });
    if let Some(old) = replaces {
        body["replaces"] = json!(old);
    }
    shown_once(status, body)
}

/// An answer holding a secret shown this once: never cached.
fn shown_once(status: StatusCode, body: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], (status, Json(body))).into_response()
}

fn key_error(e: crate::authn::api_keys::ApiKeysError) -> Response {
    use crate::authn::api_keys::ApiKeysError as E;
    match e {
        E::InvalidInput(m) => bad_request(&m),
        E::UnknownKey(_) => answer(StatusCode::NOT_FOUND, &e),
        E::NotActive { .. } => answer(StatusCode::CONFLICT, &e),
        E::StoreUnavailable { .. } | E::Store { .. } | E::Random => unavailable_store(e),
    }
}

async fn revoke_key(State(rt): State<Arc<Runtime>>, axum::extract::Query(q): Query) -> Response {
    let gw = rt.snapshot();
    let Some(keys) = gw.authn.api_keys() else {
        return not_configured("[api_keys]");
    };
    let Some(id) = q
        .get("id")
        .filter(|id| id.len() == crate::authn::api_keys::ID_LEN)
    else {
        return bad_request("`id` must be a key id, as GET /admin/keys shows it (not the key)");
    };
    match keys.revoke(id).await {
        Ok(revoked) => Json(json!({"revoked": revoked})).into_response(),
        Err(e) => unavailable_store(e),
    }
}

async fn list_users(State(rt): State<Arc<Runtime>>) -> Response {
    let Some(mfa) = rt.snapshot().mfa.clone() else {
        return not_configured("[mfa]");
    };
    match users::list(&mfa).await {
        Ok(list) => Json(json!({"users": list.iter().map(|(name, u)| json!({
            "user": name, "role": u.role.as_str(), "created_at": unix_date(Some(u.created_at)),
            "password_changed_at": unix_date(Some(u.password_changed_at)),
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => unavailable_store(e),
    }
}

/// `POST /admin/users` `{"user": "alice", "role": "operator", "password":
/// "…"}`: a person, with the password checked against the policy and a new
/// TOTP factor whose seed is in this answer only (never in the trail).
async fn add_user(State(rt): State<Arc<Runtime>>, body: axum::body::Bytes) -> Response {
    let Some(mfa) = rt.snapshot().mfa.clone() else {
        return not_configured("[mfa]");
    };
    let req = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let field = |k: &str| req.get(k).and_then(|v| v.as_str());
    let (Some(user), Some(role), Some(pw)) = (field("user"), field("role"), field("password")) else {
        return bad_request(
            "the body must be JSON: {\"user\": \"alice\", \"role\": \"viewer|operator|security-admin\", \"password\": \"…\"}",
        );
    };
    let Some(role) = config::Role::parse(role) else {
        return bad_request("`role` must be viewer, operator or security-admin");
    };
    match users::add(&mfa, user, role, pw).await {
        Ok(e) => enrolment(user, Some(role), &e),
        Err(e @ (users::UsersError::InvalidName | users::UsersError::Password(_))) => {
            bad_request(&e.to_string())
        }
        Err(e @ users::UsersError::Exists) => answer(StatusCode::CONFLICT, &e),
        Err(e) => unavailable_store(e),
    }
}

/// `POST /admin/mfa` `{"user": "cust-001", "algorithm": "SHA1", "digits":
/// 6}`: a customer's one-time-code enrolment (transaction confirmation);
/// the seed is in this answer only.
async fn enrol_mfa(State(rt): State<Arc<Runtime>>, body: axum::body::Bytes) -> Response {
    let Some(mfa) = rt.snapshot().mfa.clone() else {
        return not_configured("[mfa]");
    };
    let req = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let Some(user) = req.get("user").and_then(|v| v.as_str()) else {
        return bad_request(
            "the body must be JSON: {\"user\": \"cust-001\", \"algorithm\": \"SHA1\", \"digits\": 6}",
        );
    };
    let alg = match req
        .get("algorithm")
        .map(|v| v.as_str().and_then(crate::mfa::totp::Algorithm::parse))
    {
        None => crate::mfa::totp::Algorithm::Sha1,
        Some(Some(a)) => a,
        Some(None) => return bad_request("`algorithm` must be SHA1, SHA256 or SHA512"),
    };
    let digits = match req
        .get("digits")
        .map(|v| v.as_u64().and_then(|d| u32::try_from(d).ok()))
    {
        None => 6,
        Some(Some(d)) => d,
        Some(None) => return bad_request("`digits` must be 6 or 8"),
    };
    match mfa.enrol(user, alg, digits).await {
        Ok(e) => enrolment(user, None, &e),
        Err(crate::mfa::MfaError::InvalidInput(why)) => bad_request(&why),
        Err(e @ crate::mfa::MfaError::AlreadyEnrolled) => answer(StatusCode::CONFLICT, &e),
        Err(e) => unavailable_store(e),
    }
}

/// The answer that carries a new TOTP seed: never cached.
fn enrolment(user: &str, role: Option<config::Role>, e: &crate::mfa::Enrolment) -> Response {
    let mut body = json!({
        "user": user,
        "otpauth_uri": e.uri.expose(),
        "secret": e.secret_base32.expose(),
        "algorithm": e.factor.algorithm.as_str(),
        "digits": e.factor.digits,
    });
    if let Some(r) = role {
        body["role"] = json!(r.as_str());
    }
    shown_once(StatusCode::CREATED, body)
}

async fn remove_user(State(rt): State<Arc<Runtime>>, axum::extract::Query(q): Query) -> Response {
    let Some(mfa) = rt.snapshot().mfa.clone() else {
        return not_configured("[mfa]");
    };
    let Some(user) = q.get("user") else {
        return bad_request("`user` query parameter is required");
    };
    match users::remove(&mfa, user).await {
        Ok(removed) => {
            rt.admin_sessions().end_user(user);
            Json(json!({"removed": removed})).into_response()
        }
        Err(users::UsersError::InvalidName) => bad_request("not a user name"),
        Err(e) => unavailable_store(e),
    }
}

async fn list_mfa(State(rt): State<Arc<Runtime>>) -> Response {
    let Some(mfa) = rt.snapshot().mfa.clone() else {
        return not_configured("[mfa]");
    };
    match mfa.list().await {
        Ok(list) => Json(json!({"enrolments": list.iter().map(|(user, f)| json!({
            "user": user, "algorithm": f.algorithm.as_str(), "digits": f.digits,
            "key_id": f.secret.key_id, "created_at": unix_date(Some(f.created_at)),
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => unavailable_store(e),
    }
}

async fn reset_mfa(State(rt): State<Arc<Runtime>>, axum::extract::Query(q): Query) -> Response {
    let Some(mfa) = rt.snapshot().mfa.clone() else {
        return not_configured("[mfa]");
    };
    let Some(user) = q.get("user") else {
        return bad_request("`user` query parameter is required");
    };
    match mfa.reset(user).await {
        Ok(reset) => Json(json!({"reset": reset})).into_response(),
        Err(crate::mfa::MfaError::InvalidInput(why)) => bad_request(&why),
        Err(e) => unavailable_store(e),
    }
}
