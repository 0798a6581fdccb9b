//! Rampart: a security gateway for banking APIs.
//!
//! Read [`pipeline`] first: it is the whole life of a request. The other
//! modules are the phases it calls, in the order it calls them, plus the
//! machinery that builds a [`gateway::Gateway`] snapshot from the policy file
//! ([`config`]) and serves it ([`runtime`], [`listener`], [`admin`]).
//!
//! `ARCHITECTURE.md` at the repository root is the map.

pub mod admin;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod exchange;
pub mod gateway;
pub mod ip_filter;
pub mod listener;
pub mod metrics;
pub mod mfa;
pub mod pipeline;
pub mod rate_limit;
pub mod redact;
pub mod reject;
pub mod respond;
pub mod route;
pub mod runtime;
pub mod secret;
pub mod store;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testutil;
pub mod tls;
pub mod upstream;
pub mod validate;

/// The body of every response the gateway sends: streamed from an upstream,
/// or generated here.
pub type Body = http_body_util::Either<upstream::pool::ResponseBody, http_body_util::Full<bytes::Bytes>>;

/// The body of every request the gateway forwards: the client's, streamed,
/// or an empty one for a bodyless request it may retry.
pub type ForwardBody = http_body_util::Either<body::RequestBody, http_body_util::Full<bytes::Bytes>>;

/// A boxed error for the few places where causes are heterogeneous.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
