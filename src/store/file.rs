//! [`FileStore`]: tokens kept in private files, shared by the processes of
//! one host.

mod disk;
mod location;

use std::{
    fmt,
    fs::{File, Metadata},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use self::disk::Paths;
use super::{BoxFuture, FailureNotice, Lease, StoreError, StoreKey, TokenRecord, TokenStore};
use crate::Error;

/// Tokens kept in files in one directory, shared by the processes of one
/// host: a service and its restarts, command-line runs, several services
/// of one user. See the [module docs](super) for the protocol.
///
/// # What is stored where
///
/// One file per [`StoreKey`] in [`dir`](Self::dir):
/// `token-<fingerprint>.json` (see [`token_path`](Self::token_path)), the
/// [`TokenRecord`] in its versioned encoding: the access and refresh
/// tokens, their expiry and generation, the key. Never the password. Beside
/// it, `token-<fingerprint>.lock` (see [`lock_path`](Self::lock_path)), an
/// empty file that is only ever locked, and deleted only by a logout
/// ([`remove`](TokenStore::remove)) while it holds the lock: a lock file
/// deleted while another holds it would let a second process lock a new
/// one.
///
/// [`default_location`](Self::default_location) picks the platform's
/// per-user state directory; [`new`](Self::new) takes any directory.
///
/// # Permissions
///
/// On Unix the directory is created with mode 0700 and every file with mode
/// 0600 from its creation (never created wider and narrowed later). The
/// store refuses, with a [`StoreError`] of kind
/// [`Insecure`](super::StoreErrorKind::Insecure) that names the path and
/// the fix:
///
/// - a directory that another user owns (they could plant a token file of
///   their own account there, which this process would then send, or read
///   this user's), or that group or others can write to (they could swap a
///   token file for their own);
/// - a token file that another user owns, that is a symbolic link, is not a
///   regular file, or that group or others can read or write;
/// - a lock file that is a symbolic link (opening it would create what it
///   points to).
///
/// The checks and the open are one step: the directory is opened and
/// checked, the token file is opened through it without following a link
/// and without waiting (a FIFO or device put in its place is refused, not
/// waited on), and what was opened is checked, so nothing can be swapped in
/// between. Keep the store out of shared directories such as `/tmp` all the
/// same: the directories above the store's are not checked.
///
/// Elsewhere (Windows) files get the access control list they inherit from
/// the directory, which for the default location is the user's own; only the
/// symbolic link and regular file checks apply.
///
/// # Writes
///
/// [`save`](TokenStore::save) writes a temporary file in the same directory,
/// syncs it to disk, renames it over the token file and syncs the
/// directory. Readers never see a partial record, so
/// [`load`](TokenStore::load) takes no lock. A temporary file left by a
/// crash is deleted by the next save or remove of its key.
///
/// # Locking
///
/// The [`Lease`] is an OS advisory lock on the lock file (`flock` on Unix,
/// `LockFileEx` on Windows), taken without waiting and kept, with the open
/// file, inside the lease: dropping the lease, aborting the task that holds
/// it, or the death of the process releases it. A crash leaves no stale
/// lock, so the lease's time to live has no meaning here and is ignored;
/// [`renew`](TokenStore::renew) only checks that the lease is still held.
/// The lock belongs to the open file, not to the process: two `FileStore`
/// values (or two token states) in one process exclude each other as two
/// processes do.
///
/// [`save`](TokenStore::save) compares the generation against the file on
/// disk under the lock, so it needs a lease from a `FileStore` on the same
/// directory; saves under one lease take turns, so that each is one
/// compare-and-swap even when they overlap. [`remove`](TokenStore::remove)
/// (a logout) does not wait for the lock: it deletes the token file, the
/// failure notice and the token files moved aside as corrupt (which may
/// still hold tokens) whoever holds it, and a holder's later save expects
/// the generation it read, finds no file, and writes nothing. It tries the
/// lock for up to a second only to delete leftover temporary files and the
/// lock file safely;
/// without it, it deletes only those more than a minute old (a crashed
/// writer's).
///
/// Keep the directory on a local file system: network file systems may
/// emulate or ignore these locks.
///
/// # Corruption
///
/// A token file that is not a record this version can read (a truncated
/// file, a newer schema, a file of another format) is renamed aside to
/// `token-<fingerprint>.json.corrupt-<unix milliseconds>` with a warning
/// (no secret is logged) and treated as absent; the next login writes a
/// good one. The rename happens under the lock, so a record written
/// meanwhile is never the one moved: when the lease is held elsewhere, its
/// holder's save moves the file. A record whose key differs from the one
/// asked for (a fingerprint collision) is ignored with a warning, and
/// overwritten by the next save.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use simacan_auth::store::{FileStore, StoreKey, TokenRecord, TokenStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let temp = tempfile::tempdir()?;
/// # let dir = temp.path().join("simacan-auth");
/// let store = FileStore::new(dir);
/// let key = StoreKey::new("https://auth.example.com/api/v1", "planner@example.com");
///
/// let lease = store.try_lease(&key, Duration::from_secs(30)).await?.expect("nobody else holds it");
/// let expires_at = SystemTime::now() + Duration::from_secs(3600);
/// let record = TokenRecord::new(key.clone(), 1, "access", Some("refresh"), expires_at, Duration::from_secs(3600))?;
/// assert!(store.save(&lease, &record, None).await?);
/// store.release(lease).await?;
///
/// // Another process (here: another store on the same directory) finds it.
/// let other = FileStore::new(store.dir());
/// assert_eq!(other.load(&key).await?.map(|r| r.generation()), Some(1));
/// assert!(store.token_path(&key).exists());
/// # Ok(()) }
/// ```
///
/// Given to a layer:
///
/// ```no_run
/// use simacan_auth::{store::FileStore, Credentials, SimacanAuthLayer};
///
/// # fn run() -> Result<(), simacan_auth::Error> {
/// let layer = SimacanAuthLayer::new(Credentials::from_env()?)
///     .token_store(FileStore::default_location()?);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct FileStore {
    dir: Arc<Path>,
}

/// A lease's guard: the open, locked lock file.
struct LockGuard {
    file: File,
    path: PathBuf,
    /// The lock file as it was locked, to tell whether its path still names it.
    locked: Metadata,
    /// Taken by each save under the lease: the lock keeps other holders
    /// out, not the holder's own saves that overlap (a save given up after
    /// a timeout, and its retry), which would otherwise delete each other's
    /// temporary file or both write over one generation.
    saving: Arc<Mutex<()>>,
}

impl FileStore {
    /// A store keeping its files in `dir`. Nothing is touched yet: the
    /// directory is created (mode 0700 on Unix) at first use, and a failure
    /// then is a [`StoreError`] of kind
    /// [`Unavailable`](super::StoreErrorKind::Unavailable).
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::FileStore;
    ///
    /// let store = FileStore::new("/var/lib/my-service/simacan-auth");
    /// assert_eq!(store.dir(), std::path::Path::new("/var/lib/my-service/simacan-auth"));
    /// ```
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore {
            dir: Arc::from(dir.into()),
        }
    }

    /// A store in the platform's per-user state directory:
    ///
    /// - Linux, the BSDs and other Unix: `$XDG_STATE_HOME/simacan-auth`, or
    ///   `$HOME/.local/state/simacan-auth` when `XDG_STATE_HOME` is unset,
    ///   empty or relative;
    /// - macOS: `$HOME/Library/Application Support/simacan-auth` (not
    ///   `Caches`, which the system may purge: a purged refresh token costs
    ///   a password login);
    /// - Windows: `%LOCALAPPDATA%\simacan-auth` (local, not roaming: tokens
    ///   belong to one machine).
    ///
    /// Read from the environment each time it is called.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) when the variables it needs are unset
    /// or not absolute paths (a service account without a home, say); give
    /// [`new`](Self::new) a directory instead.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::FileStore;
    ///
    /// match FileStore::default_location() {
    ///     Ok(store) => assert!(store.dir().ends_with("simacan-auth")),
    ///     Err(error) => eprintln!("no per-user directory: {error}"),
    /// }
    /// ```
    pub fn default_location() -> Result<Self, Error> {
        location::default_dir(location::Platform::CURRENT, |name| std::env::var_os(name))
            .map(Self::new)
    }

    /// The directory the token files are in.
    ///
    /// # Example
    ///
    /// ```
    /// let store = simacan_auth::store::FileStore::new("tokens");
    /// assert_eq!(store.dir(), std::path::Path::new("tokens"));
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file `key`'s record is kept in: `token-<fingerprint>.json` in
    /// [`dir`](Self::dir), named by [`StoreKey::fingerprint`]. It may not
    /// exist.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{FileStore, StoreKey};
    ///
    /// let store = FileStore::new("tokens");
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let path = store.token_path(&key);
    /// assert_eq!(path, store.dir().join(format!("token-{}.json", key.fingerprint())));
    /// ```
    pub fn token_path(&self, key: &StoreKey) -> PathBuf {
        self.paths(key).token
    }

    /// The lock file of `key`: `token-<fingerprint>.lock` in
    /// [`dir`](Self::dir), locked by the lease holder.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{FileStore, StoreKey};
    ///
    /// let store = FileStore::new("tokens");
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert_eq!(store.lock_path(&key).extension(), Some("lock".as_ref()));
    /// ```
    pub fn lock_path(&self, key: &StoreKey) -> PathBuf {
        self.paths(key).lock
    }

    /// The record of `key`, read without changing anything on disk: no
    /// directory is created, and a corrupt token file is not moved aside
    /// (it is none, with a warning). For tools that only look, such as the
    /// command line's `status`; the token state uses
    /// [`load`](TokenStore::load). The same checks as `load`'s apply.
    ///
    /// # Errors
    ///
    /// As [`load`](TokenStore::load): a [`StoreError`] of kind
    /// [`Insecure`](super::StoreErrorKind::Insecure) for a file or directory
    /// that is not private, or [`Unavailable`](super::StoreErrorKind::Unavailable).
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{FileStore, StoreKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let temp = tempfile::tempdir()?;
    /// let store = FileStore::new(temp.path().join("not-yet"));
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert!(store.peek(&key).await?.is_none());
    /// assert!(!store.dir().exists(), "nothing was created");
    /// # Ok(()) }
    /// ```
    pub async fn peek(&self, key: &StoreKey) -> Result<Option<TokenRecord>, StoreError> {
        let paths = self.paths(key);
        let key = key.clone();
        blocking(move || disk::peek(&paths, &key)).await
    }

    fn paths(&self, key: &StoreKey) -> Paths {
        Paths::new(&self.dir, key)
    }

    /// The lock `lease` holds, if it is a lease of this directory on its key.
    fn lock_of<'l>(&self, lease: &'l Lease) -> Option<&'l LockGuard> {
        lease
            .guard::<LockGuard>()
            .filter(|guard| guard.path == self.paths(lease.key()).lock)
    }
}

/// Runs `work` on Tokio's blocking threads, with the caller's span and
/// subscriber, or right here without a runtime.
async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return work();
    };
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let span = tracing::Span::current();
    runtime
        .spawn_blocking(move || {
            tracing::dispatcher::with_default(&dispatch, || span.in_scope(work))
        })
        .await
        .map_err(|e| StoreError::unavailable("file store task did not finish", e))?
}

impl TokenStore for FileStore {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        let paths = self.paths(key);
        let key = key.clone();
        Box::pin(blocking(move || disk::load(&paths, &key)))
    }

    /// Locks the key's lock file without waiting. `ttl` is ignored: the
    /// lock lasts as long as the lease, or the process.
    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        let paths = self.paths(key);
        Box::pin(async move {
            // A lock taken after the caller gave up is dropped with the
            // task's output, and so released.
            let guard = blocking(move || {
                disk::prepare_dir(&paths.dir)?;
                let Some(file) = disk::try_lock(&paths.lock)? else {
                    return Ok(None);
                };
                let locked = file.metadata().map_err(|e| {
                    StoreError::unavailable(format!("cannot inspect {}", paths.lock.display()), e)
                })?;
                Ok(Some(LockGuard {
                    file,
                    path: paths.lock,
                    locked,
                    saving: Arc::default(),
                }))
            })
            .await?;
            Ok(guard.map(|guard| Lease::new(key.clone(), Lease::random_owner()).with_guard(guard)))
        })
    }

    /// `true` while the lease holds the lock and its lock file is still in
    /// place; `ttl` is ignored.
    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let Some(guard) = self.lock_of(lease) else {
            return Box::pin(std::future::ready(Ok(false)));
        };
        let (path, locked) = (guard.path.clone(), guard.locked.clone());
        Box::pin(blocking(move || Ok(disk::still_names(&path, &locked))))
    }

    /// Drops the lease, which unlocks the lock file.
    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        drop(lease);
        Box::pin(std::future::ready(Ok(())))
    }

    /// # Errors
    ///
    /// Besides the file system's: a [`StoreError`] of kind
    /// [`Contended`](super::StoreErrorKind::Contended) when `lease` is not a
    /// lease of this directory on the record's key, or its lock file was
    /// deleted; nothing is written then.
    fn save<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let Some(guard) = self.lock_of(lease).filter(|_| lease.key() == record.key()) else {
            return Box::pin(std::future::ready(Err(StoreError::contended(format!(
                "saving the token of {} needs a lease on it from a file store in {}",
                record.key(),
                self.dir.display()
            )))));
        };
        // A second handle on the locked file keeps the lock until the write
        // is done, even if the caller drops the lease and the future first.
        let held = guard.file.try_clone().map_err(|e| {
            StoreError::unavailable(format!("cannot use {}", guard.path.display()), e)
        });
        let locked = guard.locked.clone();
        let saving = Arc::clone(&guard.saving);
        let paths = self.paths(record.key());
        let record = record.clone();
        Box::pin(async move {
            let held = held?;
            blocking(move || {
                // Nothing panics while holding it; recover regardless.
                let turn = saving.lock().unwrap_or_else(|e| e.into_inner());
                let saved = disk::save(&paths, &locked, &record, expected);
                drop(turn);
                drop(held);
                saved
            })
            .await
        })
    }

    /// Deletes the token file, the failure notice and token files moved
    /// aside as corrupt without waiting for the lock (see the type's docs),
    /// and temporary files a crashed writer left and the lock file when the
    /// lock can be had within a moment.
    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        let paths = self.paths(key);
        Box::pin(blocking(move || disk::remove(&paths)))
    }

    /// Writes `token-<fingerprint>.failure`, as private and atomically as
    /// the token file.
    fn save_failure<'a>(
        &'a self,
        _lease: &'a Lease,
        notice: &'a FailureNotice,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let paths = self.paths(notice.key());
        let notice = notice.clone();
        Box::pin(blocking(move || disk::save_failure(&paths, &notice)))
    }

    fn load_failure<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<FailureNotice>, StoreError>> {
        let paths = self.paths(key);
        let key = key.clone();
        Box::pin(blocking(move || Ok(disk::load_failure(&paths, &key))))
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore").field("dir", &self.dir).finish()
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_directory_only() {
        let store = FileStore::new("/tmp/tokens");
        assert_eq!(format!("{store:?}"), r#"FileStore { dir: "/tmp/tokens" }"#);
    }

    #[test]
    fn clones_share_the_directory() {
        let store = FileStore::new("tokens");
        assert_eq!(store.clone().dir(), store.dir());
    }

    #[test]
    fn works_without_a_runtime() {
        // No Tokio runtime: the file work runs on the polling thread.
        let temp = tempfile::tempdir().unwrap();
        let store = FileStore::new(temp.path().join("store"));
        let key = StoreKey::new("https://auth.example.com/api/v1", "user");
        let future = store.try_lease(&key, Duration::from_secs(1));
        let lease = poll_once(future).unwrap();
        assert!(lease.is_some());
    }

    /// Polls a future that never waits to completion.
    fn poll_once<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the future waited"),
        }
    }
}
