//! Every query the server makes, in portable SQL (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`: understood by SQLite 3.35+ and PostgreSQL alike).
//!
//! Operations that must not be left half-done (a sign-in, a deletion, a notification) run in
//! one transaction, whose first statement writes: SQLite then takes its write lock at once and
//! concurrent writers wait (busy timeout) instead of failing on a stale read snapshot.
//!
//! One module per group of tables: `users` (and the sign-in that writes them), `sessions`,
//! `revocations`, `notifications`, and `keys` (secrets at rest). Single-statement sign-ins and
//! refresh-token rotations go through the `group_commit` writer, a task the store starts and
//! owns.

mod event;
mod events;
mod group_commit;
mod health;
mod keys;
mod notifications;
mod pending_names;
mod queue;
mod recorded_sign_ins;
mod revocations;
mod sessions;
mod transfers;
mod users;
mod web;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sqlx::AnyPool;
use tokio::sync::Notify;

use crate::db::DatabaseKind;
use crate::sealing::Sealer;
use crate::tasks::Tasks;
use group_commit::GroupCommit;

pub use event::{
    DeletionReason, EmailForwarding, WebhookEvent, new_event_id, rfc3339, test_payload,
};
pub use events::DueEvent;
pub use health::{DatabaseFile, Down, KnownDown, NOTICED_WITHIN};
pub use notifications::{
    delete_user, end_authorization, mark_notification_seen, set_email_forwarding, user_of_sub,
};
pub use pending_names::PendingName;
pub use queue::Queue;
pub use revocations::{PendingRevocation, REVOCATION_LEASE_SECS};
pub use sessions::{NewSession, Rotation, create_session, create_web_session};
pub use transfers::{NewIdentity, Relinked, TransferStatus};
pub use users::{Replay, SignInRecord, SignedIn, User};
pub use web::{
    NewExchangeCode, WebCompletion, WebSignIn, insert_exchange_code, take_exchange_code,
    take_web_completion, user_by_id,
};

/// How long a session is kept after it expires, with its refresh tokens.
const ENDED_SESSIONS_KEPT_SECS: i64 = 7 * 24 * 3600;

/// `($1, $2, $3), ($4, $5, $6), ...`: `rows` groups of `width` placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    let group = |r: usize| {
        let params: Vec<String> = (1..=width).map(|n| format!("${}", r * width + n)).collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(group).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the nonce was used before")]
    NonceReplayed,
    #[error("the identity token was used before")]
    TokenReplayed,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Store {
    /// Reached through [`Store::pool`], which refuses while the database is down; the watch
    /// alone writes past it.
    unchecked_pool: AnyPool,
    /// Whether the database takes writes, as the watch last saw (`health`).
    health: Arc<health::Health>,
    /// Seals Apple's refresh tokens and the server's signing key (`crate::sealing`).
    sealer: Sealer,
    /// One writer commits concurrent single-statement sign-ins and rotations together.
    group_commit: GroupCommit,
    /// Webhooks are on: changes write their events to the outbox (`events`).
    record_events: bool,
    /// Notified after a commit that wrote events, to wake the delivery task.
    events_written: Arc<Notify>,
}

impl Store {
    /// The group-commit writer, the database's watch and, on SQLite, the WAL checkpointer are
    /// tasks of `tasks`: they stop with the server. `file`: SQLite's, as opened.
    /// `record_events`: webhooks are on (without a URL, nothing is recorded).
    pub fn new(
        pool: AnyPool,
        backend: DatabaseKind,
        file: Option<DatabaseFile>,
        sealer: Sealer,
        record_events: bool,
        tasks: &Tasks,
    ) -> Self {
        let events_written = Arc::new(Notify::new());
        // SQLite: the checkpointer copies the log in the background, the writer the rest.
        let wal_caught_up = (backend == DatabaseKind::Sqlite).then(|| {
            let caught_up = Arc::new(AtomicBool::new(false));
            let (checkpointed, raised) = (pool.clone(), caught_up.clone());
            tasks.spawn("wal-checkpointer", |stop| {
                crate::db::checkpoint_wal(checkpointed, raised, stop)
            });
            caught_up
        });
        let health = Arc::new(health::Health::default());
        let events = record_events.then(|| events_written.clone());
        let group_commit = GroupCommit::start(
            pool.clone(),
            backend,
            sealer.clone(),
            events,
            wal_caught_up,
            health.clone(),
            tasks,
        );
        // While up, the watch writes through the writer (beside it, on SQLite, it would make the
        // writer wait in SQLite's sleeping busy handler); while down, straight to the pool, so
        // that the writer stays free to refuse at once.
        let (watched, writer, probed) = (health.clone(), group_commit.clone(), pool.clone());
        let write = move || {
            let (up, writer, pool) = (watched.check().is_ok(), writer.clone(), probed.clone());
            async move {
                if up {
                    writer.probe().await
                } else {
                    group_commit::write_readiness(&pool).await
                }
            }
        };
        let watched = health.clone();
        tasks.spawn("database-watch", |stop| {
            health::watch(watched, write, file, stop)
        });
        Self {
            unchecked_pool: pool,
            health,
            sealer,
            group_commit,
            record_events,
            events_written,
        }
    }

    /// The pool, unless the database is known to be down: then the operation is refused at
    /// once ([`KnownDown`]), rather than wait for a connection.
    /// A transaction, for `accounts` to keep rows together with the row functions of the
    /// store's modules (the same refusal as every operation while the database is down).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        self.pool()?.begin().await
    }

    fn pool(&self) -> Result<&AnyPool, sqlx::Error> {
        self.health.admit()?;
        Ok(&self.unchecked_pool)
    }

    /// Whether the database takes writes, as its watch last saw (within [`NOTICED_WITHIN`]).
    pub fn health(&self) -> Result<(), Down> {
        self.health.check()
    }

    pub async fn close(&self) {
        self.unchecked_pool.close().await;
    }

    /// Forgets nonces and web-flow rows past their time, notifications older than 30 days,
    /// webhook events delivered a week ago or failed a month ago, refresh tokens' successors
    /// past the reuse grace, and sessions (with their tokens) a week after they expired.
    pub async fn purge_expired(
        &self,
        now: i64,
        refresh_reuse_grace_secs: i64,
    ) -> Result<(), sqlx::Error> {
        for table in [
            "used_nonces",
            "used_identity_tokens",
            "web_sign_ins",
            "web_exchange_codes",
            "web_completions",
            "pending_names",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
                .bind(now)
                .execute(self.pool()?)
                .await?;
        }
        // Delivered events are kept a week (to answer "was it sent?"), failed ones a month.
        sqlx::query(
            "DELETE FROM webhook_events WHERE (status = 'delivered' AND delivered_at < $1) \
             OR (status = 'failed' AND created_at < $2)",
        )
        .bind(now - 7 * 24 * 3600)
        .bind(now - 30 * 24 * 3600)
        .execute(self.pool()?)
        .await?;
        sessions::forget_successors(self.pool()?, now - refresh_reuse_grace_secs).await?;
        // Until then a used token of an ended session still gets its precise answer.
        sessions::forget_ended_sessions(self.pool()?, now - ENDED_SESSIONS_KEPT_SECS).await?;
        sqlx::query("DELETE FROM notifications_seen WHERE received_at < $1")
            .bind(now - 30 * 24 * 3600)
            .execute(self.pool()?)
            .await?;
        Ok(())
    }
}
