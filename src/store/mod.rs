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
//!   credential through Redis (one server, Sentinel or Cluster): one login
//!   and one refresh chain, fleet-wide.
//!
//! Requests never touch the store: they read the token from memory. The
//! store is consulted only when a token is missing, near expiry or refused
//! with a 401.
//!
//! # How the token state uses a store
//!
//! A token state that needs a token loads the record and uses it when it
//! is valid and newer than its own; otherwise it takes the key's
//! [`Lease`], a short one (2.5 s) renewed every 750 ms while its holder
//! works, so that only one process at a time calls the Auth API and a dead
//! holder stalls the others for seconds. The holder marks a refresh token
//! as sent (saves the record without it) before sending it, most often in
//! the look that takes the lease ([`Marking`]), saves the new
//! token with compare-and-swap on the generation, retries a failed save
//! while it holds the lease, and leaves a [`FailureNotice`] when its call
//! fails. A store failure is retried on a schedule of its own (50 to
//! 500 ms), apart from the Auth API's backoff. What each step guarantees,
//! and what each fault costs, is told in the stores guide's failure-modes table (`guide::stores`).
//!
//! # What a store must guarantee
//!
//! - [`save`](TokenStore::save) is one atomic compare-and-swap on the
//!   record's generation: it writes only over the generation expected
//!   (`None`: no record), so that a writer never overwrites a record it did
//!   not see. The generation is the fence: a holder that lost its lease
//!   cannot overwrite a newer record.
//! - [`try_lease`](TokenStore::try_lease) grants at most one unexpired lease
//!   per key; [`renew`](TokenStore::renew) extends it only for its owner and
//!   says when it was lost; the lease expires on its own after its time to
//!   live (or, for a lease that is an OS lock, when its holder dies).
//! - [`load`](TokenStore::load) returns what the last successful `save`
//!   wrote, whole, or fails; a store that loses its data may answer `None`,
//!   and the token state then logs in with the password rather than send a
//!   refresh token it cannot vouch for.
//! - [`save_failure`](TokenStore::save_failure) and
//!   [`load_failure`](TokenStore::load_failure) keep one notice whole. A
//!   wrapper around another store must pass them through: their defaults
//!   keep nothing, and a fleet then repeats a failing call once per
//!   replica.
//! - [`look`](TokenStore::look) reads the failure notice, tries the lease
//!   (which expires as one [`try_lease`](TokenStore::try_lease) took) and
//!   reads the record, in that order, as the three calls would, and writes
//!   a [`Marking`] only under a lease it took, over the record the marking
//!   expects, and only so that the lease was held once it was written (in
//!   one atomic step, or renewed after it); the default makes those calls.
//!   A wrapper that passes those three, [`save`](TokenStore::save) and
//!   [`renew`](TokenStore::renew) through unchanged should pass it through
//!   too; one that changes them (a fault injector, a cache) should leave
//!   the default.
//! - [`changes`](TokenStore::changes), when it returns a feed, is announced
//!   on after every successful save (one without a refresh token may be
//!   left out), release, failure notice and removal, through any handle. A
//!   feed that hands over saved records ([`ChangeFeed::announce_saved`])
//!   hands over only records whose save succeeded, in the order they were
//!   written, and forgets them when they are removed or when announcements
//!   may have been lost. A token state takes a handed-over record as it
//!   takes one it loads, so a feed hands over only records that come from
//!   where the store's own do (the memory store's, in the process; a
//!   channel only the store's users can publish on). The default keeps no
//!   feed, and waiters poll; a wrapper should pass it through.
//!
//! # Implementing a store
//!
//! A store keeps [`TokenRecord::encode`]d bytes per key, compares
//! generations on [`save`](TokenStore::save), and grants one
//! [`Lease`] per key at a time with a time to live. Every method is
//! asynchronous and returns a boxed future, so a store can be used as
//! `Arc<dyn TokenStore>`.
//!
//! The feature `conformance` adds `store::conformance`, which checks the
//! guarantees above from your store's tests, on several handles on one
//! backend as replicas would use it; the built-in stores pass the same
//! checks. Turn it on in your dev-dependencies
//! (`simacan-auth = { version = "0.1", features = ["conformance"] }`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use simacan_auth::store::{conformance, MemoryStore};
//!
//! // In a `#[tokio::test]`: `make` opens a new handle on one shared backend
//! // each time (a new connection; for a memory store, a clone).
//! let backend = MemoryStore::new();
//! conformance::check(move || backend.clone()).await;
//! # }
//! ```
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

mod changes;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod error;
mod failure;
mod file;
mod key;
mod lease;
pub(crate) mod look;
mod memory;
mod record;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisStore;
pub use changes::{ChangeFeed, Changes};
pub use error::{StoreError, StoreErrorKind};
pub use failure::FailureNotice;
pub use file::FileStore;
pub use key::StoreKey;
pub use lease::Lease;
pub use look::{Look, Marking};
pub use memory::MemoryStore;
pub use record::{SCHEMA_VERSION, TokenRecord};

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
    /// also check it, but need not (a holder whose store lost its data puts
    /// its token back after the lease went with the data). After a `false`,
    /// or an error, the token state reads the record back: the record it
    /// wrote (an answer lost after the write) counts as saved; another of
    /// the same or a later generation wins, and its own token stays in its
    /// memory; an older one or none (the store lost its data) is written
    /// over.
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

    /// One look at `key` by a token state that needs a newer token: the
    /// failure notice read, the lease tried for `ttl`, and the record read,
    /// in that order, so that the record is never older than the try. A
    /// lease it took and does not return (an error) must be given back or
    /// expire.
    ///
    /// With a [`Marking`], a look that takes the lease and finds the
    /// marking's [`expected`](Marking::expected) record writes its
    /// [`marked`](Marking::marked) one over it, as
    /// [`save`](Self::save) would with the expected generation, and says so
    /// ([`Look::marked`]); [`Look::record`] is then the record as found.
    /// A look that did not take the lease, or found another record, writes
    /// nothing. A look that reports no marking may still have written it
    /// (a Redis primary whose replicas did not acknowledge it, a lease lost
    /// right after it): the holder then marks on its own, with the same
    /// record. A lease holder passes one when it expects to send the stored
    /// refresh token, which it marks as sent first.
    ///
    /// The default makes the three calls ([`load_failure`](Self::load_failure),
    /// [`try_lease`](Self::try_lease), [`load`](Self::load)) together: one
    /// round trip to a store that serves one connection's requests in
    /// order; then, for a marking, the [`save`](Self::save). A store that
    /// can do it all in one request should: a fleet healing a 401 storm
    /// makes one look per replica at once, and its lease holder sends the
    /// refresh token only once the marking is written.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use simacan_auth::store::{MemoryStore, StoreKey, TokenStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), simacan_auth::store::StoreError> {
    /// let store = MemoryStore::new();
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// let look = store.look(&key, Duration::from_secs(2), None).await?;
    /// assert!(look.lease.is_some());
    /// # Ok(())
    /// # }
    /// ```
    fn look<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        marking: Option<&'a Marking>,
    ) -> BoxFuture<'a, Result<Look, StoreError>> {
        Box::pin(look::separately(self, key, ttl, marking))
    }

    /// A subscription that wakes the token states waiting for `key`'s
    /// lease when another handle on the store (another process) saves a
    /// record, releases a lease, leaves a failure notice or removes a
    /// record, so that they use its result the moment it is stored.
    ///
    /// A store that returns one announces on its [`ChangeFeed`] after each
    /// of those operations succeeds, through every handle on its backend; it
    /// may leave out the save of a record without a refresh token (a refresh
    /// token marked as sent), which no waiter can use.
    /// Announcements may be for other keys too (the waiters read the store
    /// to see), and one may be lost (a dropped connection): waiters also
    /// look on their own every 5 to 100 ms, as every waiter does with the
    /// default, `None`, which keeps no feed.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{MemoryStore, StoreKey, TokenStore};
    ///
    /// let store = MemoryStore::new();
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// assert!(store.changes(&key).is_some(), "the memory store announces");
    /// ```
    fn changes(&self, key: &StoreKey) -> Option<Changes> {
        let _ = key;
        None
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

    fn look<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        marking: Option<&'a Marking>,
    ) -> BoxFuture<'a, Result<Look, StoreError>> {
        (**self).look(key, ttl, marking)
    }

    fn changes(&self, key: &StoreKey) -> Option<Changes> {
        (**self).changes(key)
    }
}
