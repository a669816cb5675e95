//! [`ChangeFeed`] and [`Changes`]: how a store wakes the token states that
//! wait for another process's login or refresh, instead of letting them
//! find its result at their next look.

use std::sync::Arc;

use tokio::sync::watch;

/// The store's side of [`TokenStore::changes`](super::TokenStore::changes):
/// announces that a record was saved, a lease released or a failure
/// notice left, waking every [`Changes`] subscribed to it. Clones announce
/// to the same subscribers.
///
/// A feed tells only that something may have changed, not what: the woken
/// token states read the store to see. So one feed may serve every key of
/// a store, and an announcement too many costs a read, no more.
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
    sender: Arc<watch::Sender<u64>>,
}

impl ChangeFeed {
    /// A feed with no subscribers yet.
    ///
    /// # Example
    ///
    /// ```
    /// let feed = simacan_auth::store::ChangeFeed::new();
    /// # let _ = feed;
    /// ```
    pub fn new() -> Self {
        ChangeFeed {
            sender: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Wakes every subscriber: something may have changed.
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
        }
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed::new()
    }
}

/// A subscription to a [`ChangeFeed`], which a token state waiting for the
/// lease holds while it waits. See
/// [`TokenStore::changes`](super::TokenStore::changes).
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
}
