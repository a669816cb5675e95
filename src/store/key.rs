//! [`StoreKey`]: whose token a record is.

use std::{
    fmt,
    hash::{Hash, Hasher},
    sync::{Arc, OnceLock},
};

/// The key a token is stored under: the Auth API base URL and the username.
/// Two token states with the same key share one token through a shared
/// store; the password is never part of it.
///
/// # Example
///
/// ```
/// use simacan_auth::store::StoreKey;
///
/// let key = StoreKey::new("https://auth-service-stg.services.simacan.com/api/v1", "planner@example.com");
/// assert_eq!(key.username(), "planner@example.com");
/// assert_eq!(key.fingerprint().len(), 32);
/// ```
///
/// Clones share one allocation, and the fingerprint is computed once, when
/// first asked for: a store names its keys by it on every operation.
#[derive(Clone)]
pub struct StoreKey {
    inner: Arc<Parts>,
}

/// What a key is, and its fingerprint.
struct Parts {
    base_url: String,
    username: String,
    fingerprint: OnceLock<String>,
}

impl StoreKey {
    /// The key of `username` at the Auth API `base_url`.
    ///
    /// # Example
    ///
    /// ```
    /// let key = simacan_auth::store::StoreKey::new("http://127.0.0.1:4000/api/v1", "user");
    /// assert_eq!(key.base_url(), "http://127.0.0.1:4000/api/v1");
    /// ```
    pub fn new(base_url: impl Into<String>, username: impl Into<String>) -> Self {
        StoreKey {
            inner: Arc::new(Parts {
                base_url: base_url.into(),
                username: username.into(),
                fingerprint: OnceLock::new(),
            }),
        }
    }

    /// The Auth API base URL.
    ///
    /// # Example
    ///
    /// ```
    /// let key = simacan_auth::store::StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert!(key.base_url().starts_with("https://"));
    /// ```
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The username.
    ///
    /// # Example
    ///
    /// ```
    /// let key = simacan_auth::store::StoreKey::new("https://auth.example.com/api/v1", "user");
    /// assert_eq!(key.username(), "user");
    /// ```
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// A stable 32-hex-digit digest of the key, the same in every process
    /// and on every platform: safe in file names and Redis keys. It is the
    /// first 128 bits of SHA-256 over the base URL, a newline and the
    /// username, so that no one can choose a username whose digest is
    /// another key's, and take its file or Redis key on a shared store.
    /// Stores keep the key itself in the record too, so a collision would
    /// be detected rather than served.
    ///
    /// Earlier builds used a 64-bit FNV-1a digest, which can be collided on
    /// purpose. Tokens they stored are not looked up: each user logs in once
    /// more, and the old Redis records expire with their time to live.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::StoreKey;
    ///
    /// let a = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let b = StoreKey::new("https://auth.example.com/api/v1", "other");
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// assert_eq!(a.fingerprint().len(), 32);
    /// assert!(a.fingerprint().bytes().all(|c| c.is_ascii_hexdigit()));
    /// ```
    pub fn fingerprint(&self) -> &str {
        let Parts {
            base_url,
            username,
            fingerprint: digest,
        } = &*self.inner;
        digest.get_or_init(|| fingerprint(base_url, username))
    }
}

/// See [`StoreKey::fingerprint`].
fn fingerprint(base_url: &str, username: &str) -> String {
    use sha2::{Digest, Sha256};
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::new()
        .chain_update(base_url.as_bytes())
        .chain_update(b"\n")
        .chain_update(username.as_bytes())
        .finalize();
    digest[..16]
        .iter()
        .flat_map(|byte| [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]])
        .map(char::from)
        .collect()
}

/// Keys are equal when their base URLs and usernames are.
impl PartialEq for StoreKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.base_url == other.inner.base_url
                && self.inner.username == other.inner.username)
    }
}

impl Eq for StoreKey {}

/// Hashes what [`PartialEq`] compares.
impl Hash for StoreKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.base_url.hash(state);
        self.inner.username.hash(state);
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKey")
            .field("base_url", &self.inner.base_url)
            .field("username", &self.inner.username)
            .finish()
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.inner.username, self.inner.base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_stable_across_versions() {
        // Files and Redis keys written by one release must be found by the next.
        let key = StoreKey::new("https://auth-service.services.simacan.com/api/v1", "u");
        assert_eq!(key.fingerprint(), "c899cab5b66fb71d17f0ca301e7a9d64");
    }

    #[test]
    fn the_fingerprint_is_128_bits_of_sha_256() {
        // SHA-256("https://a/api/v1\nuser"), its first 16 bytes.
        let key = StoreKey::new("https://a/api/v1", "user");
        assert_eq!(key.fingerprint().len(), 32);
        let expected = "9da03b3f706048108fdcae43148880ac";
        assert_eq!(key.fingerprint(), expected);
    }

    #[test]
    fn the_separator_keeps_keys_apart() {
        let a = StoreKey::new("https://a/api/v1", "bc");
        let b = StoreKey::new("https://a/api/v1b", "c");
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
