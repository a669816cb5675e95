//! [`FailureNotice`]: a failed Auth API call, shared so that other token
//! states wait out its backoff instead of repeating it.

use std::{
    borrow::Cow,
    fmt,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use super::{
    StoreError, StoreKey,
    record::{SCHEMA_VERSION, from_unix_millis, unix_millis},
};
use crate::ErrorKind;

/// The lease holder's call to the Auth API failed: for its
/// [`delay`](Self::delay), the token states that were waiting for that call
/// fail fast rather than make it again (a rejected password sent once per
/// replica could lock the account; an outage would be hit once per
/// replica). It holds while the record is still at the
/// [`generation`](Self::generation) the call failed on: a newer token ends
/// it. A reader waits until [`until`](Self::until) by its own clock, but
/// never longer than the delay, whatever the writer's clock said. No secret
/// is in it.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use simacan_auth::{store::{FailureNotice, StoreKey}, ErrorKind};
///
/// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
/// let notice = FailureNotice::new(key, None, Duration::from_secs(300), ErrorKind::InvalidCredentials);
/// let again = FailureNotice::decode(&notice.encode())?;
/// assert_eq!(again.kind(), ErrorKind::InvalidCredentials);
/// assert_eq!(again.delay(), Duration::from_secs(300));
/// assert!(again.until() > SystemTime::now());
/// # Ok::<(), simacan_auth::store::StoreError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FailureNotice {
    key: StoreKey,
    generation: Option<u64>,
    until: SystemTime,
    delay: Duration,
    kind: ErrorKind,
}

/// The longest delay a notice holds: a year, so that its end is a time
/// every platform can represent.
const LONGEST_DELAY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

#[derive(Serialize, Deserialize)]
struct Encoded<'a> {
    /// [`SCHEMA_VERSION`], as records carry it.
    schema: u32,
    #[serde(borrow)]
    base_url: Cow<'a, str>,
    #[serde(borrow)]
    username: Cow<'a, str>,
    generation: Option<u64>,
    until_ms: u64,
    delay_ms: u64,
    /// [`ErrorKind::as_str`].
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

impl FailureNotice {
    /// A notice for `key`: the call failed while the record was at
    /// `generation` (`None`: there was none), and is not to be repeated for
    /// `delay` (at most a year) from now, with an error of `kind`.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::{store::{FailureNotice, StoreKey}, ErrorKind};
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let notice = FailureNotice::new(key, Some(4), Duration::from_secs(2), ErrorKind::AuthApiUnavailable);
    /// assert_eq!(notice.generation(), Some(4));
    /// ```
    pub fn new(key: StoreKey, generation: Option<u64>, delay: Duration, kind: ErrorKind) -> Self {
        let delay = delay.min(LONGEST_DELAY);
        FailureNotice {
            key,
            generation,
            until: crate::clock::wall_now() + delay,
            delay,
            kind,
        }
    }

    /// How long from its writing the call is not to be repeated.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::{store::{FailureNotice, StoreKey}, ErrorKind};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let notice = FailureNotice::new(key, None, Duration::MAX, ErrorKind::InvalidCredentials);
    /// assert_eq!(notice.delay(), Duration::from_secs(365 * 24 * 60 * 60));
    /// ```
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The key it is about.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::{store::{FailureNotice, StoreKey}, ErrorKind};
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert_eq!(FailureNotice::new(key.clone(), None, Duration::ZERO, ErrorKind::AuthApiUnavailable).key(), &key);
    /// ```
    pub fn key(&self) -> &StoreKey {
        &self.key
    }

    /// The record generation the call failed on (`None`: no record).
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::{store::{FailureNotice, StoreKey}, ErrorKind};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert_eq!(FailureNotice::new(key, None, Duration::ZERO, ErrorKind::AuthApiUnavailable).generation(), None);
    /// ```
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// Until when the call is not to be repeated, by the writer's clock.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::{store::{FailureNotice, StoreKey}, ErrorKind};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let notice = FailureNotice::new(key, None, Duration::from_secs(60), ErrorKind::AuthApiUnavailable);
    /// assert!(notice.until() <= SystemTime::now() + Duration::from_secs(60));
    /// ```
    pub fn until(&self) -> SystemTime {
        self.until
    }

    /// The kind of the failed call's error: the Auth API rejected the
    /// credentials, was unavailable, or answered unexpectedly.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::{store::{FailureNotice, StoreKey}, ErrorKind};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let notice = FailureNotice::new(key, None, Duration::ZERO, ErrorKind::AuthApiUnavailable);
    /// assert_eq!(notice.kind(), ErrorKind::AuthApiUnavailable);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The notice as bytes (JSON): what a store keeps.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::{store::{FailureNotice, StoreKey}, ErrorKind};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let bytes = FailureNotice::new(key, None, Duration::from_secs(1), ErrorKind::InvalidCredentials).encode();
    /// assert!(bytes.starts_with(b"{"));
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let encoded = Encoded {
            schema: SCHEMA_VERSION,
            base_url: Cow::Borrowed(self.key.base_url()),
            username: Cow::Borrowed(self.key.username()),
            generation: self.generation,
            until_ms: unix_millis(self.until),
            delay_ms: u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX),
            kind: Cow::Borrowed(self.kind.as_str()),
        };
        // Plain strings, integers and booleans always serialise.
        serde_json::to_vec(&encoded).unwrap_or_default()
    }

    /// A notice from [`encode`](Self::encode)'s bytes.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] of kind [`Corrupt`](super::StoreErrorKind::Corrupt)
    /// when the bytes are not a notice of this version's
    /// [`SCHEMA_VERSION`].
    ///
    /// # Example
    ///
    /// ```
    /// assert!(simacan_auth::store::FailureNotice::decode(b"[]").is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let encoded: Encoded<'_> = serde_json::from_slice(bytes)
            .map_err(|_| StoreError::corrupt("failure notice does not parse"))?;
        if encoded.schema != SCHEMA_VERSION {
            return Err(StoreError::corrupt(format!(
                "failure notice has schema {}, this version reads {SCHEMA_VERSION}",
                encoded.schema
            )));
        }
        let until = from_unix_millis(encoded.until_ms)
            .ok_or_else(|| StoreError::corrupt("failure notice time is out of range"))?;
        Ok(FailureNotice {
            key: StoreKey::new(encoded.base_url.into_owned(), encoded.username.into_owned()),
            generation: encoded.generation,
            until,
            delay: Duration::from_millis(encoded.delay_ms).min(LONGEST_DELAY),
            // Only what a failed Auth API call can be: anything else would
            // make the processes that read it fail with an error no call
            // of theirs could give.
            kind: ErrorKind::from_name(&encoded.kind)
                .filter(|kind| {
                    matches!(
                        kind,
                        ErrorKind::InvalidCredentials
                            | ErrorKind::AuthApiUnavailable
                            | ErrorKind::UnexpectedResponse
                    )
                })
                .ok_or_else(|| StoreError::corrupt("failure notice has an unknown kind"))?,
        })
    }
}

impl fmt::Debug for FailureNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureNotice")
            .field("key", &self.key)
            .field("generation", &self.generation)
            .field("until", &self.until)
            .field("delay", &self.delay)
            .field("kind", &self.kind)
            .finish()
    }
}
