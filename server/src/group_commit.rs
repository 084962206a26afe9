//! Group commit for SQLite: concurrent single-statement sign-ins are written by one task, which
//! commits whatever has queued up in one transaction.
//!
//! Why: SQLite has a single writer, and each autocommitted statement pays a commit of its own;
//! under load, writers also wait on each other through SQLite's sleeping busy handler. One
//! writer committing batches pays one commit per batch and never waits on the lock. A batch
//! that fails is replayed statement by statement, so one bad write never fails its neighbours.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::store::{User, UserUpsert, upsert_user};

/// The largest batch; bounds the latency a request can wait behind others.
const MAX_BATCH: usize = 128;

struct Job {
    upsert: UserUpsert,
    reply: oneshot::Sender<Result<User, sqlx::Error>>,
}

#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    pub fn start(pool: AnyPool) -> Self {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write(pool, queue));
        Self { jobs }
    }

    pub async fn upsert(&self, upsert: UserUpsert) -> Result<User, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { upsert, reply })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// Runs until every `GroupCommit` handle is dropped.
async fn write(pool: AnyPool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&pool, &batch).await {
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
