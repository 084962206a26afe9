//! Random identifiers: codes, tokens, key ids, user ids. All from the OS's random source.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b
}

/// 256 random bits, URL-safe: refresh and access tokens, `jti`s.
pub fn token() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<32>())
}

/// `n` bytes as lowercase hex.
pub fn hex<const N: usize>() -> String {
    hex::encode(bytes::<N>())
}

/// Letters and digits, like Apple's key ids.
pub fn alphanumeric(len: usize) -> String {
    const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    bytes::<64>()
        .iter()
        .take(len)
        .map(|b| SET[*b as usize % SET.len()] as char)
        .collect()
}

/// A `sub` shaped like Apple's: `000000.<32 hex>.0000`.
pub fn apple_sub() -> String {
    let digits = u32::from_le_bytes(bytes::<4>());
    format!(
        "{:06}.{}.{:04}",
        digits % 1_000_000,
        hex::<16>(),
        (digits / 7) % 10_000
    )
}

/// An authorization code shaped like Apple's: `c<hex>.0.<suffix>`.
pub fn authorization_code() -> String {
    format!("c{}.0.{}", hex::<16>(), alphanumeric(4).to_lowercase())
}
