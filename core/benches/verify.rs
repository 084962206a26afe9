//! Verification of a valid Apple identity token with a warm key cache.
//!
//! `cargo bench -p siwa-core --bench verify`; compare with `openssl speed -seconds 3 rsa2048`'s
//! verify time on the same machine (the RSA verify is almost all of the work).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use siwa_core::{KeySet, KeySetOptions, Verifier, decode_unverified};

fn verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = common::mint(&common::apple_claims());

    let fixed = common::verifier();
    c.bench_function("verify/fixed_keys", |b| {
        b.to_async(&runtime)
            .iter(|| async { fixed.verify(&token, None).await.unwrap() })
    });

    // The production path: keys fetched over HTTP once, then served from the cache.
    let server = runtime.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::path("/auth/keys"))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_body_json(common::jwks(&[&common::APPLE])),
            )
            .mount(&server)
            .await;
        server
    });
    let keys = KeySet::remote(
        format!("{}/auth/keys", server.uri()),
        KeySetOptions::default(),
    )
    .unwrap();
    let cached = Verifier::new(common::config(), keys).unwrap();
    runtime.block_on(cached.verify(&token, None)).unwrap();
    c.bench_function("verify/warm_remote_key_set", |b| {
        b.to_async(&runtime)
            .iter(|| async { cached.verify(&token, None).await.unwrap() })
    });

    c.bench_function("decode_unverified", |b| {
        b.iter(|| decode_unverified(&token).unwrap())
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
