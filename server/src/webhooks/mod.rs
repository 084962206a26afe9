//! Webhooks: the app's backend learns what happens to its users (created, deleted by the app or
//! at Apple, consent revoked, relay email turned off or on, moved to another team), signed as
//! the Standard Webhooks specification describes and delivered at least once.
//!
//! - **Outbox.** An event is written in the database transaction of the change it reports
//!   (`store::events`): a change that rolls back sends nothing, and one that commits is sent even
//!   if the process dies right after.
//! - **Delivery** (`delivery`): a background task sends due events in order of creation, with the
//!   `standardwebhooks` crate's signatures; a 2xx is a delivery, anything else is retried with
//!   exponential backoff for three days, then the event is marked failed. Each attempt holds a
//!   lease on the row, so several instances never send one event at the same time, and every
//!   retry reuses the event's `webhook-id`, so receivers can deduplicate.

pub mod config;
pub mod delivery;

pub use config::{WebhookConfig, WebhookTarget, parse_secrets as parse_webhook_secrets};
// What an event says is kept with the outbox it is written to (`store::event`).
use crate::store::{new_event_id, test_payload};
