//! The workspace's UniFFI generator: `cargo run -p siwa-ffi --features bindgen --bin
//! uniffi-bindgen -- generate --library <libsiwa_ffi> --language swift --out-dir <dir>`.
fn main() {
    uniffi::uniffi_bindgen_main()
}
