//! The database: SQLite by default (one file, no set-up), PostgreSQL for deployments with
//! several instances. Both are reached through sqlx's `Any` driver with one portable schema
//! and one set of queries, so the same tests prove both.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};
use tokio_util::sync::CancellationToken;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    pub fn of(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The file of a SQLite URL (`sqlite://PATH?...` or `sqlite:PATH`); none for an in-memory
/// database or another backend.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
}

/// The key file beside a SQLite database (`siwa.db.key`), which seals its secrets when
/// `SIWA_ENCRYPTION_KEY` is not set.
pub fn sqlite_key_file(url: &str) -> Option<std::path::PathBuf> {
    let mut file = sqlite_file(url)?.into_os_string();
    file.push(".key");
    Some(file.into())
}

/// Creates `file` readable by its owner only, unless it exists; returns it when it was made.
/// For the SQLite file (it holds sealed secrets and personal data, and SQLite gives its `-wal`
/// and `-shm` files the database file's permissions) and the key file beside it.
pub fn create_private(file: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(created) => Ok(Some(created)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every SQLite connection's settings. WAL lets readers run beside the writer; NORMAL is durable
/// across process crashes (not power loss); foreign keys make deletion cascade; the busy timeout
/// makes concurrent writers wait instead of failing. Checkpoints run in the background
/// (`checkpoint_wal`), not inside the commit that happens to cross the threshold, which stalled
/// the writer.
const SQLITE_SETTINGS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0;";

/// Connects, sets SQLite up for concurrent use, and applies the embedded migrations.
pub async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    if let Some(file) = sqlite_file(url) {
        create_private(&file).map_err(sqlx::Error::Io)?;
    }
    // One connection first, outside the pool: the pool reports an unreachable server only as
    // "pool timed out", while this says why (refused, unknown host, bad password...). It applies
    // the migrations too, without the pool's short wait for a connection.
    let backend = DatabaseKind::of(url);
    let mut first = sqlx::AnyConnection::connect(url).await?;
    if backend == DatabaseKind::Sqlite {
        first.execute(SQLITE_SETTINGS).await?;
    }
    MIGRATOR.run(&mut first).await?;
    first.close().await?;
    let pool = AnyPoolOptions::new()
        // SQLite has one writer at a time: more connections only wait on its lock, and its
        // busy handler waits by sleeping (up to 100 ms at a time).
        .max_connections(match backend {
            DatabaseKind::Sqlite => 4,
            DatabaseKind::Postgres => 16,
        })
        // PostgreSQL: a short wait, so that a server that cannot give a connection within a
        // second is answered as unavailable (503, `Retry-After`), not left to the request's own
        // time limit. SQLite opens a file: its outages are seen otherwise (`store::health`), and
        // its connections only wait for each other.
        .acquire_timeout(match backend {
            DatabaseKind::Sqlite => Duration::from_secs(5),
            DatabaseKind::Postgres => Duration::from_secs(1),
        })
        .after_release(|connection, _| {
            Box::pin(async move {
                if !connection.is_in_transaction() {
                    return Ok(true);
                }
                // A dropped transaction's rollback is queued on the connection and runs before
                // this statement. A connection still in a transaction after it is one whose
                // COMMIT and ROLLBACK both failed (a full disk, say): reused, it would nest every
                // later transaction in one that never commits, and answer 200 for writes that are
                // lost. It is closed instead.
                sqlx::query("SELECT 1").execute(&mut *connection).await?;
                let healthy = !connection.is_in_transaction();
                if !healthy {
                    tracing::warn!("a connection left inside a failed transaction was closed");
                }
                Ok(healthy)
            })
        })
        .after_connect(move |connection, _| {
            Box::pin(async move {
                if backend == DatabaseKind::Sqlite {
                    connection.execute(SQLITE_SETTINGS).await?;
                }
                Ok(())
            })
        })
        .connect_lazy(url)?;
    Ok(pool)
}

/// Whether `error` says the database cannot be reached or cannot write at all, rather than
/// refusing one statement: then trying the statements again one by one would only wait for it
/// once per statement.
pub fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => {
            let sqlite = e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
            e.code().is_some_and(|code| unreachable_code(&code, sqlite))
        }
        _ => false,
    }
}

/// PostgreSQL's SQLSTATEs of a lost or refused connection, a server shutting down or out of
/// disk, a read-only server (a standby); SQLite's result codes (extended, whose low byte is the
/// primary) of a busy or locked file, a full disk, a file it cannot open, read or write.
fn unreachable_code(code: &str, sqlite: bool) -> bool {
    if sqlite {
        // BUSY 5, LOCKED 6, READONLY 8, IOERR 10, CORRUPT 11, FULL 13, CANTOPEN 14, NOTADB 26
        let primary = code.parse::<i32>().map_or(0, |code| code & 0xff);
        return matches!(primary, 5 | 6 | 8 | 10 | 11 | 13 | 14 | 26);
    }
    code.starts_with("08") || code.starts_with("57P") || code == "53100" || code == "25006"
}

/// The migrations this binary knows that the database has not applied, and whether the
/// database has applied migrations this binary does not know (a newer siwa-server's).
pub async fn migration_status(
    connection: &mut sqlx::AnyConnection,
) -> Result<(Vec<String>, usize), sqlx::Error> {
    let applied: Vec<(i64,)> =
        match sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&mut *connection)
            .await
        {
            Ok(rows) => rows,
            // No table yet: nothing applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(other) => return Err(other),
        };
    let applied: std::collections::HashSet<i64> = applied.into_iter().map(|(v,)| v).collect();
    let known: std::collections::HashSet<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let pending = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    Ok((pending, applied.difference(&known).count()))
}

/// The log's length (in pages of 4 KiB: 64 MiB) past which it is started over.
const WAL_FRAMES_KEPT: i64 = 16_384;
/// How long the checkpointer waits for every connection of the pool before it gives up until
/// its next pass (requests wait behind it meanwhile).
const WAL_RESTART_WAIT: Duration = Duration::from_millis(500);

/// What a pass of the checkpointer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The log is within its bound.
    Short,
    /// The log is long: the group-commit writer finishes the checkpoint between two batches.
    HandedToWriter,
    /// The log was still long a pass later: the checkpointer started it over itself.
    Restarted,
}

/// SQLite only: folds the write-ahead log into the database every second, without blocking
/// writers (a passive checkpoint), so that no commit pays for it; and keeps the log's length
/// near [`WAL_FRAMES_KEPT`]. Runs until `stop`.
///
/// A passive checkpoint copies the frames committed before it started. The log starts over from
/// its beginning only once every frame is copied, and under sustained writes some always arrive
/// meanwhile: the log grew without bound (about 50 MB a second on the refresh route, 87 MB on
/// `POST /v1/auth/apple`), though the database itself grew by little, since each commit logs
/// whole pages. So past the bound, `caught_up` is raised, and the group-commit writer copies the
/// few frames left between two of its batches (`finish_wal_checkpoint`), when it writes
/// nothing: that costs its own writes one pause. That is enough while the writer is the only one
/// writing (the seed route, refreshes). When the log is still past the bound at the next pass
/// (transactions of the pool write beside the writer, as `POST /v1/auth/apple` does, or the
/// writer is idle), the checkpointer starts it over itself (`restart_wal`), which pauses every
/// connection. The file keeps its largest length and is written again from its start.
pub async fn checkpoint_wal(pool: AnyPool, caught_up: Arc<AtomicBool>, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut handed = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(error) = checkpoint_pass(&pool, &caught_up, &mut handed, WAL_FRAMES_KEPT).await {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
}

/// One pass of [`checkpoint_wal`]. `handed`: the previous pass handed a long log to the writer.
pub async fn checkpoint_pass(
    pool: &AnyPool,
    caught_up: &AtomicBool,
    handed: &mut bool,
    frames_kept: i64,
) -> Result<Pass, sqlx::Error> {
    // (busy, frames in the log, frames copied)
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    if frames <= frames_kept {
        *handed = false;
        return Ok(Pass::Short);
    }
    if !*handed {
        *handed = true;
        caught_up.store(true, Ordering::Release);
        return Ok(Pass::HandedToWriter);
    }
    *handed = false;
    Ok(if restart_wal(pool).await? {
        Pass::Restarted
    } else {
        Pass::HandedToWriter
    })
}

/// The end of a checkpoint `checkpoint_wal` started: copies what was committed since, which the
/// next commit then overwrites from the log's beginning. Called by the writer between batches.
pub async fn finish_wal_checkpoint(pool: &AnyPool) {
    if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
    {
        tracing::warn!(%error, "WAL checkpoint failed");
    }
}

/// Copies the rest of the log into the database and starts it over, while no connection of this
/// process can write: the checkpointer holds every connection of the pool (the pool hands them
/// out in the order they were asked for, so it gets them once the transactions under way have
/// ended, and the requests that come meanwhile wait behind it). SQLite's own way, a checkpoint
/// that waits for the write lock through the busy handler, can be outrun by writers for as long
/// as they keep writing. Says whether the log was started over.
async fn restart_wal(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    let size = pool.options().get_max_connections() as usize;
    let mut held = Vec::with_capacity(size);
    let gathered = tokio::time::timeout(WAL_RESTART_WAIT, async {
        while held.len() < size {
            held.push(pool.acquire().await?);
        }
        Ok::<_, sqlx::Error>(())
    })
    .await;
    match gathered {
        Ok(result) => result?,
        Err(_) => {
            tracing::warn!("the WAL checkpointer could not hold the pool in time; trying again");
            return Ok(false);
        }
    }
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *held[0])
        .await?;
    // Busy: another process reads or writes the file; the next pass tries again.
    Ok(busy == 0)
}

/// A fresh database for a test on the PostgreSQL server `SIWA_TEST_POSTGRES_URL` names, or
/// `None` when it is not set (a failure instead when `SIWA_TEST_REQUIRE_POSTGRES=1`, as in
/// `scripts/test`). For the unit and integration tests (`testing`).
#[doc(hidden)]
pub async fn fresh_test_postgres() -> Option<String> {
    let Ok(admin_url) = std::env::var("SIWA_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("SIWA_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "SIWA_TEST_POSTGRES_URL is not set but PostgreSQL tests are required"
        );
        eprintln!("skipped: SIWA_TEST_POSTGRES_URL is not set (scripts/test sets it)");
        return None;
    };
    let id: String = crate::tokens::new_id()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let name = format!("siwa_test_{}", id.to_lowercase());
    let mut admin = sqlx::postgres::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL is reachable");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("the URL names a database");
    Some(format!("{base}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_a_database_out_of_reach_are_told_from_a_refused_statement() {
        for code in ["08006", "57P01", "57P03", "53100", "25006"] {
            assert!(unreachable_code(code, false), "{code}");
        }
        for code in ["5", "13", "14", "1034", "26"] {
            assert!(unreachable_code(code, true), "{code}");
        }
        // A unique violation, a syntax error; SQLite's constraint (19), unique (2067), error.
        for code in ["23505", "42601"] {
            assert!(!unreachable_code(code, false), "{code}");
        }
        for code in ["19", "2067", "1"] {
            assert!(!unreachable_code(code, true), "{code}");
        }
        assert!(is_unreachable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unreachable(&sqlx::Error::RowNotFound));
    }

    /// A write to a file SQLite opened read-only (as on a file system remounted read-only) is
    /// an error of a database that cannot write at all.
    #[tokio::test]
    async fn a_read_only_sqlite_file_cannot_write() {
        sqlx::any::install_default_drivers();
        let file = std::env::temp_dir().join(format!("siwa-ro-{}.db", crate::tokens::new_id()));
        let url = format!("sqlite://{}", file.display());
        let mut rw = sqlx::AnyConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        rw.execute("CREATE TABLE t (x INTEGER)").await.unwrap();
        rw.close().await.unwrap();
        let mut ro = sqlx::AnyConnection::connect(&format!("{url}?mode=ro"))
            .await
            .unwrap();
        let error = ro.execute("INSERT INTO t VALUES (1)").await.unwrap_err();
        assert!(is_unreachable(&error), "{error:?}");
        let _ = std::fs::remove_file(&file);
    }

    /// Write transactions on every connection of the pool without a pause (as
    /// `POST /v1/auth/apple` makes them, outside the group-commit writer), with a reader: the
    /// log starts over each time it passes the bound, instead of growing (a passive checkpoint
    /// alone let it grow by about 87 MB a second under the server's load).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_stays_bounded_under_writes_from_every_connection() {
        let file = std::env::temp_dir().join(format!("siwa-wal-{}.db", crate::tokens::new_id()));
        let url = format!("sqlite://{}", file.display());
        let pool = connect(&url).await.unwrap();
        pool.execute("CREATE TABLE load (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let size = pool.options().get_max_connections();
        let workers: Vec<_> = (0..size)
            .map(|worker| {
                let (pool, stop) = (pool.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.is_cancelled() {
                        let mut tx = pool.begin().await.unwrap();
                        if worker == 0 {
                            // A reader, whose snapshot pins the log while it reads.
                            sqlx::query("SELECT COUNT(*) FROM load")
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                        } else {
                            sqlx::query("INSERT INTO load (body) VALUES ($1)")
                                .bind("x".repeat(2000))
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                        }
                        tx.commit().await.unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let wal = || {
            std::fs::metadata(format!("{}-wal", file.display()))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        // No group-commit writer here: what is handed to it stays undone, as when the writer
        // is idle.
        let (caught_up, mut handed) = (AtomicBool::new(false), false);
        let (mut largest, mut restarts) = (0, 0);
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            largest = largest.max(wal());
            let pass = checkpoint_pass(&pool, &caught_up, &mut handed, 64).await;
            if pass.unwrap() == Pass::Restarted {
                restarts += 1;
            }
        }
        stop.cancel();
        let mut written = 0;
        for worker in workers {
            written += worker.await.unwrap();
        }
        let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM load")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(
            rows > 1000,
            "too little was written ({rows} rows) to test the log"
        );
        assert!(
            restarts > 0,
            "the log never started over ({written} transactions)"
        );
        assert!(
            largest < 16 << 20,
            "the log reached {largest} bytes ({rows} rows, {restarts} restarts)"
        );
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }

    #[test]
    fn the_sqlite_file_is_read_from_the_url() {
        assert_eq!(
            sqlite_file("sqlite://siwa.db?mode=rwc"),
            Some("siwa.db".into())
        );
        assert_eq!(
            sqlite_file("sqlite:///tmp/a/siwa.db"),
            Some("/tmp/a/siwa.db".into())
        );
        assert_eq!(sqlite_file("sqlite:siwa.db"), Some("siwa.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/siwa"), None);
    }
}
