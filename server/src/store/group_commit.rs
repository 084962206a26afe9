//! Group commit: concurrent single-statement sign-ins and refresh-token rotations are written
//! by one task, which commits whatever has queued up in one transaction.
//!
//! Why: each autocommitted statement pays a commit of its own, a flush of the log to disk. On
//! SQLite there is also a single writer, and under load writers wait on each other through its
//! sleeping busy handler; on PostgreSQL each commit is a WAL flush and a round trip. One writer
//! committing batches pays one commit per batch (and on SQLite never waits on the lock). A batch
//! that fails is replayed statement by statement, so one bad write never fails its neighbours.
//!
//! A batch is written in one statement per round, not one per sign-in: the first sign-in of
//! each user in the batch, then the second of those who signed in twice, and so on (a statement
//! may not update a row twice). On PostgreSQL that is one round trip where there were as many as
//! sign-ins. Several instances each run a writer: rows go in the order of their `apple_sub`, so
//! two batches lock shared rows in one order and never deadlock.
//!
//! Rotations of refresh tokens (the call a deployed server gets most) are written the same way,
//! in four statements per batch (`sessions::rotate_batch`). A token already used, which needs
//! the judgement of a reuse, goes back to its caller to be rotated in a transaction of its own.
//!
//! A returning user's sign-in that brings nothing new, less than a minute after their last
//! recorded one, is not written at all: the upsert's own condition leaves its row alone
//! (`WriteWhen::SomethingNew`), and only then is the row read, to answer it as it is. When every
//! sign-in is a write (production's case), a batch is one statement, with no read before it.
//!
//! Sign-ins that record more (`recorded_sign_ins`: the apps' route, the web flow's callback)
//! join the batch's transaction: their nonces and tokens, then their users, sessions and refresh
//! tokens, a few statements whatever the batch's size. A batch with both kinds writes the plain
//! users' rows, then the recorded ones', each statement in `apple_sub` order; two instances'
//! batches that lock shared rows in opposite orders across those statements can deadlock, which
//! PostgreSQL breaks by failing one, and a failed batch is written one by one.
//!
//! With webhooks on, a new user's `user.created` is written in the same transaction as the user
//! (the batch's, or the replayed statement's own), so an event still commits exactly with its
//! change, and the delivery task is woken after a commit that wrote one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::event::WebhookEvent;
use super::events::insert_event;
use super::health::{Down, Health, KnownDown};
use super::pending_names::take_kept_names;
use super::recorded_sign_ins::{Grouped, RecordedSignIn, Refusal, claim_single_use, open_sessions};
use super::sessions::{Batched, Claim, rotate_batch};
use super::users::{
    User, UserUpsert, WriteWhen, upsert_user, upsert_users, upsert_users_recording_created,
    with_unwritten,
};
use crate::db::DatabaseKind;
use crate::sealing::Sealer;
use crate::tasks::Tasks;

/// The largest batch; bounds the latency a request can wait behind others.
const MAX_BATCH: usize = 128;

/// A write waiting for the writer, and whom to answer once it is committed.
enum Job {
    SignIn(SignIn),
    Rotation {
        claim: Claim,
        reply: oneshot::Sender<Result<Batched, sqlx::Error>>,
    },
    /// A sign-in with its nonce, token and session (`recorded_sign_ins`).
    Recorded {
        sign_in: RecordedSignIn,
        reply: oneshot::Sender<Result<Grouped, sqlx::Error>>,
    },
    /// The database's watch (`health`): whether a write of the writer's is committed.
    Probe {
        reply: oneshot::Sender<bool>,
    },
}

/// A rotation waiting for the writer, and whom to answer.
type RotationJob = (Claim, oneshot::Sender<Result<Batched, sqlx::Error>>);

/// A recorded sign-in waiting for the writer, and whom to answer.
type RecordedJob = (
    RecordedSignIn,
    oneshot::Sender<Result<Grouped, sqlx::Error>>,
);

/// A batch's jobs that write, by kind.
#[derive(Default)]
struct Writes {
    sign_ins: Vec<SignIn>,
    recorded: Vec<RecordedJob>,
    rotations: Vec<RotationJob>,
}

impl Writes {
    fn is_empty(&self) -> bool {
        self.sign_ins.is_empty() && self.recorded.is_empty() && self.rotations.is_empty()
    }

    fn len(&self) -> usize {
        self.sign_ins.len() + self.recorded.len() + self.rotations.len()
    }
}

struct SignIn {
    upsert: UserUpsert,
    /// The user, and whether this sign-in created it.
    reply: oneshot::Sender<Result<(User, bool), sqlx::Error>>,
}

#[derive(Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer as a task of `tasks`; `events` when webhooks are on; `wal_caught_up`
    /// on SQLite (`db::checkpoint_wal`).
    pub fn start(
        pool: AnyPool,
        backend: DatabaseKind,
        sealer: Sealer,
        events: Option<Arc<Notify>>,
        wal_caught_up: Option<Arc<AtomicBool>>,
        health: Arc<Health>,
        tasks: &Tasks,
    ) -> Self {
        let (this, queue) = Self::channel();
        let writer = Writer {
            pool,
            postgres: backend == DatabaseKind::Postgres,
            sealer,
            events,
            wal_caught_up,
            health,
        };
        tasks.spawn("group-commit-writer", |stop| write(writer, queue, stop));
        this
    }

    fn channel() -> (Self, mpsc::Receiver<Job>) {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        (Self { jobs }, queue)
    }

    /// Writes `upsert` with whatever else is queued, unless it brings nothing new
    /// (`WriteWhen::SomethingNew`); the user, and whether this sign-in created it. Fails as
    /// `PoolClosed` once the writer has stopped.
    pub async fn upsert(&self, upsert: UserUpsert) -> Result<(User, bool), sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::SignIn(SignIn { upsert, reply }), answer)
            .await
    }

    /// Writes a sign-in's nonce, token, user and session with whatever else is queued, or says
    /// it was refused for a replay, or must be written alone.
    pub async fn sign_in(&self, sign_in: RecordedSignIn) -> Result<Grouped, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Recorded { sign_in, reply }, answer).await
    }

    /// Rotates the claimed refresh token with whatever else is queued, or says it must be
    /// rotated alone.
    pub async fn rotate(&self, claim: Claim) -> Result<Batched, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Rotation { claim, reply }, answer).await
    }

    /// Whether the writer commits a write (the readiness row's), made after whatever is queued.
    /// The database's watch asks through the writer, not beside it: on SQLite, a second writer
    /// would make the group-commit writer wait for the lock in SQLite's sleeping busy handler.
    pub async fn probe(self) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job::Probe { reply }).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    async fn send<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// Where the writer writes, and whom it wakes after committing events (webhooks on).
struct Writer {
    pool: AnyPool,
    /// The database is PostgreSQL (which writes a batch's events in its upsert's statement).
    postgres: bool,
    /// Opens the names kept from failed first sign-ins (`pending_names`).
    sealer: Sealer,
    events: Option<Arc<Notify>>,
    /// SQLite: raised when the checkpointer has copied the log, for the writer to copy the rest
    /// between two batches.
    wal_caught_up: Option<Arc<AtomicBool>>,
    /// While the database is known to be down, a batch is refused whole, at once.
    health: Arc<Health>,
}

impl Writer {
    /// Upserts one user in `tx`, with its `user.created` when it is new and webhooks are on;
    /// says whether it wrote an event.
    async fn upsert(
        &self,
        tx: &mut Transaction<'_, Any>,
        upsert: &UserUpsert,
    ) -> Result<(User, bool), sqlx::Error> {
        let user = upsert_user(tx, upsert).await?;
        let created = self.record_created(tx, &user, upsert.now()).await?;
        Ok((user, created))
    }

    /// Writes `user.created` for a new user when webhooks are on; says whether it did.
    async fn record_created(
        &self,
        tx: &mut Transaction<'_, Any>,
        user: &User,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let created = self.events.is_some() && user.sign_in_count == 1;
        if created {
            let event = WebhookEvent::created(&user.id, &user.apple_sub);
            insert_event(tx, &event, now).await?;
        }
        Ok(created)
    }

    /// Between two batches: ends the checkpoint the checkpointer has caught up with, if it has.
    async fn finish_wal_checkpoint(&self) {
        // A load first: after every batch, a swap would write the flag's cache line for nothing.
        if let Some(caught_up) = &self.wal_caught_up
            && caught_up.load(Ordering::Relaxed)
            && caught_up.swap(false, Ordering::Acquire)
        {
            crate::db::finish_wal_checkpoint(&self.pool).await;
        }
    }

    fn committed(&self, wrote_events: bool) {
        if let (true, Some(events)) = (wrote_events, &self.events) {
            events.notify_one();
        }
    }
}

/// Commits batches until `stop`; then takes no more jobs, and writes those already queued, so
/// that no caller waiting for an answer is dropped.
async fn write(writer: Writer, mut queue: mpsc::Receiver<Job>, stop: CancellationToken) {
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
        write_batch(&writer, &mut batch).await;
        writer.finish_wal_checkpoint().await;
    }
}

async fn write_batch(writer: &Writer, batch: &mut Vec<Job>) {
    let mut writes = Writes::default();
    let mut probes = Vec::new();
    for job in batch.drain(..) {
        match job {
            Job::SignIn(sign_in) => writes.sign_ins.push(sign_in),
            Job::Recorded { sign_in, reply } => writes.recorded.push((sign_in, reply)),
            Job::Rotation { claim, reply } => writes.rotations.push((claim, reply)),
            Job::Probe { reply } => probes.push(reply),
        }
    }
    match writer.health.check() {
        Ok(()) => write_jobs(writer, writes).await,
        Err(down) => refuse(writes, down),
    }
    // A probe is made even while the database is down: it is how the watch sees it come back.
    if !probes.is_empty() {
        let took = write_readiness(&writer.pool).await;
        for reply in probes {
            let _ = reply.send(took);
        }
    }
}

/// Commits a write to the readiness row; says whether it went through.
pub(super) async fn write_readiness(pool: &AnyPool) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let written = sqlx::query("UPDATE readiness SET checked_at = $1 WHERE id = 1")
        .bind(now)
        .execute(pool)
        .await;
    if let Err(error) = &written {
        tracing::debug!(%error, "the database refused the watch's write");
    }
    written.is_ok()
}

/// Writes a batch's sign-ins and rotations and answers each.
async fn write_jobs(writer: &Writer, writes: Writes) {
    if writes.is_empty() {
        return;
    }
    let recorded: Vec<&RecordedSignIn> = writes.recorded.iter().map(|(job, _)| job).collect();
    let claims: Vec<&Claim> = writes.rotations.iter().map(|(claim, _)| claim).collect();
    let committed = commit(writer, &writes.sign_ins, &recorded, &claims).await;
    match committed {
        Ok(Committed {
            users,
            recorded: grouped,
            rotations: outcomes,
        }) => {
            for (sign_in, answer) in writes.sign_ins.into_iter().zip(users) {
                let _ = sign_in.reply.send(Ok(answer));
            }
            for ((_, reply), outcome) in writes.recorded.into_iter().zip(grouped) {
                let _ = reply.send(Ok(outcome));
            }
            for ((_, reply), outcome) in writes.rotations.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) if crate::db::is_unreachable(&error) => {
            // Writing each one alone would wait for the database once per job (128 connection
            // time limits, past every request's): the batch is refused whole instead.
            let size = writes.len();
            tracing::warn!(%error, size, "a batched write failed: the database cannot be reached");
            // Said at once, not at the watch's next write: the batches queued behind are
            // refused without a wait each.
            writer.health.record(Err(Down::RefusedWrite));
            refuse(writes, Down::RefusedWrite);
        }
        Err(error) => {
            let size = writes.len();
            tracing::warn!(%error, size, "a batched write failed; writing one by one");
            // Rotations and recorded sign-ins go back to their callers, which write each in a
            // transaction of its own, in parallel; plain sign-ins are written here.
            for (_, reply) in writes.rotations {
                let _ = reply.send(Ok(Batched::Alone));
            }
            for (_, reply) in writes.recorded {
                let _ = reply.send(Ok(Grouped::Alone));
            }
            for sign_in in writes.sign_ins {
                let user = commit_one(writer, &sign_in.upsert).await;
                let _ = sign_in.reply.send(user.map(|user| created(user, true)));
            }
        }
    }
}

/// Answers every job that the database is down.
fn refuse(writes: Writes, down: Down) {
    let refused = || KnownDown(down).into_sqlx();
    for sign_in in writes.sign_ins {
        let _ = sign_in.reply.send(Err(refused()));
    }
    for (_, reply) in writes.recorded {
        let _ = reply.send(Err(refused()));
    }
    for (_, reply) in writes.rotations {
        let _ = reply.send(Err(refused()));
    }
}

/// A user, and whether this sign-in created it: a user written for the first time.
fn created(user: User, written: bool) -> (User, bool) {
    let created = written && user.sign_in_count == 1;
    (user, created)
}

/// What a committed batch wrote, each in the batch's order.
struct Committed {
    /// Each plain sign-in's user, and whether it created it.
    users: Vec<(User, bool)>,
    recorded: Vec<Grouped>,
    rotations: Vec<Batched>,
}

/// Writes the batch; what it wrote, once committed.
async fn commit(
    writer: &Writer,
    sign_ins: &[SignIn],
    recorded: &[&RecordedSignIn],
    claims: &[&Claim],
) -> Result<Committed, sqlx::Error> {
    let upserts: Vec<&UserUpsert> = sign_ins.iter().map(|s| &s.upsert).collect();
    if recorded.is_empty()
        && claims.is_empty()
        && (writer.events.is_none() || writer.postgres)
        && let [round] = rounds(&upserts).as_slice()
    {
        // One statement, which commits on its own: that spares PostgreSQL the round trips of
        // BEGIN and COMMIT. With webhooks on, the new users' events are written by the same
        // statement on PostgreSQL; SQLite, which cannot, keeps the transaction (in-process,
        // where BEGIN and COMMIT cost little).
        let upserts: Vec<&UserUpsert> = round.iter().map(|&i| upserts[i]).collect();
        let conn = &mut *writer.pool.acquire().await?;
        let written = if writer.events.is_some() {
            upsert_users_recording_created(conn, &upserts, WriteWhen::SomethingNew).await?
        } else {
            upsert_users(conn, &upserts, WriteWhen::SomethingNew).await?
        };
        let wrote_events = writer.events.is_some() && written.iter().any(|u| u.sign_in_count == 1);
        let mut answered = with_unwritten(conn, &upserts, written).await?;
        let users = sign_ins
            .iter()
            .map(|job| {
                let (user, written) = answered
                    .remove(job.upsert.apple_sub())
                    .ok_or(sqlx::Error::RowNotFound)?;
                Ok(created(user, written))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        writer.committed(wrote_events);
        return Ok(Committed {
            users,
            recorded: Vec::new(),
            rotations: Vec::new(),
        });
    }
    let mut tx = writer.pool.begin().await?;
    let refusals = if recorded.is_empty() {
        Vec::new()
    } else {
        claim_single_use(&mut tx, recorded).await?
    };
    // Plain sign-ins first, each written only when it brings something new; then the recorded
    // ones that were not refused, always written. Each in rounds (a statement writes a row
    // once); a user in both is written by both statements.
    let mut users: Vec<Option<(User, bool)>> = vec![None; sign_ins.len()];
    let mut wrote_events = false;
    for round in rounds(&upserts) {
        let in_round: Vec<&UserUpsert> = round.iter().map(|&i| upserts[i]).collect();
        let written = upsert_users(&mut tx, &in_round, WriteWhen::SomethingNew).await?;
        let mut answered = with_unwritten(&mut tx, &in_round, written).await?;
        for i in round {
            let upsert = upserts[i];
            let (user, written) = answered
                .remove(upsert.apple_sub())
                .ok_or(sqlx::Error::RowNotFound)?;
            if written {
                wrote_events |= writer.record_created(&mut tx, &user, upsert.now()).await?;
            }
            users[i] = Some(created(user, written));
        }
    }
    let admitted: Vec<usize> = (0..recorded.len())
        .filter(|&i| refusals[i].is_none())
        .collect();
    let admitted_upserts: Vec<&UserUpsert> =
        admitted.iter().map(|&i| &recorded[i].upsert).collect();
    let mut recorded_users: Vec<Option<User>> = vec![None; admitted.len()];
    for round in rounds(&admitted_upserts) {
        let in_round: Vec<&UserUpsert> = round.iter().map(|&i| admitted_upserts[i]).collect();
        let mut written = by_sub(upsert_users(&mut tx, &in_round, WriteWhen::Always).await?);
        for i in round {
            let upsert = admitted_upserts[i];
            let user = written
                .remove(upsert.apple_sub())
                .ok_or(sqlx::Error::RowNotFound)?;
            wrote_events |= writer.record_created(&mut tx, &user, upsert.now()).await?;
            recorded_users[i] = Some(user);
        }
    }
    let users: Vec<(User, bool)> = users.into_iter().flatten().collect();
    let mut recorded_users: Vec<User> = recorded_users.into_iter().flatten().collect();
    // New users of recorded sign-ins without a name take one kept from a failed first one.
    let mut nameless: Vec<&mut User> = recorded_users
        .iter_mut()
        .zip(&admitted)
        .filter(|(user, i)| user.sign_in_count == 1 && recorded[**i].take_kept_name)
        .map(|(user, _)| user)
        .collect();
    let now = recorded.first().map_or(0, |r| r.upsert.now());
    take_kept_names(&mut tx, &writer.sealer, &mut nameless, now).await?;
    let opened: Vec<(&RecordedSignIn, &User)> = admitted
        .iter()
        .map(|&i| recorded[i])
        .zip(&recorded_users)
        .collect();
    open_sessions(&mut tx, &opened).await?;
    let outcomes = if claims.is_empty() {
        Vec::new()
    } else {
        rotate_batch(&mut tx, claims).await?
    };
    tx.commit().await?;
    writer.committed(wrote_events);
    let mut recorded_users = recorded_users.into_iter();
    let grouped = recorded
        .iter()
        .zip(refusals)
        .map(|(job, refusal)| match refusal {
            Some(Refusal::Nonce) => Grouped::NonceReplayed,
            Some(Refusal::Token) => Grouped::TokenReplayed,
            None => Grouped::SignedIn {
                user: Box::new(recorded_users.next().expect("a user per admitted sign-in")),
                session: job.opened(),
            },
        })
        .collect();
    Ok(Committed {
        users,
        recorded: grouped,
        rotations: outcomes,
    })
}

/// One round's users by `apple_sub` (a statement returns them in no given order).
fn by_sub(users: Vec<User>) -> HashMap<String, User> {
    users
        .into_iter()
        .map(|user| (user.apple_sub.clone(), user))
        .collect()
}

/// The batch's indexes in rounds: the k-th sign-in of each user in round k, so that no round
/// holds a user twice; each round in `apple_sub` order.
fn rounds(batch: &[&UserUpsert]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    // Stable: a user's sign-ins keep their arrival order across rounds.
    order.sort_by(|&a, &b| batch[a].apple_sub().cmp(batch[b].apple_sub()));
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut previous: Option<&str> = None;
    let mut k = 0;
    for i in order {
        let sub = batch[i].apple_sub();
        k = if previous == Some(sub) { k + 1 } else { 0 };
        previous = Some(sub);
        if rounds.len() <= k {
            rounds.push(Vec::new());
        }
        rounds[k].push(i);
    }
    rounds
}

/// One job in a transaction of its own, after its batch failed.
async fn commit_one(writer: &Writer, upsert: &UserUpsert) -> Result<User, sqlx::Error> {
    let mut tx = writer.pool.begin().await?;
    let (user, created) = writer.upsert(&mut tx, upsert).await?;
    tx.commit().await?;
    writer.committed(created);
    Ok(user)
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

    #[test]
    fn each_round_holds_a_user_once_in_apple_sub_order() {
        let mut jobs: Vec<SignIn> = Vec::new();
        for sub in ["b", "a", "b", "c", "b", "a"] {
            let (reply, _) = oneshot::channel();
            jobs.push(SignIn {
                upsert: upsert(sub),
                reply,
            });
        }
        // b's three sign-ins in rounds 0, 1, 2 in arrival order (indexes 0, 2, 4).
        let upserts: Vec<&UserUpsert> = jobs.iter().map(|j| &j.upsert).collect();
        assert_eq!(rounds(&upserts), vec![vec![1, 0, 3], vec![5, 2], vec![4]]);
        assert!(rounds(&[]).is_empty());
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
        let task = Writer {
            pool: pool.clone(),
            postgres: false,
            sealer: Sealer::from_keys(&Sealer::generate_key()).unwrap(),
            events: None,
            wal_caught_up: None,
            health: Arc::default(),
        };
        write(task, queue, stop).await;
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

    /// While the database is known to be down, a batch is answered at once, whole, and nothing
    /// of it is written; once it is back, the next batch is written.
    #[tokio::test]
    async fn a_batch_is_refused_whole_while_the_database_is_down() {
        let file = std::env::temp_dir().join(format!("siwa-gc-{}.db", crate::tokens::new_id()));
        let url = format!("sqlite://{}", file.display());
        let pool = crate::db::connect(&url).await.unwrap();
        let health = Arc::new(Health::default());
        let writer = Writer {
            pool: pool.clone(),
            postgres: false,
            sealer: Sealer::from_keys(&Sealer::generate_key()).unwrap(),
            events: None,
            wal_caught_up: None,
            health: health.clone(),
        };
        let batch = |subs: std::ops::Range<usize>| {
            let mut answers = Vec::new();
            let jobs: Vec<Job> = subs
                .map(|i| {
                    let (reply, answer) = oneshot::channel();
                    answers.push(answer);
                    Job::SignIn(SignIn {
                        upsert: upsert(&format!("user-{i}")),
                        reply,
                    })
                })
                .collect();
            (jobs, answers)
        };
        health.record(Err(Down::RefusedWrite));
        let (mut jobs, answers) = batch(0..10);
        write_batch(&writer, &mut jobs).await;
        for answer in answers {
            let answer = answer.await.unwrap();
            assert!(
                matches!(answer, Err(ref e) if KnownDown::is(e)),
                "not refused"
            );
        }
        health.record(Ok(()));
        let (mut jobs, answers) = batch(10..20);
        write_batch(&writer, &mut jobs).await;
        for answer in answers {
            assert!(answer.await.unwrap().is_ok());
        }
        let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 10, "only the batch written while up");
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }

    /// A log the checkpointer could not copy whole (here a reader holds an older snapshot; under
    /// load, the frames committed during its pass) starts over once the writer has finished the
    /// checkpoint between two batches, instead of growing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_finishes_a_checkpoint_so_the_log_starts_over() {
        let file = std::env::temp_dir().join(format!("siwa-wal-{}.db", crate::tokens::new_id()));
        let url = format!("sqlite://{}", file.display());
        let pool = crate::db::connect(&url).await.unwrap();
        let caught_up = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            pool: pool.clone(),
            postgres: false,
            sealer: Sealer::from_keys(&Sealer::generate_key()).unwrap(),
            events: None,
            wal_caught_up: Some(caught_up.clone()),
            health: Arc::default(),
        };
        let wal = || {
            std::fs::metadata(format!("{}-wal", file.display()))
                .unwrap()
                .len()
        };
        let sign_in = |subs: std::ops::Range<usize>| {
            let writer = &writer;
            async move {
                let mut batch: Vec<Job> = subs
                    .map(|i| {
                        let (reply, _) = oneshot::channel();
                        Job::SignIn(SignIn {
                            upsert: upsert(&format!("user-{i}")),
                            reply,
                        })
                    })
                    .collect();
                write_batch(writer, &mut batch).await;
            }
        };
        sign_in(0..200).await;
        let mut reader = pool.begin().await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM users")
            .execute(&mut *reader)
            .await
            .unwrap();
        sign_in(200..400).await;
        let mut handed = false;
        let pass = crate::db::checkpoint_pass(&pool, &caught_up, &mut handed, 0)
            .await
            .unwrap();
        assert_eq!(pass, crate::db::Pass::HandedToWriter);
        assert!(caught_up.load(Ordering::Acquire), "the log was long");
        reader.commit().await.unwrap();
        writer.finish_wal_checkpoint().await;
        assert!(!caught_up.load(Ordering::Acquire));
        let before = wal();
        sign_in(400..600).await;
        assert_eq!(
            wal(),
            before,
            "the next commits were written from the log's start"
        );
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
}
