//! Concurrency limits: how many requests may be in flight at once, per
//! route, per upstream and for the whole gateway (load shedding).
//!
//! A [`Gate`] counts requests from admission until their response headers
//! are ready; a request that finds a gate full is refused at once with 503
//! and `Retry-After` rather than queued, so an overloaded backend sheds load
//! instead of accumulating it. Gates belong to one policy snapshot: after a
//! reload, requests still in flight on the old snapshot no longer count
//! against the new gates (a brief over-admission, bounded by one reload's
//! worth of in-flight requests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A counter of requests in flight with a ceiling.
#[derive(Debug)]
pub struct Gate {
    limit: usize,
    current: AtomicUsize,
}

/// One admitted request; leaving decrements the gate.
#[derive(Debug)]
pub struct Permit(Arc<Gate>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// A gate admitting at most `limit` at once.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            current: AtomicUsize::new(0),
        })
    }

    /// Admits one more request, or `None` if the gate is full.
    pub fn try_enter(self: &Arc<Self>) -> Option<Permit> {
        let mut n = self.current.load(Ordering::Acquire);
        loop {
            if n >= self.limit {
                return None;
            }
            match self
                .current
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Permit(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_full_gate_refuses_and_a_permit_frees_its_place() {
        let g = Gate::new(2);
        let a = g.try_enter().unwrap();
        let _b = g.try_enter().unwrap();
        assert!(g.try_enter().is_none());
        drop(a);
        assert!(g.try_enter().is_some());
    }

    #[test]
    fn threads_never_exceed_the_limit() {
        let g = Gate::new(3);
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (g, peak) = (g.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Some(_p) = g.try_enter() {
                            peak.fetch_max(g.in_flight(), Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(g.in_flight(), 0);
    }
}
