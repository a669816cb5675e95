//! Where [`FileStore::default_location`](super::FileStore::default_location)
//! puts the token files: the platform's per-user directory for state.

use std::{ffi::OsString, path::PathBuf};

use crate::Error;

/// The directory inside the platform's per-user directory.
const APP_DIR: &str = "simacan-auth";

/// Whose convention to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Platform {
    /// Linux, the BSDs and other Unix: the XDG Base Directory state home.
    Xdg,
    /// macOS: `~/Library/Application Support`.
    MacOs,
    /// Windows: the local (not roaming) application data folder.
    Windows,
}

impl Platform {
    /// The platform this crate was compiled for.
    pub(super) const CURRENT: Platform = if cfg!(windows) {
        Platform::Windows
    } else if cfg!(target_os = "macos") {
        Platform::MacOs
    } else {
        Platform::Xdg
    };
}

/// The per-user token directory of `platform`, from the environment as
/// `var` reads it. Relative paths are ignored, as the XDG specification asks
/// of its variables: a relative directory would depend on where the process
/// happens to start.
pub(super) fn default_dir(
    platform: Platform,
    var: impl Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, Error> {
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = match platform {
        Platform::Xdg => absolute("XDG_STATE_HOME")
            .or_else(|| absolute("HOME").map(|home| home.join(".local").join("state"))),
        Platform::MacOs => {
            absolute("HOME").map(|home| home.join("Library").join("Application Support"))
        }
        Platform::Windows => absolute("LOCALAPPDATA"),
    };
    let variables = match platform {
        Platform::Xdg => "neither XDG_STATE_HOME nor HOME is",
        Platform::MacOs => "HOME is not",
        Platform::Windows => "LOCALAPPDATA is not",
    };
    base.map(|base| base.join(APP_DIR)).ok_or_else(|| {
        Error::config(format!(
            "no per-user directory for the token store: {variables} set to an absolute path; \
             set it, or give FileStore::new a directory"
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, path::Path};

    use super::*;

    /// An absolute path on whatever platform the tests run on.
    fn absolute(name: &str) -> PathBuf {
        std::env::temp_dir().join(name)
    }

    fn dir(platform: Platform, vars: &[(&str, &Path)]) -> Result<PathBuf, Error> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_os_str().to_owned()))
            .collect();
        default_dir(platform, |name| vars.get(name).cloned())
    }

    #[test]
    fn xdg_prefers_the_state_home_then_home() {
        let state = absolute("state");
        let home = absolute("home");
        assert_eq!(
            dir(
                Platform::Xdg,
                &[("XDG_STATE_HOME", &state), ("HOME", &home)]
            )
            .unwrap(),
            state.join("simacan-auth")
        );
        assert_eq!(
            dir(Platform::Xdg, &[("HOME", &home)]).unwrap(),
            home.join(".local").join("state").join("simacan-auth")
        );
    }

    #[test]
    fn relative_and_empty_variables_are_ignored() {
        let home = absolute("home");
        for ignored in ["relative/state", ""] {
            assert_eq!(
                dir(
                    Platform::Xdg,
                    &[("XDG_STATE_HOME", Path::new(ignored)), ("HOME", &home)]
                )
                .unwrap(),
                home.join(".local").join("state").join("simacan-auth")
            );
        }
        assert!(dir(Platform::MacOs, &[("HOME", Path::new("home"))]).is_err());
    }

    #[test]
    fn macos_and_windows_follow_their_conventions() {
        let home = absolute("home");
        assert_eq!(
            dir(Platform::MacOs, &[("HOME", &home)]).unwrap(),
            home.join("Library")
                .join("Application Support")
                .join("simacan-auth")
        );
        let local = absolute("local");
        assert_eq!(
            dir(
                Platform::Windows,
                &[("LOCALAPPDATA", &local), ("HOME", &home)]
            )
            .unwrap(),
            local.join("simacan-auth")
        );
    }

    #[test]
    fn no_home_is_a_configuration_error_that_names_the_variables() {
        for (platform, variable) in [
            (Platform::Xdg, "XDG_STATE_HOME"),
            (Platform::MacOs, "HOME"),
            (Platform::Windows, "LOCALAPPDATA"),
        ] {
            let error = dir(platform, &[]).unwrap_err();
            assert!(
                error.kind() == crate::ErrorKind::Configuration
                    && error.to_string().contains(variable),
                "{error}"
            );
            assert!(error.to_string().contains("FileStore::new"), "{error}");
        }
    }
}
