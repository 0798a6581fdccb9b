//! JWT verification per second: each algorithm cold (every token new, so
//! the signature is checked) and warm (the verdict cache answers), and a
//! DPoP proof check.
//!
//! Run: `cargo bench -p rampart --bench authn`. Numbers go to
//! docs/benchmarks.md; nothing here asserts a time.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jsonwebtoken::Algorithm;
use rampart::authn::jwt::VerdictCache;
use rampart::authn::sign::{unix_now, SigningKey};
use rampart::authn::{
    DpopConfig, DpopPolicy, DpopVerifier, Issuer, IssuerConfig, IssuerPolicy, ProofRequest,
};
use serde_json::json;

fn issuer(key: &SigningKey, dir: &std::path::Path, cache: usize) -> Issuer {
    let jwks = dir.join(format!("{}.json", key.kid()));
    std::fs::write(&jwks, key.jwks().to_string()).unwrap();
    let cfg: IssuerConfig = toml::from_str(&format!(
        "name = \"bench\"\nissuer = \"https://idp.bench\"\naudiences = [\"api\"]\njwks_file = \"{}\"\nalgorithms = [\"{:?}\"]\n",
        jwks.display(),
        key.alg()
    ))
    .unwrap();
    let policy = IssuerPolicy::from_config(&cfg, "issuers[0]").unwrap();
    Issuer::from_policy(policy, rampart::clock::SystemClock::shared(), "issuers[0]")
        .unwrap()
        .with_cache(VerdictCache::new(cache))
}

fn tokens(key: &SigningKey, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            key.mint(&json!({
                "iss": "https://idp.bench", "aud": "api", "sub": format!("customer-{i}"),
                "scope": "accounts:read", "iat": unix_now(), "exp": unix_now() + 3600,
                "jti": format!("t-{i}"),
            }))
            .unwrap()
        })
        .collect()
}

fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("jwt verify");
    g.throughput(Throughput::Elements(1));
    for alg in [
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::PS256,
        Algorithm::RS256,
    ] {
        let key = SigningKey::generate(alg).unwrap();
        let many = tokens(&key, 512);
        // A one-entry cache and 512 distinct tokens: every check is cold.
        let cold = issuer(&key, dir.path(), 1);
        let mut i = 0;
        g.bench_function(format!("{alg:?} cold"), |b| {
            b.iter(|| {
                i = (i + 1) % many.len();
                black_box(rt.block_on(cold.verify(&many[i])).unwrap())
            })
        });
        let warm = issuer(&key, dir.path(), 10_000);
        rt.block_on(warm.verify(&many[0])).unwrap();
        g.bench_function(format!("{alg:?} cached"), |b| {
            b.iter(|| black_box(rt.block_on(warm.verify(&many[0])).unwrap()))
        });
    }
    g.finish();

    // DPoP: one proof per request, each new (replay cache insert included).
    let proof_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let token = "an-access-token";
    let dpop = DpopVerifier::new(
        DpopPolicy::from_config(&DpopConfig::default(), "dpop").unwrap(),
        rampart::clock::SystemClock::shared(),
    );
    let url = "https://api.bank.test/v1/payments";
    let jkt = proof_key.thumbprint();
    c.bench_function("dpop proof verify (ES256, new jti each)", |b| {
        b.iter_batched(
            || {
                proof_key
                    .dpop_proof("POST", url, Some(token), unix_now(), None)
                    .unwrap()
            },
            |proof| {
                let req = ProofRequest {
                    method: "POST",
                    url,
                    access_token: token,
                    jkt: &jkt,
                };
                black_box(rt.block_on(dpop.verify(&proof, &req)).unwrap())
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, jwt);
criterion_main!(benches);
