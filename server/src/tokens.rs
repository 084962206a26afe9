//! Opaque identifiers and tokens, drawn at random, and the hash under which tokens are stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A 128-bit identifier (users, sessions, queue entries).
pub fn new_id() -> String {
    URL_SAFE_NO_PAD.encode(random::<16>())
}

/// A 128-bit identifier of a row made on a hot path (users, sessions, webhook events): its first
/// 48 bits are the time in milliseconds, the other 80 random, in URL-safe base64 whose alphabet
/// is in ASCII order, so the ids of rows made together sort together. An index keyed by a random
/// id puts each insert on a page of its own, and each such page is written whole to SQLite's
/// log at every commit; ids in time order share the index's last pages. The same 22 characters
/// as [`new_id`]; it tells when the row was made, and nothing more.
pub fn new_ordered_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut bytes = random::<16>();
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    ORDERED.encode(bytes)
}

/// URL-safe base64 with its 64 characters in ASCII order.
static ORDERED: std::sync::LazyLock<base64::engine::GeneralPurpose> =
    std::sync::LazyLock::new(|| {
        let alphabet = base64::alphabet::Alphabet::new(
            "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz",
        )
        .expect("64 distinct printable characters");
        base64::engine::GeneralPurpose::new(&alphabet, base64::engine::general_purpose::NO_PAD)
    });

/// A 256-bit opaque token (refresh tokens).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

/// 256 random bits in standard base64: a key such as a webhook secret's (`whsec_` + this).
pub fn new_token_base64() -> String {
    base64::engine::general_purpose::STANDARD.encode(random::<32>())
}

/// How tokens are stored: a database leak does not leak usable tokens.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Declares a string that is one thing of the domain, so that a session id is never passed
/// where a user id is meant, nor a secret logged: `Debug` shows an id, and only the kind of a
/// secret.
macro_rules! domain_string {
    ($(#[$meta:meta])* $name:ident, shown) => {
        domain_string!(@type $(#[$meta])* $name);
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, secret) => {
        domain_string!(@type $(#[$meta])* $name);
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
    (@type $(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

domain_string!(
    /// A user's id (`users.id`): what access tokens name as `sub`.
    UserId,
    shown
);
domain_string!(
    /// A session's id (`sessions.id`): what access tokens name as `sid`.
    SessionId,
    shown
);
domain_string!(
    /// A refresh token, as the client holds it. Stored only as its [`TokenHash`].
    RefreshToken,
    secret
);
domain_string!(
    /// The secret of the page's web session, as its cookie holds it.
    WebSessionSecret,
    secret
);
domain_string!(
    /// The SHA-256 of a token or secret, as it is stored: a binding's, say.
    TokenHash,
    shown
);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        Self(token_hash(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_shown_and_ids_are() {
        let shown = format!(
            "{:?} {:?} {:?}",
            RefreshToken::new("r.secret-value"),
            WebSessionSecret::new("w.secret-value"),
            UserId::new("u1")
        );
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("RefreshToken(<redacted>)"), "{shown}");
        assert!(shown.contains("UserId(\"u1\")"), "{shown}");
    }

    /// Ordered ids sort by their time as text (how the databases compare them), have the form
    /// of random ones, and differ when made in the same millisecond.
    #[test]
    fn ordered_ids_sort_by_time_as_text() {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.extend((0..100).map(|_| new_ordered_id()));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        for pair in ids.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(a[..8] <= b[..8], "{a} then {b}");
            assert_ne!(a, b);
        }
        assert!(ids[0][..8] < ids[299][..8]);
        let random = new_id();
        for id in [&ids[0], &random] {
            assert_eq!(id.len(), 22);
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
        }
    }
}
