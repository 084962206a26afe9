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
}
