//! Group commit for SQLite: concurrent single-statement sign-ins are written by one task, which
//! commits whatever has queued up in one transaction.
//!
//! Why: SQLite has a single writer, and each autocommitted statement pays a commit of its own;
//! under load, writers also wait on each other through SQLite's sleeping busy handler. One
//! writer committing batches pays one commit per batch and never waits on the lock. A batch
//! that fails is replayed statement by statement, so one bad write never fails its neighbours.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::users::{User, UserUpsert, upsert_user};
use crate::tasks::Tasks;

/// The largest batch; bounds the latency a request can wait behind others.
const MAX_BATCH: usize = 128;

struct Job {
    upsert: UserUpsert,
    reply: oneshot::Sender<Result<User, sqlx::Error>>,
}

#[derive(Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer as a task of `tasks`.
    pub fn start(pool: AnyPool, tasks: &Tasks) -> Self {
        let (this, queue) = Self::channel();
        tasks.spawn("group-commit-writer", |stop| write(pool, queue, stop));
        this
    }

    fn channel() -> (Self, mpsc::Receiver<Job>) {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        (Self { jobs }, queue)
    }

    /// Writes `upsert` with whatever else is queued. Fails as `PoolClosed` once the writer has
    /// stopped.
    pub async fn upsert(&self, upsert: UserUpsert) -> Result<User, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { upsert, reply })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// Commits batches until `stop`; then takes no more jobs, and writes those already queued, so
/// that no caller waiting for an answer is dropped.
async fn write(pool: AnyPool, mut queue: mpsc::Receiver<Job>, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = tokio::select! {
            n = queue.recv_many(&mut batch, MAX_BATCH) => n,
            () = stop.cancelled() => {
                queue.close();
                queue.recv_many(&mut batch, MAX_BATCH).await
            }
        };
        if received == 0 {
            return;
        }
        write_batch(&pool, &mut batch).await;
    }
}

async fn write_batch(pool: &AnyPool, batch: &mut Vec<Job>) {
    match commit(pool, batch).await {
        Ok(users) => {
            for (job, user) in batch.drain(..).zip(users) {
                let _ = job.reply.send(Ok(user));
            }
        }
        Err(error) => {
            tracing::warn!(%error, size = batch.len(), "a batched write failed; writing one by one");
            for job in batch.drain(..) {
                let result = match pool.acquire().await {
                    Ok(mut conn) => upsert_user(&mut conn, &job.upsert).await,
                    Err(e) => Err(e),
                };
                let _ = job.reply.send(result);
            }
        }
    }
}

async fn commit(pool: &AnyPool, batch: &[Job]) -> Result<Vec<User>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut users = Vec::with_capacity(batch.len());
    for job in batch {
        users.push(upsert_user(&mut tx, &job.upsert).await?);
    }
    tx.commit().await?;
    Ok(users)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SignInRecord;

    fn upsert(sub: &str) -> UserUpsert {
        let claims = siwa_core::IdentityClaims {
            iss: "https://appleid.apple.com".into(),
            aud: "com.example.app".into(),
            sub: sub.into(),
            iat: 1_700_000_000,
            exp: 1_700_086_400,
            nonce: None,
            nonce_supported: None,
            email: None,
            email_verified: false,
            is_private_email: false,
            real_user_status: None,
            transfer_sub: None,
            auth_time: None,
            c_hash: None,
            at_hash: None,
            org_id: None,
        };
        UserUpsert::from_record(&SignInRecord::user_only(&claims, 1_700_000_000))
    }

    /// Stopping the writer while sign-ins are queued: every queued sign-in is written and
    /// answered, and one that comes after the writer stopped is refused, not left waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_writes_what_is_queued_and_answers_every_caller() {
        let file = std::env::temp_dir().join(format!("siwa-gc-{}.db", crate::tokens::new_id()));
        let url = format!("sqlite://{}", file.display());
        let pool = crate::db::connect(&url).await.unwrap();
        let (writer, queue) = GroupCommit::channel();
        let writer = Arc::new(writer);
        let callers: Vec<_> = (0..300)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.upsert(upsert(&format!("user-{i}"))).await })
            })
            .collect();
        // Every sign-in queued before the writer runs at all.
        while writer.jobs.max_capacity() - writer.jobs.capacity() < 300 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let stop = CancellationToken::new();
        stop.cancel();
        write(pool.clone(), queue, stop).await;
        for caller in callers {
            assert!(
                caller.await.unwrap().is_ok(),
                "a queued sign-in was not written"
            );
        }
        let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 300);
        assert!(matches!(
            writer.upsert(upsert("late")).await,
            Err(sqlx::Error::PoolClosed)
        ));
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
}
