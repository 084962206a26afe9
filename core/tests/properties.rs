//! Property tests: arbitrary input and arbitrary mutations of a valid token never panic and are
//! never accepted.

mod common;

use std::sync::LazyLock;

use common::*;
use proptest::prelude::*;
use siwa_core::{IdentityClaims, Verifier, VerifyError, decode_unverified};

static TOKEN: LazyLock<String> = LazyLock::new(|| mint(&apple_claims()));
static VERIFIER: LazyLock<Verifier> = LazyLock::new(verifier);
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

fn verify(token: &str) -> Result<IdentityClaims, VerifyError> {
    let result = RUNTIME.block_on(VERIFIER.verify(token, None));
    // The unverified reader must not panic on the same input either.
    let _ = decode_unverified(token);
    result
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(token: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Replace(i, b) if !bytes.is_empty() => bytes[i % len] = b,
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_are_never_accepted(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(verify(&String::from_utf8_lossy(&bytes)).is_err());
    }

    #[test]
    fn arbitrary_dotted_base64_is_never_accepted(token in "[A-Za-z0-9_-]{0,300}(\\.[A-Za-z0-9_-]{0,300}){0,4}") {
        prop_assert!(verify(&token).is_err());
    }

    #[test]
    fn mutations_of_a_valid_token_are_never_accepted(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let mutated = apply(&TOKEN, &mutations);
        prop_assume!(mutated != TOKEN.as_bytes());
        prop_assert!(verify(&String::from_utf8_lossy(&mutated)).is_err());
    }
}

#[test]
fn the_unmutated_token_is_accepted() {
    // Without this, the properties above would hold vacuously for a verifier that refuses all.
    assert!(verify(&TOKEN).is_ok());
}
