//! [`TokenRecord`]: what a store keeps for a key, and its stable encoding.

use std::{
    borrow::Cow,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{StoreError, StoreKey};

/// The version of the encodings written by [`TokenRecord::encode`] and
/// [`FailureNotice::encode`](super::FailureNotice::encode): a reader refuses
/// either of another version as corrupt.
///
/// # Example
///
/// ```
/// // A store of your own can tell records it cannot read by their version.
/// assert_eq!(simacan_auth::store::SCHEMA_VERSION, 1);
/// ```
pub const SCHEMA_VERSION: u32 = 1;

/// One token pair as a store keeps it: the access token, the refresh token
/// (absent once the Auth API refused it), the absolute expiry in wall-clock
/// time, the issued lifetime, a generation that grows with every write, and
/// the [`StoreKey`] it belongs to. Never the password.
///
/// Stores treat it as opaque: they keep [`encode`](Self::encode)'s bytes
/// and compare [`generation`](Self::generation)s. Its `Debug` shows no
/// secret; its secrets are wiped from memory when dropped.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use simacan_auth::store::{StoreKey, TokenRecord};
///
/// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
/// let expires_at = SystemTime::now() + Duration::from_secs(3600);
/// let record = TokenRecord::new(key, 1, "access", Some("refresh"), expires_at, Duration::from_secs(3600))?;
/// let bytes = record.encode();
/// let again = TokenRecord::decode(&bytes)?;
/// assert_eq!(again.generation(), 1);
/// assert!(!format!("{again:?}").contains("access\""));
/// # Ok::<(), simacan_auth::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct TokenRecord {
    key: StoreKey,
    generation: u64,
    access_token: Zeroizing<String>,
    refresh_token: Option<Zeroizing<String>>,
    expires_at: SystemTime,
    lifetime: Duration,
}

/// The encoded form, schema 1. Strings are borrowed from the bytes when
/// they can be and copied when JSON escapes them (a `\` in a username).
#[derive(Serialize, Deserialize)]
struct Encoded<'a> {
    schema: u32,
    #[serde(borrow)]
    base_url: Cow<'a, str>,
    #[serde(borrow)]
    username: Cow<'a, str>,
    generation: u64,
    #[serde(borrow)]
    access_token: Cow<'a, str>,
    #[serde(borrow)]
    refresh_token: Option<Cow<'a, str>>,
    /// Milliseconds since the Unix epoch.
    expires_at_ms: u64,
    lifetime_secs: u64,
}

impl TokenRecord {
    /// The highest generation a record may carry: 2^53, the largest integer
    /// every JSON reader and Redis's Lua numbers hold exactly. A record
    /// beyond it is refused as corrupt, so that stored data can never make
    /// the next generation overflow.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use simacan_auth::store::{StoreErrorKind, StoreKey, TokenRecord};
    ///
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let too_far = TokenRecord::MAX_GENERATION + 1;
    /// let error = TokenRecord::new(key, too_far, "a", None, SystemTime::now(), Duration::from_secs(60))
    ///     .unwrap_err();
    /// assert_eq!(error.kind(), StoreErrorKind::Corrupt);
    /// ```
    pub const MAX_GENERATION: u64 = 1 << 53;

    /// A record. Tokens must be visible ASCII, as the Auth API issues them.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] of kind [`Corrupt`](super::StoreErrorKind::Corrupt)
    /// when a token is empty or has characters a token cannot have, or the
    /// generation is beyond [`MAX_GENERATION`](Self::MAX_GENERATION).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use simacan_auth::store::{StoreKey, TokenRecord};
    ///
    /// let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let record = TokenRecord::new(key, 7, "a", None, SystemTime::now(), Duration::from_secs(60))?;
    /// assert!(!record.has_refresh_token());
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn new(
        key: StoreKey,
        generation: u64,
        access_token: &str,
        refresh_token: Option<&str>,
        expires_at: SystemTime,
        lifetime: Duration,
    ) -> Result<TokenRecord, StoreError> {
        if generation > Self::MAX_GENERATION {
            return Err(StoreError::corrupt(
                "token record generation is out of range",
            ));
        }
        if !is_token_text(access_token) {
            return Err(StoreError::corrupt("access token is not token text"));
        }
        if refresh_token.is_some_and(|t| !is_token_text(t)) {
            return Err(StoreError::corrupt("refresh token is not token text"));
        }
        Ok(TokenRecord {
            key,
            generation,
            access_token: Zeroizing::new(access_token.to_owned()),
            refresh_token: refresh_token.map(|t| Zeroizing::new(t.to_owned())),
            expires_at,
            lifetime,
        })
    }

    /// The key the record belongs to.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let record = TokenRecord::new(key.clone(), 1, "a", None, SystemTime::now(), Duration::from_secs(60))?;
    /// assert_eq!(record.key(), &key);
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn key(&self) -> &StoreKey {
        &self.key
    }

    /// The generation: every write of a key's record carries a higher one,
    /// and a store writes only over the generation the writer expects.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let record = TokenRecord::new(key, 3, "a", None, SystemTime::now(), Duration::from_secs(60))?;
    /// assert_eq!(record.generation(), 3);
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When the access token expires, by the writer's wall clock.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let at = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    /// let record = TokenRecord::new(key, 1, "a", None, at, Duration::from_secs(3600))?;
    /// assert_eq!(record.expires_at(), at);
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The lifetime the access token was issued with (`expires_in`).
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let record = TokenRecord::new(key, 1, "a", None, SystemTime::now(), Duration::from_secs(3600))?;
    /// assert_eq!(record.lifetime(), Duration::from_secs(3600));
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Whether the record still has a refresh token: it has none once the
    /// Auth API refused it, so that it is never sent again.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let record = TokenRecord::new(key, 1, "a", Some("r"), SystemTime::now(), Duration::from_secs(60))?;
    /// assert!(record.has_refresh_token());
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn has_refresh_token(&self) -> bool {
        self.refresh_token.is_some()
    }

    pub(crate) fn access_token(&self) -> &str {
        &self.access_token
    }

    pub(crate) fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref().map(String::as_str)
    }

    /// The record as bytes (versioned JSON, tokens included): what a store
    /// keeps. Wiped from memory when dropped.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use simacan_auth::store::{StoreKey, TokenRecord};
    /// # let key = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let record = TokenRecord::new(key, 1, "a", None, SystemTime::now(), Duration::from_secs(60))?;
    /// assert!(record.encode().starts_with(b"{\"schema\":1"));
    /// # Ok::<(), simacan_auth::store::StoreError>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let encoded = Encoded {
            schema: SCHEMA_VERSION,
            base_url: Cow::Borrowed(self.key.base_url()),
            username: Cow::Borrowed(self.key.username()),
            generation: self.generation,
            access_token: Cow::Borrowed(&self.access_token),
            refresh_token: self.refresh_token().map(Cow::Borrowed),
            expires_at_ms: unix_millis(self.expires_at),
            lifetime_secs: self.lifetime.as_secs(),
        };
        // Serialising plain strings and integers cannot fail.
        Zeroizing::new(serde_json::to_vec(&encoded).unwrap_or_default())
    }

    /// A record from [`encode`](Self::encode)'s bytes.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] of kind [`Corrupt`](super::StoreErrorKind::Corrupt)
    /// when the bytes are not a record of a known schema. The reason never
    /// repeats the bytes.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{StoreErrorKind, TokenRecord};
    ///
    /// let error = TokenRecord::decode(b"{not json").unwrap_err();
    /// assert_eq!(error.kind(), StoreErrorKind::Corrupt);
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<TokenRecord, StoreError> {
        let encoded: Encoded<'_> = serde_json::from_slice(bytes)
            .map_err(|_| StoreError::corrupt("token record does not parse"))?;
        if encoded.schema != SCHEMA_VERSION {
            return Err(StoreError::corrupt(format!(
                "token record has schema {}, this version reads {SCHEMA_VERSION}",
                encoded.schema
            )));
        }
        let key = StoreKey::new(encoded.base_url.into_owned(), encoded.username.into_owned());
        let expires_at = from_unix_millis(encoded.expires_at_ms)
            .ok_or_else(|| StoreError::corrupt("token record expiry is out of range"))?;
        TokenRecord::new(
            key,
            encoded.generation,
            &encoded.access_token,
            encoded.refresh_token.as_deref(),
            expires_at,
            Duration::from_secs(encoded.lifetime_secs),
        )
    }

    /// The same record without its refresh token, which the Auth API
    /// refused, expiring at `expires_at`.
    pub(crate) fn spent(&self, generation: u64, expires_at: SystemTime) -> TokenRecord {
        TokenRecord {
            generation,
            refresh_token: None,
            expires_at: expires_at.min(self.expires_at),
            ..self.clone()
        }
    }
}

/// `at` as milliseconds since the Unix epoch, as encodings keep times
/// (saturating; 0 before the epoch).
pub(super) fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `millis` after the Unix epoch, if the platform can hold it.
pub(super) fn from_unix_millis(millis: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

/// Visible ASCII only, as in a token response.
fn is_token_text(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRecord")
            .field("key", &self.key)
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .field("lifetime", &self.lifetime)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreErrorKind;

    fn record(refresh: Option<&str>) -> TokenRecord {
        let key = StoreKey::new("https://auth.example.com/api/v1", "user");
        let at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
        TokenRecord::new(key, 9, "eyA.b.c", refresh, at, Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn encoding_round_trips() {
        for refresh in [Some("eyR"), None] {
            let again = TokenRecord::decode(&record(refresh).encode()).unwrap();
            assert_eq!(again.key(), record(refresh).key());
            assert_eq!(again.generation(), 9);
            assert_eq!(again.access_token(), "eyA.b.c");
            assert_eq!(again.refresh_token(), refresh);
            assert_eq!(again.expires_at(), record(refresh).expires_at());
            assert_eq!(again.lifetime(), Duration::from_secs(3600));
        }
    }

    #[test]
    fn a_stored_generation_beyond_the_limit_is_corrupt() {
        let encoded = String::from_utf8(record(Some("r")).encode().to_vec()).unwrap();
        for generation in [u64::MAX, TokenRecord::MAX_GENERATION + 1] {
            let tampered =
                encoded.replace("\"generation\":9", &format!("\"generation\":{generation}"));
            assert_ne!(tampered, encoded);
            let error = TokenRecord::decode(tampered.as_bytes()).unwrap_err();
            assert_eq!(error.kind(), StoreErrorKind::Corrupt);
        }
        let at_limit = encoded.replace(
            "\"generation\":9",
            &format!("\"generation\":{}", TokenRecord::MAX_GENERATION),
        );
        let record = TokenRecord::decode(at_limit.as_bytes()).unwrap();
        assert_eq!(record.generation(), TokenRecord::MAX_GENERATION);
    }

    #[test]
    fn unknown_schemas_and_garbage_are_corrupt_without_echoing_the_bytes() {
        let newer = String::from_utf8(record(None).encode().to_vec())
            .unwrap()
            .replace("\"schema\":1", "\"schema\":2");
        for bytes in [
            newer.as_bytes(),
            b"SECRET-not-json".as_slice(),
            b"{}",
            br#"{"schema":1,"base_url":"u","username":"n","generation":1,"access_token":"a b","refresh_token":null,"expires_at_ms":1,"lifetime_secs":1}"#,
        ] {
            let error = TokenRecord::decode(bytes).unwrap_err();
            assert_eq!(error.kind(), StoreErrorKind::Corrupt);
            assert!(!error.to_string().contains("SECRET"));
        }
    }

    #[test]
    fn debug_shows_no_token() {
        let shown = format!("{:?}", record(Some("eyRefresh")));
        assert!(
            !shown.contains("eyA") && !shown.contains("eyRefresh"),
            "{shown}"
        );
    }
}
