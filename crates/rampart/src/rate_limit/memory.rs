//! The in-memory store: per-key algorithm state in a sharded map.
//!
//! One node's counters. Keys are spread over shards, each behind its own
//! mutex held only for one decision (no await inside), so concurrent
//! requests for different keys rarely contend and never wait on a global
//! lock. Memory is bounded: each shard holds at most `max_keys / shards`
//! keys; when a full shard needs room, it first drops keys idle for longer
//! than their window (they would start fresh anyway), then, if still full,
//! the least recently used eighth of the shard. Evicting a key forgets its history, which
//! can only let that key through sooner: the bound trades exactness under
//! memory pressure for a process that cannot be made to grow without limit
//! by a flood of distinct keys.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Duration;

use super::algorithm::{Algorithm, Decision, Rate};

struct Entry<S> {
    state: S,
    last_seen: Duration,
}

/// A sharded map from key to algorithm state.
pub struct MemoryStore<K, S> {
    shards: Vec<Mutex<HashMap<K, Entry<S>>>>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq + Clone, S: Default> MemoryStore<K, S> {
    /// A store of at most `max_keys` keys over `shards` shards (both at
    /// least 1).
    pub fn new(max_keys: usize, shards: usize) -> Self {
        let shards = shards.max(1);
        Self {
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_keys.div_ceil(shards).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Decides for `key` at `now`. A poisoned shard (a panic elsewhere while
    /// it was held) refuses: the limiter fails closed.
    pub fn decide<A: Algorithm<State = S>>(
        &self,
        algorithm: &A,
        rate: &Rate,
        key: &K,
        now: Duration,
    ) -> Decision {
        let i = usize::try_from(self.hasher.hash_one(key)).unwrap_or(0) % self.shards.len();
        let Some(shard) = self.shards.get(i) else {
            return Decision::Deny {
                retry_after: rate.per,
                reset: rate.per,
            };
        };
        let Ok(mut map) = shard.lock() else {
            return Decision::Deny {
                retry_after: rate.per,
                reset: rate.per,
            };
        };
        // A known key (the common case): one lookup, no key clone.
        if let Some(entry) = map.get_mut(key) {
            entry.last_seen = entry.last_seen.max(now);
            return algorithm.decide(rate, &mut entry.state, now);
        }
        if map.len() >= self.per_shard {
            make_room(&mut map, now, rate.per, self.per_shard);
        }
        let entry = map.entry(key.clone()).or_insert_with(|| Entry {
            state: S::default(),
            last_seen: now,
        });
        algorithm.decide(rate, &mut entry.state, now)
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees room in a full shard: keys idle past their window go first; if
/// that frees nothing, the least recently used eighth goes. Work is
/// proportional to the shard, but happens at most once per `cap / 8`
/// insertions, so a flood of new keys costs amortised O(log n) each.
fn make_room<K: Hash + Eq + Clone, S>(
    map: &mut HashMap<K, Entry<S>>,
    now: Duration,
    window: Duration,
    cap: usize,
) {
    map.retain(|_, e| now.saturating_sub(e.last_seen) < window);
    if map.len() < cap {
        return;
    }
    let mut ages: Vec<(Duration, K)> = map.iter().map(|(k, e)| (e.last_seen, k.clone())).collect();
    let n = (cap / 8).max(1).min(ages.len());
    if n < ages.len() {
        ages.select_nth_unstable_by_key(n, |(t, _)| *t);
    }
    for (_, k) in ages.iter().take(n) {
        map.remove(k);
    }
}
