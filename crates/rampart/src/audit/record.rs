//! The audit record: typed events, and the chain entry that carries them.
//!
//! Every event is a struct with named fields (an allow-list: nothing that is
//! not a field here can reach the trail). Free-text fields (path, query,
//! refusal cause, admin target) are redacted by [`crate::redact`] when the
//! event is built. An [`Entry`] wraps one event with its sequence number,
//! the hash of its predecessor and its time; its canonical JSON (`body`) is
//! what is hashed, stored and exported, byte for byte.
//!
//! Threat answered: a trail that holds secrets, or whose records can be
//! changed without the change showing. How it fails: serialising a record
//! cannot fail for these types (no maps with non-string keys, no floats
//! that are not finite); if it ever did, the writer reports the sink as
//! failed rather than writing something else.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::exchange::Exchange;
use crate::redact;

/// SHA-256 of an entry body.
pub type Hash = [u8; 32];

/// The hash before the first entry.
pub const GENESIS: Hash = [0; 32];

/// One event of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A request, accepted or refused.
    Request(Box<RequestEvent>),
    /// An action on the admin API (ban, revocation, reload, …).
    Admin(AdminEvent),
    /// A policy reload, successful or refused.
    Reload(ReloadEvent),
    /// A signed checkpoint over the chain so far.
    Checkpoint(Checkpoint),
    /// The writer started (after a restart: what it found).
    Start(StartEvent),
    /// Old segments were deleted by the retention policy.
    Retention(RetentionEvent),
}

impl Event {
    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Request(_) => "request",
            Event::Admin(_) => "admin",
            Event::Reload(_) => "reload",
            Event::Checkpoint(_) => "checkpoint",
            Event::Start(_) => "start",
            Event::Retention(_) => "retention",
        }
    }
}

/// Who was calling, as far as authentication established it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    /// The configured issuer name (`api_key`, `mtls` or an `[[issuers]]` name).
    pub issuer: String,
    /// How: `bearer`, `dpop`, `mtls-bound`, `mtls`, `api_key`.
    pub method: String,
    /// `sub` (redacted like any free text: an e-mail address is masked).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    /// `client_id`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    /// `jti`, or the API key's public id (never the key).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_id: Option<String>,
}

/// Risk signals, when the threat capability produced some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskSignals {
    /// Score, 0 to 100.
    pub score: u16,
    /// The signals that contributed.
    pub signals: Vec<String>,
}

/// One request, accepted or refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEvent {
    /// The gateway's request id (also sent to the client and upstream).
    pub request_id: String,
    /// `x-fapi-interaction-id` (the client's if well-formed, else generated).
    pub interaction_id: String,
    /// The client's address (behind trusted proxies, the one they reported).
    pub client_ip: IpAddr,
    /// The listener it arrived on.
    pub listener: String,
    /// The matched route, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub route: Option<String>,
    /// Method (non-standard methods as `OTHER`).
    pub method: String,
    /// The normalised path, redacted; absent if it did not normalise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    /// The query string, redacted (only allow-listed parameters keep values).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub query: Option<String>,
    /// HTTP version.
    pub version: String,
    /// Status sent to the client (499: the client went away first).
    pub status: u16,
    /// `forwarded`, or the stable refusal code.
    pub outcome: String,
    /// The precise internal cause of a refusal, redacted (never sent to the
    /// client).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cause: Option<String>,
    /// Who was calling.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub principal: Option<PrincipalRecord>,
    /// The `RateLimit` state sent with the answer (`"payments";r=3;t=42`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rate_limit: Option<String>,
    /// Risk signals, when present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub risk: Option<RiskSignals>,
    /// The upstream's status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upstream_status: Option<u16>,
    /// How long the upstream took to answer (ms).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upstream_ms: Option<f64>,
    /// Time from the request's start to the response headers (ms).
    pub latency_ms: f64,
    /// Request body bytes, when known (`Content-Length`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes_in: Option<u64>,
    /// Response body bytes, when known before streaming.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes_out: Option<u64>,
    /// Findings let through (`flag`) and verified message signatures, as
    /// `kind at pointer` (`injection:sqli at /remittance_information`);
    /// never the values.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub signals: Vec<String>,
    /// A one-time code confirmed the request (RFC 6238 transaction
    /// confirmation). Refused attempts are in `outcome` and `cause`.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub confirmed: bool,
}

fn ms(d: Duration) -> f64 {
    // Microsecond precision; always finite.
    (d.as_micros() as f64) / 1000.0
}

/// Most signals one record carries, and the longest pointer kept of each
/// (a client chooses member names).
const MAX_SIGNALS: usize = 32;
const MAX_POINTER: usize = 256;

impl RequestEvent {
    /// The record of a request from its context. Free text is redacted here.
    pub fn from_exchange(ex: &Exchange, status: u16, latency: Duration, bytes_out: Option<u64>) -> Self {
        let principal = ex.principal.as_deref().map(|p| {
            let method = if p.issuer() == crate::authn::api_keys::ISSUER {
                "api_key"
            } else if p.issuer() == "mtls" {
                "mtls"
            } else if p.cnf().jkt.is_some() {
                "dpop"
            } else if p.cnf().x5t_s256.is_some() {
                "mtls-bound"
            } else {
                "bearer"
            };
            PrincipalRecord {
                issuer: p.issuer().to_string(),
                method: method.to_string(),
                subject: p.subject().map(|s| redact::redact(s).into_owned()),
                client_id: p.client_id().map(|s| redact::redact(s).into_owned()),
                token_id: p.token_id().map(|s| redact::redact(s).into_owned()),
            }
        });
        Self {
            request_id: ex.request_id.clone(),
            interaction_id: ex.interaction_id.to_str().unwrap_or("invalid").to_string(),
            client_ip: ex.client_ip,
            listener: ex.conn.listener.to_string(),
            route: ex.route_id.as_deref().map(str::to_owned),
            method: ex.method_label().to_string(),
            path: ex
                .path
                .as_deref()
                .map(|p| redact::redact_url_part(p).into_owned()),
            // Redacted when the exchange started (the raw query is never kept).
            query: ex.query.clone(),
            version: ex.version_label().to_string(),
            status,
            outcome: ex.outcome.to_string(),
            cause: ex.cause.as_deref().map(|c| redact::redact(c).into_owned()),
            principal,
            rate_limit: ex
                .rate_limit
                .as_ref()
                .and_then(|(_, state)| state.to_str().ok())
                .map(|s| redact::redact(s).into_owned()),
            risk: None,
            upstream_status: ex.upstream_status,
            upstream_ms: ex.upstream_latency.map(ms),
            latency_ms: ms(latency),
            bytes_in: ex.bytes_in,
            bytes_out,
            signals: ex
                .signals
                .iter()
                .take(MAX_SIGNALS)
                // The kind is the gateway's own words (a class, a configured
                // client); the pointer holds the client's member names.
                .map(|s| match s.pointer.as_str() {
                    "" => s.kind.clone(),
                    at => format!(
                        "{} at {}",
                        s.kind,
                        redact::redact_url_part(redact::prefix(at, MAX_POINTER))
                    ),
                })
                .collect(),
            confirmed: ex.confirmed,
        }
    }
}

/// An action on the admin plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEvent {
    /// Who: `admin-token`, a user name, a certificate's subject.
    pub actor: String,
    /// What: `ban`, `unban`, `revoke`, `unrevoke`, `reload`, …
    pub action: String,
    /// On what (a CIDR, a `jti`, …), redacted.
    pub target: String,
    /// `ok`, `refused`, `failed: …` (redacted).
    pub outcome: String,
}

/// A policy reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadEvent {
    /// What asked for it: `sighup`, `admin-api`, …
    pub trigger: String,
    /// The new generation, if it succeeded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub generation: Option<u64>,
    /// `ok` or `refused`.
    pub outcome: String,
    /// How many problems refused it.
    pub problems: usize,
    /// SHA-256 (hex) of the policy file that was read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy_sha256: Option<String>,
}

/// A checkpoint: a signature over the chain up to the entry before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sequence number it covers (the entry just before).
    pub covers: u64,
    /// That entry's hash (hex).
    pub hash: String,
    /// Id of the signing key.
    pub key_id: String,
    /// Ed25519 signature (base64url) over [`checkpoint_message`].
    pub signature: String,
}

/// The writer started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartEvent {
    /// `rampart` version.
    pub version: String,
    /// The last entry found from before (0: a new trail; absent on a
    /// shared table, where other nodes write too).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resumed_after: Option<u64>,
    /// Bytes of an incomplete last write that were cut off (a crash
    /// mid-write; those records were never acknowledged).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub torn_bytes: u64,
    /// Entries the signed head promised but the files no longer hold
    /// (`[first, last]`): lost or removed while the gateway was down.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lost: Option<[u64; 2]>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Segments deleted by the retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionEvent {
    /// Segments deleted (`[first, last]` segment numbers).
    pub segments: [u64; 2],
    /// The first sequence number still kept.
    pub first_kept: u64,
    /// The hash that entry's `prev` holds (hex): it anchors the shortened
    /// trail.
    pub first_kept_prev: String,
}

/// The hashed part of an entry, in its canonical field order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// Hash of the previous entry's body (hex; zeros before the first).
    pub prev: String,
    /// When the event happened (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// Which gateway node wrote it (clusters).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    /// What happened.
    pub event: Event,
}

/// An entry as stored: its canonical body and the body's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Sequence number (as in the body).
    pub seq: u64,
    /// SHA-256 of `body`.
    pub hash: Hash,
    /// The canonical JSON of the [`Entry`].
    pub body: Vec<u8>,
}

/// The end of a chain: the last sequence number and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Last sequence number (0: empty).
    pub seq: u64,
    /// Its hash ([`GENESIS`] when empty).
    pub hash: Hash,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS,
        }
    }
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> Hash {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    h
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Parses 64 hex digits.
pub fn parse_hash(s: &str) -> Option<Hash> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        h[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(h)
}

/// RFC 3339 (UTC, milliseconds).
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The serialised form of an [`Entry`], borrowing its event (the same
/// fields, in the same order, so [`Entry`] reads it back).
#[derive(Serialize)]
struct EntryRef<'a> {
    seq: u64,
    prev: &'a str,
    time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    event: &'a Event,
}

/// Appends `event` to the chain ending at `head`: the new link, and `head`
/// moved to it.
pub fn link(
    head: &mut Head,
    time: &str,
    node: Option<&str>,
    event: &Event,
) -> Result<Link, serde_json::Error> {
    let prev = hex(&head.hash);
    let entry = EntryRef {
        seq: head.seq + 1,
        prev: &prev,
        time,
        node,
        event,
    };
    // Most entries are 500-900 bytes: one allocation, no regrowth.
    let mut body = Vec::with_capacity(1024);
    serde_json::to_writer(&mut body, &entry)?;
    let hash = sha256(&body);
    *head = Head { seq: entry.seq, hash };
    Ok(Link {
        seq: entry.seq,
        hash,
        body,
    })
}

/// What the writer asks a sink to append, in order.
#[derive(Debug, Clone)]
pub enum Pending {
    /// An event that happened at `time` (RFC 3339).
    Event {
        /// When.
        time: String,
        /// What.
        event: Event,
    },
    /// A checkpoint over everything before it, signed when it is linked.
    Checkpoint {
        /// When.
        time: String,
    },
}

/// Links `pending` after `head` (moving it), signing checkpoints with
/// `signer`.
pub fn link_all(
    head: &mut Head,
    node: Option<&str>,
    signer: &super::crypto::Signer,
    pending: &[Pending],
) -> Result<Vec<Link>, serde_json::Error> {
    let mut links = Vec::with_capacity(pending.len());
    for p in pending {
        let link = match p {
            Pending::Event { time, event } => link(head, time, node, event)?,
            Pending::Checkpoint { time } => {
                let sig = signer.sign(&checkpoint_message(CHECKPOINT_LABEL, head.seq, &head.hash));
                let event = Event::Checkpoint(Checkpoint {
                    covers: head.seq,
                    hash: hex(&head.hash),
                    key_id: signer.key_id().to_string(),
                    signature: super::crypto::b64(&sig),
                });
                link(head, time, node, &event)?
            }
        };
        links.push(link);
    }
    Ok(links)
}

/// The signed head of a chain ending at `head`.
pub fn sign_head(signer: &super::crypto::Signer, head: &Head, time: &str) -> super::verify::SignedHead {
    let sig = signer.sign(&checkpoint_message(HEAD_LABEL, head.seq, &head.hash));
    super::verify::SignedHead {
        seq: head.seq,
        hash: hex(&head.hash),
        time: time.to_string(),
        key_id: signer.key_id().to_string(),
        signature: super::crypto::b64(&sig),
    }
}

/// What a checkpoint or a signed head signs: a domain label, the sequence
/// number and the hash of the entry covered.
pub fn checkpoint_message(label: &str, seq: u64, hash: &Hash) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + 1 + 8 + 32);
    m.extend_from_slice(label.as_bytes());
    m.push(0);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// Label of in-chain checkpoints.
pub const CHECKPOINT_LABEL: &str = "rampart-audit-checkpoint-v1";
/// Label of the signed head.
pub const HEAD_LABEL: &str = "rampart-audit-head-v1";

/// One line of `rampart audit export --format jsonl` (and of the JSON-lines
/// sinks): the sequence number, the entry's hash and the entry itself, so
/// that a SIEM can re-check the chain.
pub fn json_line(link: &Link) -> String {
    let body = String::from_utf8_lossy(&link.body);
    format!(
        "{{\"seq\":{},\"hash\":\"{}\",\"entry\":{}}}",
        link.seq,
        hex(&link.hash),
        body
    )
}
