//! The durable retry queues' shared SQL: Apple revocations waiting for Apple's confirmation, and
//! webhook events waiting for their receiver. A due row is leased before it is attempted, by
//! pushing its `next_attempt_at` to the lease's end: of several instances claiming one row,
//! exactly one gets it, and an instance that dies holding it only delays the row until the
//! lease runs out.

use super::Store;

/// A table of rows retried until done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// `apple_revocations`: a row is deleted once Apple confirms.
    Revocations,
    /// `webhook_events`: a row stays, `delivered` or `failed`, once done.
    WebhookEvents,
}

impl Queue {
    /// The table, and the condition that a row still waits.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Revocations => ("apple_revocations", "TRUE"),
            Self::WebhookEvents => ("webhook_events", "status = 'pending'"),
        }
    }
}

impl Store {
    /// Takes the lease on a due row of `queue` until `lease_until`; false when another instance
    /// has it, or it is done.
    pub async fn claim(
        &self,
        queue: Queue,
        id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, sqlx::Error> {
        let (table, waiting) = queue.table();
        let sql = format!(
            "UPDATE {table} SET next_attempt_at = $1 \
             WHERE id = $2 AND next_attempt_at <= $3 AND {waiting}"
        );
        let claimed = sqlx::query(&sql)
            .bind(lease_until)
            .bind(id)
            .bind(now)
            .execute(self.pool()?)
            .await?;
        Ok(claimed.rows_affected() == 1)
    }
}
