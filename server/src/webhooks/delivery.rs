//! Delivering the outbox: a background task of the running server.
//!
//! It wakes when events are committed (and every second, for those of other instances and
//! retries), takes the due events in order of creation, and for each takes a lease on its row
//! (so no two instances send it at once), sends it, and records the outcome. A 2xx is a
//! delivery; any other status, a timeout or a refused connection is a failure, retried after
//! `retry_base`, doubling up to six hours, for three days; then the event is marked failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use siwa_core::Clock;
use standardwebhooks::Webhook;
use tokio_util::sync::CancellationToken;

use super::{WebhookConfig, WebhookTarget};
use crate::retry::{self, Backoff};
use crate::store::{DueEvent, Queue, Store};

/// How long one attempt may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an instance holds an event it sends: far longer than an attempt.
const LEASE_SECS: i64 = 30;
/// Failures are retried for at least this long after the event was made.
const GIVE_UP_AFTER_SECS: i64 = 3 * 24 * 3600;
/// Looked at this often even without a wake-up (other instances' events, retries).
const POLL: Duration = Duration::from_secs(1);

enum Sender {
    Http {
        client: reqwest::Client,
        url: url::Url,
        signers: Vec<Webhook>,
    },
    Print,
}

/// Runs until `stop`.
pub async fn run(
    store: Store,
    config: WebhookConfig,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    let sender = match Sender::new(&config.target) {
        Ok(sender) => Arc::new(sender),
        Err(error) => {
            tracing::error!(%error, "webhooks cannot be sent");
            return;
        }
    };
    let retry_base = i64::try_from(config.retry_base.as_secs()).unwrap_or(i64::MAX);
    loop {
        let now = clock.now();
        let due = match store.due_events(now, 100).await {
            Ok(due) => due,
            Err(error) => {
                // While the database is known to be down, its watch has said so.
                if !crate::store::KnownDown::is(&error) {
                    tracing::warn!(%error, "could not read the webhook outbox");
                }
                Vec::new()
            }
        };
        for event in &due {
            if stop.is_cancelled() {
                return;
            }
            attempt(&store, &sender, event, retry_base, clock.as_ref()).await;
        }
        if due.len() == 100 {
            continue;
        }
        tokio::select! {
            () = store.events_written() => {}
            () = tokio::time::sleep(POLL) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Sends one event if this instance gets its lease, and records the outcome.
async fn attempt(
    store: &Store,
    sender: &Sender,
    event: &DueEvent,
    retry_base: i64,
    clock: &dyn Clock,
) {
    let now = clock.now();
    if !retry::lease(store, Queue::WebhookEvents, &event.id, now, LEASE_SECS).await {
        return;
    }
    let started = Instant::now();
    let outcome = sender.send(event, now).await;
    metrics::histogram!("siwa_webhook_request_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    let now = clock.now();
    let recorded = match outcome {
        Ok(()) => {
            metrics::counter!("siwa_webhook_deliveries_total", "outcome" => "delivered")
                .increment(1);
            metrics::histogram!("siwa_webhook_delivery_latency_seconds")
                .record((now - event.created_at).max(0) as f64);
            store.event_delivered(&event.id, now).await
        }
        Err(error) => {
            let delay = Backoff::from_base(retry_base).delay(event.attempts);
            let retry_at =
                (now + delay - event.created_at <= GIVE_UP_AFTER_SECS).then_some(now + delay);
            let outcome = if retry_at.is_some() {
                "retry"
            } else {
                "failed"
            };
            metrics::counter!("siwa_webhook_deliveries_total", "outcome" => outcome).increment(1);
            // The event's type and id only: never its data.
            tracing::warn!(
                event = event.event_type.as_str(),
                id = event.id,
                attempts = event.attempts + 1,
                retry_in_secs = retry_at.map(|_| delay),
                %error,
                "webhook delivery failed"
            );
            store
                .event_attempt_failed(&event.id, retry_at, &error)
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(%error, id = event.id, "the outcome of a webhook attempt could not be recorded; it will be sent again");
    }
}

impl Sender {
    fn new(target: &WebhookTarget) -> Result<Self, String> {
        match target {
            WebhookTarget::Print => Ok(Self::Print),
            WebhookTarget::Url { url, secrets } => {
                let signers = secrets
                    .iter()
                    .map(|s| Webhook::new(s).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                let client = reqwest::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .connect_timeout(REQUEST_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("siwa-server/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(Self::Http {
                    client,
                    url: url.clone(),
                    signers,
                })
            }
        }
    }

    /// One attempt; the error says why, without the body.
    async fn send(&self, event: &DueEvent, now: i64) -> Result<(), String> {
        match self {
            Self::Print => {
                let user = serde_json::from_str::<serde_json::Value>(&event.payload)
                    .ok()
                    .and_then(|p| p["data"]["userId"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                println!(
                    "webhook {} for user {user} (printed: dev has no --webhook-url)",
                    event.event_type.as_str()
                );
                Ok(())
            }
            Self::Http { .. } => self.post(&event.id, &event.payload, now).await,
        }
    }

    /// Posts a signed body; `Print` posts nothing.
    async fn post(&self, id: &str, payload: &str, now: i64) -> Result<(), String> {
        let Self::Http {
            client,
            url,
            signers,
        } = self
        else {
            return Ok(());
        };
        // Every secret signs (two during a rotation): the receiver accepts either.
        let signatures = signers
            .iter()
            .map(|s| s.sign(id, now, payload.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?
            .join(" ");
        let response = client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signatures)
            .body(payload.to_owned())
            .send()
            .await
            .map_err(|e| siwa_core::transport_reason(&e).to_owned())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status().as_u16()))
        }
    }
}

/// Sends one signed `siwa.test` event to the target, as a delivery would, and says whether the
/// receiver answered 2xx (`siwa-server doctor`). It is never written to the outbox nor counted.
pub async fn send_test_event(target: &WebhookTarget, now: i64) -> Result<(), String> {
    let id = super::new_event_id();
    Sender::new(target)?
        .post(&id, &super::test_payload(now), now)
        .await
}
