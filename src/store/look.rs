//! [`Look`]: what one look at a key found, for a token state that needs a
//! newer token; [`Marking`]: the refresh token it would mark as sent in the
//! same step; and the look a store makes unless it has a faster one.

use std::time::Duration;

use super::{FailureNotice, Lease, StoreError, StoreKey, TokenRecord, TokenStore};
use crate::join::both;

/// What one [`TokenStore::look`] found: the failure notice, read first;
/// the lease, when this look took it; the record, read after the lease was
/// tried, so that it is never older than the try; and whether the look
/// marked its refresh token as sent ([`Marking`]).
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
/// let first = store.look(&key, Duration::from_secs(2), None).await?;
/// assert!(first.lease.is_some(), "the lease was free");
/// assert!(first.record.is_none() && first.notice.is_none());
/// let second = store.look(&key, Duration::from_secs(2), None).await?;
/// assert!(second.lease.is_none(), "held by the first look");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Look {
    /// The key's failure notice, if any (it may have expired).
    pub notice: Option<FailureNotice>,
    /// The lease, if this look took it.
    pub lease: Option<Lease>,
    /// The key's record as the look read it, if any: before the marking,
    /// when it marked.
    pub record: Option<TokenRecord>,
    /// The look took the lease and wrote the [`Marking`]'s record over the
    /// one it expected.
    pub marked: bool,
}

impl Look {
    /// What a store's own [`look`](TokenStore::look) found, without a
    /// marking (set [`marked`](Self::marked) when it made one).
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::Look;
    ///
    /// let nothing = Look::new(None, None, None);
    /// assert!(nothing.lease.is_none());
    /// ```
    pub fn new(
        notice: Option<FailureNotice>,
        lease: Option<Lease>,
        record: Option<TokenRecord>,
    ) -> Look {
        Look {
            notice,
            lease,
            record,
            marked: false,
        }
    }
}

/// A refresh token about to be sent, to be marked as sent by the look that
/// takes the lease (see [`TokenStore::look`]): when that look takes the
/// lease and the key's record is [`expected`](Self::expected), it writes
/// [`marked`](Self::marked) over it (the same record, one generation on,
/// without the refresh token) in the same step, so that the lease holder
/// sends the refresh token one round trip sooner.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use simacan_auth::store::{Marking, StoreKey, TokenRecord};
///
/// let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
/// let hour = Duration::from_secs(3600);
/// let stored = TokenRecord::new(key.clone(), 4, "eyA", Some("eyR"), SystemTime::now() + hour, hour)?;
/// let sent = TokenRecord::new(key, 5, "eyA", None, SystemTime::now(), hour)?;
/// let marking = Marking::new(stored, sent);
/// assert_eq!(marking.marked().generation(), 5);
/// # Ok::<(), simacan_auth::store::StoreError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Marking {
    expected: TokenRecord,
    marked: TokenRecord,
}

impl Marking {
    /// Write `marked` over `expected`, if that is the record the look
    /// finds.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{Marking, StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// # let hour = Duration::from_secs(3600);
    /// # let stored = TokenRecord::new(key.clone(), 1, "eyA", Some("eyR"), SystemTime::now() + hour, hour)?;
    /// # let sent = TokenRecord::new(key, 2, "eyA", None, SystemTime::now(), hour)?;
    /// let marking = Marking::new(stored, sent);
    /// assert_eq!(marking.expected().generation(), 1);
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn new(expected: TokenRecord, marked: TokenRecord) -> Marking {
        Marking { expected, marked }
    }

    /// The record the look must find, whole (compared as
    /// [`TokenRecord::encode`]d bytes), for the marking to be written.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{Marking, StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// # let hour = Duration::from_secs(3600);
    /// # let stored = TokenRecord::new(key.clone(), 1, "eyA", Some("eyR"), SystemTime::now() + hour, hour)?;
    /// # let sent = TokenRecord::new(key, 2, "eyA", None, SystemTime::now(), hour)?;
    /// let marking = Marking::new(stored, sent);
    /// assert!(marking.expected().has_refresh_token());
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn expected(&self) -> &TokenRecord {
        &self.expected
    }

    /// The record written over [`expected`](Self::expected).
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{Marking, StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "planner");
    /// # let hour = Duration::from_secs(3600);
    /// # let stored = TokenRecord::new(key.clone(), 1, "eyA", Some("eyR"), SystemTime::now() + hour, hour)?;
    /// # let sent = TokenRecord::new(key, 2, "eyA", None, SystemTime::now(), hour)?;
    /// let marking = Marking::new(stored, sent);
    /// assert!(!marking.marked().has_refresh_token());
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn marked(&self) -> &TokenRecord {
        &self.marked
    }

    /// Whether `found` is the record this marking expects.
    pub(crate) fn expects(&self, found: Option<&TokenRecord>) -> bool {
        found.is_some_and(|found| found.encode() == self.expected.encode())
    }

    /// Whether both records are `key`'s: a look at `key` writes no other
    /// key's record.
    pub(crate) fn is_for(&self, key: &StoreKey) -> bool {
        self.expected.key() == key && self.marked.key() == key
    }
}

/// [`TokenStore::look`] made of the store's other calls: the notice read,
/// the lease tried and the record read, sent together and in that order
/// (one round trip to a store that serves one connection's requests in
/// order), then the marking saved with compare-and-swap when the lease was
/// taken and the record is the one it expects, and the lease renewed after
/// it: the lease and the marking are two writes here, so the marking
/// counts as made under the lease only when the lease was still held after
/// it. A lease taken is given back when a read fails. A marking not
/// reported as made is left to the holder's own marking, which confirms the
/// lease.
pub(crate) async fn separately<S: TokenStore + ?Sized>(
    store: &S,
    key: &StoreKey,
    ttl: Duration,
    marking: Option<&Marking>,
) -> Result<Look, StoreError> {
    let notice = store.load_failure(key);
    let lease = store.try_lease(key, ttl);
    let (notice, (lease, record)) = both(notice, both(lease, store.load(key))).await;
    let lease = lease?;
    let mut look = match (notice, record) {
        (Ok(notice), Ok(record)) => Look::new(notice, lease, record),
        (Err(error), _) | (_, Err(error)) => {
            if let Some(lease) = lease {
                let _ = store.release(lease).await;
            }
            return Err(error);
        }
    };
    let marking = marking.filter(|m| m.is_for(key));
    if let (Some(marking), Some(lease)) = (marking, &look.lease)
        && marking.expects(look.record.as_ref())
    {
        let expected = Some(marking.expected.generation());
        // One after the other: the renewal must follow the marking.
        let saved = store.save(lease, &marking.marked, expected).await;
        look.marked =
            matches!(saved, Ok(true)) && matches!(store.renew(lease, ttl).await, Ok(true));
    }
    Ok(look)
}
