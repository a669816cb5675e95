//! [`ChangeFeed`] and [`Changes`]: how a store wakes the token states that
//! wait for another process's login or refresh, and hands them the token it
//! saved, instead of letting them find it at their next look.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use tokio::sync::watch;

use super::{StoreKey, TokenRecord};

/// At most this many keys' saved records are kept; a feed that sees more
/// (a store shared by many credentials) forgets them all and starts over.
const MAX_KEPT: usize = 64;

/// The store's side of [`TokenStore::changes`](super::TokenStore::changes):
/// announces that a record was saved, a lease released, a failure notice
/// left or a record removed, waking every [`Changes`] subscribed to it.
/// Clones announce to the same subscribers.
///
/// An announcement may carry the record saved
/// ([`announce_saved`](Self::announce_saved)): the token states that wait
/// for it, or that need a newer token later, take it from the feed without
/// reading the store. A plain [`announce`](Self::announce) tells only that
/// something may have changed, and the woken token states read the store to
/// see; so one feed may serve every key of a store, and an announcement too
/// many costs a read, no more.
///
/// A feed fed by a connection that can be lost (a subscription to a
/// server) says so with [`interrupted`](Self::interrupted) and
/// [`resumed`](Self::resumed): meanwhile, the records it holds are
/// forgotten and token states read the store instead.
///
/// # Example
///
/// ```
/// use simacan_auth::store::ChangeFeed;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let feed = ChangeFeed::new();
/// let mut changes = feed.subscribe();
/// feed.announce();
/// assert!(changes.changed().await, "woken");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ChangeFeed {
    shared: Arc<Shared>,
}

struct Shared {
    sender: watch::Sender<u64>,
    /// The last record announced for each key since the feed was made or
    /// last resumed, and not removed since.
    saved: Mutex<HashMap<StoreKey, TokenRecord>>,
    /// Whether every announcement reaches the feed (no interruption).
    live: AtomicBool,
}

impl ChangeFeed {
    /// A live feed with no subscribers yet.
    ///
    /// # Example
    ///
    /// ```
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// assert!(feed.subscribe().is_live());
    /// ```
    pub fn new() -> Self {
        ChangeFeed {
            shared: Arc::new(Shared {
                sender: watch::Sender::new(0),
                saved: Mutex::new(HashMap::new()),
                live: AtomicBool::new(true),
            }),
        }
    }

    /// Wakes every subscriber: something may have changed (a lease
    /// released, a failure notice left, a save whose record the store does
    /// not pass on).
    ///
    /// # Example
    ///
    /// ```
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// feed.announce(); // no subscriber: nothing happens
    /// ```
    pub fn announce(&self) {
        self.shared
            .sender
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Wakes every subscriber with `record`, just saved: it replaces the
    /// record the feed held for its key, whatever its generation (a store
    /// announces its writes in the order it made them).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use simacan_auth::store::{ChangeFeed, StoreKey, TokenRecord};
    ///
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// let lifetime = Duration::from_secs(300);
    /// let record = TokenRecord::new(key.clone(), 1, "access", Some("refresh"), SystemTime::now() + lifetime, lifetime)?;
    ///
    /// let feed = ChangeFeed::new();
    /// let changes = feed.subscribe();
    /// feed.announce_saved(record);
    /// assert_eq!(changes.saved(&key).map(|r| r.generation()), Some(1));
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn announce_saved(&self, record: TokenRecord) {
        if self.shared.live.load(Ordering::Acquire) {
            let mut saved = self.saved();
            if saved.len() >= MAX_KEPT && !saved.contains_key(record.key()) {
                saved.clear();
            }
            saved.insert(record.key().clone(), record);
        }
        self.announce();
    }

    /// Wakes every subscriber: `key`'s record was removed, and the feed
    /// forgets the one it held.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{ChangeFeed, StoreKey};
    ///
    /// let feed = ChangeFeed::new();
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// feed.announce_removed(&key);
    /// assert!(feed.subscribe().saved(&key).is_none());
    /// ```
    pub fn announce_removed(&self, key: &StoreKey) {
        self.saved().remove(key);
        self.announce();
    }

    /// The feed may miss announcements from now on (its connection to the
    /// store is lost): it forgets every record it held, and its
    /// subscribers read the store until it is [`resumed`](Self::resumed).
    ///
    /// # Example
    ///
    /// ```
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// let changes = feed.subscribe();
    /// feed.interrupted();
    /// assert!(!changes.is_live());
    /// feed.resumed();
    /// assert!(changes.is_live());
    /// ```
    pub fn interrupted(&self) {
        self.shared.live.store(false, Ordering::Release);
        self.saved().clear();
    }

    /// Every announcement reaches the feed again. Wakes every subscriber,
    /// since anything may have changed meanwhile.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// let mut changes = feed.subscribe();
    /// feed.interrupted();
    /// feed.resumed();
    /// assert!(changes.changed().await, "woken to look at the store");
    /// # }
    /// ```
    pub fn resumed(&self) {
        self.saved().clear();
        self.shared.live.store(true, Ordering::Release);
        self.announce();
    }

    /// A subscription that wakes at the next announcement.
    ///
    /// # Example
    ///
    /// ```
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// let changes = feed.subscribe();
    /// # let _ = changes;
    /// ```
    pub fn subscribe(&self) -> Changes {
        Changes {
            receiver: self.shared.sender.subscribe(),
            shared: Arc::clone(&self.shared),
        }
    }

    fn saved(&self) -> MutexGuard<'_, HashMap<StoreKey, TokenRecord>> {
        self.shared.saved()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("live", &self.live.load(Ordering::Relaxed))
            .field("records", &self.saved().len())
            .finish()
    }
}

impl Shared {
    fn saved(&self) -> MutexGuard<'_, HashMap<StoreKey, TokenRecord>> {
        self.saved.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed::new()
    }
}

/// A subscription to a [`ChangeFeed`], which a token state holds while it
/// waits for the lease, and asks for a newer token before it reads the
/// store. See [`TokenStore::changes`](super::TokenStore::changes).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use simacan_auth::store::ChangeFeed;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let feed = ChangeFeed::new();
/// let mut changes = feed.subscribe();
/// // Nothing announced: a waiter looks again after its pause all the same.
/// let woken = tokio::time::timeout(Duration::from_millis(10), changes.changed()).await;
/// assert!(woken.is_err());
/// # }
/// ```
#[derive(Debug)]
pub struct Changes {
    receiver: watch::Receiver<u64>,
    shared: Arc<Shared>,
}

impl Changes {
    /// Waits for an announcement made since this subscription was made or
    /// last woke (announcements meanwhile wake it once). `false` when the
    /// feed is gone and nothing more will be announced.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::ChangeFeed;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let feed = ChangeFeed::new();
    /// let mut changes = feed.subscribe();
    /// feed.announce();
    /// feed.announce();
    /// assert!(changes.changed().await);
    /// drop(feed);
    /// assert!(!changes.changed().await, "the feed is gone");
    /// # }
    /// ```
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }

    /// The last record announced as saved for `key` (see
    /// [`ChangeFeed::announce_saved`]), unless it was removed since or the
    /// feed was interrupted.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{ChangeFeed, StoreKey};
    ///
    /// let feed = ChangeFeed::new();
    /// let changes = feed.subscribe();
    /// feed.announce();
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// assert!(changes.saved(&key).is_none(), "no record was announced");
    /// ```
    pub fn saved(&self, key: &StoreKey) -> Option<TokenRecord> {
        self.shared.saved().get(key).cloned()
    }

    /// Whether the feed hears every announcement (it is not
    /// [interrupted](ChangeFeed::interrupted)). A token state reads the
    /// store for a newer token unless it does.
    ///
    /// # Example
    ///
    /// ```
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// assert!(feed.subscribe().is_live());
    /// ```
    pub fn is_live(&self) -> bool {
        self.shared.live.load(Ordering::Acquire)
    }
}
