//! The crate's one error type: [`Error`], with an [`ErrorKind`].
//!
//! Every failure to obtain a token reaches the caller as [`Error`]. Through
//! [`SimacanAuth`](crate::SimacanAuth) it arrives boxed inside a
//! [`tower::BoxError`], so find it with `downcast_ref`; errors of the wrapped
//! service pass through unchanged.
//!
//! An `Error` is opaque: decide with its [`kind()`](Error::kind) and
//! [`is_transient()`](Error::is_transient), and read the details that apply
//! with [`status()`](Error::status), [`url()`](Error::url),
//! [`endpoint()`](Error::endpoint), [`retry_after()`](Error::retry_after)
//! (the Auth API's own `Retry-After`), [`next_attempt_in()`](Error::next_attempt_in)
//! (when the token cache tries again) and [`store_error()`](Error::store_error).
//!
//! | [`ErrorKind`] | what happened | transient |
//! |---|---|---|
//! | `InvalidCredentials` | the Auth API rejected the username or password | no |
//! | `PasswordRequired` | a login was needed and the credentials have no password | no |
//! | `Configuration` | a setting or environment variable cannot be used | no |
//! | `AuthApiUnavailable` | unreachable, no answer within the auth timeout, 5xx, 429 | yes |
//! | `UnexpectedResponse` | another status (404, a redirect, …), or a 200 that is not a token response | no |
//! | `Store` | the token store failed (see [`StoreError`]) | when the store's error is |
//! | `NoRuntime` | no Tokio runtime to obtain a token on | yes |
//!
//! Messages are stable: equal failures print equal messages, so that logs
//! group them. They name the endpoint's full URL and the status, never the
//! password or a token. The underlying cause of an unreachable Auth API
//! (connection refused, a DNS failure, a TLS error) is the error's
//! [`source()`](std::error::Error::source), not part of its message: print
//! the whole chain with [`with_causes`], as the last example shows.
//!
//! While the token cache backs off after a failure, requests without a valid
//! token fail fast with the same error, and [`Error::next_attempt_in`] says
//! how long until the next attempt.
//!
//! # Example
//!
//! ```
//! use simacan_auth::{Error, ErrorKind};
//!
//! fn explain(error: &tower::BoxError) -> &'static str {
//!     match error.downcast_ref::<Error>().map(Error::kind) {
//!         Some(ErrorKind::InvalidCredentials) => "check SIMACAN_USERNAME and SIMACAN_PASSWORD",
//!         Some(ErrorKind::AuthApiUnavailable) => "the Simacan Auth API is having trouble; try later",
//!         Some(_) => "see the error's message",
//!         None => "the request itself failed",
//!     }
//! }
//!
//! let error = simacan_auth::Environment::custom("not a url").unwrap_err();
//! let error: tower::BoxError = Box::new(error);
//! assert_eq!(explain(&error), "see the error's message");
//! ```
//!
//! Printing an error with its causes, each once, with [`with_causes`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use simacan_auth::{error::with_causes, Credentials, Environment, ErrorKind, SimacanAuthLayer};
//!
//! // Nothing listens on port 9 of the loopback address.
//! let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
//!     .environment(Environment::custom("http://127.0.0.1:9/api/v1").unwrap());
//! let error = layer.access_token().await.unwrap_err();
//! assert_eq!(error.kind(), ErrorKind::AuthApiUnavailable);
//! assert!(with_causes(&error)
//!     .to_string()
//!     .starts_with("simacan auth api unreachable at http://127.0.0.1:9/api/v1/auth/password: "));
//! # }
//! ```

use std::{error::Error as StdError, fmt, sync::Arc, time::Duration};

use http::{StatusCode, Uri};

use crate::store::StoreError;

mod causes;
mod hint;
mod kind;
#[cfg(test)]
mod tests;

pub use causes::{WithCauses, with_causes};
pub use kind::ErrorKind;

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
/// Opaque: read it with [`kind`](Self::kind) and the accessors. Cloning is
/// cheap: one failed login is handed to every request that waited for it.
///
/// # Example
///
/// ```
/// use simacan_auth::{Environment, ErrorKind};
///
/// let error = Environment::custom("https://auth.example.com").unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::Configuration);
/// assert!(!error.is_transient());
/// assert!(error.to_string().starts_with("invalid configuration: "));
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
    /// Set by the token cache while it backs off after this failure.
    next_attempt_in: Option<Duration>,
}

/// What an [`Error`] knows, shared by its clones.
struct Inner {
    kind: ErrorKind,
    detail: Detail,
    /// The Auth API call that failed, when one did.
    call: Option<Call>,
}

/// An Auth API call: the endpoint and its full URL, which tells the
/// deployment and never carries a secret.
struct Call {
    endpoint: Endpoint,
    url: Box<str>,
}

/// What the message says, and the details only some kinds have.
pub(crate) enum Detail {
    Rejected,
    MissingVariable(&'static str),
    PasswordRequired,
    Configuration(String),
    Unreachable(Arc<dyn StdError + Send + Sync>),
    Timeout(Duration),
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    Malformed(String),
    TooLarge(usize),
    Store(StoreError),
    /// Another process's Auth API call failed moments ago, with this kind:
    /// the token's key, and how long that process asked the others to wait.
    Elsewhere {
        key: String,
        wait: Duration,
    },
    NoRuntime,
}

impl Error {
    fn new(kind: ErrorKind, detail: Detail, call: Option<Call>) -> Self {
        Error {
            inner: Arc::new(Inner { kind, detail, call }),
            next_attempt_in: None,
        }
    }

    fn of_call(kind: ErrorKind, endpoint: Endpoint, url: &Uri, detail: Detail) -> Self {
        let call = Call {
            endpoint,
            url: url.to_string().into_boxed_str(),
        };
        Self::new(kind, detail, Some(call))
    }

    /// The Auth API rejected the username and password.
    pub(crate) fn invalid_credentials() -> Self {
        Self::new(ErrorKind::InvalidCredentials, Detail::Rejected, None)
    }

    /// The environment variable `variable` is unset, empty or not UTF-8.
    pub(crate) fn missing_variable(variable: &'static str) -> Self {
        Self::new(
            ErrorKind::Configuration,
            Detail::MissingVariable(variable),
            None,
        )
    }

    /// A password login is needed and the credentials have none.
    pub(crate) fn password_required() -> Self {
        Self::new(ErrorKind::PasswordRequired, Detail::PasswordRequired, None)
    }

    /// A setting cannot be used, for `reason`.
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Configuration,
            Detail::Configuration(reason.into()),
            None,
        )
    }

    /// The call to `url` failed in transport.
    pub(crate) fn unreachable(
        endpoint: Endpoint,
        url: &Uri,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        let source = Arc::from(source.into());
        let detail = Detail::Unreachable(source);
        Self::of_call(ErrorKind::AuthApiUnavailable, endpoint, url, detail)
    }

    /// The call to `url` got no answer within `after`.
    pub(crate) fn timeout(endpoint: Endpoint, url: &Uri, after: Duration) -> Self {
        let detail = Detail::Timeout(after);
        Self::of_call(ErrorKind::AuthApiUnavailable, endpoint, url, detail)
    }

    /// The call to `url` was answered with `status`, which the protocol does
    /// not expect, and the Auth API's `Retry-After`, if it sent one.
    pub(crate) fn unexpected_status(
        endpoint: Endpoint,
        url: &Uri,
        status: StatusCode,
        retry_after: Option<Duration>,
    ) -> Self {
        let kind = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            ErrorKind::AuthApiUnavailable
        } else {
            ErrorKind::UnexpectedResponse
        };
        let detail = Detail::Status {
            status,
            retry_after,
        };
        Self::of_call(kind, endpoint, url, detail)
    }

    /// The call to `url` was answered 200 with a body that is not a token
    /// response, for `reason` (never the body itself).
    pub(crate) fn malformed(endpoint: Endpoint, url: &Uri, reason: impl Into<String>) -> Self {
        let detail = Detail::Malformed(reason.into());
        Self::of_call(ErrorKind::UnexpectedResponse, endpoint, url, detail)
    }

    /// The answer to the call to `url` was larger than `limit` bytes.
    pub(crate) fn too_large(endpoint: Endpoint, url: &Uri, limit: usize) -> Self {
        let detail = Detail::TooLarge(limit);
        Self::of_call(ErrorKind::UnexpectedResponse, endpoint, url, detail)
    }

    /// The token store failed.
    pub(crate) fn store(error: StoreError) -> Self {
        Self::new(ErrorKind::Store, Detail::Store(error), None)
    }

    /// Another process's Auth API call for the token `key` failed moments
    /// ago with an error of `kind`, and is not to be repeated for `wait`.
    pub(crate) fn elsewhere(kind: ErrorKind, key: impl fmt::Display, wait: Duration) -> Self {
        if kind == ErrorKind::InvalidCredentials {
            return Self::invalid_credentials();
        }
        let detail = Detail::Elsewhere {
            key: key.to_string(),
            wait,
        };
        Self::new(kind, detail, None)
    }

    /// The shortest wait before the Auth API is called again that this
    /// error asks for: the Auth API's `Retry-After`, or what another
    /// process that failed asked the others to wait.
    pub(crate) fn asked_wait(&self) -> Option<Duration> {
        match self.inner.detail {
            Detail::Status { retry_after, .. } => retry_after,
            Detail::Elsewhere { wait, .. } => Some(wait),
            _ => None,
        }
    }

    /// There is no runtime to obtain a token on.
    pub(crate) fn no_runtime() -> Self {
        Self::new(ErrorKind::NoRuntime, Detail::NoRuntime, None)
    }

    /// What kind of failure this is.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{Environment, ErrorKind};
    ///
    /// let error = Environment::custom("https://auth.example.com/api/v1?x").unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Configuration);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Whether trying again later may succeed: the Auth API unavailable
    /// ([`ErrorKind::AuthApiUnavailable`]), a transient store failure (the
    /// store unreachable, or its lease held elsewhere), and
    /// [`ErrorKind::NoRuntime`] (a runtime shutting down).
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::Environment::custom("not a url").unwrap_err();
    /// assert!(!error.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match &self.inner.detail {
            Detail::Store(error) => error.is_transient(),
            _ => matches!(
                self.inner.kind,
                ErrorKind::AuthApiUnavailable | ErrorKind::NoRuntime
            ),
        }
    }

    /// Whether the Auth API did not answer within the auth timeout.
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::Environment::custom("not a url").unwrap_err();
    /// assert!(!error.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self.inner.detail, Detail::Timeout(_))
    }

    /// The Auth API endpoint whose call failed, when one did.
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::Environment::custom("not a url").unwrap_err();
    /// assert_eq!(error.endpoint(), None);
    /// ```
    pub fn endpoint(&self) -> Option<Endpoint> {
        self.inner.call.as_ref().map(|call| call.endpoint)
    }

    /// The full URL of the Auth API call that failed, when one did. It tells
    /// the deployment and never carries a secret.
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::Environment::custom("not a url").unwrap_err();
    /// assert_eq!(error.url(), None);
    /// ```
    pub fn url(&self) -> Option<&str> {
        self.inner.call.as_ref().map(|call| &*call.url)
    }

    /// The status the Auth API answered with, when it answered with one the
    /// protocol does not expect (5xx, 429, 404, a redirect, …).
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::Environment::custom("not a url").unwrap_err();
    /// assert_eq!(error.status(), None);
    /// ```
    pub fn status(&self) -> Option<StatusCode> {
        match self.inner.detail {
            Detail::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The `Retry-After` (in seconds) the Auth API sent with a 503 or 429,
    /// up to an hour. The token cache never calls it again sooner; see
    /// [`next_attempt_in`](Self::next_attempt_in) for when it will.
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::Environment::custom("not a url").unwrap_err();
    /// assert_eq!(error.retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self.inner.detail {
            Detail::Status { retry_after, .. } => retry_after,
            _ => None,
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
    /// backoff is told as it is). It is never shorter than the Auth API's
    /// [`retry_after`](Self::retry_after).
    ///
    /// Rejected credentials are not sent again until the longest backoff
    /// has passed since the rejection (5 minutes by default). `None` for
    /// errors that do not come from a backoff (configuration, missing
    /// credentials, no runtime).
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use simacan_auth::{Credentials, Environment, SimacanAuthLayer};
    ///
    /// // Nothing listens on port 9 of the loopback address.
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
    ///     .environment(Environment::custom("http://127.0.0.1:9/api/v1").unwrap());
    /// let error = layer.access_token().await.unwrap_err();
    /// let wait = error.next_attempt_in().expect("the cache backs off");
    /// assert!(wait <= Duration::from_secs(1), "{wait:?}");
    /// # }
    /// ```
    pub fn next_attempt_in(&self) -> Option<Duration> {
        self.next_attempt_in
    }

    /// The token store's error, for an error of kind [`ErrorKind::Store`].
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::Environment::custom("not a url").unwrap_err();
    /// assert!(error.store_error().is_none());
    /// ```
    pub fn store_error(&self) -> Option<&StoreError> {
        match &self.inner.detail {
            Detail::Store(error) => Some(error),
            _ => None,
        }
    }

    /// What the message says and the details only some kinds have.
    pub(crate) fn detail(&self) -> &Detail {
        &self.inner.detail
    }

    /// This error as the token cache returns it during a backoff: the next
    /// attempt is `wait` away, rounded up (see [`rounded_up`]). Errors that
    /// do not come from a call (configuration, a missing password, no
    /// runtime) are returned unchanged.
    pub(crate) fn with_next_attempt_in(mut self, wait: Duration) -> Self {
        let from_a_call = !matches!(
            self.inner.detail,
            Detail::MissingVariable(_)
                | Detail::PasswordRequired
                | Detail::Configuration(_)
                | Detail::NoRuntime
        );
        if from_a_call {
            self.next_attempt_in = Some(rounded_up(wait));
        }
        self
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::store(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url().unwrap_or_default();
        match &self.inner.detail {
            Detail::Rejected => f.write_str(
                "simacan auth api rejected the username or password; it is not sent again \
                 until the longest backoff (5 minutes by default) has passed",
            ),
            Detail::MissingVariable(variable) => {
                write!(f, "environment variable {variable} is not set or empty")
            }
            Detail::PasswordRequired => f.write_str(
                "a password login is needed (no usable token or refresh token is stored) \
                 and the credentials have no password",
            ),
            Detail::Configuration(reason) => write!(f, "invalid configuration: {reason}"),
            Detail::Unreachable(source) => {
                write!(f, "simacan auth api unreachable at {url}")?;
                f.write_str(hint::tls_hint(&**source).unwrap_or_default())
            }
            Detail::Timeout(after) => {
                write!(f, "simacan auth api did not answer {url} within {after:?}")
            }
            Detail::Status { status, .. } => {
                write!(f, "simacan auth api answered {url} with {status}")
            }
            Detail::Malformed(reason) => {
                write!(f, "malformed token response from {url}: {reason}")
            }
            Detail::TooLarge(limit) => {
                write!(f, "token response from {url} is larger than {limit} bytes")
            }
            Detail::Store(error) => fmt::Display::fmt(error, f),
            Detail::Elsewhere { key, .. } => write!(
                f,
                "the auth api call of another process for {key} failed moments ago ({})",
                self.inner.kind
            ),
            Detail::NoRuntime => f.write_str(
                "no tokio runtime to obtain a token on: none is running, it shut down, \
                 or it lacks the time or i/o driver (build it with enable_all)",
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug.field("kind", &self.inner.kind);
        if let Some(call) = &self.inner.call {
            debug
                .field("endpoint", &call.endpoint)
                .field("url", &call.url);
        }
        match &self.inner.detail {
            Detail::Unreachable(source) => debug.field("source", source),
            Detail::Store(error) => debug.field("store", error),
            _ => debug.field("message", &format_args!("{self}")),
        };
        if let Some(wait) = self.next_attempt_in {
            debug.field("next_attempt_in", &wait);
        }
        debug.finish()
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
        match &self.inner.detail {
            Detail::Unreachable(source) => Some(&**source),
            // The store error's message is this error's own.
            Detail::Store(error) => error.source(),
            _ => None,
        }
    }
}
