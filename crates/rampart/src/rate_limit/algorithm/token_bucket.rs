//! Token bucket.
//!
//! Promise: a bucket of `capacity` tokens refills at `limit / per`; each
//! request takes one. In any interval of length `t`, at most
//! `capacity + t × limit / per` requests are admitted. Bursts up to
//! `capacity` pass at once after a quiet period. State per key: 16 bytes
//! (tokens in micro-tokens, last refill time).

use std::time::Duration;

use super::{since, Algorithm, Decision, Rate};

/// Token bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenBucket;

/// Per-key state.
#[derive(Debug, Clone, Copy)]
pub struct State {
    /// Tokens, in millionths (integer arithmetic, no float drift).
    micro: u64,
    last: Duration,
    started: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            micro: 0,
            last: Duration::ZERO,
            started: false,
        }
    }
}

const MICRO: u64 = 1_000_000;

impl Algorithm for TokenBucket {
    type State = State;

    fn decide(&self, rate: &Rate, s: &mut State, now: Duration) -> Decision {
        let cap = u64::from(rate.capacity()) * MICRO;
        let per_ns = rate.per.as_nanos().max(1);
        if !s.started {
            *s = State {
                micro: cap,
                last: now,
                started: true,
            };
        } else {
            // micro-tokens gained = elapsed × limit × MICRO / per
            let gained = since(now, s.last).as_nanos() * u128::from(rate.limit) * u128::from(MICRO) / per_ns;
            s.micro = cap.min(s.micro.saturating_add(u64::try_from(gained).unwrap_or(u64::MAX)));
            s.last = now.max(s.last);
        }
        let time_for = |micro: u64| {
            let ns = u128::from(micro) * per_ns / (u128::from(rate.limit.max(1)) * u128::from(MICRO));
            Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
        };
        if s.micro >= MICRO {
            s.micro -= MICRO;
            Decision::Allow {
                remaining: u32::try_from(s.micro / MICRO).unwrap_or(u32::MAX),
                reset: time_for(cap - s.micro),
            }
        } else {
            Decision::Deny {
                retry_after: time_for(MICRO - s.micro),
                reset: time_for(cap - s.micro),
            }
        }
    }
}
