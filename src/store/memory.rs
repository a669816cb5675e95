//! [`MemoryStore`]: tokens kept in this process only.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::time::Instant;

use super::{
    BoxFuture, ChangeFeed, Changes, FailureNotice, Lease, StoreError, StoreKey, TokenRecord,
    TokenStore,
};

/// Tokens kept in this process's memory: what a layer uses unless given
/// another store. Clones share one map, so token states given clones of one
/// `MemoryStore` share one login and one refresh chain per key, and a
/// token state waiting for another's login or refresh is woken the moment
/// its token is saved ([`changes`](TokenStore::changes)).
///
/// # Example
///
/// ```
/// use simacan_auth::{store::MemoryStore, Credentials, SimacanAuthLayer};
///
/// let shared = MemoryStore::new();
/// let layer = SimacanAuthLayer::new(Credentials::new("u", "p")).token_store(shared.clone());
/// # let _ = layer;
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<StoreKey, Entry>>>,
    feed: ChangeFeed,
}

#[derive(Default)]
struct Entry {
    record: Option<TokenRecord>,
    lease: Option<(String, Instant)>,
    failure: Option<FailureNotice>,
}

impl Entry {
    fn held_by_other(&self, owner: &str, now: Instant) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|(holder, until)| holder != owner && now < *until)
    }

    fn held_by(&self, owner: &str, now: Instant) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|(holder, until)| holder == owner && now < *until)
    }
}

impl MemoryStore {
    /// An empty store.
    ///
    /// # Example
    ///
    /// ```
    /// let store = simacan_auth::store::MemoryStore::new();
    /// # let _ = store;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<StoreKey, Entry>> {
        // Nothing panics while holding the lock; recover regardless.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

fn until(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or(now + Duration::from_secs(86_400))
}

impl TokenStore for MemoryStore {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        let record = self.entries().get(key).and_then(|e| e.record.clone());
        ready(Ok(record))
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        let now = Instant::now();
        let mut entries = self.entries();
        let entry = entries.entry(key.clone()).or_default();
        if entry.held_by_other("", now) {
            return ready(Ok(None));
        }
        let owner = Lease::random_owner();
        entry.lease = Some((owner.clone(), until(now, ttl)));
        ready(Ok(Some(Lease::new(key.clone(), owner))))
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let now = Instant::now();
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(lease.key()) else {
            return ready(Ok(false));
        };
        if !entry.held_by(lease.owner(), now) {
            return ready(Ok(false));
        }
        entry.lease = Some((lease.owner().to_owned(), until(now, ttl)));
        ready(Ok(true))
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(lease.key())
            && entry
                .lease
                .as_ref()
                .is_some_and(|(holder, _)| holder == lease.owner())
        {
            entry.lease = None;
            drop(entries);
            self.feed.announce();
        }
        ready(Ok(()))
    }

    fn save<'a>(
        &'a self,
        _lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut entries = self.entries();
        let entry = entries.entry(record.key().clone()).or_default();
        if entry.record.as_ref().map(TokenRecord::generation) != expected {
            return ready(Ok(false));
        }
        entry.record = Some(record.clone());
        // A refresh token marked as sent gives waiters nothing to use.
        // Announced under the lock, so that the feed holds the last save.
        if record.refresh_token().is_some() {
            self.feed.announce_saved(record.clone());
        }
        drop(entries);
        ready(Ok(true))
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(key) {
            entry.record = None;
            entry.failure = None;
        }
        self.feed.announce_removed(key);
        drop(entries);
        ready(Ok(()))
    }

    fn save_failure<'a>(
        &'a self,
        _lease: &'a Lease,
        notice: &'a FailureNotice,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut entries = self.entries();
        entries.entry(notice.key().clone()).or_default().failure = Some(notice.clone());
        drop(entries);
        self.feed.announce();
        ready(Ok(()))
    }

    fn load_failure<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<FailureNotice>, StoreError>> {
        let notice = self.entries().get(key).and_then(|e| e.failure.clone());
        ready(Ok(notice))
    }

    /// Every key's changes on one feed, shared by clones.
    fn changes(&self, _key: &StoreKey) -> Option<Changes> {
        Some(self.feed.subscribe())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.entries().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn key() -> StoreKey {
        StoreKey::new("http://127.0.0.1:1/api/v1", "user")
    }

    fn record(generation: u64) -> TokenRecord {
        let lifetime = Duration::from_secs(60);
        let expires = SystemTime::now() + lifetime;
        TokenRecord::new(key(), generation, "a", Some("r"), expires, lifetime).unwrap()
    }

    #[test]
    fn clones_share_the_map() {
        let a = MemoryStore::new();
        let b = a.clone();
        a.entries().entry(key()).or_default().record = Some(record(1));
        assert_eq!(format!("{b:?}"), "MemoryStore { keys: 1 }");
    }
}
