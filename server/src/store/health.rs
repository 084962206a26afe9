//! Whether the database takes writes, known without asking it on every request.
//!
//! One task, the watch, commits a write (the readiness row) twice a second and, on SQLite,
//! checks that the file at the database's path is still the one the server opened. While that
//! fails the database is down: every store operation is refused at once (`database_unavailable`
//! with `Retry-After`), where each request would otherwise wait for a connection that will not
//! come and the group-commit writer would try its whole queue one by one. The watch keeps
//! trying, and its first write that goes through brings service back. The writer also says the
//! database is down as soon as a batch of its fails for want of it.
//!
//! While the database is up, the watch's write is queued to the group-commit writer (beside it,
//! on SQLite, a second writer would make it wait in SQLite's sleeping busy handler), so a writer
//! that stops taking writes in time counts as down too.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the watch writes.
pub const EVERY: Duration = Duration::from_millis(500);
/// How long a probe may take before the database counts as down: SQLite's busy timeout, for
/// its write waits its turn under load (over a second was seen at 5,000 refreshes a second, and
/// counting that as an outage refused requests a healthy database would have taken).
pub const PROBE_TIME_LIMIT: Duration = Duration::from_secs(5);
/// The longest a database that refuses (stopped, unreachable, its file gone, its disk full)
/// takes to show in [`Health::check`]: a probe's interval and the pool's wait for a connection.
/// One that hangs shows within [`EVERY`] and [`PROBE_TIME_LIMIT`]; meanwhile each request waits
/// a second for a connection at most.
pub const NOTICED_WITHIN: Duration = Duration::from_millis(1500);

/// Why the database is down: a fixed text, for `/readyz` and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Down {
    /// A write failed: the server is unreachable, refused it, or the disk is full.
    RefusedWrite = 1,
    /// No answer within [`PROBE_TIME_LIMIT`].
    TimedOut = 2,
    /// SQLite: no file at the database's path (it was deleted or moved).
    FileGone = 3,
    /// SQLite: another file at the database's path than the one the server writes to.
    FileReplaced = 4,
}

impl Down {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefusedWrite => "the database refused a write",
            Self::TimedOut => "the database did not answer in time",
            Self::FileGone => "the database file is gone",
            Self::FileReplaced => "the database file was replaced",
        }
    }

    fn from_u8(value: u8) -> Option<Self> {
        [
            Self::RefusedWrite,
            Self::TimedOut,
            Self::FileGone,
            Self::FileReplaced,
        ]
        .into_iter()
        .find(|down| *down as u8 == value)
    }
}

/// The error of an operation refused because the database is known to be down. It is counted
/// but not logged per request: the watch logs the outage once, when it starts and ends.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.as_str())]
pub struct KnownDown(pub Down);

impl KnownDown {
    pub(super) fn into_sqlx(self) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::other(self))
    }

    /// Whether `error` is a refusal of this kind (not a failure seen by this request).
    pub fn is(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Io(e) if e.get_ref().is_some_and(|e| e.is::<KnownDown>()))
    }
}

/// The database's state, as the watch last saw it.
#[derive(Debug, Default)]
pub struct Health {
    /// 0 while up, else a [`Down`].
    down: AtomicU8,
}

impl Health {
    /// Ok while the database takes writes; else why not.
    pub fn check(&self) -> Result<(), Down> {
        match Down::from_u8(self.down.load(Ordering::Relaxed)) {
            None => Ok(()),
            Some(down) => Err(down),
        }
    }

    /// `Ok(())`, or the error a store operation answers while the database is down.
    pub fn admit(&self) -> Result<(), sqlx::Error> {
        self.check().map_err(|down| KnownDown(down).into_sqlx())
    }

    /// Records a probe's outcome; logs when the state changes.
    pub(super) fn record(&self, probe: Result<(), Down>) {
        let new = probe.err().map_or(0, |down| down as u8);
        let old = self.down.swap(new, Ordering::Relaxed);
        match (Down::from_u8(old), probe) {
            (None, Err(down)) => {
                tracing::error!(
                    cause = down.as_str(),
                    "the database is down: refusing requests that need it until it comes back"
                );
            }
            (Some(_), Ok(())) => tracing::warn!("the database is back"),
            _ => {}
        }
    }
}

/// The SQLite file the server opened, known by its device and inode, to tell when the path
/// no longer leads to it.
#[derive(Debug, Clone)]
pub struct DatabaseFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl DatabaseFile {
    /// The file at `path` now (call once the database is open).
    pub fn opened(path: PathBuf) -> Self {
        let identity = identity(&path);
        Self { path, identity }
    }

    fn check(&self) -> Result<(), Down> {
        match identity(&self.path) {
            None => Err(Down::FileGone),
            Some(now) if self.identity.is_some_and(|opened| opened != now) => {
                Err(Down::FileReplaced)
            }
            Some(_) => Ok(()),
        }
    }
}

#[cfg(unix)]
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    path.exists().then_some((0, 0))
}

/// One probe: the file (SQLite), then a committed write (`write`), within
/// [`PROBE_TIME_LIMIT`].
async fn probe<W: Future<Output = bool>>(
    write: &impl Fn() -> W,
    file: Option<&DatabaseFile>,
) -> Result<(), Down> {
    if let Some(file) = file {
        file.check()?;
    }
    match tokio::time::timeout(PROBE_TIME_LIMIT, write()).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Down::RefusedWrite),
        Err(_) => Err(Down::TimedOut),
    }
}

/// The watch: probes every [`EVERY`] until `stop`, and records what it finds in `health`.
/// `write` commits a write and says whether it went through.
pub async fn watch<W: Future<Output = bool>>(
    health: std::sync::Arc<Health>,
    write: impl Fn() -> W,
    file: Option<DatabaseFile>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let outcome = tokio::select! {
            outcome = probe(&write, file.as_ref()) => outcome,
            () = stop.cancelled() => return,
        };
        health.record(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_while_down_is_recognised_and_says_why() {
        let health = Health::default();
        assert!(health.admit().is_ok());
        health.record(Err(Down::FileGone));
        let refused = health.admit().unwrap_err();
        assert!(KnownDown::is(&refused));
        assert!(refused.to_string().contains("the database file is gone"));
        assert!(!KnownDown::is(&sqlx::Error::PoolTimedOut));
        health.record(Ok(()));
        assert!(health.admit().is_ok());
    }

    #[test]
    fn the_file_is_known_by_identity_not_by_name() {
        let dir = std::env::temp_dir().join(format!("siwa-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("siwa.db");
        std::fs::write(&path, b"a").unwrap();
        let file = DatabaseFile::opened(path.clone());
        assert_eq!(file.check(), Ok(()));
        std::fs::rename(&path, dir.join("moved")).unwrap();
        assert_eq!(file.check(), Err(Down::FileGone));
        // Another file under the same name is not the one the connections write to.
        std::fs::write(&path, b"b").unwrap();
        assert_eq!(file.check(), Err(Down::FileReplaced));
        std::fs::rename(dir.join("moved"), &path).unwrap();
        assert_eq!(file.check(), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
