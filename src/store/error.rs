//! [`StoreError`]: why a store could not do what was asked.

use std::{error::Error as StdError, fmt, sync::Arc};

/// What kind of failure a [`StoreError`] is.
///
/// # Example
///
/// ```
/// use simacan_auth::store::{StoreError, StoreErrorKind};
///
/// assert_eq!(StoreError::insecure("token file is a symlink").kind(), StoreErrorKind::Insecure);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store cannot be reached or written right now (Redis down, a
    /// file system error). Trying again later may succeed.
    Unavailable,
    /// The store refuses to use what it found because it is not private:
    /// a token file that is a symlink or readable by others.
    Insecure,
    /// What the store holds is not a token record it can read.
    Corrupt,
    /// Another process held the lease for longer than a login or refresh
    /// can take.
    Contended,
}

/// Why a [`TokenStore`](super::TokenStore) failed. Cheap to clone; its
/// message never contains a secret.
///
/// # Example
///
/// ```
/// use simacan_auth::store::{StoreError, StoreErrorKind};
///
/// let io = std::io::Error::other("connection refused");
/// let error = StoreError::unavailable("redis at 127.0.0.1:6379", io);
/// assert_eq!(error.kind(), StoreErrorKind::Unavailable);
/// assert!(std::error::Error::source(&error).is_some());
/// ```
#[derive(Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// The store cannot be reached or written: `what` says which store (never
    /// a password), `source` why.
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::store::StoreError::unavailable("file store", std::io::Error::other("disk full"));
    /// assert_eq!(error.to_string(), "token store unavailable: file store");
    /// ```
    pub fn unavailable(
        what: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        StoreError {
            kind: StoreErrorKind::Unavailable,
            message: what.into(),
            source: Some(Arc::from(source.into())),
        }
    }

    /// The store refuses what it found because it is not private.
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::store::StoreError::insecure("token file is readable by others");
    /// assert_eq!(error.to_string(), "token store refused: token file is readable by others");
    /// ```
    pub fn insecure(reason: impl Into<String>) -> Self {
        Self::without_source(StoreErrorKind::Insecure, reason)
    }

    /// What the store holds is not a token record it can read.
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::store::StoreError::corrupt("not json");
    /// assert_eq!(error.to_string(), "token store holds a corrupt record: not json");
    /// ```
    pub fn corrupt(reason: impl Into<String>) -> Self {
        Self::without_source(StoreErrorKind::Corrupt, reason)
    }

    /// Another process held the lease for longer than a login or refresh
    /// can take.
    ///
    /// # Example
    ///
    /// ```
    /// let error = simacan_auth::store::StoreError::contended("waited 70s for the lease");
    /// assert_eq!(error.kind(), simacan_auth::store::StoreErrorKind::Contended);
    /// ```
    pub fn contended(reason: impl Into<String>) -> Self {
        Self::without_source(StoreErrorKind::Contended, reason)
    }

    fn without_source(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// What kind of failure this is.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{StoreError, StoreErrorKind};
    /// assert_eq!(StoreError::corrupt("x").kind(), StoreErrorKind::Corrupt);
    /// ```
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether trying again later may succeed.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::StoreError;
    /// assert!(!StoreError::insecure("symlink").is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Unavailable | StoreErrorKind::Contended
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "token store unavailable",
            StoreErrorKind::Insecure => "token store refused",
            StoreErrorKind::Corrupt => "token store holds a corrupt record",
            StoreErrorKind::Contended => "token store lease contended",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
