#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::algorithm::fixed_window::FixedWindow;
use super::algorithm::gcra::Gcra;
use super::algorithm::sliding_window_counter::SlidingWindowCounter;
use super::algorithm::sliding_window_log::SlidingWindowLog;
use super::algorithm::token_bucket::TokenBucket;
use super::algorithm::{Algorithm, Decision, Rate};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn rate(limit: u32, per: Duration, burst: u32) -> Rate {
    Rate { limit, per, burst }
}

/// Runs arrivals at the given times; returns the admitted times.
fn run<A: Algorithm>(a: &A, r: &Rate, times: &[Duration]) -> Vec<Duration> {
    let mut s = A::State::default();
    times
        .iter()
        .copied()
        .filter(|&t| a.decide(r, &mut s, t).allowed())
        .collect()
}

use crate::testutil::Rng;

/// Random, bursty arrival times (sorted) over ~10 periods of `per`.
fn arrivals(seed: u64, per: Duration) -> Vec<Duration> {
    let mut rng = Rng(seed);
    let mut t = Duration::ZERO;
    let mut out = Vec::new();
    let step_max = per.as_nanos() as u64 / 8 + 1;
    while t < per * 10 {
        // Mostly tight bursts, sometimes quiet gaps.
        let gap = if rng.next().is_multiple_of(10) {
            rng.next() % (step_max * 8)
        } else {
            rng.next() % (step_max / 16 + 1)
        };
        t += Duration::from_nanos(gap);
        out.push(t);
    }
    out
}

/// The largest number of admissions in any half-open window `(t − w, t]`.
fn max_in_window(admitted: &[Duration], w: Duration) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..admitted.len() {
        while admitted[hi].saturating_sub(admitted[lo]) >= w {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[test]
fn token_bucket_allows_a_burst_then_the_rate() {
    let r = rate(10, ms(1000), 5);
    let mut s = Default::default();
    for i in 0..5 {
        let d = TokenBucket.decide(&r, &mut s, ms(0));
        assert_eq!(
            d,
            Decision::Allow {
                remaining: 4 - i,
                reset: ms(100) * (i + 1)
            }
        );
    }
    let Decision::Deny { retry_after, .. } = TokenBucket.decide(&r, &mut s, ms(0)) else {
        panic!()
    };
    assert_eq!(retry_after, ms(100));
    assert!(!TokenBucket.decide(&r, &mut s, ms(99)).allowed());
    assert!(TokenBucket.decide(&r, &mut s, ms(100)).allowed());
    // After a long quiet period the bucket is full again, never fuller.
    let admitted = (0..10)
        .filter(|_| TokenBucket.decide(&r, &mut s, ms(60_000)).allowed())
        .count();
    assert_eq!(admitted, 5);
}

#[test]
fn fixed_window_counts_per_aligned_window() {
    let r = rate(3, ms(1000), 0);
    let admitted = run(
        &FixedWindow,
        &r,
        &[
            ms(0),
            ms(1),
            ms(2),
            ms(3),
            ms(999),
            ms(1000),
            ms(1001),
            ms(1002),
            ms(1003),
        ],
    );
    assert_eq!(admitted, [ms(0), ms(1), ms(2), ms(1000), ms(1001), ms(1002)]);
    let mut s = Default::default();
    for t in [0, 1, 2] {
        FixedWindow.decide(&r, &mut s, ms(t));
    }
    assert_eq!(
        FixedWindow.decide(&r, &mut s, ms(400)),
        Decision::Deny {
            retry_after: ms(600),
            reset: ms(600)
        }
    );
}

#[test]
fn sliding_window_log_is_exact() {
    let r = rate(3, ms(1000), 0);
    // The boundary burst a fixed window admits is refused here.
    let admitted = run(
        &SlidingWindowLog,
        &r,
        &[ms(900), ms(950), ms(990), ms(1000), ms(1100), ms(1899), ms(1900)],
    );
    assert_eq!(admitted, [ms(900), ms(950), ms(990), ms(1900)]);
    let mut s = Default::default();
    for t in [0, 10, 20] {
        SlidingWindowLog.decide(&r, &mut s, ms(t));
    }
    let Decision::Deny { retry_after, .. } = SlidingWindowLog.decide(&r, &mut s, ms(500)) else {
        panic!()
    };
    assert_eq!(retry_after, ms(500));
    assert!(SlidingWindowLog.decide(&r, &mut s, ms(1000)).allowed());
}

#[test]
fn sliding_window_counter_weights_the_previous_window() {
    let r = rate(10, ms(1000), 0);
    let mut s = Default::default();
    // 10 in the first window.
    for i in 0..10 {
        assert!(SlidingWindowCounter.decide(&r, &mut s, ms(100 + i)).allowed());
    }
    // At 1.5 s the previous window still weighs 5: five more fit.
    let admitted = (0..10)
        .filter(|_| SlidingWindowCounter.decide(&r, &mut s, ms(1500)).allowed())
        .count();
    assert_eq!(admitted, 5);
    // A long gap forgets everything.
    let admitted = (0..12)
        .filter(|_| SlidingWindowCounter.decide(&r, &mut s, ms(10_000)).allowed())
        .count();
    assert_eq!(admitted, 10);
}

#[test]
fn gcra_spaces_requests_with_a_tolerance() {
    let r = rate(10, ms(1000), 3);
    let mut s = Default::default();
    for _ in 0..3 {
        assert!(Gcra.decide(&r, &mut s, ms(0)).allowed());
    }
    let Decision::Deny { retry_after, .. } = Gcra.decide(&r, &mut s, ms(0)) else {
        panic!()
    };
    assert_eq!(retry_after, ms(100));
    assert!(!Gcra.decide(&r, &mut s, ms(99)).allowed());
    assert!(Gcra.decide(&r, &mut s, ms(100)).allowed());
}

/// After any refusal, a request at `now + retry_after` is admitted (for the
/// algorithms whose `retry_after` is exact).
#[test]
fn retry_after_is_honest() {
    fn check<A: Algorithm>(a: &A, r: &Rate, seed: u64) {
        let mut s = A::State::default();
        for &t in &arrivals(seed, r.per) {
            if let Decision::Deny { retry_after, .. } = a.decide(r, &mut s, t) {
                let ok = a.decide(r, &mut s, t + retry_after).allowed();
                assert!(
                    ok,
                    "{} refused again at +{retry_after:?}",
                    std::any::type_name::<A>()
                );
                return;
            }
        }
        panic!(
            "{}: the traffic never hit the limit (seed {seed})",
            std::any::type_name::<A>()
        );
    }
    let r = rate(7, ms(700), 4);
    for seed in 1..20 {
        check(&TokenBucket, &r, seed);
        check(&Gcra, &r, seed);
        check(&SlidingWindowLog, &r, seed);
        check(&FixedWindow, &r, seed);
    }
}

/// Each algorithm's promise over random bursty traffic.
#[test]
fn promises_hold_for_random_traffic() {
    for seed in 1..60 {
        let per = ms(1000);
        let r = rate(5 + (seed % 7) as u32, per, 1 + (seed % 4) as u32);
        let times = arrivals(seed, per);
        // The traffic must press on the limit, or the checks prove nothing.
        let admitted = run(&SlidingWindowLog, &r, &times).len();
        assert!(
            admitted * 10 < times.len() * 9,
            "seed {seed}: too little traffic ({admitted} of {})",
            times.len()
        );

        // Sliding log: never more than `limit` in any window of `per`.
        let a = run(&SlidingWindowLog, &r, &times);
        assert!(max_in_window(&a, per) <= r.limit as usize, "log, seed {seed}");

        // Fixed window: at most `limit` per aligned window; 2× across one.
        let a = run(&FixedWindow, &r, &times);
        for w in 0..12u32 {
            let n = a.iter().filter(|t| (t.as_millis() / 1000) as u32 == w).count();
            assert!(n <= r.limit as usize, "fixed, seed {seed}");
        }
        assert!(max_in_window(&a, per) <= 2 * r.limit as usize);

        // Sliding counter: never more than 2 × limit in any window.
        let a = run(&SlidingWindowCounter, &r, &times);
        assert!(
            max_in_window(&a, per) <= 2 * r.limit as usize,
            "counter, seed {seed}"
        );

        // Token bucket and GCRA: in any interval [t_i, t_j], at most
        // capacity + (t_j − t_i) × limit / per.
        for (name, a) in [
            ("token bucket", run(&TokenBucket, &r, &times)),
            ("gcra", run(&Gcra, &r, &times)),
        ] {
            for i in 0..a.len() {
                for j in i..a.len() {
                    let span = (a[j] - a[i]).as_secs_f64();
                    let bound = f64::from(r.capacity()) + span * f64::from(r.limit) / per.as_secs_f64();
                    assert!(
                        ((j - i + 1) as f64) <= bound + 1e-9,
                        "{name}, seed {seed}: {} in {span}s",
                        j - i + 1
                    );
                }
            }
        }
    }
}

/// Traffic below the rate is never refused.
#[test]
fn steady_traffic_under_the_rate_passes() {
    let r = rate(10, ms(1000), 0);
    let times: Vec<_> = (0..100).map(|i| ms(i * 110)).collect();
    for (name, n) in [
        ("token bucket", run(&TokenBucket, &r, &times).len()),
        ("fixed", run(&FixedWindow, &r, &times).len()),
        ("log", run(&SlidingWindowLog, &r, &times).len()),
        ("counter", run(&SlidingWindowCounter, &r, &times).len()),
        ("gcra", run(&Gcra, &r, &times).len()),
    ] {
        assert_eq!(n, 100, "{name}");
    }
}

mod memory_store {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::algorithm::sliding_window_log::{self, SlidingWindowLog};
    use super::super::algorithm::token_bucket::{self, TokenBucket};
    use super::super::algorithm::Rate;
    use super::super::memory::MemoryStore;

    #[test]
    fn keys_are_independent() {
        let store: MemoryStore<String, token_bucket::State> = MemoryStore::new(1000, 8);
        let r = Rate {
            limit: 2,
            per: Duration::from_secs(1),
            burst: 2,
        };
        let t = Duration::ZERO;
        for key in ["alice", "bob"] {
            assert!(store.decide(&TokenBucket, &r, &key.to_string(), t).allowed());
            assert!(store.decide(&TokenBucket, &r, &key.to_string(), t).allowed());
            assert!(!store.decide(&TokenBucket, &r, &key.to_string(), t).allowed());
        }
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_flood_of_keys_cannot_grow_the_store_past_its_bound() {
        let store: MemoryStore<u64, token_bucket::State> = MemoryStore::new(1000, 16);
        let r = Rate {
            limit: 10,
            per: Duration::from_secs(60),
            burst: 0,
        };
        for k in 0..50_000u64 {
            store.decide(&TokenBucket, &r, &k, Duration::from_millis(k));
        }
        assert!(store.len() <= 1008, "{}", store.len());
        // A hot key that keeps being used survives the flood (least recently
        // used keys go first).
        let hot = u64::MAX;
        let mut t = Duration::from_secs(100);
        for i in 0..20_000u64 {
            t += Duration::from_millis(1);
            store.decide(&TokenBucket, &r, &(i + 1_000_000), t);
            if i % 10 == 0 {
                store.decide(&TokenBucket, &r, &hot, t);
            }
        }
        // It spent its bucket long ago; had it been evicted and re-created,
        // it would be admitted again.
        assert!(!store.decide(&TokenBucket, &r, &hot, t).allowed());
        assert!(store.len() <= 1008, "{}", store.len());
    }

    #[test]
    fn many_threads_on_one_key_never_over_admit() {
        let store: Arc<MemoryStore<&'static str, sliding_window_log::State>> =
            Arc::new(MemoryStore::new(100, 4));
        let r = Rate {
            limit: 100,
            per: Duration::from_secs(60),
            burst: 0,
        };
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (store, admitted) = (store.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..125 {
                        if store
                            .decide(&SlidingWindowLog, &r, &"payments", Duration::from_secs(1))
                            .allowed()
                        {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 100);
    }

    /// 1,000 tokio tasks on a multi-thread runtime ask at one (fake)
    /// instant for the same key of the gateway's own store (counter keys,
    /// `AnyState`, 64 shards): each algorithm admits exactly what it
    /// promises at once (`limit` for the windows, `capacity` for token
    /// bucket and GCRA), never one more.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_thousand_concurrent_tasks_never_over_admit() {
        use crate::clock::{Clock, FakeClock};
        use crate::rate_limit::config::AlgorithmKind;
        use crate::rate_limit::{AnyAlgorithm, AnyState, CounterKey, KeyValue};

        let clock = FakeClock::at_unix(1_700_000_000);
        clock.advance(Duration::from_secs(7));
        for (kind, limit, burst, promised) in [
            (AlgorithmKind::TokenBucket, 100, 40, 40),
            (AlgorithmKind::FixedWindow, 100, 0, 100),
            (AlgorithmKind::SlidingWindowLog, 100, 0, 100),
            (AlgorithmKind::SlidingWindowCounter, 100, 0, 100),
            (AlgorithmKind::Gcra, 100, 40, 40),
        ] {
            let store: Arc<MemoryStore<CounterKey, AnyState>> = Arc::new(MemoryStore::new(1_000_000, 64));
            let r = Rate {
                limit,
                per: Duration::from_secs(60),
                burst,
            };
            let key: CounterKey = ("payments".into(), 0, KeyValue::Text("p:alice".into()));
            let start = Arc::new(tokio::sync::Barrier::new(1000));
            let tasks: Vec<_> = (0..1000)
                .map(|_| {
                    let (store, key, start, clock) =
                        (store.clone(), key.clone(), start.clone(), clock.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        store
                            .decide(&AnyAlgorithm(kind), &r, &key, clock.monotonic())
                            .allowed()
                    })
                })
                .collect();
            let mut admitted = 0;
            for t in tasks {
                admitted += usize::from(t.await.unwrap());
            }
            assert_eq!(admitted, promised, "{kind:?}");
            // And the key is spent: the next request at that instant is refused.
            assert!(
                !store
                    .decide(&AnyAlgorithm(kind), &r, &key, clock.monotonic())
                    .allowed(),
                "{kind:?}"
            );
        }
    }
}

mod redis_policy {
    use super::super::config::RedisConfig;
    use super::super::redis::RedisPolicy;
    use std::time::Duration;

    fn cfg(url: &str) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            timeout: Duration::from_millis(50),
            on_failure: Default::default(),
            key_prefix: "rampart".into(),
            share_bans: false,
        }
    }

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        let bad = RedisPolicy::from_config(&cfg("redis://:hunter2-redis@127.0.0.1:notaport")).unwrap_err();
        let shown = format!("{bad:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let ok = RedisPolicy::from_config(&cfg("redis://:hunter2-redis@127.0.0.1:6380/2")).unwrap();
        assert_eq!(ok.endpoint, "127.0.0.1:6380");
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn only_tcp_redis_urls_are_accepted() {
        assert!(RedisPolicy::from_config(&cfg("unix:///tmp/redis.sock")).is_err());
        assert!(RedisPolicy::from_config(&cfg("http://127.0.0.1:6379")).is_err());
        assert!(RedisPolicy::from_config(&cfg("redis://127.0.0.1")).is_ok());
    }
}
