//! Exit codes, and the message on standard error that goes with a failure:
//! lowercase, the error with its causes, and a hint saying what to do.

use std::{error::Error as StdError, fmt, process::ExitCode};

use simacan_auth::{store::StoreErrorKind, Environment, Error};

/// The exit codes, as `--help` and the README list them.
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
        match error {
            // The library's own message speaks of its in-process backoff;
            // each run of this tool tries once.
            Error::InvalidCredentials { .. } => Failure::credentials(format!(
                "the simacan auth api at {at} rejected the username or password of {username}"
            ))
            .hint(
                "check the username (--username, SIMACAN_USERNAME) and the password \
                 (SIMACAN_PASSWORD, --password-file, --password-stdin); staging and production \
                 have separate credentials. Each run sends the password once: do not retry \
                 in a loop",
            ),
            Error::PasswordRequired => Failure::credentials(format!(
                "a password is needed to log in as {username} at {at}, \
                 and none was given: no usable token is stored"
            ))
            .hint(
                "set SIMACAN_PASSWORD, use --password-file PATH or --password-stdin, \
                 or run `simacan-auth login` on a terminal to be asked for it",
            ),
            Error::MissingCredentials { .. } => Failure::credentials(with_causes(error)),
            // Another run held the lock for longer than this one waits, or
            // took it over.
            Error::Store(store) if store.kind() == StoreErrorKind::Contended => {
                Failure::new(Code::Unavailable, with_causes(error)).hint(
                    "another simacan-auth run (or a service on the same token store) held the \
                     token store's lock for too long; try again",
                )
            }
            // Another run's Auth API call failed moments ago: an Auth API
            // problem, not the store's, told as one below.
            Error::Store(store) if store.kind() != StoreErrorKind::BackingOff => {
                Failure::new(Code::Store, with_causes(error))
            }
            _ if error.is_transient() => {
                let when = match error.retry_after() {
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

/// `error`'s message followed by those of its causes, without the
/// library's `; next attempt in …`: that speaks of a process that stays and
/// tries again, and each run of this tool tries once (the hint says when to
/// run again).
pub(crate) fn with_causes(error: &(dyn StdError + 'static)) -> String {
    let mut text = without_next_attempt(error.to_string());
    let mut cause = error.source();
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    text
}

/// `message` without a trailing `; next attempt in 42s` (or `…ms`).
fn without_next_attempt(mut message: String) -> String {
    const NEXT: &str = "; next attempt in ";
    if let Some(at) = message.rfind(NEXT) {
        let wait = &message[at + NEXT.len()..];
        let digits = wait.trim_end_matches("ms").trim_end_matches('s');
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            message.truncate(at);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use simacan_auth::{
        store::{StoreError, StoreErrorKind},
        Endpoint,
    };

    use super::*;

    fn code_of(error: Error) -> Code {
        Failure::of(&error, &Environment::Staging, "user").code
    }

    fn refused(retry_after: Option<Duration>) -> Error {
        Error::Unreachable {
            endpoint: Endpoint::Password,
            url: "https://auth.example.com/api/v1/auth/password".into(),
            source: Arc::new(std::io::Error::other("connection refused")),
            retry_after,
        }
    }

    #[test]
    fn every_kind_of_failure_has_its_code() {
        assert_eq!(
            code_of(Error::InvalidCredentials { retry_after: None }),
            Code::Credentials
        );
        assert_eq!(code_of(Error::PasswordRequired), Code::Credentials);
        assert_eq!(code_of(refused(None)), Code::Unavailable);
        assert_eq!(
            code_of(Error::UnexpectedStatus {
                endpoint: Endpoint::Refresh,
                url: "https://auth.example.com/api/v1/auth/refresh".into(),
                status: http::StatusCode::TOO_MANY_REQUESTS,
                retry_after: None,
            }),
            Code::Unavailable
        );
        assert_eq!(
            code_of(Error::UnexpectedStatus {
                endpoint: Endpoint::Password,
                url: "https://auth.example.com/api/v1/auth/password".into(),
                status: http::StatusCode::NOT_FOUND,
                retry_after: None,
            }),
            Code::Other
        );
        let insecure = StoreError::insecure("token file is readable by others");
        assert_eq!(insecure.kind(), StoreErrorKind::Insecure);
        assert_eq!(code_of(Error::Store(insecure)), Code::Store);
        let down = StoreError::unavailable("file store", std::io::Error::other("disk full"));
        assert_eq!(
            code_of(Error::Store(down)),
            Code::Store,
            "not an auth api outage"
        );
        let held = StoreError::contended("lost the lease on the key");
        assert_eq!(
            code_of(Error::Store(held)),
            Code::Unavailable,
            "a lock held by another run: try again"
        );
        let concurrent = StoreError::backing_off("another run failed", Duration::from_secs(3));
        assert_eq!(
            code_of(Error::Store(concurrent)),
            Code::Unavailable,
            "another run's auth api failure is an auth api outage"
        );
    }

    #[test]
    fn messages_carry_the_causes_and_when_to_retry() {
        let failure = Failure::of(
            &refused(Some(Duration::from_secs(42))),
            &Environment::Staging,
            "user",
        );
        let shown = failure.to_string();
        assert!(shown.contains(": connection refused"), "{shown}");
        assert!(shown.contains("try again in 42s"), "{shown}");
        assert!(!shown.contains("next attempt"), "one try per run: {shown}");
        assert!(
            shown.starts_with("simacan-auth: error: simacan auth api unreachable"),
            "{shown}"
        );
    }

    #[test]
    fn rejected_credentials_name_the_user_and_the_environment() {
        let shown = Failure::of(
            &Error::InvalidCredentials { retry_after: None },
            &Environment::Staging,
            "me",
        )
        .to_string();
        assert!(
            shown.contains("rejected the username or password of me"),
            "{shown}"
        );
        assert!(shown.contains(Environment::Staging.base_url()), "{shown}");
    }
}
