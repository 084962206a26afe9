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

/// Connects, sets SQLite up for concurrent use, and applies the embedded migrations.
pub async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    if let Some(file) = sqlite_file(url) {
        create_private(&file).map_err(sqlx::Error::Io)?;
    }
    // One connection first, outside the pool: the pool reports an unreachable server only as
    // "pool timed out", while this says why (refused, unknown host, bad password...).
    sqlx::AnyConnection::connect(url).await?.close().await?;
    let backend = DatabaseKind::of(url);
    let pool = AnyPoolOptions::new()
        // SQLite has one writer at a time: more connections only wait on its lock, and its
        // busy handler waits by sleeping (up to 100 ms at a time).
        .max_connections(match backend {
            DatabaseKind::Sqlite => 4,
            DatabaseKind::Postgres => 16,
        })
        .acquire_timeout(Duration::from_secs(5))
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
                    // WAL lets readers run beside the writer; NORMAL is durable across
                    // process crashes (not power loss); foreign keys make deletion cascade;
                    // the busy timeout makes concurrent writers wait instead of failing.
                    // Checkpoints run in the background (`checkpoint_wal`), not inside the
                    // commit that happens to cross the threshold, which stalled the writer.
                    connection
                        .execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                             PRAGMA wal_autocheckpoint = 0;",
                        )
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
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

/// The log's length (in pages of 4 KiB: 64 MiB) past which the writer finishes checkpoints.
const WAL_FRAMES_KEPT: i64 = 16_384;

/// SQLite only: folds the write-ahead log into the database every second, without blocking
/// writers (a passive checkpoint), so that no commit pays for it. Runs until `stop`.
///
/// A passive checkpoint copies the frames committed before it started. The log starts over from
/// its beginning only once every frame is copied, and under sustained writes (the group-commit
/// writer never pauses) some always arrive meanwhile: the log would grow without bound, about
/// 50 MB a second on the refresh route. So once the log is past [`WAL_FRAMES_KEPT`], `caught_up`
/// is raised after a pass, and the writer copies the few frames left between two of its
/// batches (`finish_wal_checkpoint`), when nothing is being written. That copy syncs the
/// database file on the writer's path, so it is kept for a log that has grown.
pub async fn checkpoint_wal(pool: AnyPool, caught_up: Arc<AtomicBool>, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(error) = checkpoint_pass(&pool, &caught_up, WAL_FRAMES_KEPT).await {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
}

/// One pass of [`checkpoint_wal`]: raises `caught_up` when the log is longer than `frames_kept`.
pub async fn checkpoint_pass(
    pool: &AnyPool,
    caught_up: &AtomicBool,
    frames_kept: i64,
) -> Result<(), sqlx::Error> {
    // (busy, frames in the log, frames copied)
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    if frames > frames_kept {
        caught_up.store(true, Ordering::Release);
    }
    Ok(())
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
