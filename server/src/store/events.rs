//! The webhook outbox (`webhooks` delivers it): events written in the transaction of their change,
//! and what the delivery task reads and updates.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Any, Transaction};

use super::Store;
use super::event::{WebhookEvent, WebhookEventType, new_event_id};

/// An event waiting to be delivered.
#[derive(Clone, sqlx::FromRow)]
pub struct DueEvent {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub event_type: WebhookEventType,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// How many events are in each state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventCounts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

impl Store {
    /// Writes `event` in `tx`, when webhooks are on, and says whether it did: the caller wakes
    /// the delivery task after the commit (`Store::events_committed`), and only then.
    pub async fn record_event(
        &self,
        tx: &mut Transaction<'_, Any>,
        event: WebhookEvent,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        if !self.record_events {
            return Ok(false);
        }
        insert_event(tx, &event, now).await?;
        Ok(true)
    }

    /// Wakes the delivery task when a committed transaction wrote events; a commit that wrote
    /// none (most sign-ins) costs the task nothing.
    pub fn events_committed(&self, recorded: bool) {
        if recorded {
            self.events_written.notify_one();
        }
    }

    /// Resolves when events may have been committed since the last call.
    pub async fn events_written(&self) {
        self.events_written.notified().await;
    }

    /// The oldest due events, in order of creation.
    pub async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<DueEvent>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, event_type, payload, attempts, created_at FROM webhook_events \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY created_at_us, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool()?)
        .await
    }

    pub async fn event_delivered(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_events SET status = 'delivered', delivered_at = $1, \
             attempts = attempts + 1, last_error = NULL WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool()?)
        .await
        .map(drop)
    }

    /// Records a failed attempt: due again at `retry_at`, or failed for good without one.
    pub async fn event_attempt_failed(
        &self,
        id: &str,
        retry_at: Option<i64>,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        let (status, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("failed", i64::MAX),
        };
        sqlx::query(
            "UPDATE webhook_events SET status = $1, next_attempt_at = $2, \
             attempts = attempts + 1, last_error = $3 WHERE id = $4",
        )
        .bind(status)
        .bind(next)
        .bind(error)
        .bind(id)
        .execute(self.pool()?)
        .await
        .map(drop)
    }

    pub async fn event_counts(&self) -> Result<EventCounts, sqlx::Error> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM webhook_events GROUP BY status")
                .fetch_all(self.pool()?)
                .await?;
        let mut counts = EventCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "pending" => counts.pending = n,
                "delivered" => counts.delivered = n,
                "failed" => counts.failed = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

/// Writes `event` to the outbox in `tx`: it commits exactly with the change it reports.
pub(super) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    event: &WebhookEvent,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_events (id, event_type, payload, status, attempts, next_attempt_at, created_at, created_at_us) \
         VALUES ($1, $2, $3, 'pending', 0, $4, $4, $5)",
    )
    .bind(new_event_id())
    .bind(event.kind.as_str())
    .bind(event.payload(now))
    .bind(now)
    .bind(micros_now())
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// `created_at_us` for an event made now: by the server's clock, for every event, the ones
/// PostgreSQL makes included, so that all are ordered by one clock.
pub(super) fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
