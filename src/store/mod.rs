//! Where tokens live beyond one process: the [`TokenStore`] trait and the
//! built-in stores.
//!
//! Simacan rotates refresh tokens (a refresh token sent twice is answered
//! 401) and asks clients not to send the password again and again. A store
//! lets a token outlive the process, and lets many processes (restarts,
//! command-line runs, a fleet of replicas) share one login and one refresh
//! chain per key ([`StoreKey`]: Auth API base URL and username).
//!
//! - [`MemoryStore`] (the default): one process. Clones share one map, so
//!   several token states in one process can share it too.
//! - [`FileStore`]: one host. Private files in a per-user directory, an OS
//!   file lock as the lease; shared by restarts, command-line runs and the
//!   services of one user.
//! - `RedisStore` (feature `redis`): a fleet of replicas sharing one
//!   credential through Redis: one login and one refresh chain, fleet-wide.
//!
//! Requests never touch the store: they read the token from memory. The
//! store is consulted only when a token is missing, near expiry or refused
//! with a 401.
//!
//! # The protocol, and the invariant each step keeps
//!
//! A token state that needs a token does this, in order:
//!
//! 1. **Load** the record without the lease. If it holds a valid token newer
//!    than the one the state has (a higher [`generation`](TokenRecord::generation)),
//!    use it: *a process that starts with a valid stored token makes no Auth
//!    API call*.
//! 2. **Take the lease** ([`try_lease`](TokenStore::try_lease)) on the key.
//!    Only the holder calls the Auth API, for the password grant and the
//!    refresh grant alike: *one login and one refresh per need, fleet-wide*.
//!    Others wait, re-reading the record, and use the holder's result.
//! 3. **Re-read** under the lease; if the record has become newer and valid,
//!    use it with no Auth API call.
//! 4. **Renew** the lease right before sending a refresh token, and give up
//!    if it is no longer held: *a refresh token is sent at most once,
//!    fleet-wide*. The lease's time to live is longer than one Auth API
//!    call's timeout plus a margin, and it is renewed while calls are in
//!    flight. This holds as long as a holder is not paused (a stopped VM, a
//!    process frozen in a debugger) for longer than the lease's time to
//!    live between the renewal and the send, and the store's clock for
//!    lease expiry (Redis's, or the OS for a file lock) runs steadily; a
//!    refresh token sent twice anyway is refused with 401, and the fleet
//!    then logs in with the password once.
//! 5. **Share a failure.** When the holder's call fails, it leaves a
//!    [`FailureNotice`] ([`save_failure`](TokenStore::save_failure)) until
//!    its backoff ends; the processes that waited for that call fail fast
//!    with the same kind of error instead of repeating it: *a rejected
//!    password is sent once for the fleet, not once per replica*. A notice
//!    already there when a process began to wait, or found by a process
//!    that did not wait, is about another call and is ignored.
//! 6. **Save** the new record with compare-and-swap on the generation read
//!    in step 3 ([`save`](TokenStore::save)): a write never overwrites a
//!    record it did not see. A refresh token the Auth API refused is saved
//!    away (the record keeps no refresh token) before anything else, so no
//!    one sends it again.
//! 7. **Release** the lease.
//!
//! A holder that dies mid-call leaves its lease to expire (or, for the file
//! store, the OS to release its lock); the next holder re-reads the record.
//! If the Auth API had already rotated the refresh token, `/auth/refresh`
//! answers 401 and that holder logs in with the password, once, under the
//! same lease.
//!
//! Expiry is stored in wall-clock time; readers subtract a margin for clock
//! skew between machines, and an early 401 is healed the usual way.
//!
//! # Implementing a store
//!
//! A store keeps [`TokenRecord::encode`]d bytes per key, compares
//! generations on [`save`](TokenStore::save), and grants one
//! [`Lease`] per key at a time with a time to live. Every method is
//! asynchronous and returns a boxed future, so a store can be used as
//! `Arc<dyn TokenStore>`.
//!
//! # Example
//!
//! ```
//! use simacan_auth::{store::MemoryStore, Credentials, SimacanAuthLayer};
//!
//! // Two token states in one process sharing one login.
//! let store = MemoryStore::new();
//! let a = SimacanAuthLayer::new(Credentials::new("user", "pw")).token_store(store.clone());
//! let b = SimacanAuthLayer::new(Credentials::new("user", "pw")).token_store(store);
//! # let _ = (a, b);
//! ```

mod error;
mod failure;
mod file;
mod key;
mod lease;
mod memory;
mod record;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisStore;
pub use error::{StoreError, StoreErrorKind};
pub use failure::FailureNotice;
pub use file::FileStore;
pub use key::StoreKey;
pub use lease::Lease;
pub use memory::MemoryStore;
pub use record::{TokenRecord, SCHEMA_VERSION};

/// The future every [`TokenStore`] method returns.
///
/// # Example
///
/// ```
/// use simacan_auth::store::BoxFuture;
///
/// fn answer<'a>() -> BoxFuture<'a, u32> {
///     Box::pin(async { 42 })
/// }
/// # let _ = answer();
/// ```
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A place to keep tokens beyond one token state: see the
/// [module docs](self) for the protocol and its invariants.
///
/// # Example
///
/// A store that keeps nothing and is always available (every process then
/// logs in on its own):
///
/// ```
/// use std::time::Duration;
/// use simacan_auth::store::{BoxFuture, Lease, StoreError, StoreKey, TokenRecord, TokenStore};
///
/// #[derive(Debug)]
/// struct Forgetful;
///
/// impl TokenStore for Forgetful {
///     fn load<'a>(&'a self, _: &'a StoreKey) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
///         Box::pin(async { Ok(None) })
///     }
///     fn try_lease<'a>(&'a self, key: &'a StoreKey, _: Duration) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
///         Box::pin(async move { Ok(Some(Lease::new(key.clone(), Lease::random_owner()))) })
///     }
///     fn renew<'a>(&'a self, _: &'a Lease, _: Duration) -> BoxFuture<'a, Result<bool, StoreError>> {
///         Box::pin(async { Ok(true) })
///     }
///     fn release(&self, _: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn save<'a>(&'a self, _: &'a Lease, _: &'a TokenRecord, _: Option<u64>) -> BoxFuture<'a, Result<bool, StoreError>> {
///         Box::pin(async { Ok(true) })
///     }
///     fn remove<'a>(&'a self, _: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
///
/// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
///     .token_store(Forgetful);
/// # let _ = layer;
/// ```
pub trait TokenStore: fmt::Debug + Send + Sync + 'static {
    /// The record kept for `key`, if any.
    ///
    /// A record that cannot be read should not be served as absent in
    /// silence: move it aside with a warning and return `Ok(None)`, or fail
    /// with a [`Corrupt`](StoreErrorKind::Corrupt) error, which the token
    /// state reports to its callers (and retries after its backoff) without
    /// calling the Auth API.
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>>;

    /// Takes the lease on `key` for `ttl`, unless another holder has it:
    /// `Some` when taken, `None` when held elsewhere. Never waits for it.
    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>>;

    /// Extends `lease` to `ttl` from now if it is still held by its owner;
    /// `false` when it was lost (it expired and may have been taken).
    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Gives `lease` up, if it is still held by its owner. A store whose
    /// lease is a guard ([`Lease::with_guard`], such as a locked file)
    /// releases it when the lease is dropped, whether or not this is
    /// called.
    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Writes `record` for its key if the stored record's generation is
    /// `expected` (`None`: there is no record); `false`, writing nothing,
    /// otherwise. Compare and swap in one atomic step. The generation is
    /// what protects the record: the lease is passed so that a store may
    /// also check it, but need not. A `false` is not retried: the token
    /// state keeps its new token in its own memory and logs an error.
    fn save<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Forgets the record for `key` (a logout).
    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Keeps `notice` for its key until its [`until`](FailureNotice::until)
    /// (a lease holder's Auth API call failed), replacing any other. The
    /// default keeps nothing: every token state then backs off on its own,
    /// and a fleet repeats a failing call once per replica.
    ///
    /// Keep the notice whole, as [`FailureNotice::encode`]'s bytes or the
    /// value itself: token states tell one notice from the next by
    /// comparing what [`load_failure`](Self::load_failure) returns, so it
    /// must return the same notice, equal in every field, on every read.
    fn save_failure<'a>(
        &'a self,
        lease: &'a Lease,
        notice: &'a FailureNotice,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (lease, notice);
        Box::pin(std::future::ready(Ok(())))
    }

    /// The notice kept for `key`, if any (it may have expired: callers
    /// compare its time and generation). The default has none.
    fn load_failure<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<FailureNotice>, StoreError>> {
        let _ = key;
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// A shared store: the same store behind several layers or middlewares,
/// each with a token state of its own (their processes' view of one
/// backend), or a store chosen at run time as `Arc<dyn TokenStore>`.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use simacan_auth::{store::{MemoryStore, TokenStore}, Credentials, SimacanAuthLayer};
///
/// let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
/// let trips = SimacanAuthLayer::new(Credentials::new("u", "p")).token_store(Arc::clone(&store));
/// let planning = SimacanAuthLayer::new(Credentials::new("u", "p")).token_store(store);
/// # let _ = (trips, planning);
/// ```
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        (**self).load(key)
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        (**self).try_lease(key, ttl)
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).renew(lease, ttl)
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).release(lease)
    }

    fn save<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).save(lease, record, expected)
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).remove(key)
    }

    fn save_failure<'a>(
        &'a self,
        lease: &'a Lease,
        notice: &'a FailureNotice,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).save_failure(lease, notice)
    }

    fn load_failure<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<FailureNotice>, StoreError>> {
        (**self).load_failure(key)
    }
}
