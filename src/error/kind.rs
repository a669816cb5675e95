//! [`ErrorKind`]: what an [`Error`](super::Error) is about, for code that
//! decides what to do and for operators who group and alert.

use std::fmt;

/// What kind of failure an [`Error`](crate::Error) is: the `kind` label of
/// `simacan_auth_failures_total`. See the [module docs](crate::error).
///
/// The kinds group failures by what an operator does about them: fix the
/// credentials ([`InvalidCredentials`](Self::InvalidCredentials),
/// [`PasswordRequired`](Self::PasswordRequired)), fix the configuration
/// ([`Configuration`](Self::Configuration),
/// [`UnexpectedResponse`](Self::UnexpectedResponse)), or wait for the Auth
/// API ([`AuthApiUnavailable`](Self::AuthApiUnavailable)) or the token store
/// ([`Store`](Self::Store)) to come back. New kinds may be added.
///
/// # Example
///
/// ```
/// use simacan_auth::{Environment, ErrorKind};
///
/// let error = Environment::custom("ftp://auth.example.com/api/v1").unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::Configuration);
/// assert_eq!(error.kind().as_str(), "configuration");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The Auth API rejected the username and password (401, or 400
    /// `invalid_grant`, from `/auth/password`). The password is not sent
    /// again until the longest backoff has passed (5 minutes unless set with
    /// [`SimacanAuthLayer::backoff`](crate::SimacanAuthLayer::backoff)).
    InvalidCredentials,
    /// A password login was needed (no usable token or refresh token in the
    /// token store, or the Auth API refused the refresh token) and the
    /// credentials have no password
    /// ([`Credentials::without_password`](crate::Credentials::without_password)).
    /// Nothing was sent to the Auth API.
    PasswordRequired,
    /// A setting cannot be used: a base URL, a proxy, a root certificate, a
    /// token scope, a store's URL, or an environment variable
    /// [`Credentials::from_env`](crate::Credentials::from_env) needs that is
    /// unset, empty or not UTF-8.
    Configuration,
    /// The Auth API is unavailable: it could not be reached (DNS, connect,
    /// proxy, TLS or I/O failure), did not answer within the auth timeout,
    /// or answered 5xx or 429. Transient.
    AuthApiUnavailable,
    /// The Auth API's answer is not one the protocol allows: a status other
    /// than 200, 401, 5xx and 429 (a 404 or a redirect, typically a wrong
    /// base URL or a proxy in the way), or a 200 whose body is not a token
    /// response or is too large.
    UnexpectedResponse,
    /// The token store failed: see
    /// [`Error::store_error`](crate::Error::store_error) for its
    /// [`StoreErrorKind`](crate::store::StoreErrorKind).
    Store,
    /// There is no Tokio runtime to obtain a token on: none is running, it
    /// is shutting down, or it has no time or I/O driver (build it with
    /// `enable_all`). Transient.
    NoRuntime,
}

impl ErrorKind {
    /// Every kind, in the order of their declaration.
    ///
    /// # Example
    ///
    /// ```
    /// # let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
    /// use simacan_auth::ErrorKind;
    ///
    /// let stats = layer.stats();
    /// for kind in ErrorKind::ALL {
    ///     println!("{kind}: {}", stats.failures(kind));
    /// }
    /// ```
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::InvalidCredentials,
        ErrorKind::PasswordRequired,
        ErrorKind::Configuration,
        ErrorKind::AuthApiUnavailable,
        ErrorKind::UnexpectedResponse,
        ErrorKind::Store,
        ErrorKind::NoRuntime,
    ];

    /// Its name in snake case: the `kind` label value of
    /// `simacan_auth_failures_total`.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::ErrorKind;
    ///
    /// assert_eq!(ErrorKind::AuthApiUnavailable.as_str(), "auth_api_unavailable");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidCredentials => "invalid_credentials",
            ErrorKind::PasswordRequired => "password_required",
            ErrorKind::Configuration => "configuration",
            ErrorKind::AuthApiUnavailable => "auth_api_unavailable",
            ErrorKind::UnexpectedResponse => "unexpected_response",
            ErrorKind::Store => "store",
            ErrorKind::NoRuntime => "no_runtime",
        }
    }

    /// The kind named `name` by [`as_str`](Self::as_str).
    pub(crate) fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Its place in [`ALL`](Self::ALL), for counters kept by kind.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_at_its_index_and_found_by_its_name() {
        for (n, kind) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), n);
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("other"), None);
    }
}
