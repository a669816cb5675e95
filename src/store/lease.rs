//! [`Lease`]: the right to call the Auth API for a key.

use std::{any::Any, fmt};

use super::StoreKey;

/// Proof that its holder may call the Auth API for a key: one lease per
/// key covers both the password login and the refresh, fleet-wide. Made by
/// a store's [`try_lease`](super::TokenStore::try_lease).
///
/// A store identifies the holder by [`owner`](Self::owner), a random
/// string; a store whose lease is an OS resource (the file store's lock)
/// keeps it in the lease as a guard, released when the lease is.
///
/// # Example
///
/// ```
/// use simacan_auth::store::{Lease, StoreKey};
///
/// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
/// let lease = Lease::new(key, Lease::random_owner());
/// assert_eq!(lease.owner().len(), 32);
/// ```
pub struct Lease {
    key: StoreKey,
    owner: String,
    guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Lease {
    /// A lease on `key` held by `owner`.
    ///
    /// # Example
    ///
    /// ```
    /// # use simacan_auth::store::{Lease, StoreKey};
    /// let lease = Lease::new(StoreKey::new("https://a/api/v1", "u"), "owner-1");
    /// assert_eq!(lease.owner(), "owner-1");
    /// ```
    pub fn new(key: StoreKey, owner: impl Into<String>) -> Self {
        Lease {
            key,
            owner: owner.into(),
            guard: None,
        }
    }

    /// Keeps `guard` alive for as long as the lease: a locked file, a
    /// connection. Dropped with the lease.
    ///
    /// # Example
    ///
    /// ```
    /// # use simacan_auth::store::{Lease, StoreKey};
    /// let lease = Lease::new(StoreKey::new("https://a/api/v1", "u"), "o").with_guard(42u32);
    /// assert_eq!(lease.guard::<u32>(), Some(&42));
    /// ```
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// The guard kept with [`with_guard`](Self::with_guard), if it is a `T`.
    ///
    /// # Example
    ///
    /// ```
    /// # use simacan_auth::store::{Lease, StoreKey};
    /// let lease = Lease::new(StoreKey::new("https://a/api/v1", "u"), "o");
    /// assert!(lease.guard::<u32>().is_none());
    /// ```
    pub fn guard<T: Any>(&self) -> Option<&T> {
        self.guard.as_ref()?.downcast_ref()
    }

    /// The key the lease is on.
    ///
    /// # Example
    ///
    /// ```
    /// # use simacan_auth::store::{Lease, StoreKey};
    /// let key = StoreKey::new("https://a/api/v1", "u");
    /// assert_eq!(Lease::new(key.clone(), "o").key(), &key);
    /// ```
    pub fn key(&self) -> &StoreKey {
        &self.key
    }

    /// Who holds it.
    ///
    /// # Example
    ///
    /// ```
    /// # use simacan_auth::store::{Lease, StoreKey};
    /// assert_eq!(Lease::new(StoreKey::new("https://a/api/v1", "u"), "me").owner(), "me");
    /// ```
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// A fresh random owner: 32 hex digits, unique across processes for all
    /// practical purposes.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::Lease;
    ///
    /// assert_ne!(Lease::random_owner(), Lease::random_owner());
    /// ```
    pub fn random_owner() -> String {
        format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}
