//! Admin actions into the audit trail: an axum middleware on the admin
//! router that records every call that changes something (any method but
//! GET and HEAD), authorised or not, with who (`machine:NAME`, `cert:CN`,
//! `user:NAME` as [`crate::admin::auth::identify`] finds them, else
//! `anonymous`), what (`POST /admin/bans`), on what (the query, or the
//! `cidr`/`jti`/`sub`/`client_id`/`client`/`id`/`user` of a JSON body,
//! and `issued=` the id of an API key the call made) and how it ended (the
//! status). New admin endpoints are covered by being mounted.
//!
//! Threat answered: a control-plane change (a ban lifted, a revocation
//! removed, a policy swapped) leaving no trace, and a trail that cannot
//! record being bypassed through the admin API. How it fails: closed. When
//! the trail is failing, a changing call is refused with 503 before it runs;
//! a record that cannot be confirmed after the call is logged as an error.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::runtime::Runtime;

/// Largest admin request body read for the record (admin bodies are tiny).
const MAX_BODY: usize = 64 * 1024;

/// Calls whose answer names an issued API key by its id.
const ISSUES_KEYS: &[&str] = &["/admin/keys", "/admin/keys/rotate"];

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn record_admin_calls(State(rt): State<Arc<Runtime>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let gw = rt.snapshot();
    let Some(audit) = gw.auditor().cloned() else {
        return next.run(req).await;
    };
    if !audit.is_healthy() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"title": "The audit trail cannot record this action; try again shortly", "status": 503})),
        )
            .into_response();
    }
    let peer = req.extensions().get::<crate::admin::auth::AdminPeer>().cloned();
    let actor = crate::admin::auth::identify(&rt, req.headers(), peer.as_ref())
        .map_or_else(|| "anonymous".to_owned(), |a| a.who);
    let action = format!("{} {}", req.method(), req.uri().path());
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(serde_json::json!({"title": "Request body too large", "status": 413})),
        )
            .into_response();
    };
    let mut target = parts.uri.query().unwrap_or("").to_string();
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        // What the action is on; never a password or a code.
        for k in ["cidr", "jti", "sub", "client_id", "client", "id", "user"] {
            if let Some(v) = m.get(k).and_then(|v| v.as_str()) {
                if !target.is_empty() {
                    target.push('&');
                }
                target.push_str(&format!("{k}={v}"));
            }
        }
    }
    let path = parts.uri.path().to_owned();
    let mut resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = resp.status();
    if status.is_success() && ISSUES_KEYS.contains(&path.as_str()) {
        // Which key was issued: its public id from the answer (never the
        // key, which is in the answer too).
        let (head, body) = resp.into_parts();
        // The handler's own small JSON; the limit only bounds the buffer.
        let bytes = axum::body::to_bytes(body, 1024 * 1024).await.unwrap_or_default();
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if let Some(id) = m.get("id").and_then(|v| v.as_str()) {
                if !target.is_empty() {
                    target.push('&');
                }
                target.push_str(&format!("issued={id}"));
            }
        }
        resp = Response::from_parts(head, Body::from(bytes));
    }
    let outcome = if status.is_success() {
        format!("ok ({})", status.as_u16())
    } else {
        format!("refused ({})", status.as_u16())
    };
    if let Err(e) = audit.admin_action(&actor, &action, &target, &outcome).await {
        tracing::error!(target: "rampart::audit", error = %e, action, "an admin action could not be recorded in the audit trail");
    }
    resp
}
