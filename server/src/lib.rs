//! The Sign in with Apple backend (filled by a later issue).
