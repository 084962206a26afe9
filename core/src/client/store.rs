//! Where the session is kept between launches. The app provides it (the Keychain on iOS); an
//! in-memory store and a file store are here for tests, command-line tools and Linux.
//!
//! A store holds one opaque string, the session, and nothing else.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use super::lock;

/// A session store failed. The text says what failed, never what was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Keeps the session between launches. Implementations must be safe to call from any thread.
pub trait SessionStore: Send + Sync {
    /// The stored session, or `None` when there is none.
    fn load(&self) -> Result<Option<String>, StoreError>;
    /// Replaces the stored session.
    fn save(&self, session: &str) -> Result<(), StoreError>;
    /// Removes the stored session; removing none is not an error.
    fn clear(&self) -> Result<(), StoreError>;
}

/// A store that lives as long as the process: for tests and previews.
#[derive(Debug, Default)]
pub struct InMemorySessionStore {
    session: Mutex<Option<String>>,
}

impl InMemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SessionStore for InMemorySessionStore {
    fn load(&self) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.session).clone())
    }

    fn save(&self, session: &str) -> Result<(), StoreError> {
        *lock(&self.session) = Some(session.to_owned());
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        *lock(&self.session) = None;
        Ok(())
    }
}

/// A store in one file, readable by its owner only, replaced atomically: a crash mid-write
/// leaves the previous session or the new one, never a mix.
#[derive(Debug, Clone)]
pub struct FileSessionStore {
    path: PathBuf,
}

impl FileSessionStore {
    /// A store at `path`; its folder must exist. Nothing is read or written until used.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// A fresh temporary name beside the file: random, so that nothing made in advance (a
    /// world-readable file, a symlink to elsewhere) can be there under it.
    fn temporary_path(&self) -> PathBuf {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).expect("the operating system's random source failed");
        let mut name = std::ffi::OsString::from(".");
        name.push(self.path.file_name().unwrap_or_default());
        name.push(format!(".{}.tmp", hex::encode(random)));
        self.path.with_file_name(name)
    }

    fn write_atomically(&self, session: &str) -> io::Result<()> {
        let temporary = self.temporary_path();
        let mut options = fs::OpenOptions::new();
        // `create_new` is O_CREAT|O_EXCL: it never opens what exists, nor follows a symlink.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temporary).and_then(|mut file| {
            // On the handle: the mode given at creation is narrowed by the umask, never
            // widened, but a permissive ACL default could still apply.
            #[cfg(unix)]
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            file.write_all(session.as_bytes())?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| fs::rename(&temporary, &self.path));
        if renamed.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        renamed
    }
}

impl SessionStore for FileSessionStore {
    /// Reads the session without following a link planted at its path, and only from a file
    /// that is the user's own and no one else's to read: anything else was not written here.
    fn load(&self) -> Result<Option<String>, StoreError> {
        let mut options = fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
        let mut file = match options.open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            #[cfg(unix)]
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(StoreError(
                    "the session file is a symbolic link: it was not followed".into(),
                ));
            }
            Err(e) => return Err(file_error("read", &e)),
        };
        let metadata = file.metadata().map_err(|e| file_error("read", &e))?;
        if !metadata.is_file() {
            return Err(StoreError("the session file is not a regular file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let user = unsafe { libc::geteuid() };
            if metadata.uid() != user || metadata.mode() & 0o077 != 0 {
                return Err(StoreError(
                    "the session file is not the user's own with mode 0600: it was not read".into(),
                ));
            }
        }
        let mut session = String::new();
        io::Read::read_to_string(&mut file, &mut session).map_err(|e| file_error("read", &e))?;
        Ok(Some(session))
    }

    fn save(&self, session: &str) -> Result<(), StoreError> {
        self.write_atomically(session)
            .map_err(|e| file_error("write", &e))
    }

    fn clear(&self) -> Result<(), StoreError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_error("remove", &e)),
        }
    }
}

fn file_error(action: &str, error: &io::Error) -> StoreError {
    StoreError(format!(
        "could not {action} the session file: {}",
        error.kind()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "siwa-store-{}",
            crate::RawNonce::generate().expose()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_file_store_round_trips_and_clears() {
        let dir = temp_dir();
        let store = FileSessionStore::new(dir.join("session.json"));
        assert_eq!(store.load().unwrap(), None);
        store.save("one").unwrap();
        store.save("two").unwrap();
        assert_eq!(store.load().unwrap().as_deref(), Some("two"));
        store.clear().unwrap();
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_session_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let store = FileSessionStore::new(dir.join("session.json"));
        store.save("secret").unwrap();
        let mode = fs::metadata(dir.join("session.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn files_planted_beside_the_session_are_neither_used_nor_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let path = dir.join("session.json");
        // What the fixed temporary name of old would have met: a world-readable file made in
        // advance, and a symlink to elsewhere.
        let planted = dir.join("session.json.tmp");
        fs::write(&planted, "").unwrap();
        fs::set_permissions(&planted, fs::Permissions::from_mode(0o666)).unwrap();
        let elsewhere = dir.join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, dir.join(".session.json.tmp")).unwrap();
        let store = FileSessionStore::new(&path);
        store.save("secret").unwrap();
        assert_eq!(
            fs::read_to_string(&planted).unwrap(),
            "",
            "not written through"
        );
        assert!(!elsewhere.exists(), "no symlink followed");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Nothing temporary is left behind.
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp") && n != "session.json.tmp" && n != ".session.json.tmp")
            .collect();
        assert!(left.is_empty(), "{left:?}");
        fs::remove_dir_all(dir).unwrap();
    }

    /// A link planted at the session's path is not followed, whether it points at a file of
    /// the user's or elsewhere.
    #[cfg(unix)]
    #[test]
    fn loading_follows_no_link_planted_at_the_session_path() {
        let dir = temp_dir();
        let target = dir.join("elsewhere.json");
        FileSessionStore::new(&target).save("planted").unwrap();
        let path = dir.join("session.json");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let error = FileSessionStore::new(&path).load().unwrap_err();
        assert!(error.0.contains("symbolic link"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_session_file_others_can_read_or_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let path = dir.join("session.json");
        let store = FileSessionStore::new(&path);
        store.save("secret").unwrap();
        for mode in [0o644, 0o660, 0o606, 0o666] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let error = store.load().unwrap_err();
            assert!(error.0.contains("mode 0600"), "{mode:o}: {error}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(store.load().unwrap().as_deref(), Some("secret"));
        // Another user's file, mode 0600 or not (only root can make one to test with).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let error = store.load().unwrap_err();
            assert!(error.0.contains("the user's own"), "{error}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_store_in_a_missing_folder_fails_with_a_message_that_quotes_nothing_stored() {
        let store = FileSessionStore::new("/nonexistent-siwa-folder/session.json");
        let error = store.save("secret-token").unwrap_err();
        assert!(error.0.contains("could not write"));
        assert!(!error.0.contains("secret-token"));
    }
}
