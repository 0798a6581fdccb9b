//! The admin listener: health, readiness, metrics, reload, bans,
//! revocations and the identity JWT's public keys.
//!
//! Threat answered: the control plane reachable by API clients (invariant
//! 5). The admin router is served only on its own listener (loopback by
//! default, and a data-plane listener can never share its port); it is never
//! mounted on a data-plane listener. `POST /admin/reload` needs the admin
//! token, compared in constant time; without a configured token it is
//! disabled. Full admin authentication (people with password and TOTP,
//! machines with mTLS) comes with the authorization capability. With
//! `[audit]`, every call that changes something (any method but GET/HEAD,
//! authorised or not) is recorded in the audit trail, and refused with 503
//! while the trail cannot record it ([`crate::audit::admin`]).
//!
//! | Endpoint | Auth | Answer |
//! |---|---|---|
//! | `GET /healthz` | none | 200 while the process runs |
//! | `GET /readyz` | none | 200 when serving, 503 while draining |
//! | `GET /metrics` | none | OpenMetrics text (Prometheus scrapes it) |
//! | `GET /admin/identity/jwks` | none | the public JWKS of the identity JWT (`[identity]`); 404 when none is signed |
//! | `POST /admin/reload` | admin token | 200 with the new generation; 422 with every problem, running policy kept |
//! | `GET /admin/bans` | admin token | the bans in force |
//! | `POST /admin/bans` | admin token | `{"cidr", "ttl", "reason"}`: 201 with the ban; 400 on bad input; 503 when the list is full, or when shared bans cannot reach Redis (the ban then holds on this gateway only) |
//! | `DELETE /admin/bans?cidr=…` | admin token | 200 `{"removed": bool}`; 503 when shared bans cannot reach Redis (nothing changed) |
//! | `GET /admin/revocations` | admin token | the revocations in force (from Redis with `[revocation] store = "redis"`; 503 if it cannot answer) |
//! | `POST /admin/revocations` | admin token | `{"jti"\|"sub"\|"client_id": "…", "ttl", "reason"}`: 201 with the entry; 400 on bad input; 503 when the list is full, or when Redis cannot be written (the revocation then holds on this gateway only) |
//! | `DELETE /admin/revocations?jti=…` (or `sub=`, `client_id=`) | admin token | 200 `{"removed": bool}`; 503 when Redis cannot answer (nothing changed) |

pub mod config;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
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
    /// The admin token; `None` disables token-guarded endpoints.
    pub token: Option<Secret<Vec<u8>>>,
}

/// Shortest admin token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 24;

// === impl AdminPolicy ===

impl AdminPolicy {
    /// Validates `[admin]` and reads the token.
    pub fn from_config(cfg: &AdminConfig, loaded: &LoadedConfig) -> Result<Self, Vec<ConfigProblem>> {
        let token = match (&cfg.token_file, &cfg.token_env) {
            (Some(_), Some(_)) => {
                return Err(vec![ConfigProblem::error(
                    "admin.token_env",
                    "set token_file or token_env, not both",
                )])
            }
            (None, None) => None,
            (Some(f), None) => {
                let path = loaded.resolve(f);
                match std::fs::read_to_string(&path) {
                    Ok(s) => Some(("admin.token_file", s.trim().to_string())),
                    Err(e) => {
                        return Err(vec![ConfigProblem::error(
                            "admin.token_file",
                            format!("cannot read {}: {e}", path.display()),
                        )])
                    }
                }
            }
            (None, Some(var)) => match std::env::var(var) {
                Ok(s) => Some(("admin.token_env", s.trim().to_string())),
                Err(_) => {
                    return Err(vec![ConfigProblem::error(
                        "admin.token_env",
                        format!("environment variable `{var}` is not set"),
                    )])
                }
            },
        };
        let token = match token {
            Some((key, t)) if t.len() < MIN_TOKEN_LEN => {
                return Err(vec![ConfigProblem::error(
                    key,
                    format!("the admin token must be at least {MIN_TOKEN_LEN} characters"),
                )])
            }
            Some((_, t)) => Some(Secret::new(t.into_bytes())),
            None => None,
        };
        Ok(Self {
            bind: cfg.bind,
            token,
        })
    }
}

/// The admin router.
pub fn router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
        // Every changing call is recorded in the audit trail (refused with
        // 503 while the trail is failing).
        .layer(axum::middleware::from_fn_with_state(
            runtime.clone(),
            crate::audit::admin::record_admin_calls,
        ))
        .with_state(runtime)
}

/// Serves the admin router on `tcp` until shutdown.
pub async fn serve(tcp: TcpListener, runtime: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let app = router(runtime);
    let served = axum::serve(tcp, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "admin listener failed");
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

fn authorised(rt: &Runtime, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let gw = rt.snapshot();
    let Some(token) = &gw.admin.token else {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                Json(json!({"title": "No admin token is configured; reload with SIGHUP", "status": 403})),
            )
                .into_response(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or("");
    if token.ct_eq(presented.as_bytes()) {
        Ok(())
    } else {
        Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"rampart-admin\"")],
                Json(json!({"title": "Unauthorized", "status": 401})),
            )
                .into_response(),
        ))
    }
}

async fn reload(State(rt): State<Arc<Runtime>>, headers: HeaderMap) -> Response {
    if let Err(resp) = authorised(&rt, &headers) {
        return *resp;
    }
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

async fn list_bans(State(rt): State<Arc<Runtime>>, headers: HeaderMap) -> Response {
    if let Err(resp) = authorised(&rt, &headers) {
        return *resp;
    }
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

async fn add_ban(State(rt): State<Arc<Runtime>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(resp) = authorised(&rt, &headers) {
        return *resp;
    }
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
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err(resp) = authorised(&rt, &headers) {
        return *resp;
    }
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

async fn list_revocations(State(rt): State<Arc<Runtime>>, headers: HeaderMap) -> Response {
    if let Err(resp) = authorised(&rt, &headers) {
        return *resp;
    }
    let gw = rt.snapshot();
    match gw.authn.revocations().list().await {
        Ok(list) => {
            let list: Vec<_> = list.iter().map(revocation_json).collect();
            Json(json!({ "revocations": list })).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

async fn add_revocation(
    State(rt): State<Arc<Runtime>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use crate::authn::revocation::RevocationError;
    if let Err(resp) = authorised(&rt, &headers) {
        return *resp;
    }
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
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    use crate::authn::revocation::RevocationError;
    if let Err(resp) = authorised(&rt, &headers) {
        return *resp;
    }
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
