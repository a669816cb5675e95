//! `FileStore::default_location` reads the environment. Environment
//! variables belong to the whole process, so this binary has one test.

use std::path::PathBuf;

use simacan_auth::ErrorKind;
use simacan_auth::{Error, store::FileStore};

/// Sets the environment variable `name` to `value`.
fn set(name: &str, value: impl AsRef<std::ffi::OsStr>) {
    // SAFETY: this binary has one test, and nothing else of it reads or
    // writes the environment while it runs.
    unsafe { std::env::set_var(name, value) }
}

/// Unsets the environment variable `name`.
fn unset(name: &str) {
    // SAFETY: as for `set`.
    unsafe { std::env::remove_var(name) }
}

fn dir() -> Result<PathBuf, Error> {
    FileStore::default_location().map(|store| store.dir().to_owned())
}

#[test]
fn default_location_follows_the_environment() {
    let temp = tempfile::tempdir().unwrap();
    let home = temp.path().join("home");
    let state = temp.path().join("state");
    for name in ["HOME", "XDG_STATE_HOME", "LOCALAPPDATA"] {
        unset(name);
    }
    assert!(
        dir().is_err_and(|e| e.kind() == ErrorKind::Configuration),
        "no home, no default location"
    );

    set("HOME", &home);
    set("XDG_STATE_HOME", &state);
    set("LOCALAPPDATA", &state);
    let expected = if cfg!(windows) {
        state.join("simacan-auth")
    } else if cfg!(target_os = "macos") {
        home.join("Library/Application Support/simacan-auth")
    } else {
        state.join("simacan-auth")
    };
    assert_eq!(dir().unwrap(), expected);
    assert!(!expected.exists(), "nothing is created before first use");

    if cfg!(all(unix, not(target_os = "macos"))) {
        unset("XDG_STATE_HOME");
        assert_eq!(dir().unwrap(), home.join(".local/state/simacan-auth"));
        set("XDG_STATE_HOME", "relative/state");
        assert_eq!(
            dir().unwrap(),
            home.join(".local/state/simacan-auth"),
            "a relative XDG_STATE_HOME is ignored"
        );
        unset("HOME");
        let error = dir().unwrap_err();
        assert!(error.to_string().contains("XDG_STATE_HOME"), "{error}");
    }
}
