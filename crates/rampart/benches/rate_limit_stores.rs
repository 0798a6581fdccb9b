//! Rate-limit stores, as the gateway uses them: decisions per second per
//! algorithm in the sharded memory store and on Redis (a private
//! `redis-server`, one multiplexed connection, 64 tasks deciding at once so
//! requests pipeline), and the memory each counter costs at one million
//! keys (resident memory before and after, printed).
//!
//! Run: `cargo bench -p rampart --bench rate_limit_stores` (needs
//! `redis-server`; `scripts/test.sh` installs it). Numbers go to
//! docs/benchmarks.md; nothing here asserts a time.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rampart::rate_limit::algorithm::Rate;
use rampart::rate_limit::config::{AlgorithmKind, FailurePolicy, RedisConfig};
use rampart::rate_limit::memory::MemoryStore;
use rampart::rate_limit::redis::{RedisPolicy, RedisStore};
use rampart::rate_limit::{AnyAlgorithm, AnyState, CounterKey, KeyValue};

const KINDS: [(AlgorithmKind, &str); 5] = [
    (AlgorithmKind::TokenBucket, "token_bucket"),
    (AlgorithmKind::FixedWindow, "fixed_window"),
    (AlgorithmKind::SlidingWindowLog, "sliding_window_log"),
    (AlgorithmKind::SlidingWindowCounter, "sliding_window_counter"),
    (AlgorithmKind::Gcra, "gcra"),
];

/// A limit that admits everything (so both stores do the full write path).
fn rate(kind: AlgorithmKind) -> Rate {
    Rate {
        limit: if kind == AlgorithmKind::SlidingWindowLog {
            100
        } else {
            1_000_000_000
        },
        per: Duration::from_secs(1),
        burst: 0,
    }
}

fn key(route: &Arc<str>, i: u32) -> CounterKey {
    let ip = std::net::Ipv4Addr::from(0x0A00_0000 + i);
    (route.clone(), 0, KeyValue::Ip(ip.into()))
}

fn memory(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory store, 100k client keys");
    g.throughput(Throughput::Elements(1));
    let route: Arc<str> = Arc::from("payments");
    for (kind, name) in KINDS {
        let store: MemoryStore<CounterKey, AnyState> = MemoryStore::new(1_000_000, 64);
        let keys: Vec<CounterKey> = (0..100_000).map(|i| key(&route, i)).collect();
        let (mut i, mut t) = (0usize, Duration::ZERO);
        let r = rate(kind);
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % keys.len();
                t += Duration::from_micros(3);
                black_box(store.decide(&AnyAlgorithm(kind), &r, &keys[i], t))
            })
        });
    }
    g.finish();
}

fn redis(c: &mut Criterion) {
    let server = rampart_testkit::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        let s = RedisStore::new(
            RedisPolicy::from_config(&RedisConfig {
                url: server.url(),
                timeout: Duration::from_secs(1),
                on_failure: FailurePolicy::Deny,
                key_prefix: "bench".into(),
                share_bans: false,
            })
            .unwrap(),
            rampart::metrics::Metrics::new(),
        )
        .unwrap();
        s.start(&Arc::default(), rampart::clock::SystemClock::shared());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.is_up() {
            assert!(Instant::now() < deadline, "redis store never came up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        s
    });
    const TASKS: u64 = 64;
    let mut g = c.benchmark_group(format!("redis store, {TASKS} concurrent tasks, 100k client keys"));
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for (kind, name) in KINDS {
        let keys: Arc<Vec<String>> = Arc::new(
            (0..100_000u32)
                .map(|i| {
                    store.counter_key(kind, "payments", "default", &key(&Arc::from(""), i).2.to_string())
                })
                .collect(),
        );
        let r = rate(kind);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    let mut tasks = tokio::task::JoinSet::new();
                    for t in 0..TASKS {
                        let (store, keys) = (store.clone(), keys.clone());
                        let n = iters / TASKS + u64::from(t < iters % TASKS);
                        tasks.spawn(async move {
                            for j in 0..n {
                                let k = &keys[((t * 7919 + j * 104_729) % keys.len() as u64) as usize];
                                black_box(store.decide(kind, &r, k).await.unwrap());
                            }
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                    started.elapsed()
                })
            })
        });
    }
    g.finish();
    drop(server);
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Bytes per key with one million client addresses on one route (room
/// for 1.1 million, so no shard evicts: keys do not spread perfectly).
fn memory_per_key(_c: &mut Criterion) {
    let route: Arc<str> = Arc::from("payments");
    for (kind, name) in [
        (AlgorithmKind::TokenBucket, "token_bucket"),
        (AlgorithmKind::Gcra, "gcra"),
        (AlgorithmKind::FixedWindow, "fixed_window"),
        (AlgorithmKind::SlidingWindowCounter, "sliding_window_counter"),
        (
            AlgorithmKind::SlidingWindowLog,
            "sliding_window_log, 10 entries per key",
        ),
    ] {
        let before = rss();
        let store: MemoryStore<CounterKey, AnyState> = MemoryStore::new(1_100_000, 64);
        let r = Rate {
            limit: 10,
            per: Duration::from_secs(3600),
            burst: 0,
        };
        let per_key: u64 = if kind == AlgorithmKind::SlidingWindowLog {
            10
        } else {
            1
        };
        for i in 0..1_000_000u32 {
            let k = key(&route, i);
            for j in 0..per_key {
                store.decide(&AnyAlgorithm(kind), &r, &k, Duration::from_millis(j));
            }
        }
        let after = rss();
        assert_eq!(store.len(), 1_000_000);
        println!(
            "memory per key, {name}: {} bytes ({} keys, RSS {:.1} MiB -> {:.1} MiB)",
            (after.saturating_sub(before)) / 1_000_000,
            store.len(),
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
        drop(store);
    }
}

criterion_group!(benches, memory, redis, memory_per_key);
criterion_main!(benches);
