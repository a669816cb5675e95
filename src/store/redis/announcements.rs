//! The store's announcements: what its scripts publish on
//! `{prefix}changes`, and the subscription that passes them on to the
//! token states of this process through a [`ChangeFeed`].
//!
//! | published by | message | passed on as |
//! |---|---|---|
//! | `SAVE` (a record with a refresh token) | the record [sealed](super::seal) under the credential's seal | [`ChangeFeed::announce_saved`] when it opens under the seal this process learnt, is the record of the key it names, and is newer than every record handed over under that seal; otherwise `ChangeFeed::announce_saved_unread` (the record the feed held for that key is dropped, and waiters read), and a message that did not open has the seal asked for again |
//! | `SAVE`, when the writer's seal was not the stored one | the record's key | `ChangeFeed::announce_saved_unread` |
//! | `REMOVE` | `{"removed":{"base_url":…,"username":…}}` | [`ChangeFeed::announce_removed`]; the seal is asked for again |
//! | `RELEASE`, `NOTICE` | the key written | [`ChangeFeed::announce`] |
//!
//! A record in the clear is a stranger's. A message that is none of the
//! above (another version's, a stranger's, one longer than 64 KiB) wakes
//! waiters all the same: they read the store.

use std::{borrow::Cow, sync::Weak, time::Duration};

use futures_core::Stream;
use redis::{
    RedisError,
    aio::{PubSubSink, PubSubStream},
};
use serde::{Deserialize, Serialize};

use super::{
    Redis,
    seal::{self, Seals},
};
use crate::store::{ChangeFeed, StoreKey, TokenRecord};

/// The subscription behind [`RedisStore::changes`](super::RedisStore) for
/// one channel.
pub(super) struct Listener {
    pub(super) feed: ChangeFeed,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
}

impl Listener {
    /// A listener not yet subscribed: its feed passes on no record until
    /// the subscription is made.
    pub(super) fn new() -> Self {
        let feed = ChangeFeed::new();
        feed.interrupted();
        Listener { feed, task: None }
    }
}

/// How often a subscription that hears nothing checks that its store is
/// still there, and that its connection still answers (a `PING`, within
/// the store's timeout): a connection that died without a reset (a host
/// gone, a paused server) is otherwise noticed only by the operating
/// system, and its feed would pass for live meanwhile.
const LISTENER_CHECK: Duration = Duration::from_secs(1);
/// The first and longest pause before subscribing again.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct Removal<'a> {
    #[serde(borrow)]
    removed: RemovedKey<'a>,
}

#[derive(Serialize, Deserialize)]
struct RemovedKey<'a> {
    #[serde(borrow)]
    base_url: Cow<'a, str>,
    #[serde(borrow)]
    username: Cow<'a, str>,
}

/// What `REMOVE` publishes for `key`.
pub(super) fn removal(key: &StoreKey) -> Vec<u8> {
    let removal = Removal {
        removed: RemovedKey {
            base_url: Cow::Borrowed(key.base_url()),
            username: Cow::Borrowed(key.username()),
        },
    };
    // Serialising two strings cannot fail.
    serde_json::to_vec(&removal).unwrap_or_default()
}

/// The longest message read for a record or a removal; a longer one (no
/// token is that long) only wakes.
const MAX_MESSAGE: usize = 64 * 1024;

/// Passes one message on to `feed`, with the records sealed under the
/// `seals` of the store's key `prefix`.
fn pass_on(feed: &ChangeFeed, payload: &[u8], seals: &Seals, prefix: &str) {
    if let Some(record_key) = seal::record_key(payload) {
        let Some(fingerprint) = fingerprint_of(record_key, prefix) else {
            return feed.announce();
        };
        let record = (payload.len() <= MAX_MESSAGE)
            .then(|| unsealed(payload, record_key, fingerprint, seals))
            .flatten();
        return match record {
            Some(record) if seals.admit(record_key, record.generation()) => {
                feed.announce_saved(record)
            }
            // Not opened, or published again (a record handed over
            // already, or older): what the feed holds may not be the
            // newest, and the waiters read.
            _ => feed.announce_saved_unread(fingerprint),
        };
    }
    if payload.len() > MAX_MESSAGE {
        return feed.announce();
    }
    // A save announced by its key: the record is not in the message.
    if let Some(fingerprint) = std::str::from_utf8(payload)
        .ok()
        .and_then(|key| fingerprint_of(key, prefix))
    {
        return feed.announce_saved_unread(fingerprint);
    }
    if payload.starts_with(b"{\"")
        && let Ok(Removal { removed }) = serde_json::from_slice::<Removal<'_>>(payload)
    {
        let key = StoreKey::new(removed.base_url.into_owned(), removed.username.into_owned());
        // Anyone who can publish can send a removal: the seal is asked
        // for again, not dropped.
        seals.doubt(&format!("{prefix}{{{}}}", key.fingerprint()));
        return feed.announce_removed(&key);
    }
    feed.announce();
}

/// The fingerprint in `record_key`, when it is a record key under `prefix`
/// (`{prefix}{<fingerprint>}`, nothing after).
fn fingerprint_of<'a>(record_key: &'a str, prefix: &str) -> Option<&'a str> {
    record_key
        .strip_prefix(prefix)?
        .strip_prefix('{')?
        .strip_suffix('}')
        .filter(|fingerprint| !fingerprint.is_empty() && !fingerprint.contains(['{', '}']))
}

/// The record sealed in `message` for `record_key`, when it opens under the
/// seal this process knows for it and is the record of the key with
/// `fingerprint`. A sealed message the known seal does not open may be
/// under a seal replaced since, or a stranger's: the seal stays in use, and
/// is asked for again at the next look.
fn unsealed(
    message: &[u8],
    record_key: &str,
    fingerprint: &str,
    seals: &Seals,
) -> Option<TokenRecord> {
    let known = seals.get(record_key)?;
    let Some(opened) = known.open(message) else {
        seals.doubt(record_key);
        return None;
    };
    let record = TokenRecord::decode(&opened).ok()?;
    (record.key().fingerprint() == fingerprint).then_some(record)
}

/// Subscribes to `channel` and passes every message on to `feed`, again
/// and again after the connection is lost (a restart, a failover), until
/// the store is dropped. Meanwhile the feed is interrupted: waiters poll
/// and read the store.
pub(super) async fn listen(
    redis: Weak<Redis>,
    channel: String,
    prefix: String,
    feed: ChangeFeed,
    timeout: Duration,
) {
    let mut failures: u32 = 0;
    loop {
        let subscribed = {
            let Some(redis) = redis.upgrade() else { return };
            tokio::time::timeout(timeout, redis.subscribe(&channel, failures)).await
        };
        match subscribed {
            Ok(Ok((mut sink, mut messages))) => {
                failures = 0;
                // Whatever changed while there was no subscription.
                feed.resumed();
                loop {
                    let next = std::future::poll_fn(|cx| messages.as_mut().poll_next(cx));
                    match tokio::time::timeout(LISTENER_CHECK, next).await {
                        Ok(Some(message)) => {
                            let Some(store) = redis.upgrade() else { return };
                            let payload = message.get_payload_bytes();
                            pass_on(&feed, payload, &store.seals, &prefix);
                        }
                        Ok(None) => break,
                        Err(_) if redis.strong_count() == 0 => return,
                        Err(_) => {
                            let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>());
                            if !matches!(pong.await, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                feed.interrupted();
                tracing::debug!(%channel, "lost the redis subscription; waiters poll until it is back");
            }
            Ok(Err(error)) => {
                tracing::debug!(%channel, error = %describe_error(&error), "could not subscribe to redis");
            }
            Err(_) => tracing::debug!(%channel, "could not subscribe to redis in time"),
        }
        failures = failures.saturating_add(1);
        if redis.strong_count() == 0 {
            return;
        }
        let pause = RESUBSCRIBE_MIN
            .saturating_mul(1 << failures.min(5))
            .min(RESUBSCRIBE_MAX);
        tokio::time::sleep(pause).await;
    }
}

/// A redis-rs error without anything of the URL.
fn describe_error(error: &RedisError) -> String {
    error.to_string()
}

impl Redis {
    /// A subscription to `channel` on a connection of its own: to the
    /// primary, or to one of a Cluster's seed nodes (`attempt` picks which;
    /// a Cluster passes every `PUBLISH` on to every node).
    async fn subscribe(
        &self,
        channel: &str,
        attempt: u32,
    ) -> Result<(PubSubSink, std::pin::Pin<Box<PubSubStream>>), RedisError> {
        self.tls_provider();
        let client = self.deployment.subscriber_client(attempt).await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let (sink, stream) = pubsub.split();
        Ok((sink, Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{seal::Seal, *};

    const PREFIX: &str = "simacan-auth:";

    fn key(username: &str) -> StoreKey {
        StoreKey::new("https://auth.example.com/api/v1", username)
    }

    fn record_key(key: &StoreKey) -> String {
        format!("{PREFIX}{{{}}}", key.fingerprint())
    }

    fn record(username: &str, generation: u64) -> TokenRecord {
        let lifetime = Duration::from_secs(300);
        TokenRecord::new(
            key(username),
            generation,
            "access",
            Some("refresh"),
            SystemTime::now() + lifetime,
            lifetime,
        )
        .unwrap()
    }

    /// `record` sealed under `seal` for the record key `under`.
    fn sealed(seal: &Seal, under: &str, record: &TokenRecord) -> Vec<u8> {
        seal.seal(under, &record.encode()).unwrap()
    }

    /// Seals that know the seal of `username`'s record key.
    fn knowing(username: &str) -> (Seals, Seal) {
        let (seals, seal) = (Seals::default(), Seal::random().unwrap());
        seals.learn(&record_key(&key(username)), seal.clone());
        (seals, seal)
    }

    /// A listener's feed and a subscription to it.
    struct Listening {
        feed: ChangeFeed,
        changes: crate::store::Changes,
    }

    impl Listening {
        fn new() -> Self {
            let feed = ChangeFeed::new();
            let changes = feed.subscribe();
            Listening { feed, changes }
        }

        /// Passes `payload` on; true when it woke the subscription.
        async fn hear(&mut self, payload: &[u8], seals: &Seals, prefix: &str) -> bool {
            pass_on(&self.feed, payload, seals, prefix);
            let woken = tokio::time::timeout(Duration::from_secs(1), self.changes.changed());
            woken.await == Ok(true)
        }

        fn handed(&self, username: &str) -> Option<u64> {
            self.changes.saved(&key(username)).map(|r| r.generation())
        }
    }

    #[tokio::test]
    async fn each_message_is_passed_on_as_what_it_announces() {
        let mut listening = Listening::new();
        let (seals, seal) = knowing("planner");
        let planner = record_key(&key("planner"));

        let message = sealed(&seal, &planner, &record("planner", 7));
        assert!(listening.hear(&message, &seals, PREFIX).await);
        assert_eq!(listening.handed("planner"), Some(7));
        assert_eq!(listening.handed("other"), None, "kept under its own key");

        let lease = format!("{planner}:lease");
        assert!(
            listening.hear(lease.as_bytes(), &seals, PREFIX).await,
            "a release wakes"
        );
        assert_eq!(listening.handed("planner"), Some(7), "and keeps the record");

        // A save announced by key (its writer's seal was another): the
        // record held is no longer the newest.
        assert!(listening.hear(planner.as_bytes(), &seals, PREFIX).await);
        assert_eq!(
            listening.handed("planner"),
            None,
            "the stale record is dropped"
        );

        let message = sealed(&seal, &planner, &record("planner", 8));
        assert!(listening.hear(&message, &seals, PREFIX).await);
        assert_eq!(listening.handed("planner"), Some(8));
        assert!(
            listening
                .hear(&removal(&key("planner")), &seals, PREFIX)
                .await,
            "a removal wakes"
        );
        assert_eq!(listening.handed("planner"), None, "and drops the record");
        assert!(seals.claim_asking(&planner), "the seal is asked for again");
        assert!(seals.get(&planner).is_some(), "and kept meanwhile");
    }

    #[tokio::test]
    async fn a_record_in_the_clear_or_not_a_record_only_wakes() {
        let mut listening = Listening::new();
        let (seals, seal) = knowing("planner");
        let huge = {
            let lifetime = Duration::from_secs(300);
            let long = "a".repeat(MAX_MESSAGE);
            let record = TokenRecord::new(
                key("planner"),
                1,
                &long,
                None,
                SystemTime::now() + lifetime,
                lifetime,
            )
            .unwrap();
            sealed(&seal, &record_key(&key("planner")), &record)
        };
        let clear = record("planner", 7).encode();
        for payload in [
            &clear[..],
            b"{\"schema\":99}",
            b"{\"removed\":1}",
            b"{}",
            b"",
            b"simacan-auth:{}",
            b"simacan-auth:{{a}}",
            &huge,
        ] {
            assert!(listening.hear(payload, &seals, PREFIX).await);
        }
        assert_eq!(listening.handed("planner"), None);
        assert!(!listening.changes.is_live(), "nothing was handed over");
    }

    #[tokio::test]
    async fn a_record_published_again_is_not_handed_over() {
        let mut listening = Listening::new();
        let (seals, seal) = knowing("planner");
        let planner = record_key(&key("planner"));
        let older = sealed(&seal, &planner, &record("planner", 6));
        let newer = sealed(&seal, &planner, &record("planner", 7));
        assert!(listening.hear(&older, &seals, PREFIX).await);
        assert!(listening.hear(&newer, &seals, PREFIX).await);
        // Lost subscriptions do not reset what was handed over.
        listening.feed.interrupted();
        listening.feed.resumed();
        for again in [&older, &newer] {
            assert!(listening.hear(again, &seals, PREFIX).await, "still wakes");
            assert_eq!(listening.handed("planner"), None, "not handed over again");
        }
        let newest = sealed(&seal, &planner, &record("planner", 8));
        assert!(listening.hear(&newest, &seals, PREFIX).await);
        assert_eq!(listening.handed("planner"), Some(8));
        // A removal (anyone who can publish can send one) resets nothing:
        // only a new seal starts the credential's records afresh.
        assert!(
            listening
                .hear(&removal(&key("planner")), &seals, PREFIX)
                .await
        );
        seals.learn(&planner, seal.clone());
        assert!(listening.hear(&older, &seals, PREFIX).await);
        assert_eq!(listening.handed("planner"), None, "still not handed over");
        let new_seal = Seal::random().unwrap();
        seals.learn(&planner, new_seal.clone());
        let first = sealed(&new_seal, &planner, &record("planner", 1));
        assert!(listening.hear(&first, &seals, PREFIX).await);
        assert_eq!(listening.handed("planner"), Some(1));
    }

    #[tokio::test]
    async fn a_save_not_handed_over_makes_its_key_read_first() {
        let mut listening = Listening::new();
        let (seals, seal) = knowing("planner");
        let planner = record_key(&key("planner"));
        let message = sealed(&seal, &planner, &record("planner", 6));
        assert!(listening.hear(&message, &seals, PREFIX).await);
        assert!(listening.changes.is_live_for(&key("planner")));
        assert!(listening.hear(planner.as_bytes(), &seals, PREFIX).await);
        assert!(
            !listening.changes.is_live_for(&key("planner")),
            "its last save was not handed over"
        );
        assert!(listening.changes.is_live_for(&key("other")), "others' were");
        let message = sealed(&seal, &planner, &record("planner", 7));
        assert!(listening.hear(&message, &seals, PREFIX).await);
        assert!(listening.changes.is_live_for(&key("planner")));
        // A sealed save too long to read counts as not handed over.
        let long = [message.clone(), vec![0; MAX_MESSAGE]].concat();
        assert!(listening.hear(&long, &seals, PREFIX).await);
        assert!(!listening.changes.is_live_for(&key("planner")));
    }

    #[tokio::test]
    async fn a_record_sealed_under_a_seal_not_known_or_for_another_key_is_not_handed_over() {
        let mut listening = Listening::new();
        let planner = record_key(&key("planner"));

        // No seal known yet.
        let stranger = Seal::random().unwrap();
        let foreign = sealed(&stranger, &planner, &record("planner", 7));
        assert!(listening.hear(&foreign, &Seals::default(), PREFIX).await);
        assert_eq!(listening.handed("planner"), None);

        // Another seal than the one known (replaced since, or forged): the
        // held record is dropped, and the known seal is doubted (asked for
        // at the next look) but kept in use.
        let (seals, known) = knowing("planner");
        let message = sealed(&known, &planner, &record("planner", 7));
        assert!(listening.hear(&message, &seals, PREFIX).await);
        assert_eq!(listening.handed("planner"), Some(7));
        assert!(listening.hear(&foreign, &seals, PREFIX).await);
        assert_eq!(listening.handed("planner"), None, "not the newest any more");
        assert!(seals.claim_asking(&planner), "doubted: asked for again");
        let message = sealed(&known, &planner, &record("planner", 8));
        assert!(listening.hear(&message, &seals, PREFIX).await);
        assert_eq!(listening.handed("planner"), Some(8), "still in use");

        // Sealed under the right seal, but naming a record key that is not
        // the record's: another credential's, or another prefix's.
        let other = record_key(&key("other"));
        seals.learn(&other, known.clone());
        let moved = sealed(&known, &other, &record("planner", 9));
        assert!(listening.hear(&moved, &seals, PREFIX).await);
        let moved = sealed(&known, &planner, &record("planner", 9));
        assert!(listening.hear(&moved, &seals, "billing:").await);
        assert_eq!(listening.handed("planner"), Some(8));
        assert_eq!(listening.handed("other"), None);
    }
}
