//! Criterion benches of request-path pieces: path normalisation, route
//! matching, and rate-limit decisions per algorithm (one hot key, and spread
//! over 100 000 keys in the sharded memory store).
//!
//! Run: `cargo bench -p rampart --bench hot_paths`. Numbers go to
//! docs/benchmarks.md; nothing here asserts a time.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use rampart::rate_limit::algorithm::fixed_window::FixedWindow;
use rampart::rate_limit::algorithm::gcra::Gcra;
use rampart::rate_limit::algorithm::sliding_window_counter::SlidingWindowCounter;
use rampart::rate_limit::algorithm::sliding_window_log::SlidingWindowLog;
use rampart::rate_limit::algorithm::token_bucket::TokenBucket;
use rampart::rate_limit::algorithm::{Algorithm, Rate};
use rampart::rate_limit::memory::MemoryStore;
use rampart::route::path::normalize;
use rampart::route::table::{RouteSpec, RouteTable};

fn routing(c: &mut Criterion) {
    c.bench_function("normalize /v1/accounts/{id}/transactions", |b| {
        b.iter(|| normalize(black_box("/v1/accounts/acc-1001/transactions")))
    });
    c.bench_function("normalize with dot segments and escapes", |b| {
        b.iter(|| normalize(black_box("/v1//accounts/./acc%2D1001/../acc-1002/transactions")))
    });
    // 200 routes, the shape of a bank's API.
    let mut specs = Vec::new();
    for i in 0..50 {
        for (p, m) in [
            (format!("/v{i}/accounts"), Method::GET),
            (format!("/v{i}/accounts/{{id}}"), Method::GET),
            (format!("/v{i}/accounts/{{id}}/transactions"), Method::GET),
            (format!("/v{i}/payments"), Method::POST),
        ] {
            specs.push(RouteSpec {
                host: None,
                path: p,
                methods: vec![m],
            });
        }
    }
    let table = RouteTable::build(&specs).unwrap();
    c.bench_function("resolve among 200 routes", |b| {
        b.iter(|| {
            table.resolve(
                None,
                black_box("/v42/accounts/acc-1001/transactions"),
                &Method::GET,
            )
        })
    });
}

fn algorithms(c: &mut Criterion) {
    let rate = Rate {
        limit: 1_000_000,
        per: Duration::from_secs(1),
        burst: 0,
    };
    fn one<A: Algorithm>(c: &mut Criterion, name: &str, a: A, rate: Rate) {
        let mut state = A::State::default();
        let mut t = Duration::ZERO;
        c.bench_function(&format!("{name}: decide, one key"), |b| {
            b.iter(|| {
                t += Duration::from_micros(1);
                black_box(a.decide(&rate, &mut state, t))
            })
        });
    }
    one(c, "token_bucket", TokenBucket, rate);
    one(c, "fixed_window", FixedWindow, rate);
    one(c, "sliding_window_counter", SlidingWindowCounter, rate);
    one(c, "gcra", Gcra, rate);
    one(
        c,
        "sliding_window_log",
        SlidingWindowLog,
        Rate {
            limit: 100,
            per: Duration::from_secs(1),
            burst: 0,
        },
    );

    let store: MemoryStore<u64, rampart::rate_limit::algorithm::token_bucket::State> =
        MemoryStore::new(1_000_000, 64);
    let mut k = 0u64;
    let mut t = Duration::ZERO;
    c.bench_function("token_bucket in the sharded store, 100k keys", |b| {
        b.iter(|| {
            k = (k + 7919) % 100_000;
            t += Duration::from_micros(1);
            black_box(store.decide(&TokenBucket, &rate, &k, t))
        })
    });
}

criterion_group!(benches, routing, algorithms);
criterion_main!(benches);
