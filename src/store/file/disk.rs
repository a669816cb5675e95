//! The blocking file work of the [`FileStore`](super::FileStore): what is
//! on disk, private files, the lock, atomic writes. Run off the async
//! threads by the store.

use std::{
    fs::{self, File, Metadata, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};

use zeroize::Zeroizing;

use crate::store::{FailureNotice, StoreError, StoreKey, TokenRecord, record::unix_millis};

/// Far larger than any token record: a larger file is not one, and is not
/// read into memory.
const MAX_RECORD_LEN: u64 = 64 * 1024;

/// The files of one key.
#[derive(Debug, Clone)]
pub(super) struct Paths {
    pub(super) dir: PathBuf,
    /// `token-<fingerprint>.json`: the record.
    pub(super) token: PathBuf,
    /// `token-<fingerprint>.lock`: locked by the lease holder, deleted only
    /// by a logout that holds the lock.
    pub(super) lock: PathBuf,
    /// `token-<fingerprint>.failure`: the last failed Auth API call's notice.
    pub(super) failure: PathBuf,
    /// The token file's name, the prefix of its temporary and aside files.
    name: String,
}

impl Paths {
    pub(super) fn new(dir: &Path, key: &StoreKey) -> Self {
        let stem = format!("token-{}", key.fingerprint());
        let name = format!("{stem}.json");
        Paths {
            dir: dir.to_owned(),
            token: dir.join(&name),
            lock: dir.join(format!("{stem}.lock")),
            failure: dir.join(format!("{stem}.failure")),
            name,
        }
    }

    fn beside(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}", self.name))
    }

    fn is_temporary(&self, file_name: &str) -> bool {
        file_name
            .strip_prefix(&self.name)
            .is_some_and(|rest| rest.starts_with(".tmp-"))
    }

    /// A token file [moved aside](move_aside) as corrupt: it may still hold
    /// tokens.
    fn is_aside(&self, file_name: &str) -> bool {
        file_name
            .strip_prefix(&self.name)
            .is_some_and(|rest| rest.starts_with(".corrupt-"))
    }
}

/// What the token file holds.
pub(super) enum OnDisk {
    Absent,
    Record(TokenRecord),
    /// The record of another key: a fingerprint collision, or a file copied
    /// by hand. Never served; overwritten by the next save.
    Foreign,
    /// Not a token record; `read` is the file that was read, so that only
    /// that file is moved aside.
    Corrupt {
        reason: StoreError,
        read: Metadata,
    },
}

/// Creates `dir` (0700 on Unix) unless it exists, and refuses one that
/// another user owns or others could write to: they could swap a token
/// file for their own.
pub(super) fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder
        .create(dir)
        .map_err(|e| unavailable("cannot create the token directory", dir, e))?;
    #[cfg(unix)]
    {
        let meta = fs::metadata(dir)
            .map_err(|e| unavailable("cannot inspect the token directory", dir, e))?;
        check_dir(dir, &meta)?;
    }
    Ok(())
}

/// The token directory must be this user's, and only its owner may write
/// to it.
#[cfg(unix)]
fn check_dir(dir: &Path, meta: &Metadata) -> Result<(), StoreError> {
    let dir = dir.display();
    if !meta.is_dir() {
        return Err(StoreError::insecure(format!(
            "token directory {dir} is not a directory"
        )));
    }
    let (owner, me) = (meta.uid(), current_uid());
    if owner != me {
        return Err(StoreError::insecure(format!(
            "token directory {dir} is owned by another user (uid {owner}, not {me}), who could \
             plant or read token files there; use a directory of this user's own"
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(StoreError::insecure(format!(
            "token directory {dir} can be written by group or others (mode {mode:03o}); \
             restrict it with `chmod 700 {dir}`"
        )));
    }
    Ok(())
}

#[cfg(unix)]
fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Opens the private file `name` of `paths` for reading, in one step with
/// its checks: the directory is opened and checked first, then the file is
/// opened through it without following a link and without waiting (a FIFO
/// or device put in its place does not block), and what was opened is
/// checked. `None` when there is no such file.
#[cfg(unix)]
fn open_checked(paths: &Paths, name: &str) -> Result<Option<(File, Metadata)>, StoreError> {
    use rustix::{fs::OFlags, io::Errno};
    let path = paths.dir.join(name);
    let dir = rustix::fs::open(
        &paths.dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| unavailable("cannot open the token directory", &paths.dir, e.into()))?;
    let dir = File::from(dir);
    let dir_meta = dir
        .metadata()
        .map_err(|e| unavailable("cannot inspect the token directory", &paths.dir, e))?;
    check_dir(&paths.dir, &dir_meta)?;
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let file = match rustix::fs::openat(&dir, name, flags, rustix::fs::Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => return Ok(None),
        // What O_NOFOLLOW answers for a link (EMLINK on FreeBSD).
        Err(Errno::LOOP | Errno::MLINK) => return Err(symlink_refused(&path)),
        Err(e) => return Err(unavailable("cannot open the token file", &path, e.into())),
    };
    let meta = file
        .metadata()
        .map_err(|e| unavailable("cannot inspect the token file", &path, e))?;
    check_private(&path, &meta)?;
    Ok(Some((file, meta)))
}

// Elsewhere: checked before opening, and again after.
#[cfg(not(unix))]
fn open_checked(paths: &Paths, name: &str) -> Result<Option<(File, Metadata)>, StoreError> {
    let path = paths.dir.join(name);
    let link = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unavailable("cannot inspect the token file", &path, e)),
    };
    check_private(&path, &link)?;
    let file = match File::open(&path) {
        Ok(file) => file,
        // Removed since: a logout.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unavailable("cannot open the token file", &path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| unavailable("cannot inspect the token file", &path, e))?;
    check_private(&path, &meta)?;
    Ok(Some((file, meta)))
}

/// Reads the token file of `paths` for `key`, refusing one that is not
/// private.
pub(super) fn read(paths: &Paths, key: &StoreKey) -> Result<OnDisk, StoreError> {
    let path = &paths.token;
    let Some((mut file, meta)) = open_checked(paths, &paths.name)? else {
        return Ok(OnDisk::Absent);
    };
    if meta.len() > MAX_RECORD_LEN {
        let reason = StoreError::corrupt("token file is larger than any token record");
        return Ok(OnDisk::Corrupt { reason, read: meta });
    }
    // Sized up front so that the secret is never copied by a reallocation.
    let capacity = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    (&mut file)
        .take(MAX_RECORD_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unavailable("cannot read the token file", path, e))?;
    if bytes.len() as u64 > MAX_RECORD_LEN {
        let reason = StoreError::corrupt("token file is larger than any token record");
        return Ok(OnDisk::Corrupt { reason, read: meta });
    }
    Ok(match TokenRecord::decode(&bytes) {
        Err(reason) => OnDisk::Corrupt { reason, read: meta },
        Ok(record) if record.key() != key => OnDisk::Foreign,
        Ok(record) => OnDisk::Record(record),
    })
}

fn symlink_refused(path: &Path) -> StoreError {
    let path = path.display();
    StoreError::insecure(format!(
        "token file {path} is a symbolic link, which is never followed; \
         delete it (`rm {path}`) and log in again"
    ))
}

/// A token file must be a regular file (not a symlink) of this user's that
/// only its owner can read or write.
fn check_private(path: &Path, meta: &Metadata) -> Result<(), StoreError> {
    if meta.file_type().is_symlink() {
        return Err(symlink_refused(path));
    }
    let path = path.display();
    if !meta.is_file() {
        return Err(StoreError::insecure(format!(
            "token file {path} is not a regular file; remove it and log in again"
        )));
    }
    #[cfg(unix)]
    {
        let (owner, me) = (meta.uid(), current_uid());
        if owner != me {
            return Err(StoreError::insecure(format!(
                "token file {path} is owned by another user (uid {owner}, not {me}), whose \
                 tokens it may hold; delete it (`rm {path}`) and log in again"
            )));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::insecure(format!(
                "token file {path} can be read or written by group or others (mode {mode:03o}); \
                 delete it (its tokens may have been read) or restrict it with `chmod 600 {path}`"
            )));
        }
    }
    Ok(())
}

/// Opens `path` for reading and writing, creating it with mode 0600 on Unix
/// (never widened and narrowed later): a new file when `new`, else the file
/// that is there.
pub(super) fn open_private(path: &Path, new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    #[cfg(unix)]
    options
        .mode(0o600)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32);
    options.open(path)
}

/// Takes the lock on `path` without waiting: `None` when it is held
/// through another open file, in this process or another.
pub(super) fn try_lock(path: &Path) -> Result<Option<File>, StoreError> {
    // Opening creates what a link points to: never follow one.
    if fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink()) {
        let path = path.display();
        return Err(StoreError::insecure(format!(
            "lock file {path} is a symbolic link, which is never followed; \
             delete it (`rm {path}`)"
        )));
    }
    let file =
        open_private(path, false).map_err(|e| unavailable("cannot open the lock file", path, e))?;
    // Through the trait by name: std's own `File::try_lock` is newer than
    // the crate's minimum Rust version.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(Some(file)),
        Err(fs4::TryLockError::WouldBlock) => Ok(None),
        Err(fs4::TryLockError::Error(e)) => Err(unavailable("cannot lock", path, e)),
    }
}

/// Whether `path` is still the file whose metadata is `locked`: a lock on a
/// lock file that was deleted or replaced excludes no one.
pub(super) fn still_names(path: &Path, locked: &Metadata) -> bool {
    fs::symlink_metadata(path).is_ok_and(|now| same_file(&now, locked))
}

#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

// Std has no stable file identity elsewhere; a rewritten file differs in
// length or modification time.
#[cfg(not(unix))]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

/// Renames the token file aside, with a warning, if it is still the file
/// that was `read`. Call with the lock held, so that no writer's new file
/// can take its place in between.
pub(super) fn move_aside(
    paths: &Paths,
    read: &Metadata,
    reason: &StoreError,
) -> Result<(), StoreError> {
    if !still_names(&paths.token, read) {
        return Ok(());
    }
    let aside = paths.beside(&format!(".corrupt-{}", unix_millis(SystemTime::now())));
    fs::rename(&paths.token, &aside)
        .map_err(|e| unavailable("cannot move aside the corrupt token file", &paths.token, e))?;
    tracing::warn!(
        file = %paths.token.display(),
        aside = %aside.display(),
        %reason,
        "moved aside a token file that is not a token record; the next login writes a new one"
    );
    Ok(())
}

/// The record for `key`, if the file holds one.
pub(super) fn load(paths: &Paths, key: &StoreKey) -> Result<Option<TokenRecord>, StoreError> {
    prepare_dir(&paths.dir)?;
    match read(paths, key)? {
        OnDisk::Absent => Ok(None),
        OnDisk::Record(record) => Ok(Some(record)),
        OnDisk::Foreign => {
            warn_foreign(paths);
            Ok(None)
        }
        OnDisk::Corrupt { reason, read } => {
            match try_lock(&paths.lock)? {
                Some(_lock) => move_aside(paths, &read, &reason)?,
                None => tracing::warn!(
                    file = %paths.token.display(),
                    %reason,
                    "token file is not a token record; the lease holder moves it aside"
                ),
            }
            Ok(None)
        }
    }
}

/// Writes `record` if the file's generation is `expected`. Call with the
/// lock held, through the `locked` lock file.
pub(super) fn save(
    paths: &Paths,
    locked: &Metadata,
    record: &TokenRecord,
    expected: Option<u64>,
) -> Result<bool, StoreError> {
    prepare_dir(&paths.dir)?;
    if !still_names(&paths.lock, locked) {
        return Err(StoreError::contended(format!(
            "lock file {} was deleted or replaced while the lease was held; nothing was written",
            paths.lock.display()
        )));
    }
    let stored = match read(paths, record.key())? {
        OnDisk::Absent => None,
        OnDisk::Record(stored) => Some(stored.generation()),
        OnDisk::Foreign => {
            warn_foreign(paths);
            None
        }
        OnDisk::Corrupt { reason, read } => {
            move_aside(paths, &read, &reason)?;
            None
        }
    };
    if stored != expected {
        return Ok(false);
    }
    remove_temporaries(paths, Duration::ZERO);
    write_atomically(paths, &record.encode())?;
    Ok(true)
}

/// Deletes every file of the key: the token file, the failure notice,
/// token files moved aside as corrupt (they may still hold tokens) and,
/// when the lock can be had within a moment (no holder is writing),
/// temporary files a crashed writer left and the lock file. A holder's
/// write in progress is never cut; its temporary file goes with the next
/// save, or the next logout.
pub(super) fn remove(paths: &Paths) -> Result<(), StoreError> {
    let _ = fs::remove_file(&paths.failure);
    remove_matching(paths, |name| paths.is_aside(name), Duration::ZERO);
    let locked = (0..20).find_map(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        try_lock(&paths.lock).ok().flatten()
    });
    match locked {
        Some(lock) => {
            remove_temporaries(paths, Duration::ZERO);
            // Deleted while locked, so that no one holds it meanwhile: a
            // process that opened it before, and locks it after, finds it
            // gone at its save, and writes nothing.
            let _ = fs::remove_file(&paths.lock);
            drop(lock);
        }
        // A write takes moments: a temporary file a minute old is a
        // crashed writer's, whoever holds the lock now.
        None => remove_temporaries(paths, Duration::from_secs(60)),
    }
    match fs::remove_file(&paths.token) {
        Ok(()) => {
            sync_dir_or_warn(&paths.dir);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(unavailable("cannot delete the token file", &paths.token, e)),
    }
}

/// The record for `key`, if the file holds one, changing nothing on disk:
/// no directory is created and a corrupt file stays where it is.
pub(super) fn peek(paths: &Paths, key: &StoreKey) -> Result<Option<TokenRecord>, StoreError> {
    match fs::symlink_metadata(&paths.dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    Ok(match read(paths, key)? {
        OnDisk::Record(record) => Some(record),
        OnDisk::Absent => None,
        OnDisk::Foreign => {
            warn_foreign(paths);
            None
        }
        OnDisk::Corrupt { reason, .. } => {
            tracing::warn!(
                file = %paths.token.display(),
                %reason,
                "token file is not a token record; the next login replaces it"
            );
            None
        }
    })
}

/// Writes the failure notice, as the token file is written (private,
/// atomically).
pub(super) fn save_failure(paths: &Paths, notice: &FailureNotice) -> Result<(), StoreError> {
    write_atomically_to(paths, &paths.failure, &notice.encode())
}

/// The failure notice, if one can be read. Advisory: a missing, unreadable
/// or insecure notice is none.
pub(super) fn load_failure(paths: &Paths, key: &StoreKey) -> Option<FailureNotice> {
    let name = paths.failure.file_name()?.to_str()?;
    let (file, meta) = open_checked(paths, name).ok().flatten()?;
    if meta.len() > MAX_RECORD_LEN {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_LEN).read_to_end(&mut bytes).ok()?;
    FailureNotice::decode(&bytes)
        .ok()
        .filter(|notice| notice.key() == key)
}

fn warn_foreign(paths: &Paths) {
    tracing::warn!(
        file = %paths.token.display(),
        "token file holds the record of another key; ignoring it"
    );
}

/// Temporary file (0600 from its creation), fsync, rename over the token
/// file, fsync of the directory: readers see the old record or the new one,
/// whole, and a crash loses at most the new one.
fn write_atomically(paths: &Paths, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomically_to(paths, &paths.token, bytes)
}

fn write_atomically_to(paths: &Paths, target: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = paths.beside(&format!(".tmp-{:016x}", fastrand::u64(..)));
    let mut file = open_private(&temp, true)
        .map_err(|e| unavailable("cannot create a temporary token file", &temp, e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    // Closed before the rename, which Windows refuses on an open file.
    drop(file);
    if let Err(e) = written.and_then(|()| fs::rename(&temp, target)) {
        let _ = fs::remove_file(&temp);
        return Err(unavailable("cannot write the token file", target, e));
    }
    // The new record is in place and every reader sees it: a failure here
    // only puts its survival of a power loss in doubt, so it is not an error.
    sync_dir_or_warn(&paths.dir);
    Ok(())
}

/// Temporary files of this key are a crashed writer's: writers hold the
/// lock, or are a logout.
fn remove_temporaries(paths: &Paths, older_than: Duration) {
    remove_matching(paths, |name| paths.is_temporary(name), older_than);
}

/// Deletes the files of the directory whose names `matches`, if they are
/// at least `older_than`.
fn remove_matching(paths: &Paths, matches: impl Fn(&str) -> bool, older_than: Duration) {
    let Ok(entries) = fs::read_dir(&paths.dir) else {
        return;
    };
    for entry in entries.flatten() {
        let matching = entry.file_name().to_str().is_some_and(&matches);
        let old_enough = older_than.is_zero()
            || entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age >= older_than);
        if matching && old_enough {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn sync_dir_or_warn(dir: &Path) {
    if let Err(error) = sync_dir(dir) {
        tracing::warn!(dir = %dir.display(), %error, "could not sync the token directory");
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

// Windows opens no directory as a file without special flags; NTFS
// journals the rename itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

fn unavailable(what: &str, path: &Path, error: io::Error) -> StoreError {
    StoreError::unavailable(format!("{what} {}", path.display()), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_the_key_fingerprint() {
        let key = StoreKey::new("https://auth-service.services.simacan.com/api/v1", "u");
        let paths = Paths::new(Path::new("dir"), &key);
        assert_eq!(
            paths.token,
            Path::new("dir").join("token-c899cab5b66fb71d17f0ca301e7a9d64.json")
        );
        assert_eq!(
            paths.lock,
            Path::new("dir").join("token-c899cab5b66fb71d17f0ca301e7a9d64.lock")
        );
        assert!(
            paths.is_temporary("token-c899cab5b66fb71d17f0ca301e7a9d64.json.tmp-0123456789abcdef")
        );
        assert!(!paths.is_temporary("token-c899cab5b66fb71d17f0ca301e7a9d64.json"));
        assert!(!paths.is_temporary("token-c899cab5b66fb71d17f0ca301e7a9d64.json.corrupt-1"));
        assert!(!paths.is_temporary("token-00000000000000000000000000000000.json.tmp-0"));
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_from_their_creation() {
        let dir = tempfile::tempdir().unwrap();
        for new in [true, false] {
            let path = dir.path().join(format!("created-{new}"));
            let file = open_private(&path, new).unwrap();
            // The mode of the file as created, before anything else is done
            // with it: no wider mode ever exists, not even for an instant.
            assert_eq!(file.metadata().unwrap().mode() & 0o777, 0o600);
        }
        assert!(
            open_private(&dir.path().join("created-true"), true).is_err(),
            "a temporary file is always a new one"
        );
    }
}
