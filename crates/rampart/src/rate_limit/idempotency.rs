//! Idempotency for money-moving calls (`Idempotency-Key`).
//!
//! On a route with `idempotency`, every request must carry an
//! `Idempotency-Key`. The first request with a key is forwarded and its
//! response (status, body, a few headers) is kept for the TTL; a retry with
//! the same key and the same request (method, path, body: compared by
//! SHA-256) gets that response replayed without reaching the upstream; the
//! same key with a different request gets 422; a duplicate while the first
//! is still in flight gets 409. Keys are scoped per route and per client:
//! the principal on authenticated routes (subject, else client id), the
//! client address otherwise ([`client_scope`]).
//! Records live in this process, or with `store = "redis"` on the `[redis]`
//! server, so a retry that lands on another gateway is still answered from
//! the record (a claim there lasts at most five minutes if its gateway dies
//! mid-request).
//!
//! Threat answered: a payment executed twice because a client retried after
//! a timeout. How it fails: a request whose upstream leg failed (502, 504,
//! or any 5xx) leaves no record, so the client can retry; the store is
//! bounded (oldest finished records go first) and a full store of requests
//! still in flight refuses new keys with 503 rather than forgetting one.
//! When Redis cannot answer, `[redis] on_failure = "deny"` answers 503;
//! `local` and `allow` keep records in this process meanwhile (a payment is
//! never forwarded without a record).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::config::FailurePolicy;
use super::redis::{Record as Kept, RedisStore};
use http::{HeaderMap, StatusCode};

/// Most records kept.
const MAX_RECORDS: usize = 100_000;

/// A finished response, kept for replay.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Status.
    pub status: StatusCode,
    /// The headers worth replaying (content type, location, …).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

type Scope = (Arc<str>, Box<str>, Box<str>);

#[derive(Debug)]
enum Record {
    InFlight {
        fingerprint: [u8; 32],
    },
    Done {
        fingerprint: [u8; 32],
        response: Stored,
        expires: Duration,
    },
}

/// What a new request with a key may do.
#[derive(Debug)]
pub enum Begin {
    /// First time: forward it, then [`Claim::complete`] or drop the claim.
    New(Claim),
    /// Same key, same request, finished: replay this.
    Replay(Stored),
    /// Same key, different request.
    Mismatch,
    /// Same key, still in flight.
    InFlight,
    /// The store is full of requests in flight.
    Full,
}

/// The records of one process (outlive reloads).
#[derive(Debug, Default)]
pub struct IdempotencyStore {
    records: Mutex<HashMap<Scope, (Record, Duration)>>,
}

/// The right to complete a key. Dropped without completing (the upstream
/// leg failed, the client went away), it frees the key for a retry.
#[derive(Debug)]
pub struct Claim(ClaimIn);

#[derive(Debug)]
enum ClaimIn {
    Memory {
        store: Arc<IdempotencyStore>,
        scope: Option<Scope>,
    },
    Redis {
        store: Arc<RedisStore>,
        key: String,
        marker: Vec<u8>,
        settled: bool,
    },
}

/// Redis could not answer and the policy is `deny`.
#[derive(Debug)]
pub struct StoreDown;

/// Starts a request with `key` on `route` from `client`, in Redis when
/// `redis` is given, else in `limits`' memory.
pub async fn begin(
    limits: &super::Limits,
    redis: Option<&Arc<RedisStore>>,
    route: &Arc<str>,
    client: &str,
    key: &str,
    fingerprint: [u8; 32],
    now: Duration,
) -> Result<Begin, StoreDown> {
    let Some(r) = redis else {
        return Ok(limits.idempotency.begin(route, client, key, fingerprint, now));
    };
    let rkey = r.idempotency_key(route, client, key);
    let marker = super::redis::claim_marker(&fingerprint);
    match r.idempotency_begin(&rkey, &marker).await {
        Ok(None) => Ok(Begin::New(Claim(ClaimIn::Redis {
            store: r.clone(),
            key: rkey,
            marker,
            settled: false,
        }))),
        Ok(Some(existing)) => Ok(match super::redis::decode_record(&existing) {
            Ok(Kept::InFlight(f)) if f == fingerprint => Begin::InFlight,
            Ok(Kept::Done(f, stored)) if f == fingerprint => Begin::Replay(stored),
            Ok(_) => Begin::Mismatch,
            Err(_) => Begin::Full,
        }),
        Err(_) => match r.policy().on_failure {
            FailurePolicy::Deny => Err(StoreDown),
            FailurePolicy::Allow | FailurePolicy::Local => {
                Ok(limits.idempotency.begin(route, client, key, fingerprint, now))
            }
        },
    }
}

impl IdempotencyStore {
    /// Starts a request with `key` on `route` from `client`.
    pub fn begin(
        self: &Arc<Self>,
        route: &Arc<str>,
        client: &str,
        key: &str,
        fingerprint: [u8; 32],
        now: Duration,
    ) -> Begin {
        let scope: Scope = (route.clone(), client.into(), key.into());
        let Ok(mut map) = self.records.lock() else {
            return Begin::Full;
        };
        if let Some((record, _)) = map.get(&scope) {
            match record {
                Record::InFlight { fingerprint: f } if *f == fingerprint => return Begin::InFlight,
                Record::InFlight { .. } => return Begin::Mismatch,
                Record::Done { expires, .. } if *expires <= now => {
                    map.remove(&scope);
                }
                Record::Done {
                    fingerprint: f,
                    response,
                    ..
                } if *f == fingerprint => return Begin::Replay(response.clone()),
                Record::Done { .. } => return Begin::Mismatch,
            }
        }
        if map.len() >= MAX_RECORDS {
            map.retain(|_, (r, _)| !matches!(r, Record::Done { expires, .. } if *expires <= now));
            if map.len() >= MAX_RECORDS {
                let oldest = map
                    .iter()
                    .filter(|(_, (r, _))| matches!(r, Record::Done { .. }))
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => {
                        map.remove(&k);
                    }
                    None => return Begin::Full,
                }
            }
        }
        map.insert(scope.clone(), (Record::InFlight { fingerprint }, now));
        Begin::New(Claim(ClaimIn::Memory {
            store: self.clone(),
            scope: Some(scope),
        }))
    }
}

impl Claim {
    /// Keeps `response` for `ttl` from `now`. If Redis cannot take it, the
    /// claim is released instead, so a retry is forwarded again rather than
    /// refused for five minutes.
    pub async fn complete(mut self, response: Stored, fingerprint: [u8; 32], now: Duration, ttl: Duration) {
        match &mut self.0 {
            ClaimIn::Memory { store, scope } => {
                if let (Some(scope), Ok(mut map)) = (scope.take(), store.records.lock()) {
                    map.insert(
                        scope,
                        (
                            Record::Done {
                                fingerprint,
                                response,
                                expires: now + ttl,
                            },
                            now,
                        ),
                    );
                }
            }
            ClaimIn::Redis {
                store,
                key,
                marker,
                settled,
            } => {
                let record = super::redis::encode_record(&fingerprint, &response);
                if store
                    .idempotency_settle(key, marker, Some(&record), ttl)
                    .await
                    .is_ok()
                {
                    *settled = true;
                }
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        match &mut self.0 {
            ClaimIn::Memory { store, scope } => {
                if let (Some(scope), Ok(mut map)) = (scope.take(), store.records.lock()) {
                    map.remove(&scope);
                }
            }
            ClaimIn::Redis {
                store,
                key,
                marker,
                settled: false,
            } => {
                let (store, key, marker) = (store.clone(), std::mem::take(key), std::mem::take(marker));
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = store
                            .idempotency_settle(&key, &marker, None, Duration::from_millis(1))
                            .await;
                    });
                }
            }
            ClaimIn::Redis { .. } => {}
        }
    }
}

/// Whose keys these are: `p:<subject or client id>` for a principal,
/// `ip:<address>` otherwise.
pub fn client_scope(principal: Option<&crate::authn::Principal>, client: IpAddr) -> String {
    match principal.and_then(|p| p.subject().or(p.client_id())) {
        Some(id) => format!("p:{}|{id}", principal.map(|p| p.issuer()).unwrap_or("")),
        None => format!("ip:{client}"),
    }
}

/// SHA-256 over method, path and body, each length-prefixed.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [method.as_bytes(), path.as_bytes(), body] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
