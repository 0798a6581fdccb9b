//! The Redis store, against a real `redis-server` private to each test:
//! the Lua scripts keep each algorithm's promise (checked decision by
//! decision against the in-memory algorithms under one fake clock); two
//! gateways on one Redis enforce one limit, share bans and idempotency
//! records; Redis stopped or frozen mid-test gives the configured failure
//! behaviour at once, and the gateway goes back to Redis when it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use rampart::clock::SystemClock;
use rampart::ip_filter::bans::BanList;
use rampart::metrics::Metrics;
use rampart::rate_limit::algorithm::{self, Decision, Rate};
use rampart::rate_limit::config::{AlgorithmKind, FailurePolicy, RedisConfig};
use rampart::rate_limit::redis::{RedisPolicy, RedisStore};
use rampart_testkit::{admin_request, admin_send, Client, Harness, RedisServer, ADMIN_TOKEN};

use crate::ROUTES;

fn redis_config(url: &str) -> RedisConfig {
    RedisConfig {
        url: url.into(),
        timeout: Duration::from_millis(200),
        on_failure: FailurePolicy::Deny,
        key_prefix: "t".into(),
        share_bans: false,
    }
}

async fn store(url: &str) -> Arc<RedisStore> {
    let s = RedisStore::new(
        RedisPolicy::from_config(&redis_config(url)).unwrap(),
        Metrics::new(),
    )
    .unwrap();
    s.start(&Arc::new(BanList::default()), SystemClock::shared());
    wait_until("the store is up", || s.is_up()).await;
    s
}

pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn in_us(d: Duration) -> i128 {
    d.as_micros() as i128
}

/// Each script against its algorithm, decision by decision, over random
/// bursty traffic on one fake clock (whole microseconds).
#[tokio::test]
async fn each_script_decides_as_its_algorithm() {
    let redis = RedisServer::start();
    let s = store(&redis.url()).await;
    let mut rng = Rng(7);
    let kinds = [
        AlgorithmKind::TokenBucket,
        AlgorithmKind::FixedWindow,
        AlgorithmKind::SlidingWindowLog,
        AlgorithmKind::SlidingWindowCounter,
        AlgorithmKind::Gcra,
    ];
    // Limits that divide a second, so GCRA's interval is exact in µs.
    for (case, (limit, burst)) in [(5u32, 0u32), (8, 3), (10, 1), (20, 6), (4, 2)]
        .into_iter()
        .enumerate()
    {
        let rate = Rate {
            limit,
            per: Duration::from_secs(1),
            burst,
        };
        for kind in kinds {
            let burst = if matches!(kind, AlgorithmKind::TokenBucket | AlgorithmKind::Gcra) {
                rate
            } else {
                Rate { burst: 0, ..rate }
            };
            let key = format!("diff-{case}-{kind:?}");
            let mut mem = MemState::default();
            let mut t: u64 = 1_700_000_000_000_000 + rng.next() % 1_000_000;
            let (mut allowed, mut total) = (0, 0);
            for _ in 0..300 {
                t += if rng.next().is_multiple_of(8) {
                    rng.next() % 600_000
                } else {
                    rng.next() % 40_000
                };
                let want = mem.decide(kind, &burst, Duration::from_micros(t));
                let got = s.decide_at(kind, &burst, &key, Some(t)).await.unwrap();
                total += 1;
                allowed += usize::from(want.allowed());
                match (want, got) {
                    (
                        Decision::Allow {
                            remaining: a,
                            reset: ra,
                        },
                        Decision::Allow {
                            remaining: b,
                            reset: rb,
                        },
                    ) => {
                        assert_eq!(a, b, "{kind:?} case {case} at {t}: remaining");
                        assert!(
                            (in_us(ra) - in_us(rb)).abs() <= 1,
                            "{kind:?} at {t}: reset {ra:?} vs {rb:?}"
                        );
                    }
                    (
                        Decision::Deny {
                            retry_after: a,
                            reset: ra,
                        },
                        Decision::Deny {
                            retry_after: b,
                            reset: rb,
                        },
                    ) => {
                        assert!(
                            (in_us(a) - in_us(b)).abs() <= 1,
                            "{kind:?} at {t}: retry {a:?} vs {b:?}"
                        );
                        assert!(
                            (in_us(ra) - in_us(rb)).abs() <= 1,
                            "{kind:?} at {t}: reset {ra:?} vs {rb:?}"
                        );
                    }
                    (w, g) => panic!("{kind:?} case {case} at {t}: memory {w:?}, redis {g:?}"),
                }
            }
            // The traffic pressed on the limit: both answers occurred.
            assert!(
                allowed > 10 && allowed < total - 10,
                "{kind:?}: {allowed}/{total}"
            );
        }
    }
    // Keys carry a hash tag around the whole counter identity.
    let key = s.counter_key(AlgorithmKind::Gcra, "pay{x}", "burst", "198.51.100.7");
    assert!(key.starts_with("t:rl:{pay_x_|burst|"), "{key}");
    assert_eq!(key.matches('{').count(), 1);
    assert!(!key.contains("198.51"), "client values are hashed: {key}");
}

/// xorshift64: reproducible arrival times.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The in-memory algorithms, for comparison.
#[derive(Default)]
struct MemState {
    tb: algorithm::token_bucket::State,
    fw: algorithm::fixed_window::State,
    swl: algorithm::sliding_window_log::State,
    swc: algorithm::sliding_window_counter::State,
    gcra: algorithm::gcra::State,
}

impl MemState {
    fn decide(&mut self, kind: AlgorithmKind, r: &Rate, now: Duration) -> Decision {
        use algorithm::*;
        match kind {
            AlgorithmKind::TokenBucket => token_bucket::TokenBucket.decide(r, &mut self.tb, now),
            AlgorithmKind::FixedWindow => fixed_window::FixedWindow.decide(r, &mut self.fw, now),
            AlgorithmKind::SlidingWindowLog => {
                sliding_window_log::SlidingWindowLog.decide(r, &mut self.swl, now)
            }
            AlgorithmKind::SlidingWindowCounter => {
                sliding_window_counter::SlidingWindowCounter.decide(r, &mut self.swc, now)
            }
            AlgorithmKind::Gcra => gcra::Gcra.decide(r, &mut self.gcra, now),
        }
    }
}

/// The script is reloaded when Redis forgot it (a restart, `SCRIPT FLUSH`).
#[tokio::test]
async fn a_flushed_script_cache_is_reloaded() {
    let redis = RedisServer::start();
    let s = store(&redis.url()).await;
    let rate = Rate {
        limit: 3,
        per: Duration::from_secs(60),
        burst: 0,
    };
    assert!(s
        .decide(AlgorithmKind::FixedWindow, &rate, "t:flush")
        .await
        .unwrap()
        .allowed());
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    let d = s
        .decide(AlgorithmKind::FixedWindow, &rate, "t:flush")
        .await
        .unwrap();
    assert_eq!(
        d,
        Decision::Allow {
            remaining: 1,
            reset: match d {
                Decision::Allow { reset, .. } => reset,
                _ => unreachable!(),
            }
        }
    );
}

/// ROUTES with a Redis section and a limit on `accounts-list`.
fn policy(url: &str, redis_extra: &str, limit: &str) -> String {
    format!(
        "{}\n[redis]\nurl = \"{url}\"\ntimeout = \"100ms\"\nkey_prefix = \"it\"\n{redis_extra}\n",
        ROUTES.replacen(
            "id = \"accounts-list\"\npath = \"/v1/accounts\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\n",
            &format!(
                "id = \"accounts-list\"\npath = \"/v1/accounts\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\n\n[[routes.rate_limit]]\n{limit}\n"
            ),
            1,
        )
    )
}

async fn statuses(c: &Client, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(c.get("/v1/accounts").await.status.as_u16());
    }
    out
}

pub async fn wait_redis_up(h: &Harness, up: bool) {
    // The whole line: the HELP text also mentions the values.
    let want = format!("\nrampart_redis_up {}\n", u8::from(up));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = h.metrics().await;
        if m.contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "redis_up never became {up}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_gateways_on_one_redis_enforce_one_limit() {
    let redis = RedisServer::start();
    let p = policy(
        &redis.url(),
        "",
        "algorithm = \"sliding_window_log\"\nlimit = 5\nper = \"1m\"\nstore = \"redis\"",
    );
    let (a, b) = (Harness::start(&p).await, Harness::start(&p).await);
    wait_redis_up(&a, true).await;
    wait_redis_up(&b, true).await;
    let (ca, cb) = (a.client(), b.client());
    let mut got = Vec::new();
    for _ in 0..4 {
        got.extend(statuses(&ca, 1).await);
        got.extend(statuses(&cb, 1).await);
    }
    assert_eq!(got.iter().filter(|s| **s == 200).count(), 5, "{got:?}");
    assert_eq!(got.iter().filter(|s| **s == 429).count(), 3, "{got:?}");
    assert_eq!(a.upstream.count() + b.upstream.count(), 5);
    let r = cb.get("/v1/accounts").await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert!(r.header("ratelimit").unwrap().starts_with("\"default\";r=0;t="));
    // Counters really are in Redis, under the configured prefix.
    assert!(redis
        .cli(&["KEYS", "it:rl:*"])
        .contains("it:rl:{accounts-list|default|"));
}

/// 1 000 concurrent requests from two gateways never over-admit.
#[tokio::test]
async fn concurrent_requests_through_two_gateways_never_over_admit() {
    let redis = RedisServer::start();
    let p = policy(
        &redis.url(),
        "",
        "algorithm = \"gcra\"\nlimit = 50\nper = \"1h\"\nstore = \"redis\"\nkey = \"route\"",
    );
    let (a, b) = (Harness::start(&p).await, Harness::start(&p).await);
    wait_redis_up(&a, true).await;
    wait_redis_up(&b, true).await;
    let mut tasks = tokio::task::JoinSet::new();
    let (ca, cb) = (a.client_h2(), b.client_h2());
    for i in 0..1000 {
        let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tasks.spawn(async move { c.get("/v1/accounts").await.status });
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
    }
    let mut ok = 0;
    while let Some(s) = tasks.join_next().await {
        let s = s.unwrap();
        assert!(s == 200 || s == 429, "{s}");
        ok += usize::from(s == 200);
    }
    assert_eq!(ok, 50);
}

#[tokio::test]
async fn redis_stopped_mid_test_falls_back_to_local_counts_and_recovers() {
    let mut redis = RedisServer::start();
    let h = Harness::start(&policy(
        &redis.url(),
        "on_failure = \"local\"",
        "algorithm = \"fixed_window\"\nlimit = 3\nper = \"1h\"\nstore = \"redis\"",
    ))
    .await;
    wait_redis_up(&h, true).await;
    let c = h.client();
    assert_eq!(statuses(&c, 4).await, [200, 200, 200, 429]);
    redis.stop();
    // Local counting: a fresh in-memory counter, still limited.
    let started = Instant::now();
    assert_eq!(statuses(&c, 4).await, [200, 200, 200, 429]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    wait_redis_up(&h, false).await;
    let m = h.metrics().await;
    assert!(
        m.contains("rampart_rate_limit_fallbacks_total{on_failure=\"local\"} 4"),
        "{m}"
    );
    // Redis returns (empty): the gateway counts there again, by itself.
    redis.restart();
    wait_redis_up(&h, true).await;
    assert_eq!(statuses(&c, 4).await, [200, 200, 200, 429]);
    assert!(redis.cli(&["KEYS", "it:rl:*"]).contains("it:rl:"));
}

#[tokio::test]
async fn with_on_failure_deny_an_unreachable_redis_answers_503() {
    let mut redis = RedisServer::start();
    let h = Harness::start(&policy(
        &redis.url(),
        "on_failure = \"deny\"",
        "limit = 100\nper = \"1m\"\nstore = \"redis\"",
    ))
    .await;
    wait_redis_up(&h, true).await;
    let c = h.client();
    assert_eq!(c.get("/v1/accounts").await.status, 200);
    redis.stop();
    let r = c.get("/v1/accounts").await;
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["status"], 503);
    assert_eq!(h.upstream.count(), 1, "a request passed without its limit");
    redis.restart();
    wait_redis_up(&h, true).await;
    assert_eq!(c.get("/v1/accounts").await.status, 200);
}

#[tokio::test]
async fn with_on_failure_allow_an_unreachable_redis_skips_the_limit() {
    let mut redis = RedisServer::start();
    let h = Harness::start(&policy(
        &redis.url(),
        "on_failure = \"allow\"",
        "limit = 1\nper = \"1h\"\nstore = \"redis\"",
    ))
    .await;
    wait_redis_up(&h, true).await;
    let c = h.client();
    assert_eq!(statuses(&c, 2).await, [200, 429]);
    redis.stop();
    assert_eq!(statuses(&c, 3).await, [200, 200, 200]);
}

/// A frozen Redis (accepts nothing, answers nothing) costs a request at
/// most the timeout, and only until the store is marked down.
#[tokio::test]
async fn a_hung_redis_never_hangs_a_request() {
    let redis = RedisServer::start();
    let h = Harness::start(&policy(
        &redis.url(),
        "on_failure = \"local\"",
        "limit = 100\nper = \"1m\"\nstore = \"redis\"",
    ))
    .await;
    wait_redis_up(&h, true).await;
    let c = h.client();
    assert_eq!(c.get("/v1/accounts").await.status, 200);
    redis.freeze(true);
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(c.get("/v1/accounts").await.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a request waited {:?} on a hung redis",
            started.elapsed()
        );
    }
    wait_redis_up(&h, false).await;
    redis.freeze(false);
    wait_redis_up(&h, true).await;
}

#[tokio::test]
async fn a_ban_on_one_gateway_holds_on_the_other() {
    let redis = RedisServer::start();
    let p = policy(&redis.url(), "share_bans = true", "limit = 100\nper = \"1m\"");
    let (a, b) = (Harness::start(&p).await, Harness::start(&p).await);
    wait_redis_up(&a, true).await;
    wait_redis_up(&b, true).await;
    let from = |h: &Harness| Client::from_address(&h.pki.ca_cert_pem, h.addr(), "127.0.0.7".parse().unwrap());
    assert_eq!(from(&b).get("/v1/accounts").await.status, 200);
    let r = admin_send(
        Method::POST,
        &a.admin_url("/admin/bans"),
        Some(ADMIN_TOKEN),
        r#"{"cidr":"127.0.0.7/32","ttl":"10m","reason":"test"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Gateway B copies it within a second or so: the peer is then dropped
    // before TLS.
    let deadline = Instant::now() + Duration::from_secs(5);
    while from(&b)
        .try_send(Method::GET, "/v1/accounts", &[], "")
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "gateway B never saw the ban");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = admin_request(Method::GET, &b.admin_url("/admin/bans"), Some(ADMIN_TOKEN)).await;
    assert!(listed.text().contains("127.0.0.7/32"), "{}", listed.text());
    // Lifted on B, it is lifted on A.
    let r = admin_request(
        Method::DELETE,
        &b.admin_url("/admin/bans?cidr=127.0.0.7/32"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.json()["removed"], true);
    let deadline = Instant::now() + Duration::from_secs(5);
    while from(&a)
        .try_send(Method::GET, "/v1/accounts", &[], "")
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "gateway A kept the lifted ban");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_idempotency_record_on_one_gateway_answers_a_retry_on_the_other() {
    let redis = RedisServer::start();
    let p = format!(
        "{}\n[redis]\nurl = \"{}\"\nkey_prefix = \"it\"\n",
        ROUTES.replace(
            "id = \"payment-create\"\npath = \"/v1/payments\"\nmethods = [\"POST\"]\nupstream = \"backend\"\nauthn = \"none\"\n",
            "id = \"payment-create\"\npath = \"/v1/payments\"\nmethods = [\"POST\"]\nupstream = \"backend\"\nauthn = \"none\"\nidempotency = { ttl = \"1h\", store = \"redis\" }\n",
        ),
        redis.url()
    );
    assert!(p.contains("store = \"redis\""));
    let (a, b) = (Harness::start(&p).await, Harness::start(&p).await);
    wait_redis_up(&a, true).await;
    wait_redis_up(&b, true).await;
    let pay = |c: Client, body: &'static str| async move {
        c.send(
            Method::POST,
            "/v1/payments",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "pay-42"),
            ],
            body.to_string(),
        )
        .await
    };
    let first = pay(a.client(), r#"{"amount":"10.00"}"#).await;
    assert_eq!(first.status, 200);
    let again = pay(b.client(), r#"{"amount":"10.00"}"#).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(
        a.upstream.count() + b.upstream.count(),
        1,
        "the payment ran twice"
    );
    let other = pay(b.client(), r#"{"amount":"99.00"}"#).await;
    assert_eq!(other.status, 422);
    assert_eq!(a.upstream.count() + b.upstream.count(), 1);
}
