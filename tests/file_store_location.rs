//! `FileStore::default_location` reads the environment. Environment
//! variables belong to the whole process, so this binary has one test.

use std::{env, path::PathBuf};

use simacan_auth::ErrorKind;
use simacan_auth::{store::FileStore, Error};

fn dir() -> Result<PathBuf, Error> {
    FileStore::default_location().map(|store| store.dir().to_owned())
}

#[test]
fn default_location_follows_the_environment() {
    let temp = tempfile::tempdir().unwrap();
    let home = temp.path().join("home");
    let state = temp.path().join("state");
    for name in ["HOME", "XDG_STATE_HOME", "LOCALAPPDATA"] {
        env::remove_var(name);
    }
    assert!(
        dir().is_err_and(|e| e.kind() == ErrorKind::Configuration),
        "no home, no default location"
    );

    env::set_var("HOME", &home);
    env::set_var("XDG_STATE_HOME", &state);
    env::set_var("LOCALAPPDATA", &state);
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
        env::remove_var("XDG_STATE_HOME");
        assert_eq!(dir().unwrap(), home.join(".local/state/simacan-auth"));
        env::set_var("XDG_STATE_HOME", "relative/state");
        assert_eq!(
            dir().unwrap(),
            home.join(".local/state/simacan-auth"),
            "a relative XDG_STATE_HOME is ignored"
        );
        env::remove_var("HOME");
        let error = dir().unwrap_err();
        assert!(error.to_string().contains("XDG_STATE_HOME"), "{error}");
    }
}
