//! The client calls SiwaKit makes most, in Rust: the baseline for the cost of an FFI round trip
//! (`bench/ffi` runs the same calls from Swift through UniFFI).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use siwa_core::client::{Client, ClientConfig, InMemorySessionStore};

fn client_calls(c: &mut Criterion) {
    let client = Client::new(
        ClientConfig::new("http://127.0.0.1:9"),
        Arc::new(InMemorySessionStore::new()),
    )
    .unwrap();
    c.bench_function("client/current_user (signed out)", |b| {
        b.iter(|| std::hint::black_box(client.current_user()))
    });
    c.bench_function("client/start_sign_in", |b| {
        b.iter(|| std::hint::black_box(client.start_sign_in()))
    });
}

criterion_group!(benches, client_calls);
criterion_main!(benches);
