//! GCRA (generic cell rate algorithm; the leaky bucket as a meter).
//!
//! Promise: requests are admitted at the steady interval `T = per / limit`
//! with a tolerance of `capacity − 1` intervals, so at most `capacity`
//! arrive at once and, in any interval of length `t`, at most
//! `capacity + t / T` are admitted. It is token-bucket-equivalent with one
//! timestamp of state per key (8 bytes: the theoretical arrival time), which
//! is why Redis implementations favour it.

use std::time::Duration;

use super::{since, Algorithm, Decision, Rate};

/// GCRA.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gcra;

/// Per-key state: the theoretical arrival time of the next request.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    tat: Duration,
}

impl Algorithm for Gcra {
    type State = State;

    fn decide(&self, rate: &Rate, s: &mut State, now: Duration) -> Decision {
        let t = rate.interval().max(Duration::from_nanos(1));
        let tolerance = t * (rate.capacity() - 1);
        let tat = s.tat.max(now);
        // Admit if the next theoretical arrival is within the tolerance.
        if since(tat, now) <= tolerance {
            s.tat = tat + t;
            let backlog = since(s.tat, now);
            let used = u32::try_from(backlog.as_nanos().div_ceil(t.as_nanos())).unwrap_or(u32::MAX);
            Decision::Allow {
                remaining: rate.capacity().saturating_sub(used),
                reset: backlog,
            }
        } else {
            Decision::Deny {
                retry_after: since(tat, now) - tolerance,
                reset: since(tat, now),
            }
        }
    }
}
