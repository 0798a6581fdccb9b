//! The five rate-limit algorithms, as pure state machines.
//!
//! Each takes its state and the current time (a monotonic `Duration` from
//! the gateway's [`Clock`](crate::clock::Clock), or the store's clock) and
//! decides. None reads a clock, sleeps or allocates per decision except the
//! sliding-window log, whose state is the log itself. Each file states its
//! promise: what it guarantees about admissions in any interval, and what it
//! costs per key. The tests check each promise with a fake clock and with
//! random arrival patterns.

pub mod fixed_window;
pub mod gcra;
pub mod sliding_window_counter;
pub mod sliding_window_log;
pub mod token_bucket;

use std::time::Duration;

/// A limit: `limit` requests per `per`, with `burst` (token bucket and GCRA
/// only) the most that may arrive at once; 0 means `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per `per`. At least 1.
    pub limit: u32,
    /// The period. More than zero.
    pub per: Duration,
    /// Bucket size for token bucket and GCRA; 0 means `limit`.
    pub burst: u32,
}

impl Rate {
    /// The bucket size used by token bucket and GCRA.
    pub fn capacity(&self) -> u32 {
        if self.burst == 0 {
            self.limit.max(1)
        } else {
            self.burst
        }
    }

    /// Time between two requests at the steady rate.
    pub fn interval(&self) -> Duration {
        self.per / self.limit.max(1)
    }
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted.
    Allow {
        /// Requests still admissible right now.
        remaining: u32,
        /// Time until the limit is fully available again.
        reset: Duration,
    },
    /// Refused.
    Deny {
        /// Time until a request would be admitted (for `Retry-After`).
        retry_after: Duration,
        /// Time until the limit is fully available again.
        reset: Duration,
    },
}

impl Decision {
    /// Whether the request is admitted.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// A rate-limit algorithm over some per-key state.
pub trait Algorithm {
    /// What is kept per key.
    type State: Default;
    /// Decides for one request arriving at `now`, updating the state only
    /// when the request is admitted.
    fn decide(&self, rate: &Rate, state: &mut Self::State, now: Duration) -> Decision;
}

/// `a - b`, or zero.
pub(crate) fn since(a: Duration, b: Duration) -> Duration {
    a.saturating_sub(b)
}
