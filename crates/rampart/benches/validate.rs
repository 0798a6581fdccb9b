//! Validation cost per request for the demo payment (`PaymentRequest` of
//! `config/demo/bank-openapi.yaml`, about 230 bytes): strict parsing with
//! structure limits, the compiled schema (formats included), injection
//! detection over every string, and all three as the validation phase runs
//! them. Also one RFC 9421 verification (Ed25519, with Content-Digest).
//!
//! Run: `cargo bench -p rampart --bench validate`. Numbers go to
//! docs/benchmarks.md; nothing here asserts a time.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use rampart::body::json::{parse, JsonLimits};
use rampart::validate::injection::detect;
use rampart::validate::openapi::Spec;
use rampart::validate::schema::Schema;
use rampart::validate::signature::{self, Message, RouteSignature, Signatures};

const PAYMENT: &[u8] = br#"{"debtor_account":"acc-1001","instructed_amount":{"amount":"125.00","currency":"EUR"},"creditor":{"name":"ACME Energy GmbH","iban":"DE89370400440532013000"},"remittance_information":"Invoice 2026-117"}"#;

fn schema() -> Schema {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo/bank-openapi.yaml");
    let (spec, _) = Spec::load(&file).unwrap();
    Schema::compile(
        &spec,
        "/paths/~1v1~1payments/post/requestBody/content/application~1json/schema",
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let s = schema();
    let limits = JsonLimits::default();
    let doc = parse(PAYMENT, &limits).unwrap();
    let mut g = c.benchmark_group("validate_payment");
    g.bench_function("parse_strict", |b| {
        b.iter(|| parse(black_box(PAYMENT), &limits).unwrap())
    });
    g.bench_function("schema", |b| b.iter(|| s.check(black_box(&doc)).unwrap()));
    g.bench_function("injection", |b| {
        b.iter(|| assert!(rampart::validate::first_injection(black_box(&doc)).is_none()))
    });
    g.bench_function("all", |b| {
        b.iter(|| {
            let doc = parse(black_box(PAYMENT), &limits).unwrap();
            s.check(&doc).unwrap();
            assert!(rampart::validate::first_injection(&doc).is_none());
        })
    });
    // One suspicious value (a name with an apostrophe) takes the full
    // detectors, libinjection included.
    g.bench_function("detect_full_path", |b| {
        b.iter(|| assert!(detect(black_box("O'Brien & Sons")).is_none()))
    });
    g.finish();

    // One signed request verified (a new nonce each time).
    let key = rampart::authn::sign::SigningKey::generate(jsonwebtoken::Algorithm::EdDSA).unwrap();
    let clock = rampart::clock::SystemClock::shared();
    let sigs = Signatures {
        clients: vec![signature::Client {
            name: "bench".into(),
            keys: signature::keys_from_jwks(&key.jwks().to_string()).unwrap(),
        }],
        max_age: std::time::Duration::from_secs(300),
        clock_skew: std::time::Duration::from_secs(10),
        nonces: Arc::new(rampart::authn::dpop::MemoryReplayCache::new(
            1 << 20,
            clock.clone(),
        )),
        response_key: None,
        clock,
    };
    let route = RouteSignature {
        required: true,
        clients: vec![0],
        components: rampart::validate::config::default_components(),
        require_nonce: true,
        sign_response: false,
    };
    let mut h = http::HeaderMap::new();
    h.insert(
        "content-digest",
        signature::content_digest(PAYMENT).parse().unwrap(),
    );
    h.insert("authorization", "DPoP abc".parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut n = 0u64;
    c.bench_function("rfc9421_verify_ed25519", |b| {
        b.iter_batched(
            || {
                n += 1;
                let m = Message::request("POST", "https", "api.bank.test", "/v1/payments", None, &h);
                let (i, sg) = signature::sign_message(
                    &key,
                    key.kid(),
                    &route.components,
                    rampart::authn::sign::unix_now(),
                    Some(&format!("n{n}")),
                    &m,
                    "sig1",
                )
                .unwrap();
                let mut signed = h.clone();
                signed.insert("signature-input", i.parse().unwrap());
                signed.insert("signature", sg.parse().unwrap());
                signed
            },
            |signed| {
                let m = Message::request("POST", "https", "api.bank.test", "/v1/payments", None, &signed);
                rt.block_on(sigs.verify(&route, &m, PAYMENT)).unwrap().unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
