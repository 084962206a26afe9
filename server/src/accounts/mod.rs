//! The accounts: the rules of signing in, deleting an account and applying Apple's
//! notifications, whichever route asks. The store keeps the SQL and the transactions; the
//! routes keep HTTP.

mod deletion;
mod notifications;
mod sign_in;

pub use deletion::delete;
pub use notifications::apply as apply_notification;
pub use sign_in::{Flow, SignIn, sign_in, sign_in_compat, sign_in_from_browser};
