//! Sealed announcements: a saved record published on the store's channel
//! encrypted, so that the replicas of a fleet take the new token from the
//! message without reading the store, and the channel carries no token.
//!
//! Each credential has a seal: 32 random bytes under
//! `{prefix}{<fingerprint>}:seal`, in the hash slot of its record, made by
//! the first process that needs it (`SET … NX`) and expiring with the
//! record. A save seals the record with ChaCha20-Poly1305 under the seal
//! its process knows; the `SAVE` script publishes the sealed message only
//! when that seal is the stored one, and the record's key otherwise (the
//! waiters then read). The message binds the record key it is for, so it
//! cannot be replayed for another credential or key prefix.
//!
//! Whoever can read the seal can read the record itself: the seal adds no
//! reader. A subscriber without it sees bytes it cannot open, and a
//! publisher without it cannot make a message that opens.
//!
//! | bytes | what |
//! |---|---|
//! | [`MAGIC`] | what the message is, and its format's version |
//! | 2, big-endian | the record key's length |
//! | the record key | `{prefix}{<fingerprint>}` |
//! | 12 | a random nonce |
//! | the rest | the [`TokenRecord::encode`]d record, encrypted, and its 16-byte tag |
//!
//! Everything before the nonce is the associated data.
//!
//! [`TokenRecord::encode`]: crate::store::TokenRecord::encode

use std::{
    collections::HashMap,
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

use ring::{
    aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use zeroize::Zeroizing;

/// The start of every sealed message.
pub(super) const MAGIC: &[u8] = b"simacan-auth sealed record 1\n";
/// How many bytes a seal has.
pub(super) const SEAL_LEN: usize = 32;
/// At most this many credentials' seals are kept; a process that meets
/// more forgets them all and learns them again.
const MAX_KEPT: usize = 1024;

/// One credential's seal.
#[derive(Clone)]
pub(super) struct Seal {
    bytes: Zeroizing<[u8; SEAL_LEN]>,
}

impl Seal {
    /// A new random seal; `None` when the system's random source fails.
    pub(super) fn random() -> Option<Seal> {
        let mut bytes = Zeroizing::new([0; SEAL_LEN]);
        SystemRandom::new().fill(&mut *bytes).ok()?;
        Some(Seal { bytes })
    }

    /// The seal stored as `bytes`; `None` for anything that is not a seal.
    pub(super) fn from_bytes(bytes: &[u8]) -> Option<Seal> {
        let bytes: [u8; SEAL_LEN] = bytes.try_into().ok()?;
        Some(Seal {
            bytes: Zeroizing::new(bytes),
        })
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..]
    }

    fn key(&self) -> Option<LessSafeKey> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, &self.bytes[..]).ok()?;
        Some(LessSafeKey::new(key))
    }

    /// `record` (encoded) sealed for `record_key`; `None` when the random
    /// source fails or the record key is too long to frame.
    pub(super) fn seal(&self, record_key: &str, record: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let length = u16::try_from(record_key.len()).ok()?.to_be_bytes();
        let mut message =
            Vec::with_capacity(MAGIC.len() + 2 + record_key.len() + NONCE_LEN + record.len() + 16);
        message.extend_from_slice(MAGIC);
        message.extend_from_slice(&length);
        message.extend_from_slice(record_key.as_bytes());
        let header = message.len();
        message.extend_from_slice(&nonce);
        let mut sealed = Zeroizing::new(record.to_vec());
        self.key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&message[..header]),
                &mut *sealed,
            )
            .ok()?;
        message.extend_from_slice(&sealed);
        Some(message)
    }

    /// The record sealed in `message`, which [`record_key`] read; `None`
    /// when this seal does not open it (another seal's, altered, forged).
    pub(super) fn open(&self, message: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (header, rest) = message.split_at_checked(header_len(message)?)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = Zeroizing::new(sealed.to_vec());
        let plain = self
            .key()?
            .open_in_place(nonce, Aad::from(header), &mut opened)
            .ok()?
            .len();
        opened.truncate(plain);
        Some(opened)
    }
}

/// Never the seal itself.
impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seal(..)")
    }
}

/// The length of the associated data of a sealed message.
fn header_len(message: &[u8]) -> Option<usize> {
    let rest = message.strip_prefix(MAGIC)?;
    let length = rest.get(..2)?;
    let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
    let header = MAGIC.len() + 2 + length;
    (message.len() >= header).then_some(header)
}

/// The record key a sealed message is for; `None` for a message that is
/// not one.
pub(super) fn record_key(message: &[u8]) -> Option<&str> {
    let header = header_len(message)?;
    std::str::from_utf8(&message[MAGIC.len() + 2..header]).ok()
}

/// The seals this process knows, by record key, shared by a store's clones
/// and its subscription.
#[derive(Default)]
pub(super) struct Seals {
    known: Mutex<HashMap<String, Known>>,
}

/// What this process knows of one credential's seal.
#[derive(Default)]
struct Known {
    seal: Option<Seal>,
    /// A sealed message the seal did not open was heard since it was
    /// learnt, or a removal: the seal may have been replaced, or the
    /// message forged. It stays in use, and is asked for again.
    doubted: bool,
    /// The generation of the newest record handed over under this seal: a
    /// record published again is not handed over twice.
    newest: u64,
    /// A `SEAL` command is on its way, or the last one failed at this
    /// instant: no other is sent meanwhile, or for [`ASK_AGAIN_AFTER`].
    asking: Option<Option<Instant>>,
}

/// How long after a failed `SEAL` command the next look asks again.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(5);

impl Seals {
    pub(super) fn get(&self, record_key: &str) -> Option<Seal> {
        self.lock().get(record_key)?.seal.clone()
    }

    /// Whether the caller should ask for the seal of `record_key` (not
    /// known, or doubted, and no one else is asking): if so, it is asking
    /// until [`asked`](Self::asked).
    pub(super) fn claim_asking(&self, record_key: &str) -> bool {
        let mut known = self.lock();
        let Some(entry) = entry(&mut known, record_key) else {
            return false;
        };
        let wanted = entry.seal.is_none() || entry.doubted;
        let free = match entry.asking {
            None => true,
            Some(None) => false,
            Some(Some(failed)) => failed.elapsed() >= ASK_AGAIN_AFTER,
        };
        if wanted && free {
            entry.asking = Some(None);
        }
        wanted && free
    }

    /// The `SEAL` command claimed with [`claim_asking`](Self::claim_asking)
    /// ended: with the seal learnt, or failed.
    pub(super) fn asked(&self, record_key: &str, learnt: bool) {
        if let Some(entry) = self.lock().get_mut(record_key) {
            entry.asking = (!learnt).then(|| Some(Instant::now()));
        }
    }

    /// `seal` is the credential's: a different one than known starts its
    /// records' generations afresh.
    pub(super) fn learn(&self, record_key: &str, seal: Seal) {
        let mut known = self.lock();
        let Some(entry) = entry(&mut known, record_key) else {
            return;
        };
        let same = entry
            .seal
            .as_ref()
            .is_some_and(|known| known.as_bytes() == seal.as_bytes());
        if !same {
            entry.newest = 0;
        }
        entry.seal = Some(seal);
        entry.doubted = false;
    }

    /// Marks the seal of `record_key` to be asked for again, and kept in
    /// use meanwhile.
    pub(super) fn doubt(&self, record_key: &str) {
        if let Some(entry) = self.lock().get_mut(record_key) {
            entry.doubted = true;
        }
    }

    /// Forgets the seal of `record_key`: it is gone from the store.
    pub(super) fn forget(&self, record_key: &str) {
        if let Some(entry) = self.lock().get_mut(record_key) {
            entry.seal = None;
        }
    }

    /// Whether a record of `generation` opened under the seal of
    /// `record_key` is newer than every one handed over under it; if so,
    /// it is the newest now.
    pub(super) fn admit(&self, record_key: &str, generation: u64) -> bool {
        let mut known = self.lock();
        let Some(entry) = entry(&mut known, record_key) else {
            return false;
        };
        if generation <= entry.newest {
            return false;
        }
        entry.newest = generation;
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The entry of `record_key`, made when missing (all forgotten when
/// [`MAX_KEPT`] are kept); always `Some`.
fn entry<'a>(known: &'a mut HashMap<String, Known>, record_key: &str) -> Option<&'a mut Known> {
    // The key is copied only for an entry that is made.
    if !known.contains_key(record_key) {
        if known.len() >= MAX_KEPT {
            known.clear();
        }
        known.insert(record_key.to_owned(), Known::default());
    }
    known.get_mut(record_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "simacan-auth:{0123456789abcdef0123456789abcdef}";

    #[test]
    fn a_sealed_record_opens_with_its_seal_only() {
        let seal = Seal::random().unwrap();
        let message = seal.seal(KEY, b"{\"record\":1}").unwrap();
        assert_eq!(record_key(&message), Some(KEY));
        assert_eq!(
            seal.open(&message).as_deref().map(Vec::as_slice),
            Some(&b"{\"record\":1}"[..])
        );
        let other = Seal::random().unwrap();
        assert!(other.open(&message).is_none(), "another seal");
        assert!(
            !message.windows(12).any(|w| w == b"{\"record\":1"),
            "the record is not in the clear"
        );
    }

    #[test]
    fn an_altered_message_does_not_open() {
        let seal = Seal::random().unwrap();
        let message = seal.seal(KEY, b"{\"record\":1}").unwrap();
        for at in 0..message.len() {
            let mut altered = message.clone();
            altered[at] ^= 1;
            assert!(seal.open(&altered).is_none(), "byte {at} altered");
        }
        // Moved to another record key, with the length framed right.
        let other = KEY.replace("0123", "3210");
        let mut moved = MAGIC.to_vec();
        moved.extend_from_slice(&u16::try_from(other.len()).unwrap().to_be_bytes());
        moved.extend_from_slice(other.as_bytes());
        moved.extend_from_slice(&message[MAGIC.len() + 2 + KEY.len()..]);
        assert_eq!(record_key(&moved), Some(other.as_str()));
        assert!(seal.open(&moved).is_none(), "bound to its record key");
        for short in 0..message.len() {
            assert!(seal.open(&message[..short]).is_none(), "cut at {short}");
        }
    }

    #[test]
    fn what_is_not_a_sealed_message_has_no_record_key() {
        for message in [
            &b""[..],
            b"simacan-auth:{abc}",
            MAGIC,
            b"simacan-auth sealed record 1\n\xff\xff",
        ] {
            assert!(record_key(message).is_none());
            assert!(Seal::random().unwrap().open(message).is_none());
        }
        assert!(Seal::from_bytes(&[0; 31]).is_none());
        assert!(Seal::from_bytes(&[0; 33]).is_none());
        assert!(Seal::from_bytes(&[0; 32]).is_some());
    }

    #[test]
    fn a_doubted_seal_stays_in_use_until_learnt_again() {
        let seals = Seals::default();
        assert!(seals.claim_asking(KEY), "not known");
        assert!(!seals.claim_asking(KEY), "asked for once at a time");
        let seal = Seal::random().unwrap();
        seals.learn(KEY, seal.clone());
        seals.asked(KEY, true);
        assert!(!seals.claim_asking(KEY), "known");
        seals.doubt(KEY);
        assert!(seals.get(KEY).is_some(), "still used");
        assert!(seals.claim_asking(KEY), "asked for again");
        seals.asked(KEY, false);
        assert!(!seals.claim_asking(KEY), "not again right after a failure");
        seals.learn(KEY, seal.clone());
        seals.forget(KEY);
        assert!(seals.get(KEY).is_none());
        assert_eq!(format!("{seal:?}"), "Seal(..)");
    }

    #[test]
    fn a_record_is_admitted_once_per_seal() {
        let seals = Seals::default();
        let (first, second) = (Seal::random().unwrap(), Seal::random().unwrap());
        seals.learn(KEY, first.clone());
        assert!(seals.admit(KEY, 6));
        assert!(!seals.admit(KEY, 6), "the same again");
        assert!(!seals.admit(KEY, 5), "an older one");
        seals.doubt(KEY);
        seals.learn(KEY, first);
        assert!(!seals.admit(KEY, 6), "the same seal keeps its newest");
        seals.learn(KEY, second);
        assert!(seals.admit(KEY, 1), "a new seal starts afresh");
    }
}
