//! `Credentials::from_env`, in a process of its own: the variables are
//! process-wide, so one test sets them all in turn.

use simacan_auth::{
    Credentials, ErrorKind,
    token::{PASSWORD_VAR, USERNAME_VAR},
};

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

fn missing() -> Option<&'static str> {
    match Credentials::from_env() {
        Err(error) if error.kind() == ErrorKind::Configuration => {
            let message = error.to_string();
            [USERNAME_VAR, PASSWORD_VAR].into_iter().find(|variable| {
                message == format!("environment variable {variable} is not set or empty")
            })
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => None,
    }
}

#[test]
fn unset_and_empty_variables_are_missing_credentials() {
    unset(USERNAME_VAR);
    unset(PASSWORD_VAR);
    assert_eq!(missing(), Some(USERNAME_VAR));

    set(USERNAME_VAR, "");
    set(PASSWORD_VAR, "secret");
    assert_eq!(missing(), Some(USERNAME_VAR), "an empty username");

    set(USERNAME_VAR, "planner@example.com");
    set(PASSWORD_VAR, "");
    assert_eq!(missing(), Some(PASSWORD_VAR), "an empty password");
    let error = Credentials::from_env().unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable SIMACAN_PASSWORD is not set or empty"
    );

    set(PASSWORD_VAR, "secret");
    let credentials = Credentials::from_env().expect("both set");
    assert_eq!(credentials.username(), "planner@example.com");
    assert!(credentials.has_password());
}
