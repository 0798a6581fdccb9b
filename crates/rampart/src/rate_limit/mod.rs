//! Rate limiting (OWASP API4): how many requests a key may make, by one of
//! five algorithms.
//!
//! This module holds the algorithms ([`algorithm`]): pure, clock-injected
//! state machines, each with its promise documented and tested, and the
//! bounded, sharded in-memory store ([`memory`]). The Redis store (one Lua
//! script per algorithm), the keys
//! (client IP, subject, client id, API key, route, header), the policy
//! (`routes[].rate_limit`), the 429 and `RateLimit` headers and the failure
//! policy are the rest of the traffic-control capability and are not wired
//! into the pipeline yet.

pub mod algorithm;
pub mod memory;
#[cfg(test)]
mod tests;
