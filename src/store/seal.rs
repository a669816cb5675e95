//! [`SealKey`]: the key that seals the token records a process saves, so
//! that a record handed over by a change feed (a message on a channel that
//! others may be able to publish on) is taken only when a holder of the
//! same credential made it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::StoreKey;
use crate::token::Credentials;

type HmacSha256 = Hmac<Sha256>;

/// What the key is derived for: a new purpose gets a new label.
const PURPOSE: &[u8] = b"simacan-auth: token record seal, v1";

/// A key derived from a credential's password, for one [`StoreKey`].
/// Every process of a fleet derives the same key from the same credential;
/// no one without the password can.
#[derive(Clone)]
pub(crate) struct SealKey {
    key: Zeroizing<[u8; 32]>,
}

/// The length of a seal: an HMAC-SHA-256 tag.
pub(crate) const SEAL_LEN: usize = 32;

impl SealKey {
    /// HMAC-SHA-256, keyed with the password, of the purpose and the key's
    /// base URL and username (each length-prefixed); `None` for credentials
    /// without a password, whose processes neither seal nor trust seals.
    pub(crate) fn new(credentials: &Credentials, key: &StoreKey) -> Option<SealKey> {
        let mut mac = mac_with(credentials.password()?.as_bytes());
        mac.update(PURPOSE);
        for part in [key.base_url(), key.username()] {
            update_field(&mut mac, part.as_bytes());
        }
        let mut derived = Zeroizing::new([0u8; 32]);
        derived.copy_from_slice(&mac.finalize().into_bytes());
        Some(SealKey { key: derived })
    }

    /// The seal of `fields`, each length-prefixed.
    pub(crate) fn seal<'a>(&self, fields: impl IntoIterator<Item = &'a [u8]>) -> [u8; SEAL_LEN] {
        let mut mac = mac_with(self.key.as_slice());
        for field in fields {
            update_field(&mut mac, field);
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `seal` is the seal of `fields`, compared in constant time.
    pub(crate) fn verifies<'a>(
        &self,
        fields: impl IntoIterator<Item = &'a [u8]>,
        seal: &[u8; SEAL_LEN],
    ) -> bool {
        let mut mac = mac_with(self.key.as_slice());
        for field in fields {
            update_field(&mut mac, field);
        }
        mac.verify_slice(seal).is_ok()
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

fn mac_with(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("hmac accepts any key length"))
}

fn update_field(mac: &mut HmacSha256, field: &[u8]) {
    mac.update(&(field.len() as u64).to_be_bytes());
    mac.update(field);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StoreKey {
        StoreKey::new("https://auth.example.com/api/v1", "planner")
    }

    #[test]
    fn only_the_same_password_and_key_verify_a_seal() {
        let sealer = SealKey::new(&Credentials::new("planner", "pw"), &key()).unwrap();
        let seal = sealer.seal([&b"a"[..], b"bc"]);
        assert!(sealer.verifies([&b"a"[..], b"bc"], &seal));
        assert!(
            !sealer.verifies([&b"ab"[..], b"c"], &seal),
            "fields are apart"
        );
        let other_password = SealKey::new(&Credentials::new("planner", "pw2"), &key()).unwrap();
        assert!(!other_password.verifies([&b"a"[..], b"bc"], &seal));
        let other_key = SealKey::new(
            &Credentials::new("planner", "pw"),
            &StoreKey::new("https://auth.example.com/api/v1", "other"),
        )
        .unwrap();
        assert!(!other_key.verifies([&b"a"[..], b"bc"], &seal));
        assert_eq!(format!("{sealer:?}"), "SealKey(..)");
        assert!(SealKey::new(&Credentials::without_password("planner"), &key()).is_none());
    }
}
