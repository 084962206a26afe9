//! The session as the client keeps it: the user, and the server's tokens.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::api::{SessionView, SignInResponse};

/// The signed-in user, as the server shows them (`GET /v1/me`). `Debug` leaves out the email
/// and the name.
pub use crate::api::UserView as User;

/// The version of the stored form: a session stored in another form is discarded.
const STORED_VERSION: u32 = 1;

/// What is stored: the only thing the client ever stores. `Debug` shows no token.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Session {
    version: u32,
    pub user: User,
    /// Apple's identifier of the user (the credential's `user`): what
    /// `getCredentialState(forUserID:)` asks about at launch.
    pub apple_user_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds since the epoch, by the client's clock.
    pub access_token_expires_at: i64,
    /// The access token's lifetime as the server gave it (`expiresIn`); 0 in a session stored
    /// before it was kept.
    #[serde(default)]
    access_token_lifetime: i64,
}

impl Session {
    pub fn started(signed_in: SignInResponse, apple_user_id: &str, now: i64) -> Self {
        Self {
            version: STORED_VERSION,
            user: signed_in.user,
            apple_user_id: apple_user_id.to_owned(),
            access_token: signed_in.session.access_token,
            refresh_token: signed_in.session.refresh_token,
            access_token_expires_at: now.saturating_add(signed_in.session.expires_in),
            access_token_lifetime: signed_in.session.expires_in,
        }
    }

    /// The same session with the tokens of a refresh (the refresh token rotates).
    pub fn refreshed(&self, tokens: SessionView, now: i64) -> Self {
        Self {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            access_token_expires_at: now.saturating_add(tokens.expires_in),
            access_token_lifetime: tokens.expires_in,
            ..self.clone()
        }
    }

    /// The same session with the user as the server now describes them.
    pub fn with_user(&self, user: User) -> Self {
        Self {
            user,
            ..self.clone()
        }
    }

    /// Whether `other` is this session at the same point of its life (same refresh token).
    pub fn is_same(&self, other: &Session) -> bool {
        self.refresh_token == other.refresh_token
    }

    /// Whether the access token expires within the margin: `max_margin`, or a quarter of the
    /// token's lifetime when that is shorter. A fixed margin as long as the lifetime would
    /// refresh every token the moment it arrives, and callers that overlap one refresh would
    /// start another.
    pub fn needs_refresh(&self, now: i64, max_margin: i64) -> bool {
        let margin = match self.access_token_lifetime {
            lifetime if lifetime > 0 => max_margin.min(lifetime / 4),
            _ => max_margin,
        };
        now.saturating_add(margin) >= self.access_token_expires_at
    }

    pub fn has_expired(&self, now: i64) -> bool {
        now >= self.access_token_expires_at
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("a session always serializes")
    }

    pub fn from_stored(stored: &str) -> Option<Self> {
        serde_json::from_str::<Self>(stored)
            .ok()
            .filter(|s| s.version == STORED_VERSION)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("access_token_expires_at", &self.access_token_expires_at)
            .finish_non_exhaustive()
    }
}
