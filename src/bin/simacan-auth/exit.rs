//! Exit codes, and the message on standard error that goes with a failure:
//! lowercase, the error with its causes, and a hint saying what to do.

use std::{error::Error as StdError, fmt, process::ExitCode};

use simacan_auth::{
    Environment, Error, ErrorKind,
    store::{StoreError, StoreErrorKind},
};

/// The exit codes, as `--help` and the command-line guide list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// The command did its job.
    Success = 0,
    /// Anything not listed below.
    Other = 1,
    /// Bad arguments (clap's own errors exit with 2 too).
    Usage = 2,
    /// The Auth API rejected the credentials, or there are none.
    Credentials = 3,
    /// The Auth API is unreachable, timing out, or answering 5xx or 429.
    Unavailable = 4,
    /// The token store failed.
    Store = 5,
    /// `status`: no usable token is stored.
    NotLoggedIn = 6,
    /// Ctrl-C at the password prompt or during the login after it.
    Interrupted = 130,
    /// SIGTERM at the password prompt or during the login after it.
    Terminated = 143,
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> ExitCode {
        ExitCode::from(code as u8)
    }
}

/// Why a run failed: its exit code, a message and maybe a hint. Never holds
/// a secret.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: Code,
    message: String,
    hint: Option<String>,
}

impl Failure {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }

    pub(crate) fn credentials(message: impl Into<String>) -> Self {
        Self::new(Code::Credentials, message)
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The failure of obtaining a token for `username` in `environment`.
    pub(crate) fn of(error: &Error, environment: &Environment, username: &str) -> Self {
        let at = environment.base_url();
        let store = error.store_error().map(StoreError::kind);
        match error.kind() {
            // The library's own message speaks of its in-process backoff;
            // each run of this tool tries once.
            ErrorKind::InvalidCredentials => Failure::credentials(format!(
                "the simacan auth api at {at} rejected the username or password of {username}"
            ))
            .hint(
                "check the username (--username, SIMACAN_USERNAME) and the password \
                 (SIMACAN_PASSWORD, --password-file, --password-stdin); staging and production \
                 have separate credentials. Each run sends the password once: do not retry \
                 in a loop",
            ),
            ErrorKind::PasswordRequired => Failure::credentials(format!(
                "a password is needed to log in as {username} at {at}, \
                 and none was given: no usable token is stored"
            ))
            .hint(
                "set SIMACAN_PASSWORD, use --password-file PATH or --password-stdin, \
                 or run `simacan-auth login` on a terminal to be asked for it",
            ),
            // Another run held the lock for longer than this one waits, or
            // took it over.
            ErrorKind::Store if store == Some(StoreErrorKind::Contended) => {
                Failure::new(Code::Unavailable, with_causes(error)).hint(
                    "another simacan-auth run (or a service on the same token store) held the \
                     token store's lock for too long; try again",
                )
            }
            ErrorKind::Store => Failure::new(Code::Store, with_causes(error)),
            _ if error.is_transient() => {
                let when = match error.next_attempt_in() {
                    Some(wait) => format!("try again in {}s", wait.as_secs().max(1)),
                    None => "try again later".into(),
                };
                Failure::new(Code::Unavailable, with_causes(error)).hint(format!(
                    "the simacan auth api at {at} could not be reached or is having trouble; {when}"
                ))
            }
            _ => Failure::new(Code::Other, with_causes(error)),
        }
    }

    /// Writes the failure to standard error and gives its exit code.
    pub(crate) fn report(&self) -> ExitCode {
        eprintln!("{self}");
        self.code.into()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simacan-auth: error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nsimacan-auth: hint: {hint}")?;
        }
        Ok(())
    }
}

/// `error`'s message followed by those of its causes, each once.
pub(crate) fn with_causes(error: &(dyn StdError + 'static)) -> String {
    simacan_auth::error::with_causes(error).to_string()
}

#[cfg(test)]
mod tests {
    use simacan_auth::{Credentials, SimacanAuthLayer, store::StoreError};

    use super::*;

    fn code_of(error: Error) -> Code {
        Failure::of(&error, &Environment::Staging, "user").code
    }

    /// A real failure: nothing listens on port 9 of the loopback address.
    async fn refused() -> Error {
        let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
            .environment(Environment::custom("http://127.0.0.1:9/api/v1").unwrap());
        layer.access_token().await.unwrap_err()
    }

    #[tokio::test]
    async fn every_kind_of_failure_has_its_code() {
        assert_eq!(code_of(refused().await), Code::Unavailable);
        let misconfigured = Environment::custom("ftp://auth.example.com/api/v1").unwrap_err();
        assert_eq!(code_of(misconfigured), Code::Other);
        let insecure = StoreError::insecure("token file is readable by others");
        assert_eq!(code_of(insecure.into()), Code::Store);
        let down = StoreError::unavailable("file store", std::io::Error::other("disk full"));
        assert_eq!(code_of(down.into()), Code::Store, "not an auth api outage");
        let held = StoreError::contended("lost the lease on the key");
        assert_eq!(
            code_of(held.into()),
            Code::Unavailable,
            "a lock held by another run: try again"
        );
    }

    #[tokio::test]
    async fn messages_carry_the_causes_and_when_to_retry() {
        let error = refused().await;
        let wait = error.next_attempt_in().expect("a backoff").as_secs().max(1);
        let shown = Failure::of(&error, &Environment::Staging, "user").to_string();
        assert!(shown.contains("refused"), "the cause is shown: {shown}");
        assert!(shown.contains(&format!("try again in {wait}s")), "{shown}");
        assert!(!shown.contains("next attempt"), "one try per run: {shown}");
        assert!(
            shown.starts_with("simacan-auth: error: simacan auth api unreachable"),
            "{shown}"
        );
    }
}
