//! [`ChangeFeed`] and [`Changes`]: how a store wakes the token states that
//! wait for another process's login or refresh, and hands them the token it
//! saved, instead of letting them find it at their next look.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
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
    /// Held by the feed and its clones only, so that subscribers learn
    /// when the last one is gone.
    sender: Arc<watch::Sender<u64>>,
    shared: Arc<Shared>,
}

/// What the feed and its subscribers share.
struct Shared {
    state: Mutex<State>,
}

/// What the feed knows, changed under one lock so that a record is never
/// kept across an interruption.
#[derive(Default)]
struct State {
    /// The last record announced for each key since the feed was made or
    /// last resumed, and not removed since.
    saved: HashMap<StoreKey, TokenRecord>,
    /// Whether every announcement reaches the feed (no interruption).
    live: bool,
    /// Whether the feed has handed over a record: a feed that only wakes
    /// is never taken for one that would have handed over a newer token.
    hands_over: bool,
    /// The fingerprints of keys whose last save the feed heard of but could
    /// not hand over: for those, it would not have handed over a newer
    /// token.
    #[cfg(feature = "redis")]
    unread: std::collections::HashSet<String>,
}

impl ChangeFeed {
    /// A feed with no subscribers yet, hearing every announcement.
    ///
    /// # Example
    ///
    /// ```
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// let changes = feed.subscribe();
    /// # let _ = changes;
    /// ```
    pub fn new() -> Self {
        ChangeFeed {
            sender: Arc::new(watch::Sender::new(0)),
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    live: true,
                    ..State::default()
                }),
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
        self.sender
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
        {
            let mut state = self.shared.state();
            if state.live {
                if state.saved.len() >= MAX_KEPT && !state.saved.contains_key(record.key()) {
                    state.saved.clear();
                }
                #[cfg(feature = "redis")]
                state.unread.remove(record.key().fingerprint());
                state.saved.insert(record.key().clone(), record);
                state.hands_over = true;
            }
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
        self.shared.state().saved.remove(key);
        self.announce();
    }

    /// Wakes every subscriber: a record was saved for the key with
    /// `fingerprint` that the feed cannot hand over (announced without it,
    /// or sealed under a seal not known), so the one it held for that key
    /// is no longer the newest and is forgotten.
    #[cfg(feature = "redis")]
    pub(crate) fn announce_saved_unread(&self, fingerprint: &str) {
        {
            let mut state = self.shared.state();
            state
                .saved
                .retain(|key, _| key.fingerprint() != fingerprint);
            if state.unread.len() >= MAX_KEPT {
                state.unread.clear();
                state.hands_over = false;
            }
            state.unread.insert(fingerprint.to_owned());
        }
        self.announce();
    }

    /// The feed may miss announcements from now on (its connection to the
    /// store is lost): it forgets every record it held, and its
    /// subscribers read the store until it is [`resumed`](Self::resumed).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use simacan_auth::store::{ChangeFeed, StoreKey, TokenRecord};
    ///
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// let lifetime = Duration::from_secs(300);
    /// let record = TokenRecord::new(key.clone(), 1, "a", Some("r"), SystemTime::now() + lifetime, lifetime)?;
    ///
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// let changes = feed.subscribe();
    /// feed.announce_saved(record);
    /// feed.interrupted();
    /// assert!(!changes.is_live());
    /// assert!(changes.saved(&key).is_none(), "forgotten");
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn interrupted(&self) {
        let mut state = self.shared.state();
        state.live = false;
        state.saved.clear();
        #[cfg(feature = "redis")]
        state.unread.clear();
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
        {
            let mut state = self.shared.state();
            state.saved.clear();
            state.live = true;
        }
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
            receiver: self.sender.subscribe(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("ChangeFeed")
            .field("live", &state.live)
            .field("hands_over", &state.hands_over)
            .field("records", &state.saved.len())
            .finish()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
        let state = self.shared.state();
        state.saved.get(key).filter(|_| state.live).cloned()
    }

    /// Whether the feed hands over saved records
    /// ([`announce_saved`](ChangeFeed::announce_saved) has been called) and
    /// hears every announcement (it is not
    /// [interrupted](ChangeFeed::interrupted)). A token state that has a
    /// token goes for the lease without reading the record first only
    /// when it is: such a feed would have handed over a newer one.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use simacan_auth::store::{ChangeFeed, StoreKey, TokenRecord};
    ///
    /// let feed = ChangeFeed::new();
    /// let changes = feed.subscribe();
    /// feed.announce();
    /// assert!(!changes.is_live(), "it only wakes");
    ///
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// let lifetime = Duration::from_secs(300);
    /// feed.announce_saved(TokenRecord::new(key, 1, "a", Some("r"), SystemTime::now() + lifetime, lifetime)?);
    /// assert!(changes.is_live());
    /// feed.interrupted();
    /// assert!(!changes.is_live());
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn is_live(&self) -> bool {
        let state = self.shared.state();
        state.live && state.hands_over
    }

    /// [`is_live`](Self::is_live), and the last save of `key` the feed
    /// heard of was handed over.
    pub(crate) fn is_live_for(&self, key: &StoreKey) -> bool {
        let state = self.shared.state();
        #[cfg(feature = "redis")]
        if state.unread.contains(key.fingerprint()) {
            return false;
        }
        #[cfg(not(feature = "redis"))]
        let _ = key;
        state.live && state.hands_over
    }
}
