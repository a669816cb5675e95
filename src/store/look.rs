//! [`Look`]: what one look at a key found, for a token state that needs a
//! newer token, and the look a store makes unless it has a faster one.

use std::time::Duration;

use super::{FailureNotice, Lease, StoreError, StoreKey, TokenRecord, TokenStore};
use crate::join::both;

/// What one [`TokenStore::look`] found: the failure notice, read first;
/// the lease, when this look took it; the record, read after the lease was
/// tried, so that it is never older than the try.
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
/// let first = store.look(&key, Duration::from_secs(2)).await?;
/// assert!(first.lease.is_some(), "the lease was free");
/// assert!(first.record.is_none() && first.notice.is_none());
/// let second = store.look(&key, Duration::from_secs(2)).await?;
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
    /// The key's record, if any.
    pub record: Option<TokenRecord>,
}

impl Look {
    /// What a store's own [`look`](TokenStore::look) found.
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
        }
    }
}

/// [`TokenStore::look`] made of the store's other calls: the notice read,
/// the lease tried and the record read, sent together and in that order
/// (one round trip to a store that serves one connection's requests in
/// order). A lease taken is given back when a read fails.
pub(super) async fn separately<S: TokenStore + ?Sized>(
    store: &S,
    key: &StoreKey,
    ttl: Duration,
) -> Result<Look, StoreError> {
    let notice = store.load_failure(key);
    let lease = store.try_lease(key, ttl);
    let (notice, (lease, record)) = both(notice, both(lease, store.load(key))).await;
    let lease = lease?;
    match (notice, record) {
        (Ok(notice), Ok(record)) => Ok(Look::new(notice, lease, record)),
        (Err(error), _) | (_, Err(error)) => {
            if let Some(lease) = lease {
                let _ = store.release(lease).await;
            }
            Err(error)
        }
    }
}
