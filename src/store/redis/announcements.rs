//! The store's announcements: what its scripts publish on
//! `{prefix}changes`, and the subscription that passes them on to the
//! token states of this process through a [`ChangeFeed`].
//!
//! | published by | message | passed on as |
//! |---|---|---|
//! | `SAVE` (a record with a refresh token) | the record [sealed](super::seal) under the credential's seal; its key when the writer's seal was not the stored one | [`ChangeFeed::announce_saved`] when this process knows the seal; [`ChangeFeed::announce`] otherwise |
//! | `REMOVE` | `{"removed":{"base_url":…,"username":…}}` | [`ChangeFeed::announce_removed`] |
//! | `RELEASE`, `NOTICE` | the key written | [`ChangeFeed::announce`] |
//!
//! Only a sealed record that opens under the seal this process learnt, and
//! is for the record key it names, is handed over; a record in the clear
//! is a stranger's. A message that is none of the above (another
//! version's, a stranger's, one longer than 64 KiB, one sealed under a
//! seal replaced since) wakes waiters all the same: they read the store.

use std::{borrow::Cow, sync::Weak, time::Duration};

use futures_core::Stream;
use redis::{
    aio::{PubSubSink, PubSubStream},
    RedisError,
};
use serde::{Deserialize, Serialize};

use super::{
    seal::{self, Seals},
    Redis,
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
    if payload.len() <= MAX_MESSAGE {
        if let Some(record) = unsealed(payload, seals, prefix) {
            return feed.announce_saved(record);
        }
        if payload.starts_with(b"{\"") {
            if let Ok(Removal { removed }) = serde_json::from_slice::<Removal<'_>>(payload) {
                let key =
                    StoreKey::new(removed.base_url.into_owned(), removed.username.into_owned());
                return feed.announce_removed(&key);
            }
        }
    }
    feed.announce();
}

/// The record sealed in `message`, when it opens under the seal this
/// process knows for the record key it names, and that key is the
/// record's under `prefix`. A sealed message the known seal does not open
/// was sealed under another (one replaced since): the seal is forgotten,
/// to be learnt again at the next look.
fn unsealed(message: &[u8], seals: &Seals, prefix: &str) -> Option<TokenRecord> {
    let record_key = seal::record_key(message)?;
    let known = seals.get(record_key)?;
    let Some(opened) = known.open(message) else {
        seals.forget(record_key, &known);
        return None;
    };
    let record = TokenRecord::decode(&opened).ok()?;
    let own_key = record_key
        .strip_prefix(prefix)
        .and_then(|tag| tag.strip_prefix('{'))
        .and_then(|tag| tag.strip_suffix('}'))
        .is_some_and(|fingerprint| fingerprint == record.key().fingerprint());
    own_key.then_some(record)
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
                            pass_on(&feed, message.get_payload_bytes(), &store.seals, &prefix);
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

    #[tokio::test]
    async fn each_message_is_passed_on_as_what_it_announces() {
        let feed = ChangeFeed::new();
        let mut changes = feed.subscribe();
        let (seals, seal) = knowing("planner");
        let saved = record("planner", 7);

        pass_on(
            &feed,
            &sealed(&seal, &record_key(&key("planner")), &saved),
            &seals,
            PREFIX,
        );
        assert!(changes.changed().await);
        assert_eq!(
            changes.saved(&key("planner")).map(|r| r.generation()),
            Some(7)
        );
        assert!(
            changes.saved(&key("other")).is_none(),
            "kept under its own key"
        );

        pass_on(&feed, b"simacan-auth:{abc}:lease", &seals, PREFIX);
        assert!(changes.changed().await, "a release wakes");
        assert!(
            changes.saved(&key("planner")).is_some(),
            "and keeps the record"
        );

        pass_on(&feed, &removal(&key("planner")), &seals, PREFIX);
        assert!(changes.changed().await, "a removal wakes");
        assert!(
            changes.saved(&key("planner")).is_none(),
            "and drops the record"
        );
    }

    #[tokio::test]
    async fn a_record_in_the_clear_or_not_a_record_only_wakes() {
        let feed = ChangeFeed::new();
        let mut changes = feed.subscribe();
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
            &huge,
        ] {
            pass_on(&feed, payload, &seals, PREFIX);
            assert!(changes.changed().await);
        }
        assert!(changes.saved(&key("planner")).is_none());
        assert!(!changes.is_live(), "nothing was handed over");
    }

    #[tokio::test]
    async fn a_record_sealed_under_a_seal_not_known_or_for_another_key_only_wakes() {
        let feed = ChangeFeed::new();
        let mut changes = feed.subscribe();
        let saved = record("planner", 7);
        let planner = record_key(&key("planner"));

        // No seal known yet.
        let seal = Seal::random().unwrap();
        pass_on(
            &feed,
            &sealed(&seal, &planner, &saved),
            &Seals::default(),
            PREFIX,
        );
        assert!(changes.changed().await);
        assert!(changes.saved(&key("planner")).is_none());

        // Another seal than the one known (replaced since): forgotten, to
        // be learnt again.
        let (seals, known) = knowing("planner");
        pass_on(&feed, &sealed(&seal, &planner, &saved), &seals, PREFIX);
        assert!(changes.changed().await);
        assert!(changes.saved(&key("planner")).is_none());
        assert!(seals.get(&planner).is_none(), "the stale seal is forgotten");

        // Sealed under the right seal, but naming a record key that is not
        // the record's: another credential's, or another prefix's.
        seals.learn(&planner, known.clone());
        let other = record_key(&key("other"));
        seals.learn(&other, known.clone());
        pass_on(&feed, &sealed(&known, &other, &saved), &seals, PREFIX);
        pass_on(&feed, &sealed(&known, &planner, &saved), &seals, "billing:");
        assert!(changes.changed().await);
        assert!(changes.saved(&key("planner")).is_none());
        assert!(changes.saved(&key("other")).is_none());

        // The same under the right key and prefix is handed over.
        pass_on(&feed, &sealed(&known, &planner, &saved), &seals, PREFIX);
        assert!(changes.changed().await);
        assert!(changes.saved(&key("planner")).is_some());
    }
}
