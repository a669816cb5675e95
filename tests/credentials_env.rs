//! `Credentials::from_env`, in a process of its own: the variables are
//! process-wide, so one test sets them all in turn.

use simacan_auth::{
    token::{PASSWORD_VAR, USERNAME_VAR},
    Credentials, ErrorKind,
};

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
    std::env::remove_var(USERNAME_VAR);
    std::env::remove_var(PASSWORD_VAR);
    assert_eq!(missing(), Some(USERNAME_VAR));

    std::env::set_var(USERNAME_VAR, "");
    std::env::set_var(PASSWORD_VAR, "secret");
    assert_eq!(missing(), Some(USERNAME_VAR), "an empty username");

    std::env::set_var(USERNAME_VAR, "planner@example.com");
    std::env::set_var(PASSWORD_VAR, "");
    assert_eq!(missing(), Some(PASSWORD_VAR), "an empty password");
    let error = Credentials::from_env().unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable SIMACAN_PASSWORD is not set or empty"
    );

    std::env::set_var(PASSWORD_VAR, "secret");
    let credentials = Credentials::from_env().expect("both set");
    assert_eq!(credentials.username(), "planner@example.com");
    assert!(credentials.has_password());
}
