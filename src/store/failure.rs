//! [`FailureNotice`]: a failed Auth API call, shared so that other token
//! states wait out its backoff instead of repeating it.

use std::{
    borrow::Cow,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::{StoreError, StoreKey};

/// The lease holder's call to the Auth API failed: until [`until`](Self::until),
/// other token states on the store fail fast rather than make the same call
/// (a rejected password sent once per replica could lock the account; an
/// outage would be hit once per replica). It holds while the record is
/// still at the [`generation`](Self::generation) the call failed on: a
/// newer token ends it. No secret is in it.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use simacan_auth::store::{FailureNotice, StoreKey};
///
/// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
/// let until = SystemTime::now() + Duration::from_secs(300);
/// let notice = FailureNotice::new(key, None, until, true);
/// let again = FailureNotice::decode(&notice.encode())?;
/// assert!(again.credentials_rejected());
/// # Ok::<(), simacan_auth::store::StoreError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FailureNotice {
    key: StoreKey,
    generation: Option<u64>,
    until: SystemTime,
    rejected: bool,
}

#[derive(Serialize, Deserialize)]
struct Encoded<'a> {
    #[serde(borrow)]
    base_url: Cow<'a, str>,
    #[serde(borrow)]
    username: Cow<'a, str>,
    generation: Option<u64>,
    until_ms: u64,
    rejected: bool,
}

impl FailureNotice {
    /// A notice for `key`: the call failed while the record was at
    /// `generation` (`None`: there was none), and is not to be repeated
    /// before `until`; `rejected` when the Auth API refused the credentials.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::SystemTime;
    /// # use simacan_auth::store::{FailureNotice, StoreKey};
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let notice = FailureNotice::new(key, Some(4), SystemTime::now(), false);
    /// assert_eq!(notice.generation(), Some(4));
    /// ```
    pub fn new(key: StoreKey, generation: Option<u64>, until: SystemTime, rejected: bool) -> Self {
        FailureNotice {
            key,
            generation,
            until,
            rejected,
        }
    }

    /// The key it is about.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::SystemTime;
    /// # use simacan_auth::store::{FailureNotice, StoreKey};
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert_eq!(FailureNotice::new(key.clone(), None, SystemTime::now(), false).key(), &key);
    /// ```
    pub fn key(&self) -> &StoreKey {
        &self.key
    }

    /// The record generation the call failed on (`None`: no record).
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::SystemTime;
    /// # use simacan_auth::store::{FailureNotice, StoreKey};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert_eq!(FailureNotice::new(key, None, SystemTime::now(), false).generation(), None);
    /// ```
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// Until when the call is not to be repeated.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{FailureNotice, StoreKey};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let until = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    /// assert_eq!(FailureNotice::new(key, None, until, false).until(), until);
    /// ```
    pub fn until(&self) -> SystemTime {
        self.until
    }

    /// Whether the Auth API rejected the credentials (otherwise the failure
    /// was transient: an outage, a timeout, a 5xx or 429).
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::SystemTime;
    /// # use simacan_auth::store::{FailureNotice, StoreKey};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert!(!FailureNotice::new(key, None, SystemTime::now(), false).credentials_rejected());
    /// ```
    pub fn credentials_rejected(&self) -> bool {
        self.rejected
    }

    /// The notice as bytes (JSON): what a store keeps.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::SystemTime;
    /// # use simacan_auth::store::{FailureNotice, StoreKey};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let bytes = FailureNotice::new(key, None, SystemTime::now(), true).encode();
    /// assert!(bytes.starts_with(b"{"));
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let encoded = Encoded {
            base_url: Cow::Borrowed(self.key.base_url()),
            username: Cow::Borrowed(self.key.username()),
            generation: self.generation,
            until_ms: self
                .until
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            rejected: self.rejected,
        };
        // Plain strings, integers and booleans always serialise.
        serde_json::to_vec(&encoded).unwrap_or_default()
    }

    /// A notice from [`encode`](Self::encode)'s bytes.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] of kind [`Corrupt`](super::StoreErrorKind::Corrupt)
    /// when the bytes are not a notice.
    ///
    /// # Example
    ///
    /// ```
    /// assert!(simacan_auth::store::FailureNotice::decode(b"[]").is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let encoded: Encoded<'_> = serde_json::from_slice(bytes)
            .map_err(|_| StoreError::corrupt("failure notice does not parse"))?;
        let until = UNIX_EPOCH
            .checked_add(Duration::from_millis(encoded.until_ms))
            .ok_or_else(|| StoreError::corrupt("failure notice time is out of range"))?;
        Ok(FailureNotice {
            key: StoreKey::new(encoded.base_url.into_owned(), encoded.username.into_owned()),
            generation: encoded.generation,
            until,
            rejected: encoded.rejected,
        })
    }
}

impl fmt::Debug for FailureNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureNotice")
            .field("key", &self.key)
            .field("generation", &self.generation)
            .field("until", &self.until)
            .field("credentials_rejected", &self.rejected)
            .finish()
    }
}
