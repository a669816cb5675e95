//! [`StoreKey`]: whose token a record is.

use std::fmt;

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
/// assert_eq!(key.fingerprint().len(), 16);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey {
    base_url: String,
    username: String,
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
            base_url: base_url.into(),
            username: username.into(),
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
        &self.base_url
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
        &self.username
    }

    /// A stable 16-hex-digit digest of the key, the same in every process
    /// and on every platform: safe in file names and Redis keys. Stores
    /// keep the key itself in the record too, so a collision is detected
    /// rather than served.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::StoreKey;
    ///
    /// let a = StoreKey::new("https://auth.example.com/api/v1", "user");
    /// let b = StoreKey::new("https://auth.example.com/api/v1", "other");
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// assert!(a.fingerprint().bytes().all(|c| c.is_ascii_hexdigit()));
    /// ```
    pub fn fingerprint(&self) -> String {
        // FNV-1a, 64 bits, over "base_url \n username": fixed and portable.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = self
            .base_url
            .bytes()
            .chain(std::iter::once(b'\n'))
            .chain(self.username.bytes());
        for byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKey")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .finish()
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.username, self.base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_stable_across_versions() {
        // Files and Redis keys written by one release must be found by the next.
        let key = StoreKey::new("https://auth-service.services.simacan.com/api/v1", "u");
        assert_eq!(key.fingerprint(), "41a37992454d8ce7");
    }

    #[test]
    fn the_separator_keeps_keys_apart() {
        let a = StoreKey::new("https://a/api/v1", "bc");
        let b = StoreKey::new("https://a/api/v1b", "c");
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
