//! # siwa-server
//!
//! The Sign in with Apple backend: sign-in (seed-compatible and `/v1`), sessions of its own,
//! Apple code exchange and token revocation, server-to-server notifications, SQLite by default
//! and PostgreSQL for several instances. Everything about Apple's protocol comes from
//! `siwa-core`; this crate is the application around it.

pub mod accounts;
pub mod api;
pub mod app;
pub mod apple;
pub mod config;
pub mod db;
#[cfg(feature = "dev")]
pub mod dev;
pub mod error;
pub mod housekeeping;
pub mod readiness;
pub mod request_body;
pub mod responses;
pub mod revocation;
pub mod routes;
pub mod sealing;
pub mod secrets;
pub mod serve;
pub mod sessions;
pub mod state;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod web;
pub mod webhooks;

pub use app::{RunningServer, StartError, router, start};
pub use config::{Config, ConfigError};
