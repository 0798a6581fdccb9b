//! Fixed window.
//!
//! Promise: time is cut into windows of length `per` (aligned on the
//! clock's origin); at most `limit` requests are admitted per window. Across
//! a window boundary up to `2 × limit` can pass within a short interval:
//! that is the price of its 16 bytes of state per key (window index and
//! count), and why the sliding variants exist.

use std::time::Duration;

use super::{Algorithm, Decision, Rate};

/// Fixed window.
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedWindow;

/// Per-key state.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    window: u64,
    count: u32,
}

fn window_of(now: Duration, per: Duration) -> u64 {
    u64::try_from(now.as_nanos() / per.as_nanos().max(1)).unwrap_or(u64::MAX)
}

impl Algorithm for FixedWindow {
    type State = State;

    fn decide(&self, rate: &Rate, s: &mut State, now: Duration) -> Decision {
        let w = window_of(now, rate.per);
        if w != s.window {
            *s = State { window: w, count: 0 };
        }
        let per_ns = rate.per.as_nanos().max(1);
        let into = now.as_nanos() % per_ns;
        let reset = Duration::from_nanos(u64::try_from(per_ns - into).unwrap_or(u64::MAX));
        if s.count < rate.limit {
            s.count += 1;
            Decision::Allow {
                remaining: rate.limit - s.count,
                reset,
            }
        } else {
            Decision::Deny {
                retry_after: reset,
                reset,
            }
        }
    }
}
