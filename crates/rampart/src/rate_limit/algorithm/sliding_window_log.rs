//! Sliding-window log (exact).
//!
//! Promise: in every interval `(t − per, t]`, at most `limit` requests are
//! admitted, for every `t`: the log keeps the admission time of each of the
//! last `limit` admitted requests. Exact, at a price: state per key is
//! `limit × 16` bytes (plus the deque's header), so it suits small limits
//! (per-customer payments per minute) rather than large ones.

use std::collections::VecDeque;
use std::time::Duration;

use super::{since, Algorithm, Decision, Rate};

/// Sliding-window log.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlidingWindowLog;

/// Per-key state: admission times, oldest first.
#[derive(Debug, Clone, Default)]
pub struct State {
    log: VecDeque<Duration>,
}

impl Algorithm for SlidingWindowLog {
    type State = State;

    fn decide(&self, rate: &Rate, s: &mut State, now: Duration) -> Decision {
        // Forget admissions that left the window (t − per, t].
        while s.log.front().is_some_and(|&t| since(now, t) >= rate.per) {
            s.log.pop_front();
        }
        let limit = usize::try_from(rate.limit).unwrap_or(usize::MAX);
        let reset = s
            .log
            .back()
            .map_or(Duration::ZERO, |&t| rate.per.saturating_sub(since(now, t)));
        if s.log.len() < limit {
            s.log.push_back(now);
            let remaining = u32::try_from(limit - s.log.len()).unwrap_or(0);
            Decision::Allow {
                remaining,
                reset: rate.per,
            }
        } else {
            let oldest = s.log.front().copied().unwrap_or(now);
            Decision::Deny {
                retry_after: rate.per.saturating_sub(since(now, oldest)),
                reset,
            }
        }
    }
}
