//! Time, read in one place.
//!
//! Every phase that needs the time asks a [`Clock`]. Production uses
//! [`SystemClock`]; tests use [`FakeClock`] and move time by hand, so no test
//! sleeps to observe a timeout, a cool-down or an expiry. Reading
//! `SystemTime::now()` or `Instant::now()` elsewhere on the request path is a
//! review error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time and of monotonic time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Wall-clock time, for timestamps and token validity.
    fn now(&self) -> SystemTime;
    /// Monotonic time since an arbitrary, fixed origin: for durations,
    /// cool-downs and latencies. Never goes backwards.
    fn monotonic(&self) -> Duration;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A system clock whose monotonic origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// A shared system clock.
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that only moves when told to. Both readings advance together.
#[derive(Debug, Default)]
pub struct FakeClock {
    /// Nanoseconds since the Unix epoch.
    wall_nanos: AtomicU64,
    /// Nanoseconds since the monotonic origin.
    mono_nanos: AtomicU64,
}

impl FakeClock {
    /// A fake clock showing the given Unix time (seconds).
    pub fn at_unix(secs: u64) -> Arc<Self> {
        Arc::new(Self {
            wall_nanos: AtomicU64::new(secs.saturating_mul(1_000_000_000)),
            mono_nanos: AtomicU64::new(0),
        })
    }

    /// Moves both readings forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.wall_nanos.fetch_add(nanos, Ordering::SeqCst);
        self.mono_nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.wall_nanos.load(Ordering::SeqCst))
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.mono_nanos.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let clock = FakeClock::at_unix(1_700_000_000);
        let t0 = clock.now();
        let m0 = clock.monotonic();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), t0 + Duration::from_secs(5));
        assert_eq!(clock.monotonic(), m0 + Duration::from_secs(5));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.monotonic();
        let b = clock.monotonic();
        assert!(b >= a);
    }
}
