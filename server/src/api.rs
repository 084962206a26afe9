//! The JSON shapes of the HTTP API: `siwa_core::api`'s, which the client reads too, and how a
//! stored user is shown in them.

pub use siwa_core::api::compat::{
    SignInRequest as CompatSignInRequest, SignInResponse as CompatSignInResponse,
    User as CompatUser,
};
pub use siwa_core::api::*;

use crate::store::User;

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            apple_user_id: u.apple_sub.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified != 0,
            is_private_email: u.is_private_email != 0,
            email_forwarding_disabled: u.email_forwarding_disabled != 0,
            given_name: u.given_name.clone(),
            family_name: u.family_name.clone(),
            created_at: u.created_at,
        }
    }
}
