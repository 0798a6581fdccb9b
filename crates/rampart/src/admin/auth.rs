//! Who is calling the admin API, and whether their role allows the call
//! (DESIGN.md invariant 5).
//!
//! Credentials, in the order they are tried:
//! 1. `Authorization: Bearer <token>`: a machine token (`[admin]
//!    token_file`, `[[admin.tokens]]`, compared in constant time), or a
//!    person's session from `POST /admin/login` (password and one-time
//!    code, see [`super::users`]).
//! 2. The admin connection's client certificate (`[admin.tls]` with a
//!    `client_ca`), its CN mapped to a role by `[[admin.clients]]`.
//!
//! Every endpoint's role is in one table, [`required`]: `viewer` reads,
//! `operator` changes traffic state (reload, bans, revocations),
//! `security-admin` manages credentials (API keys, admin users, MFA).
//! Anything not public needs at least `viewer`, unknown paths included, so
//! an unauthenticated caller cannot map the API. [`guard`] runs before
//! every handler: 401 without a credential, 403 for too small a role; and
//! it records every admin action (anything but a read), with who did it
//! and how it ended, in the `rampart::admin` log target.
//!
//! Threat answered: the control plane used by someone who should not, or
//! beyond their role. How it fails: closed; a session store or user store
//! that cannot answer refuses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::config::Role;
use crate::runtime::Runtime;
use crate::secret::Secret;

/// A machine token and its role.
#[derive(Debug, Clone)]
pub struct MachineToken {
    /// Its name (logs, audit).
    pub name: String,
    /// The token.
    pub secret: Secret<Vec<u8>>,
    /// Its role.
    pub role: Role,
}

/// Who is calling, once identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `machine:NAME` (a token), `cert:CN` or `user:NAME`.
    pub who: String,
    /// Their role.
    pub role: Role,
}

/// What the admin connection knows of its peer: the client certificate's
/// CN, when one was presented and verified.
#[derive(Debug, Clone, Default)]
pub struct AdminPeer {
    /// The verified client certificate's subject CN.
    pub cert_cn: Option<String>,
}

/// Sessions of people signed in: SHA-256 of the token → (user, role,
/// monotonic expiry). Outlives reloads; per gateway.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], (String, Role, Duration)>>,
}

/// Most sessions at once.
pub const MAX_SESSIONS: usize = 10_000;

fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Sessions {
    /// A new session for `user` with `role` until `now + ttl`: its token.
    pub fn create(&self, user: &str, role: Role, now: Duration, ttl: Duration) -> Option<String> {
        let token = format!("rs_{}", crate::authn::sign::random_id());
        let mut map = self.map.lock().ok()?;
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, (_, _, until)| *until > now);
            if map.len() >= MAX_SESSIONS {
                return None;
            }
        }
        map.insert(digest(&token), (user.to_owned(), role, now + ttl));
        Some(token)
    }

    /// The session of `token` at `now`, if it has not expired.
    pub fn get(&self, token: &str, now: Duration) -> Option<(String, Role)> {
        let mut map = self.map.lock().ok()?;
        let key = digest(token);
        match map.get(&key) {
            Some((u, r, until)) if *until > now => Some((u.clone(), *r)),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`.
    pub fn end(&self, token: &str) -> bool {
        self.map
            .lock()
            .map(|mut m| m.remove(&digest(token)).is_some())
            .unwrap_or(false)
    }

    /// Ends every session of `user` (removed, or password changed).
    pub fn end_user(&self, user: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.retain(|_, (u, _, _)| u != user);
        }
    }
}

/// The role an endpoint needs; `None` for the public ones.
pub fn required(method: &Method, path: &str, metrics_auth: bool) -> Option<Role> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    match path {
        "/healthz" | "/readyz" | "/admin/identity/jwks" | "/admin/login" => None,
        "/metrics" if !metrics_auth => None,
        "/metrics" | "/admin/whoami" | "/admin/logout" => Some(Role::Viewer),
        "/admin/reload" => Some(Role::Operator),
        "/admin/bans" | "/admin/revocations" if read => Some(Role::Viewer),
        "/admin/bans" | "/admin/revocations" => Some(Role::Operator),
        "/admin/keys" | "/admin/users" | "/admin/mfa" if read => Some(Role::Viewer),
        "/admin/keys" | "/admin/users" | "/admin/mfa" | "/admin/keys/rotate" => Some(Role::SecurityAdmin),
        _ => Some(Role::Viewer),
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// Identifies the caller, if any credential holds.
pub fn identify(rt: &Runtime, headers: &HeaderMap, peer: Option<&AdminPeer>) -> Option<Actor> {
    let gw = rt.snapshot();
    if let Some(token) = bearer(headers) {
        // Every machine token is compared (constant time each), so timing
        // does not tell which one matched.
        let mut found = None;
        for t in &gw.admin.tokens {
            if t.secret.ct_eq(token.as_bytes()) {
                found = Some(t);
            }
        }
        if let Some(t) = found {
            return Some(Actor {
                who: format!("machine:{}", t.name),
                role: t.role,
            });
        }
        if let Some((user, role)) = rt.admin_sessions().get(token, gw.clock.monotonic()) {
            return Some(Actor {
                who: format!("user:{user}"),
                role,
            });
        }
        // A bearer token that is neither is not a credential; a
        // certificate does not make up for it.
        return None;
    }
    let cn = peer?.cert_cn.as_deref()?;
    gw.admin
        .clients
        .iter()
        .find(|(subject, _)| subject == cn)
        .map(|(subject, role)| Actor {
            who: format!("cert:{subject}"),
            role: *role,
        })
}

/// The subject CN of a DER certificate, if it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}

/// Records an admin action: who, what, on what, how it ended. Never a
/// credential, a password or a body.
pub fn record(who: &str, action: &str, outcome: u16) {
    tracing::info!(target: "rampart::admin", actor = %who, action = %action, status = outcome, "admin action");
}

fn problem(status: StatusCode, title: &str) -> Response {
    let mut r = (status, Json(json!({"title": title, "status": status.as_u16()}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"rampart-admin\""),
        );
    }
    r
}

/// The middleware before every admin handler: authenticate, check the
/// role, record actions.
pub async fn guard(
    State(rt): State<Arc<Runtime>>,
    peer: Option<Extension<AdminPeer>>,
    mut req: Request,
    next: Next,
) -> Response {
    let gw = rt.snapshot();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let Some(need) = required(&method, &path, gw.admin.metrics_auth) else {
        return next.run(req).await;
    };
    let action = format!("{method} {path}");
    let Some(actor) = identify(&rt, req.headers(), peer.as_deref()) else {
        if !matches!(method, Method::GET | Method::HEAD) {
            record("anonymous", &action, 401);
        }
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    if actor.role < need {
        record(&actor.who, &action, 403);
        return problem(StatusCode::FORBIDDEN, "This role may not do that");
    }
    req.extensions_mut().insert(actor.clone());
    let resp = next.run(req).await;
    if !matches!(method, Method::GET | Method::HEAD) {
        record(&actor.who, &action, resp.status().as_u16());
    }
    resp
}

/// `POST /admin/login` `{"user", "password", "code"}`: a session token for
/// a person (`{"token", "expires_in", "role"}`). 401 for any wrong part,
/// 429 while locked out, 503 when the store cannot answer, 404 without
/// `[mfa]` (no people can exist).
pub async fn login(State(rt): State<Arc<Runtime>>, body: axum::body::Bytes) -> Response {
    let gw = rt.snapshot();
    let Some(mfa) = gw.mfa.clone() else {
        return problem(StatusCode::NOT_FOUND, "People sign-in needs an [mfa] section");
    };
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "The body must be JSON: {\"user\", \"password\", \"code\"}",
        );
    };
    let field = |k: &str| req.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (user, pw, code) = (field("user"), field("password"), field("code"));
    if user.is_empty() || user.len() > 64 {
        return problem(StatusCode::BAD_REQUEST, "`user` is required");
    }
    let who = format!("user:{user}");
    match super::users::sign_in(&mfa, user, pw, code).await {
        Ok(role) => {
            let ttl = gw.admin.session_ttl;
            let Some(token) = rt.admin_sessions().create(user, role, gw.clock.monotonic(), ttl) else {
                return problem(StatusCode::SERVICE_UNAVAILABLE, "Too many sessions");
            };
            record(&who, "POST /admin/login", 200);
            Json(json!({"token": token, "expires_in": ttl.as_secs(), "role": role.as_str()})).into_response()
        }
        Err(super::users::SignInError::Locked(d)) => {
            record(&who, "POST /admin/login", 429);
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins; try again later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(d.as_secs().max(1)));
            r
        }
        Err(super::users::SignInError::Refused) => {
            record(&who, "POST /admin/login", 401);
            problem(StatusCode::UNAUTHORIZED, "Sign-in refused")
        }
        Err(super::users::SignInError::Unavailable(e)) => {
            tracing::warn!(target: "rampart::admin", error = %e, "sign-in unavailable");
            record(&who, "POST /admin/login", 503);
            problem(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable")
        }
    }
}

/// `POST /admin/logout`: ends the caller's session.
pub async fn logout(State(rt): State<Arc<Runtime>>, headers: HeaderMap) -> Response {
    let ended = bearer(&headers).is_some_and(|t| rt.admin_sessions().end(t));
    Json(json!({"ended": ended})).into_response()
}

/// `GET /admin/whoami`: the caller and their role.
pub async fn whoami(Extension(actor): Extension<Actor>) -> Response {
    Json(json!({"who": actor.who, "role": actor.role.as_str()})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_its_role_and_unknown_paths_are_not_public() {
        use Method as M;
        let r = |m: M, p: &str| required(&m, p, true);
        assert_eq!(r(M::GET, "/healthz"), None);
        assert_eq!(r(M::POST, "/admin/login"), None);
        assert_eq!(r(M::GET, "/metrics"), Some(Role::Viewer));
        assert_eq!(required(&M::GET, "/metrics", false), None);
        assert_eq!(r(M::POST, "/admin/reload"), Some(Role::Operator));
        assert_eq!(r(M::GET, "/admin/bans"), Some(Role::Viewer));
        assert_eq!(r(M::DELETE, "/admin/bans"), Some(Role::Operator));
        assert_eq!(r(M::GET, "/admin/users"), Some(Role::Viewer));
        assert_eq!(r(M::POST, "/admin/keys"), Some(Role::SecurityAdmin));
        assert_eq!(r(M::POST, "/admin/keys/rotate"), Some(Role::SecurityAdmin));
        assert_eq!(r(M::DELETE, "/admin/users"), Some(Role::SecurityAdmin));
        assert_eq!(r(M::DELETE, "/admin/keys"), Some(Role::SecurityAdmin));
        assert_eq!(r(M::GET, "/admin/secret-thing"), Some(Role::Viewer));
        assert_eq!(r(M::GET, "/nothing"), Some(Role::Viewer));
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::SecurityAdmin);
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let t0 = Duration::from_secs(100);
        let tok = s
            .create("alice", Role::Operator, t0, Duration::from_secs(60))
            .unwrap_or_default();
        assert!(tok.starts_with("rs_") && tok.len() > 20);
        assert_eq!(s.get(&tok, t0), Some(("alice".into(), Role::Operator)));
        assert_eq!(s.get("rs_other", t0), None);
        assert_eq!(s.get(&tok, t0 + Duration::from_secs(61)), None);
        let tok = s
            .create("alice", Role::Viewer, t0, Duration::from_secs(60))
            .unwrap_or_default();
        s.end_user("alice");
        assert_eq!(s.get(&tok, t0), None);
    }
}
