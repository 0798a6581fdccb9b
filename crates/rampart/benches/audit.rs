//! Audit records per second: redaction of a record's free text; linking
//! (SHA-256 chain, an Ed25519 checkpoint every 1000) plus AES-256-GCM
//! encryption and the write of a batch, without fsync; and the whole path
//! through the writer thread with group commit and fsync (`durability =
//! "fsync"`), 64 requests at a time.
//!
//! Run: `cargo bench -p rampart --bench audit`. Numbers go to
//! docs/benchmarks.md; nothing here asserts a time.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rampart::audit::config::AuditPolicy;
use rampart::audit::file::FileSink;
use rampart::audit::record::{link_all, timestamp, Event, Head, Pending, RequestEvent};
use rampart::audit::Auditor;
use rampart::config::LoadedConfig;

fn policy(dir: &std::path::Path, extra: &str) -> Arc<AuditPolicy> {
    use base64::Engine as _;
    let key = rampart::audit::crypto::random_key().unwrap();
    std::fs::write(
        dir.join("m.key"),
        base64::engine::general_purpose::STANDARD.encode(key),
    )
    .unwrap();
    let (private, _, _) = rampart::audit::crypto::generate_signing_key().unwrap();
    std::fs::write(dir.join("s.pem"), private).unwrap();
    let text = format!(
        "[audit]\ndir = \"trail\"\nsigning_key_file = \"s.pem\"\n{extra}\n[[audit.master_keys]]\nid = \"k1\"\nfile = \"m.key\"\n"
    );
    let loaded = LoadedConfig::from_text(&dir.join("rampart.toml"), text).unwrap();
    Arc::new(AuditPolicy::from_config(loaded.config.audit.as_ref().unwrap(), &loaded).unwrap())
}

/// A typical record: a forwarded GET with a principal-less route.
fn event(i: usize) -> Event {
    Event::Request(Box::new(RequestEvent {
        request_id: format!("3f2a6c1e-8b4d-4c2a-9e1f-{i:012}"),
        interaction_id: "9d3c1a52-7f0e-4c4b-a1de-3f5b2c7e8a10".into(),
        client_ip: "198.51.100.7".parse().unwrap(),
        listener: "public".into(),
        route: Some("accounts-list".into()),
        method: "GET".into(),
        path: Some("/v1/accounts/acc-1001/transactions".into()),
        query: Some("page=2&page_size=5".into()),
        version: "HTTP/1.1".into(),
        status: 200,
        outcome: "forwarded".into(),
        cause: None,
        principal: None,
        rate_limit: Some("\"default\";r=118;t=42".into()),
        risk: None,
        upstream_status: Some(200),
        upstream_ms: Some(1.234),
        latency_ms: 1.9,
        bytes_in: None,
        bytes_out: Some(324),
        signals: Vec::new(),
        confirmed: false,
    }))
}

fn redaction(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit redact");
    g.throughput(Throughput::Elements(1));
    g.bench_function("clean path", |b| {
        b.iter(|| {
            black_box(rampart::redact::redact_url_part(black_box(
                "/v1/accounts/acc-1001/transactions",
            )))
        })
    });
    g.bench_function("path with a card number and an e-mail", |b| {
        b.iter(|| {
            black_box(rampart::redact::redact_url_part(black_box(
                "/v1/cards/4111111111111111/owner/alice.smith%40example.com",
            )))
        })
    });
    g.bench_function("refusal cause", |b| {
        b.iter(|| {
            black_box(rampart::redact::redact(black_box(
                "authentication failed: expired (token expired at 1780000000, kid bank-2026)",
            )))
        })
    });
    g.finish();
}

fn link_encrypt_write(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), "");
    let (mut sink, _) = FileSink::open(
        &dir.path().join("trail"),
        p.keys.clone(),
        p.signer.clone(),
        1 << 30,
        Duration::from_secs(3600),
    )
    .unwrap();
    let batch: Vec<Pending> = (0..64)
        .map(|i| Pending::Event {
            time: timestamp(SystemTime::now()),
            event: event(i),
        })
        .collect();
    let mut g = c.benchmark_group("audit chain+encrypt+write");
    g.throughput(Throughput::Elements(64));
    let mut n = 0u64;
    g.bench_function("batch of 64, no fsync", |b| {
        b.iter(|| {
            let mut pending = batch.clone();
            n += 64;
            if n.is_multiple_of(1024) {
                pending.push(Pending::Checkpoint {
                    time: timestamp(SystemTime::now()),
                });
            }
            let mut head: Head = sink.head();
            let links = link_all(&mut head, None, &p.signer, &pending).unwrap();
            sink.append(&links, SystemTime::now()).unwrap();
        })
    });
    g.finish();
}

fn through_the_writer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), "");
    let auditor = rt
        .block_on(Auditor::start(p, rampart::clock::SystemClock::shared()))
        .unwrap();
    let mut g = c.benchmark_group("audit writer (group commit + fsync)");
    g.throughput(Throughput::Elements(64));
    g.sample_size(20);
    g.bench_function("64 concurrent requests", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..64)
                    .map(|i| {
                        let a = auditor.clone();
                        tokio::spawn(async move { a.admit().await.unwrap().record(event(i)).await.unwrap() })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.finish();
    rt.block_on(auditor.close(Duration::from_secs(5)));
}

criterion_group!(benches, redaction, link_encrypt_write, through_the_writer);
criterion_main!(benches);
