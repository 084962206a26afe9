//! jsonwebtoken panics at run time when both or neither of its crypto backends are enabled, and
//! cargo's feature unification can switch the second one on from any crate of the workspace.
//! This test signs and verifies through jsonwebtoken and fails, instead of panicking in
//! production, if that ever happens. `cargo test --workspace` builds with the unified features.

mod common;

#[test]
fn exactly_one_crypto_backend_is_enabled() {
    let outcome = std::panic::catch_unwind(|| {
        let token = common::mint(&common::apple_claims());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(common::verifier().verify(&token, None))
    });
    match outcome {
        Ok(result) => assert!(result.is_ok(), "a valid token must verify: {result:?}"),
        Err(_) => panic!(
            "jsonwebtoken has no usable crypto backend: exactly one of its features \
             `aws_lc_rs` / `rust_crypto` must be enabled across the workspace \
             (check `cargo tree -e features -i jsonwebtoken`)"
        ),
    }
}
