//! What only the file store does, through the `TokenStore` trait: leases as
//! OS locks (held by stores in this process and by a real child process),
//! files on disk, private files, corrupt and insecure files. Replicas are
//! simulated as several `FileStore` values on one directory. The contract
//! every store keeps is checked in `store_conformance.rs`.

mod support;

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, UNIX_EPOCH},
};

use simacan_auth::store::{
    FileStore, Lease, StoreError, StoreErrorKind, StoreKey, TokenRecord, TokenStore,
};
use support::{PATIENCE, bounded, capture_logs};
use tempfile::TempDir;

const TTL: Duration = Duration::from_secs(30);

fn key() -> StoreKey {
    StoreKey::new("https://auth.example.com/api/v1", "planner@example.com")
}

fn record_of(key: &StoreKey, generation: u64) -> TokenRecord {
    let lifetime = Duration::from_secs(3600);
    // Whole milliseconds: what the encoding keeps.
    let expires_at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123 + generation);
    TokenRecord::new(
        key.clone(),
        generation,
        "eyAccess",
        Some("eyRefresh"),
        expires_at,
        lifetime,
    )
    .unwrap()
}

fn record(generation: u64) -> TokenRecord {
    record_of(&key(), generation)
}

/// A store in a directory that does not exist yet, inside a temporary one.
fn store() -> (TempDir, FileStore) {
    let temp = tempfile::tempdir().unwrap();
    let store = FileStore::new(temp.path().join("simacan-auth"));
    (temp, store)
}

async fn lease(store: &FileStore) -> Lease {
    bounded(store.try_lease(&key(), TTL))
        .await
        .unwrap()
        .expect("the lease is free")
}

async fn is_free(store: &FileStore) -> bool {
    bounded(store.try_lease(&key(), TTL))
        .await
        .unwrap()
        .is_some()
}

/// Whether the lease becomes free within a second. A lock released by this
/// process can stay held for a moment when another test of this binary
/// starts a child process meanwhile: between its fork and its exec, the
/// child shares every open file, locked ones included.
async fn becomes_free(store: &FileStore) -> bool {
    for _ in 0..100 {
        if is_free(store).await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

async fn saved(store: &FileStore, generation: u64) {
    let lease = lease(store).await;
    let expected = generation.checked_sub(1).filter(|g| *g > 0);
    assert!(
        bounded(store.save(&lease, &record(generation), expected))
            .await
            .unwrap()
    );
    bounded(store.release(lease)).await.unwrap();
}

async fn load(store: &FileStore) -> Result<Option<TokenRecord>, StoreError> {
    bounded(store.load(&key())).await
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Writes `bytes` as the token file, private as the store would make it.
fn plant(path: &Path, bytes: &[u8]) {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).unwrap().write_all(bytes).unwrap();
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn text(logs: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

// --- Leases ---------------------------------------------------------------

#[tokio::test]
async fn a_lease_is_the_lock_of_its_directory_and_key() {
    let (_temp, a) = store();
    let held = lease(&a).await;
    assert!(
        bounded(FileStore::new(a.dir()).renew(&held, TTL))
            .await
            .unwrap(),
        "any store on the directory recognises the lock"
    );

    let (_other_temp, elsewhere) = store();
    assert!(
        !bounded(elsewhere.renew(&held, TTL)).await.unwrap(),
        "a lease of another directory is not held here"
    );
    let forged = Lease::new(key(), held.owner());
    assert!(
        !bounded(a.renew(&forged, TTL)).await.unwrap(),
        "a lease without the lock is not held"
    );
    assert!(
        bounded(a.save(&forged, &record(1), None))
            .await
            .is_err_and(|e| e.kind() == StoreErrorKind::Contended),
        "nor can it save"
    );
    let other = StoreKey::new("https://auth.example.com/api/v1", "other");
    let error = bounded(a.save(&held, &record_of(&other, 1), None))
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        StoreErrorKind::Contended,
        "a lease covers its own key only: {error}"
    );

    bounded(a.release(held)).await.unwrap();
    assert!(becomes_free(&a).await);
}

// Windows may refuse to delete a locked file, and has no file identity in std.
#[cfg(unix)]
#[tokio::test]
async fn a_lease_whose_lock_file_was_deleted_is_lost() {
    let (_temp, a) = store();
    let held = lease(&a).await;
    fs::remove_file(a.lock_path(&key())).unwrap();
    // The next holder locks a new lock file: the old lock excludes no one.
    let next = lease(&a).await;
    assert!(!bounded(a.renew(&held, TTL)).await.unwrap());
    let error = bounded(a.save(&held, &record(1), None)).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Contended, "{error}");
    assert!(bounded(a.load(&key())).await.unwrap().is_none());
    assert!(bounded(a.renew(&next, TTL)).await.unwrap());
}

/// Set in the environment of the child process that holds a lease.
const HOLDER_DIR: &str = "SIMACAN_AUTH_TEST_LEASE_HOLDER_DIR";
const HOLDING: &str = "child process holds the lease";

/// The child process of `a_lease_held_by_a_killed_process_is_freed_by_the_os`:
/// takes the lease and waits to be killed. Does nothing as a test of its own.
#[test]
fn lease_holder_process() {
    let Some(dir) = std::env::var_os(HOLDER_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = FileStore::new(dir);
    let _lease = runtime.block_on(lease(&store));
    println!("{HOLDING}");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_lease_held_by_a_killed_process_is_freed_by_the_os() {
    let (_temp, store) = store();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "lease_holder_process", "--nocapture"])
            .env(HOLDER_DIR, store.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, holding) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(HOLDING) {
                let _ = tx.send(());
            }
        }
    });
    holding
        .recv_timeout(PATIENCE)
        .expect("the child process took the lease");
    assert!(
        !is_free(&store).await,
        "the child's lock excludes this process"
    );

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // Released when the process ends (some platforms take a moment).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !is_free(&store).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead process's lock was not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- Records ----------------------------------------------------------------

#[tokio::test]
async fn the_token_file_is_the_records_encoding() {
    let (_temp, a) = store();
    saved(&a, 1).await;
    let bytes = fs::read(a.token_path(&key())).unwrap();
    assert_eq!(bytes, *record(1).encode());
}

#[tokio::test]
async fn remove_deletes_the_token_file_and_a_later_save_over_it_fails() {
    let (_temp, a) = store();
    saved(&a, 1).await;
    let holder = lease(&a).await;
    let stale = a
        .token_path(&key())
        .with_extension("json.tmp-0123456789abcdef");
    plant(&stale, b"left by a crashed writer");
    let crashed_long_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(crashed_long_ago)
        .unwrap();

    bounded(a.remove(&key())).await.unwrap();
    assert!(load(&a).await.unwrap().is_none());
    assert!(!a.token_path(&key()).exists());
    assert!(!stale.exists(), "a logout leaves no token behind");
    assert!(
        !bounded(a.save(&holder, &record(2), Some(1))).await.unwrap(),
        "a holder that read the removed record cannot bring it back"
    );
    assert!(load(&a).await.unwrap().is_none());
    bounded(a.remove(&key())).await.unwrap();
    assert!(a.lock_path(&key()).exists(), "lock files are never deleted");
}

#[tokio::test]
async fn a_record_of_another_key_is_not_served() {
    let (_temp, a) = store();
    saved(&a, 1).await;
    let other = StoreKey::new("https://auth.example.com/api/v1", "other");
    fs::copy(a.token_path(&key()), a.token_path(&other)).unwrap();

    let (logs, _guard) = capture_logs();
    assert!(bounded(a.load(&other)).await.unwrap().is_none());
    assert!(text(&logs).contains("another key"), "{}", text(&logs));

    let held = bounded(a.try_lease(&other, TTL)).await.unwrap().unwrap();
    assert!(
        bounded(a.save(&held, &record_of(&other, 1), None))
            .await
            .unwrap()
    );
    let loaded = bounded(a.load(&other)).await.unwrap().unwrap();
    assert_eq!(loaded.key(), &other);
}

// --- Files on disk ----------------------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn files_are_private_from_their_creation() {
    let (_temp, a) = store();
    assert!(!a.dir().exists(), "nothing is created before first use");
    let held = lease(&a).await;
    assert_eq!(mode(a.dir()), 0o700);
    assert_eq!(mode(&a.lock_path(&key())), 0o600);

    let crashed = a
        .token_path(&key())
        .with_extension("json.tmp-0123456789abcdef");
    plant(&crashed, b"left by a crashed writer");

    // Watch the directory while saving: no file in it is ever wider than
    // 0600, temporary files included.
    let stop = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (dir, stop) = (a.dir().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut wide = Vec::new();
            while stop.load(Ordering::SeqCst) == 0 {
                for entry in fs::read_dir(&dir).unwrap().flatten() {
                    if let Ok(meta) = fs::symlink_metadata(entry.path()) {
                        use std::os::unix::fs::PermissionsExt;
                        if meta.permissions().mode() & 0o077 != 0 {
                            wide.push(entry.file_name());
                        }
                    }
                }
            }
            wide
        })
    };
    for generation in 1..=50 {
        let expected = (generation > 1).then_some(generation - 1);
        assert!(
            bounded(a.save(&held, &record(generation), expected))
                .await
                .unwrap()
        );
    }
    stop.store(1, Ordering::SeqCst);
    assert_eq!(watcher.join().unwrap(), Vec::<std::ffi::OsString>::new());

    assert_eq!(mode(&a.token_path(&key())), 0o600);
    let token = format!("token-{}", key().fingerprint());
    assert_eq!(
        names(a.dir()),
        [format!("{token}.json"), format!("{token}.lock")],
        "no temporary file is left, not even a crashed writer's"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_directory_others_can_write_to_is_refused() {
    let (_temp, a) = store();
    fs::create_dir(a.dir()).unwrap();
    set_mode(a.dir(), 0o755);
    assert!(load(&a).await.unwrap().is_none(), "readable is allowed");
    set_mode(a.dir(), 0o770);
    for result in [
        load(&a).await.map(drop),
        bounded(a.try_lease(&key(), TTL)).await.map(drop),
    ] {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Insecure);
        let message = error.to_string();
        assert!(
            message.contains(&a.dir().display().to_string()),
            "{message}"
        );
        assert!(message.contains("chmod 700"), "{message}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_token_file_others_can_read_is_refused() {
    let (_temp, a) = store();
    saved(&a, 1).await;
    let path = a.token_path(&key());
    set_mode(&path, 0o644);

    let error = load(&a).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Insecure);
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("chmod 600"), "{message}");
    assert!(message.contains("644"), "{message}");
    assert!(!message.contains("eyAccess") && !message.contains("eyRefresh"));

    let held = lease(&a).await;
    let error = bounded(a.save(&held, &record(2), Some(1)))
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        StoreErrorKind::Insecure,
        "nor is it silently replaced"
    );
    assert_eq!(mode(&path), 0o644);

    // The fix the message offers works.
    set_mode(&path, 0o600);
    assert_eq!(load(&a).await.unwrap().unwrap().generation(), 1);
}

/// The uid files planted by "another user" are given: nobody's.
#[cfg(unix)]
const OTHER_UID: u32 = 65534;

/// Gives `path` to another user, as a planted file would be; `false` (with
/// a note) when this process may not, which only root may. Under CI the
/// tests run as root, and this must work.
#[cfg(unix)]
fn give_away(path: &Path) -> bool {
    match std::os::unix::fs::chown(path, Some(OTHER_UID), None) {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "skipped: cannot give {} to another user ({e}); run as root",
                path.display()
            );
            false
        }
        Err(e) => panic!(
            "cannot give {} to another user under CI: {e}",
            path.display()
        ),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_token_file_owned_by_another_user_is_refused() {
    let (_temp, a) = store();
    saved(&a, 1).await;
    let path = a.token_path(&key());
    if !give_away(&path) {
        return;
    }
    assert_eq!(mode(&path), 0o600, "private, but not ours");

    let error = load(&a).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Insecure);
    let message = error.to_string();
    assert!(message.contains("owned by another user"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!message.contains("eyAccess") && !message.contains("eyRefresh"));

    let held = lease(&a).await;
    let error = bounded(a.save(&held, &record(2), Some(1)))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Insecure, "nor written over");
}

/// Another user's directory on a shared path, such as `/tmp`, with a token
/// file of theirs in it: a process using that path as its store would
/// otherwise send their token, and upload into their account.
#[cfg(unix)]
#[tokio::test]
async fn a_directory_owned_by_another_user_is_refused() {
    let (_temp, a) = store();
    fs::create_dir(a.dir()).unwrap();
    set_mode(a.dir(), 0o755);
    let planted = a.token_path(&key());
    plant(&planted, &record(1).encode());
    if !give_away(&planted) || !give_away(a.dir()) {
        return;
    }

    for result in [
        load(&a).await.map(drop),
        bounded(a.try_lease(&key(), TTL)).await.map(drop),
    ] {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Insecure);
        let message = error.to_string();
        assert!(message.contains("owned by another user"), "{message}");
        assert!(
            message.contains(&a.dir().display().to_string()),
            "{message}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_in_place_of_the_token_file_is_refused_without_waiting() {
    let (_temp, a) = store();
    saved(&a, 1).await;
    let path = a.token_path(&key());
    fs::remove_file(&path).unwrap();
    let made = Command::new("mkfifo")
        .arg("-m")
        .arg("600")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // Bounded: an open that waited for a writer would hang here.
    let error = load(&a).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Insecure);
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_token_file_is_refused() {
    let (temp, a) = store();
    saved(&a, 1).await;
    let path = a.token_path(&key());
    let elsewhere = temp.path().join("elsewhere.json");
    fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();

    let error = load(&a).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Insecure);
    let message = error.to_string();
    assert!(message.contains("symbolic link"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");

    // A logout deletes the link, not what it points to.
    bounded(a.remove(&key())).await.unwrap();
    assert!(load(&a).await.unwrap().is_none());
    assert!(elsewhere.exists());
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_lock_file_is_refused_and_not_followed() {
    let (temp, a) = store();
    assert!(load(&a).await.unwrap().is_none(), "the directory is made");
    let lock = a.token_path(&key()).with_extension("lock");
    let elsewhere = temp.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, &lock).unwrap();

    let error = bounded(a.try_lease(&key(), TTL)).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Insecure);
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert!(!elsewhere.exists(), "the link was followed");
}

#[tokio::test]
async fn a_token_path_that_is_not_a_file_is_refused() {
    let (_temp, a) = store();
    fs::create_dir_all(a.token_path(&key())).unwrap();
    let error = load(&a).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Insecure);
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[tokio::test]
async fn a_corrupt_file_is_moved_aside_with_a_warning() {
    let full = record(1).encode();
    let newer = String::from_utf8(full.to_vec())
        .unwrap()
        .replace("\"schema\":1", "\"schema\":2");
    let bad: [&[u8]; 4] = [
        b"SECRET{not a record",
        &full[..full.len() / 2],
        newer.as_bytes(),
        b"",
    ];
    for contents in bad {
        let (_temp, a) = store();
        saved(&a, 1).await;
        let path = a.token_path(&key());
        plant(&path, contents);

        let (logs, _guard) = capture_logs();
        assert!(load(&a).await.unwrap().is_none(), "treated as absent");
        assert!(!path.exists());
        let aside: Vec<String> = names(a.dir())
            .into_iter()
            .filter(|name| {
                name.starts_with(&format!("token-{}.json.corrupt-", key().fingerprint()))
            })
            .collect();
        assert_eq!(aside.len(), 1, "{:?}", names(a.dir()));
        assert_eq!(fs::read(a.dir().join(&aside[0])).unwrap(), contents);
        let logged = text(&logs);
        assert!(
            logged.contains("WARN") && logged.contains("moved aside"),
            "{logged}"
        );
        assert!(
            logged.contains(&aside[0]),
            "the warning names the file: {logged}"
        );
        assert!(
            !logged.contains("SECRET") && !logged.contains("eyAccess"),
            "{logged}"
        );

        // The next login writes a good file.
        saved(&a, 1).await;
        assert_eq!(load(&a).await.unwrap().unwrap().generation(), 1);
    }
}

#[tokio::test]
async fn a_corrupt_file_found_while_the_lease_is_held_is_moved_by_its_holder() {
    let (_temp, a) = store();
    let b = FileStore::new(a.dir());
    let held = lease(&a).await;
    let path = a.token_path(&key());
    plant(&path, b"{\"schema\":");

    let (logs, _guard) = capture_logs();
    assert!(load(&b).await.unwrap().is_none());
    assert!(
        path.exists(),
        "only the lease holder moves it: a reader could move a file written meanwhile"
    );
    assert!(
        text(&logs).contains("lease holder moves it aside"),
        "{}",
        text(&logs)
    );

    assert!(bounded(a.save(&held, &record(1), None)).await.unwrap());
    assert!(text(&logs).contains("moved aside"), "{}", text(&logs));
    assert_eq!(load(&b).await.unwrap().unwrap().generation(), 1);
    assert!(names(a.dir()).iter().any(|name| name.contains(".corrupt-")));
}

#[tokio::test]
async fn an_unusable_directory_is_unavailable() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("a-file");
    fs::write(&file, b"").unwrap();
    for dir in [file.clone(), file.join("below")] {
        let a = FileStore::new(&dir);
        for result in [
            load(&a).await.map(drop),
            bounded(a.try_lease(&key(), TTL)).await.map(drop),
        ] {
            let error = result.unwrap_err();
            assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
            assert!(error.is_transient());
            assert!(error.to_string().contains("token directory"), "{error}");
        }
    }
}

#[test]
fn the_store_is_clone_debug_and_shows_no_token() {
    fn assert_all<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_all::<FileStore>();
    let shown = format!("{:?}", FileStore::new(PathBuf::from("tokens")));
    assert_eq!(shown, r#"FileStore { dir: "tokens" }"#);
}
