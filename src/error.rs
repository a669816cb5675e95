//! The crate's one error type.
//!
//! Every failure to obtain a token reaches the caller as [`Error`]. Through
//! [`SimacanAuth`](crate::SimacanAuth) it arrives boxed inside a
//! [`tower::BoxError`], so find it with `downcast_ref`; errors of the wrapped
//! service pass through unchanged.
//!
//! No variant ever carries the password or a token: messages name the
//! endpoint and the status, never a secret.
//!
//! # Example
//!
//! ```
//! use simacan_auth::Error;
//!
//! fn explain(error: &tower::BoxError) -> &'static str {
//!     match error.downcast_ref::<Error>() {
//!         Some(Error::InvalidCredentials) => "check SIMACAN_USERNAME and SIMACAN_PASSWORD",
//!         Some(e) if e.is_transient() => "the Simacan Auth API is having trouble; try later",
//!         Some(_) => "the Simacan Auth API misbehaved",
//!         None => "the request itself failed",
//!     }
//! }
//!
//! let error: tower::BoxError = Box::new(Error::InvalidCredentials);
//! assert_eq!(explain(&error), "check SIMACAN_USERNAME and SIMACAN_PASSWORD");
//! ```

use std::{error::Error as StdError, fmt, sync::Arc, time::Duration};

use http::StatusCode;

/// The Auth API endpoint a request went to. See the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::Endpoint;
///
/// assert_eq!(Endpoint::Refresh.to_string(), "/auth/refresh");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST {base}/auth/password`: the password grant.
    Password,
    /// `POST {base}/auth/refresh`: the refresh grant.
    Refresh,
}

impl Endpoint {
    /// The path below the environment's base URL.
    ///
    /// # Example
    ///
    /// ```
    /// assert_eq!(simacan_auth::Endpoint::Password.path(), "/auth/password");
    /// ```
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Password => "/auth/password",
            Endpoint::Refresh => "/auth/refresh",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// Why no token could be had. See the [module docs](self).
///
/// Cloning is cheap: one failed login is handed to every request that waited
/// for it.
///
/// # Example
///
/// ```
/// use simacan_auth::{Endpoint, Error};
/// use http::StatusCode;
///
/// let e = Error::UnexpectedStatus { endpoint: Endpoint::Password, status: StatusCode::BAD_GATEWAY, retry_after: None };
/// assert_eq!(e.to_string(), "simacan auth api answered /auth/password with 502 Bad Gateway");
/// assert!(e.is_transient());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The Auth API rejected the username and password (401 or a 400
    /// `invalid_grant` from `/auth/password`). Not retried until the backoff
    /// ends.
    InvalidCredentials,
    /// `Credentials::from_env` found the named variable unset or not UTF-8.
    MissingCredentials {
        /// The environment variable that is missing.
        variable: &'static str,
    },
    /// A base URL or other setting cannot be used.
    InvalidConfiguration {
        /// What is wrong with it.
        reason: String,
    },
    /// The Auth API could not be reached: DNS, connect, TLS or I/O failure.
    Unreachable {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The transport error.
        source: Arc<dyn StdError + Send + Sync>,
    },
    /// The Auth API did not answer within the auth timeout.
    Timeout {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The Auth API answered with a status the protocol does not expect
    /// (5xx, 429, a redirect, …).
    UnexpectedStatus {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The status it answered with.
        status: StatusCode,
        /// Its `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
    },
    /// The Auth API answered 200 with a body that is not a valid token
    /// response.
    MalformedResponse {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// What is wrong with the body (never the body itself).
        reason: String,
    },
    /// The Auth API's response body was larger than the crate accepts.
    ResponseTooLarge {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The token store failed: unreachable, insecure, corrupt, or its lease
    /// held elsewhere for too long. See [`StoreError`](crate::store::StoreError).
    Store(crate::store::StoreError),
    /// The background task that obtains tokens was stopped before it
    /// finished (the Tokio runtime is shutting down, or it has no time or
    /// I/O driver: build it with `enable_all`), or there is no Tokio
    /// runtime to run it on.
    NoRuntime,
}

impl Error {
    /// Whether trying again later may succeed: outages, timeouts, 5xx and 429.
    ///
    /// # Example
    ///
    /// ```
    /// assert!(!simacan_auth::Error::InvalidCredentials.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::NoRuntime => true,
            Error::Store(error) => error.is_transient(),
            Error::UnexpectedStatus { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    /// The `Retry-After` the Auth API sent with this error, if any.
    ///
    /// # Example
    ///
    /// ```
    /// assert_eq!(simacan_auth::Error::InvalidCredentials.retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::UnexpectedStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn unreachable(
        endpoint: Endpoint,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Error::Unreachable {
            endpoint,
            source: Arc::from(source.into()),
        }
    }

    pub(crate) fn malformed(endpoint: Endpoint, reason: impl Into<String>) -> Self {
        Error::MalformedResponse {
            endpoint,
            reason: reason.into(),
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::InvalidConfiguration {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidCredentials => {
                f.write_str("simacan auth api rejected the username or password")
            }
            Error::MissingCredentials { variable } => {
                write!(f, "environment variable {variable} is not set")
            }
            Error::InvalidConfiguration { reason } => write!(f, "invalid configuration: {reason}"),
            Error::Unreachable { endpoint, .. } => {
                write!(f, "simacan auth api unreachable at {endpoint}")
            }
            Error::Timeout { endpoint, after } => {
                write!(
                    f,
                    "simacan auth api did not answer {endpoint} within {after:?}"
                )
            }
            Error::UnexpectedStatus {
                endpoint, status, ..
            } => write!(f, "simacan auth api answered {endpoint} with {status}"),
            Error::MalformedResponse { endpoint, reason } => {
                write!(f, "malformed token response from {endpoint}: {reason}")
            }
            Error::ResponseTooLarge { endpoint, limit } => write!(
                f,
                "token response from {endpoint} is larger than {limit} bytes"
            ),
            Error::Store(error) => fmt::Display::fmt(error, f),
            Error::NoRuntime => f.write_str(
                "no tokio runtime to obtain a token on: none is running, it shut down, \
                 or it lacks the time or i/o driver (build it with enable_all)",
            ),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Unreachable { source, .. } => Some(&**source),
            Error::Store(error) => error.source(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::unreachable(Endpoint::Password, io);
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("refused")
        );
        assert!(error.is_transient());
    }

    #[test]
    fn client_errors_are_not_transient() {
        let error = Error::UnexpectedStatus {
            endpoint: Endpoint::Refresh,
            status: StatusCode::FORBIDDEN,
            retry_after: None,
        };
        assert!(!error.is_transient());
        let error = Error::UnexpectedStatus {
            endpoint: Endpoint::Refresh,
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(error.is_transient());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    }
}
