//! The crate's one error type.
//!
//! Every failure to obtain a token reaches the caller as [`Error`]. Through
//! [`SimacanAuth`](crate::SimacanAuth) it arrives boxed inside a
//! [`tower::BoxError`], so find it with `downcast_ref`; errors of the wrapped
//! service pass through unchanged.
//!
//! No variant ever carries the password or a token: messages name the
//! endpoint's full URL and the status, never a secret. The underlying cause
//! of an [`Error::Unreachable`] (connection refused, a DNS failure, a TLS
//! error) is its [`source()`](std::error::Error::source), not part of its
//! message: print the whole chain, as the last example shows.
//!
//! While the token cache backs off after a failure, requests without a valid
//! token fail fast with the same error, and [`Error::retry_after`] says how
//! long until the next attempt.
//!
//! # Example
//!
//! ```
//! use simacan_auth::Error;
//!
//! fn explain(error: &tower::BoxError) -> &'static str {
//!     match error.downcast_ref::<Error>() {
//!         Some(Error::InvalidCredentials { .. }) => "check SIMACAN_USERNAME and SIMACAN_PASSWORD",
//!         Some(e) if e.is_transient() => "the Simacan Auth API is having trouble; try later",
//!         Some(_) => "the Simacan Auth API misbehaved",
//!         None => "the request itself failed",
//!     }
//! }
//!
//! let error: tower::BoxError = Box::new(Error::InvalidCredentials { retry_after: None });
//! assert_eq!(explain(&error), "check SIMACAN_USERNAME and SIMACAN_PASSWORD");
//! ```
//!
//! Printing an error with its causes:
//!
//! ```
//! use std::error::Error as _;
//!
//! fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
//!     let mut text = error.to_string();
//!     let mut cause = error.source();
//!     while let Some(e) = cause {
//!         text = format!("{text}: {e}");
//!         cause = e.source();
//!     }
//!     text
//! }
//!
//! let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
//! let error = simacan_auth::Error::Unreachable {
//!     endpoint: simacan_auth::Endpoint::Password,
//!     url: "https://auth.example.com/api/v1/auth/password".into(),
//!     source: std::sync::Arc::new(io),
//!     retry_after: None,
//! };
//! assert_eq!(
//!     with_causes(&error),
//!     "simacan auth api unreachable at https://auth.example.com/api/v1/auth/password: connection refused"
//! );
//! ```

use std::{error::Error as StdError, fmt, sync::Arc, time::Duration};

use http::{StatusCode, Uri};

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
#[non_exhaustive]
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
/// let e = Error::UnexpectedStatus {
///     endpoint: Endpoint::Password,
///     url: "https://auth-service-stg.services.simacan.com/api/v1/auth/password".into(),
///     status: StatusCode::BAD_GATEWAY,
///     retry_after: None,
/// };
/// assert_eq!(
///     e.to_string(),
///     "simacan auth api answered https://auth-service-stg.services.simacan.com/api/v1/auth/password with 502 Bad Gateway"
/// );
/// assert!(e.is_transient());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The Auth API rejected the username and password (401 or a 400
    /// `invalid_grant` from `/auth/password`). The password is not sent again
    /// until the longest backoff has passed (5 minutes unless set with
    /// [`SimacanAuthLayer::backoff`](crate::SimacanAuthLayer::backoff));
    /// until then requests without a valid token fail fast with this error,
    /// and its [`retry_after`](Error::retry_after) says how long is left.
    InvalidCredentials {
        /// The time until the password is sent again, when this error comes
        /// from the token cache's backoff (see [`Error::retry_after`]).
        retry_after: Option<Duration>,
    },
    /// `Credentials::from_env` found the named variable unset, empty or not
    /// UTF-8.
    MissingCredentials {
        /// The environment variable that is missing.
        variable: &'static str,
    },
    /// A password login was needed (no usable token or refresh token in the
    /// token store, or the Auth API refused the refresh token), and the
    /// credentials have none:
    /// [`Credentials::without_password`](crate::Credentials::without_password).
    /// Nothing was sent to the Auth API. Ask for the password and try again
    /// with [`Credentials::new`](crate::Credentials::new).
    PasswordRequired,
    /// A base URL or other setting cannot be used.
    InvalidConfiguration {
        /// What is wrong with it.
        reason: String,
    },
    /// The Auth API could not be reached: DNS, connect, proxy, TLS or I/O
    /// failure, or an error of the client given to
    /// [`SimacanAuthLayer::auth_client`](crate::SimacanAuthLayer::auth_client).
    /// The message names the URL, with a hint for a server that does not
    /// speak TLS and for a certificate from an untrusted CA; the cause is the
    /// [`source()`](std::error::Error::source).
    Unreachable {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The endpoint's full URL, which tells the deployment. It never
        /// carries a secret.
        url: Arc<str>,
        /// The transport error.
        source: Arc<dyn StdError + Send + Sync>,
        /// The time until the next attempt. See [`Error::retry_after`].
        retry_after: Option<Duration>,
    },
    /// The Auth API did not answer within the auth timeout.
    Timeout {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The endpoint's full URL.
        url: Arc<str>,
        /// The timeout that ran out.
        after: Duration,
        /// The time until the next attempt. See [`Error::retry_after`].
        retry_after: Option<Duration>,
    },
    /// The Auth API answered with a status the protocol does not expect
    /// (5xx, 429, a redirect, …).
    UnexpectedStatus {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The endpoint's full URL.
        url: Arc<str>,
        /// The status it answered with.
        status: StatusCode,
        /// The time until the next attempt, never shorter than the
        /// `Retry-After` (in seconds) the Auth API sent. See
        /// [`Error::retry_after`].
        retry_after: Option<Duration>,
    },
    /// The Auth API answered 200 with a body that is not a valid token
    /// response.
    MalformedResponse {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The endpoint's full URL.
        url: Arc<str>,
        /// What is wrong with the body (never the body itself).
        reason: String,
        /// The time until the next attempt. See [`Error::retry_after`].
        retry_after: Option<Duration>,
    },
    /// The Auth API's response body was larger than the crate accepts.
    ResponseTooLarge {
        /// The endpoint that was called.
        endpoint: Endpoint,
        /// The endpoint's full URL.
        url: Arc<str>,
        /// The limit, in bytes.
        limit: usize,
        /// The time until the next attempt. See [`Error::retry_after`].
        retry_after: Option<Duration>,
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
    /// Whether trying again later may succeed: the Auth API or the token
    /// store unreachable or timing out, 5xx and 429, a lease held elsewhere
    /// or a failure another replica is backing off from, and
    /// [`NoRuntime`](Error::NoRuntime) (a runtime shutting down).
    ///
    /// # Example
    ///
    /// ```
    /// let rejected = simacan_auth::Error::InvalidCredentials { retry_after: None };
    /// assert!(!rejected.is_transient());
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

    /// How long until the token cache calls the Auth API (or the token
    /// store) again, so that a caller can size its own retries.
    ///
    /// After a failed login or refresh the cache backs off (see
    /// [`SimacanAuthLayer::backoff`](crate::SimacanAuthLayer::backoff)):
    /// requests without a valid token fail fast with the same error until
    /// the backoff ends, and the first request after it tries again. The
    /// failure that starts the backoff and every error returned during it
    /// carry the time left, rounded up to whole seconds like HTTP
    /// `Retry-After` (to whole milliseconds below a second, so that a short
    /// backoff is told as it is); the message ends with `; next attempt in
    /// …s` (or `…ms`). For a
    /// 503 or 429 it is never shorter than the Auth API's `Retry-After`.
    ///
    /// Rejected credentials ([`Error::InvalidCredentials`]) are not sent
    /// again until the longest backoff has passed since the rejection (5
    /// minutes by default), and say so. `None` for errors that do not come
    /// from a backoff (configuration, missing credentials, no runtime).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use simacan_auth::{Endpoint, Error};
    ///
    /// let e = Error::Timeout {
    ///     endpoint: Endpoint::Refresh,
    ///     url: "https://auth.example.com/api/v1/auth/refresh".into(),
    ///     after: Duration::from_secs(30),
    ///     retry_after: Some(Duration::from_secs(42)),
    /// };
    /// assert_eq!(e.retry_after(), Some(Duration::from_secs(42)));
    /// assert_eq!(
    ///     e.to_string(),
    ///     "simacan auth api did not answer https://auth.example.com/api/v1/auth/refresh \
    ///      within 30s; next attempt in 42s"
    /// );
    /// let rejected = Error::InvalidCredentials { retry_after: Some(Duration::from_secs(300)) };
    /// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(300)));
    /// assert_eq!(
    ///     rejected.to_string(),
    ///     "simacan auth api rejected the username or password; next attempt in 300s"
    /// );
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::InvalidCredentials { retry_after }
            | Error::Unreachable { retry_after, .. }
            | Error::Timeout { retry_after, .. }
            | Error::UnexpectedStatus { retry_after, .. }
            | Error::MalformedResponse { retry_after, .. }
            | Error::ResponseTooLarge { retry_after, .. } => *retry_after,
            Error::Store(error) => error.retry_after,
            _ => None,
        }
    }

    /// This error as the token cache returns it during a backoff: the next
    /// attempt is `wait` away, rounded up (see [`rounded_up`]). Variants without
    /// room for it are returned unchanged.
    pub(crate) fn next_attempt_in(mut self, wait: Duration) -> Self {
        let wait = Some(rounded_up(wait));
        match &mut self {
            Error::InvalidCredentials { retry_after }
            | Error::Unreachable { retry_after, .. }
            | Error::Timeout { retry_after, .. }
            | Error::UnexpectedStatus { retry_after, .. }
            | Error::MalformedResponse { retry_after, .. }
            | Error::ResponseTooLarge { retry_after, .. } => *retry_after = wait,
            Error::Store(error) => error.retry_after = wait,
            _ => {}
        }
        self
    }

    pub(crate) fn unreachable(
        endpoint: Endpoint,
        url: &Uri,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Error::Unreachable {
            endpoint,
            url: url_of(url),
            source: Arc::from(source.into()),
            retry_after: None,
        }
    }

    pub(crate) fn malformed(endpoint: Endpoint, url: &Uri, reason: impl Into<String>) -> Self {
        Error::MalformedResponse {
            endpoint,
            url: url_of(url),
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::InvalidConfiguration {
            reason: reason.into(),
        }
    }
}

/// An Auth API URL as the variants that describe a call keep it.
pub(crate) fn url_of(uri: &Uri) -> Arc<str> {
    uri.to_string().into()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidCredentials { retry_after } => {
                f.write_str("simacan auth api rejected the username or password")?;
                if retry_after.is_none() {
                    f.write_str(
                        "; the password is not sent again until the longest backoff \
                         (5 minutes by default) has passed",
                    )?
                }
            }
            Error::MissingCredentials { variable } => {
                write!(f, "environment variable {variable} is not set or empty")?
            }
            Error::PasswordRequired => f.write_str(
                "a password login is needed (no usable token or refresh token is stored) \
                 and the credentials have no password",
            )?,
            Error::InvalidConfiguration { reason } => write!(f, "invalid configuration: {reason}")?,
            Error::Unreachable { url, source, .. } => {
                write!(f, "simacan auth api unreachable at {url}")?;
                if let Some(hint) = tls_hint(&**source) {
                    f.write_str(hint)?;
                }
            }
            Error::Timeout { url, after, .. } => {
                write!(f, "simacan auth api did not answer {url} within {after:?}")?
            }
            Error::UnexpectedStatus { url, status, .. } => {
                write!(f, "simacan auth api answered {url} with {status}")?
            }
            Error::MalformedResponse { url, reason, .. } => {
                write!(f, "malformed token response from {url}: {reason}")?
            }
            Error::ResponseTooLarge { url, limit, .. } => {
                write!(f, "token response from {url} is larger than {limit} bytes")?
            }
            Error::Store(error) => fmt::Display::fmt(error, f)?,
            Error::NoRuntime => f.write_str(
                "no tokio runtime to obtain a token on: none is running, it shut down, \
                 or it lacks the time or i/o driver (build it with enable_all)",
            )?,
        }
        match self.retry_after() {
            Some(wait) if wait < Duration::from_secs(1) => {
                write!(f, "; next attempt in {}ms", wait.as_millis())
            }
            Some(wait) => write!(f, "; next attempt in {}s", wait.as_secs()),
            None => Ok(()),
        }
    }
}

/// `wait` rounded up to whole seconds like HTTP `Retry-After`, or to whole
/// milliseconds below a second, so that a sub-second backoff is not told as
/// ten times longer than it is.
fn rounded_up(wait: Duration) -> Duration {
    if wait < Duration::from_secs(1) {
        // At most 1,000 ms: the conversion cannot fail.
        let millis = u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(1_000);
        return Duration::from_millis(millis);
    }
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    Duration::from_secs(secs)
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

/// A hint for the two TLS failures whose cause a message can guess: a
/// server that answers the handshake with something else, typically plain
/// HTTP (rustls then reads `HTTP/1.1 …` as a record of an invalid content
/// type), and a certificate that chains to no trusted root, typically a
/// private CA's.
///
/// The connector wraps the rustls error in `io::Error`s, whose `source()`
/// skips the error they wrap, so those are opened with `get_ref`.
#[cfg(feature = "rustls")]
fn tls_hint(error: &(dyn StdError + 'static)) -> Option<&'static str> {
    use rustls::{CertificateError, Error as Tls, InvalidMessage};
    let mut next = Some(error);
    while let Some(error) = next {
        match error.downcast_ref() {
            Some(Tls::InvalidMessage(InvalidMessage::InvalidContentType)) => {
                return Some(": the server does not speak tls; is the auth api url plain http?")
            }
            Some(Tls::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                return Some(
                    ": its certificate does not chain to a trusted root; for a private ca, \
                     trust it with auth_roots",
                )
            }
            _ => {}
        }
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => error.source(),
        };
    }
    None
}

/// Without rustls there is no TLS to fail.
#[cfg(not(feature = "rustls"))]
fn tls_hint(_: &(dyn StdError + 'static)) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD_URL: &str = "https://auth-service-stg.services.simacan.com/api/v1/auth/password";

    fn uri() -> Uri {
        Uri::from_static(PASSWORD_URL)
    }

    fn url() -> Arc<str> {
        PASSWORD_URL.into()
    }

    fn refused() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused")
    }

    #[test]
    fn unreachable_names_the_url_and_keeps_the_cause_as_its_source() {
        let error = Error::unreachable(Endpoint::Password, &uri(), refused());
        assert_eq!(
            error.to_string(),
            format!("simacan auth api unreachable at {PASSWORD_URL}")
        );
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("refused")
        );
        assert!(error.is_transient());
    }

    #[test]
    fn call_errors_name_the_full_url() {
        let errors = [
            Error::Timeout {
                endpoint: Endpoint::Password,
                url: url(),
                after: Duration::from_secs(30),
                retry_after: None,
            },
            Error::UnexpectedStatus {
                endpoint: Endpoint::Password,
                url: url(),
                status: StatusCode::BAD_GATEWAY,
                retry_after: None,
            },
            Error::malformed(Endpoint::Password, &uri(), "not json"),
            Error::ResponseTooLarge {
                endpoint: Endpoint::Password,
                url: url(),
                limit: 65536,
                retry_after: None,
            },
        ];
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                format!("simacan auth api did not answer {PASSWORD_URL} within 30s"),
                format!("simacan auth api answered {PASSWORD_URL} with 502 Bad Gateway"),
                format!("malformed token response from {PASSWORD_URL}: not json"),
                format!("token response from {PASSWORD_URL} is larger than 65536 bytes"),
            ]
        );
    }

    #[test]
    fn client_errors_are_not_transient() {
        let error = Error::UnexpectedStatus {
            endpoint: Endpoint::Refresh,
            url: url(),
            status: StatusCode::FORBIDDEN,
            retry_after: None,
        };
        assert!(!error.is_transient());
        let error = Error::UnexpectedStatus {
            endpoint: Endpoint::Refresh,
            url: url(),
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(error.is_transient());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_sub_second_next_attempt_is_rounded_up_to_whole_milliseconds() {
        let error = Error::unreachable(Endpoint::Password, &uri(), refused());
        for (wait, millis) in [
            (Duration::from_nanos(1), 1),
            (Duration::from_millis(100), 100),
            (Duration::from_micros(199_001), 200),
        ] {
            let during = error.clone().next_attempt_in(wait);
            assert_eq!(during.retry_after(), Some(Duration::from_millis(millis)));
            assert!(
                during
                    .to_string()
                    .ends_with(&format!("; next attempt in {millis}ms")),
                "{during}"
            );
        }
        let almost = error
            .clone()
            .next_attempt_in(Duration::from_nanos(999_999_999));
        assert_eq!(almost.retry_after(), Some(Duration::from_secs(1)));
        assert!(almost.to_string().ends_with("; next attempt in 1s"));
    }

    #[test]
    fn the_next_attempt_is_rounded_up_to_whole_seconds_and_told() {
        let error = Error::unreachable(Endpoint::Password, &uri(), refused());
        for (wait, secs) in [
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(60), 60),
            (Duration::from_millis(59_001), 60),
            (Duration::MAX, u64::MAX),
        ] {
            let during = error.clone().next_attempt_in(wait);
            assert_eq!(during.retry_after(), Some(Duration::from_secs(secs)));
            assert!(
                during.to_string().ends_with(&format!(
                    "unreachable at {PASSWORD_URL}; next attempt in {secs}s"
                )),
                "{during}"
            );
            assert!(during.source().is_some(), "the cause is kept");
        }
    }

    #[test]
    fn store_errors_carry_the_next_attempt_too() {
        let store = crate::store::StoreError::unavailable("redis at 127.0.0.1:6379", refused());
        let error = Error::Store(store).next_attempt_in(Duration::from_millis(2500));
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            error.to_string(),
            "token store unavailable: redis at 127.0.0.1:6379; next attempt in 3s"
        );
        assert!(error.source().is_some());
    }

    #[test]
    fn rejected_credentials_say_when_the_password_is_tried_again() {
        let rejected = Error::InvalidCredentials { retry_after: None };
        assert!(
            rejected.to_string().ends_with(
                "not sent again until the longest backoff (5 minutes by default) has passed"
            ),
            "{rejected}"
        );
        let during = rejected.next_attempt_in(Duration::from_millis(299_001));
        assert!(matches!(during, Error::InvalidCredentials { .. }));
        assert_eq!(during.retry_after(), Some(Duration::from_secs(300)));
        assert_eq!(
            during.to_string(),
            "simacan auth api rejected the username or password; next attempt in 300s"
        );
        assert!(!during.is_transient());
    }

    #[test]
    fn a_password_required_is_not_transient_and_says_why() {
        let error = Error::PasswordRequired.next_attempt_in(Duration::from_secs(3));
        assert!(!error.is_transient());
        assert_eq!(error.retry_after(), None);
        assert_eq!(
            error.to_string(),
            "a password login is needed (no usable token or refresh token is stored) \
             and the credentials have no password"
        );
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn a_peer_that_does_not_speak_tls_gets_a_hint() {
        use rustls::InvalidMessage;
        // As the connector wraps it: rustls in an io::Error in an io::Error.
        let tls = rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType);
        let wrapped =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let error = Error::unreachable(Endpoint::Password, &uri(), wrapped);
        assert_eq!(
            error.to_string(),
            format!(
                "simacan auth api unreachable at {PASSWORD_URL}: \
                 the server does not speak tls; is the auth api url plain http?"
            )
        );
        let other_tls = rustls::Error::InvalidMessage(InvalidMessage::HandshakePayloadTooLarge);
        let error = Error::unreachable(Endpoint::Password, &uri(), other_tls);
        assert!(!error.to_string().contains("does not speak tls"), "{error}");
        let error = Error::unreachable(Endpoint::Password, &uri(), refused());
        assert!(!error.to_string().contains("does not speak tls"), "{error}");
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn a_certificate_of_an_unknown_issuer_gets_a_hint() {
        use rustls::CertificateError;
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let error = Error::unreachable(Endpoint::Password, &uri(), wrapped);
        assert_eq!(
            error.to_string(),
            format!(
                "simacan auth api unreachable at {PASSWORD_URL}: its certificate does not \
                 chain to a trusted root; for a private ca, trust it with auth_roots"
            )
        );
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        let error = Error::unreachable(Endpoint::Password, &uri(), expired);
        assert!(!error.to_string().contains("private ca"), "{error}");
    }
}
