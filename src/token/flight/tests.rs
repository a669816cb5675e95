//! The store protocol, tested with several token states (replicas) on one
//! store, an in-memory Auth API that rotates refresh tokens, and tokio's
//! paused clock.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use super::*;
use crate::{
    Endpoint, ErrorKind,
    store::FailureNotice,
    store::{BoxFuture, MemoryStore, StoreErrorKind, StoreKey, TokenStore},
    token::{
        Credentials,
        backoff::Backoff,
        cache::{AfterUnauthorized, Lookup, Settings, TokenCache},
        fake_api::*,
    },
};

/// A [`MemoryStore`] that can be taken down, or made to lose its lease or
/// refuse writes, as a real store can.
#[derive(Debug, Clone, Default)]
struct FlakyStore {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    loses_leases: Arc<AtomicBool>,
    refuses_writes: Arc<AtomicBool>,
    /// Loses all its data right before the next save of a new token, as a
    /// Redis restarted empty would.
    wipes_before_token_save: Arc<AtomicBool>,
    /// Fails this many saves of a record with a refresh token (a new
    /// token's, not a refresh token marked as sent).
    fails_token_saves: Arc<AtomicU32>,
    /// Answers a load with the record under another username.
    answers_for_another_key: Arc<AtomicBool>,
    /// Hands waiters a change feed that has already ended (a lost
    /// subscription); otherwise none (waiters poll).
    feed_ends: Arc<AtomicBool>,
    /// Makes no marking in its look, as a store might not: the holder
    /// marks the refresh token and confirms the lease on its own.
    marks_apart: Arc<AtomicBool>,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "flaky store",
                std::io::Error::other("down"),
            ));
        }
        Ok(())
    }
}

impl TokenStore for FlakyStore {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        Box::pin(async move {
            self.check()?;
            let record = self.inner.load(key).await?;
            if !self.answers_for_another_key.load(Ordering::SeqCst) {
                return Ok(record);
            }
            Ok(record.map(|r| {
                let other = StoreKey::new(key.base_url(), "someone-else");
                let (access, refresh) = (r.access_token(), r.refresh_token());
                TokenRecord::new(
                    other,
                    r.generation(),
                    access,
                    refresh,
                    r.expires_at(),
                    r.lifetime(),
                )
                .unwrap()
            }))
        })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.try_lease(key, ttl).await
        })
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check()?;
            if self.loses_leases.load(Ordering::SeqCst) {
                return Ok(false);
            }
            self.inner.renew(lease, ttl).await
        })
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.release(lease).await
        })
    }

    fn save<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check()?;
            if self.refuses_writes.load(Ordering::SeqCst) {
                return Ok(false);
            }
            if record.has_refresh_token()
                && self.wipes_before_token_save.swap(false, Ordering::SeqCst)
            {
                self.inner.remove(record.key()).await?;
            }
            let failing = record.has_refresh_token()
                && self
                    .fails_token_saves
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            if failing {
                return Err(StoreError::unavailable(
                    "flaky store",
                    std::io::Error::other("save failed"),
                ));
            }
            self.inner.save(lease, record, expected).await
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.remove(key).await
        })
    }

    fn look<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        marking: Option<&'a crate::store::Marking>,
    ) -> BoxFuture<'a, Result<crate::store::Look, StoreError>> {
        let marking = marking.filter(|_| !self.marks_apart.load(Ordering::SeqCst));
        Box::pin(crate::store::look::separately(self, key, ttl, marking))
    }

    fn changes(&self, _key: &StoreKey) -> Option<crate::store::Changes> {
        self.feed_ends
            .load(Ordering::SeqCst)
            .then(|| crate::store::ChangeFeed::new().subscribe())
    }
}

fn replicas(api: &Arc<FakeApi>, store: &Arc<dyn TokenStore>, n: usize) -> Vec<TokenCache> {
    replicas_with(api, store, n, Settings::default())
}

fn replicas_with(
    api: &Arc<FakeApi>,
    store: &Arc<dyn TokenStore>,
    n: usize,
    settings: Settings,
) -> Vec<TokenCache> {
    (0..n)
        .map(|_| cache_on(api, settings.clone(), Arc::clone(store)))
        .collect()
}

fn key() -> StoreKey {
    StoreKey::new("http://127.0.0.1:1/api/v1", "user")
}

fn shared() -> Arc<dyn TokenStore> {
    Arc::new(MemoryStore::new())
}

async fn all_tokens(replicas: &[TokenCache]) -> Vec<String> {
    let calls = replicas.iter().map(|r| {
        let r = r.clone();
        tokio::spawn(async move { r.access_token().await.unwrap().expose_secret().to_owned() })
    });
    let mut tokens = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        tokens.push(call.await.unwrap());
    }
    tokens
}

#[tokio::test(start_paused = true)]
async fn a_token_state_starting_with_a_valid_stored_token_calls_no_auth_api() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = shared();
    let first = cache_on(&api, Settings::default(), Arc::clone(&store));
    let token = first.access_token().await.unwrap();
    let restarted = cache_on(&api, Settings::default(), Arc::clone(&store));
    tokio::time::advance(Duration::from_secs(600)).await;
    let again = restarted.access_token().await.unwrap();
    assert_eq!(again.expose_secret(), token.expose_secret());
    assert_eq!(api.calls(Endpoint::Password), 1);
    assert_eq!(api.calls(Endpoint::Refresh), 0);
    // The remaining lifetime carries over, not a fresh hour.
    let left = again.expires_in();
    assert!(
        left <= Duration::from_secs(3000) && left > Duration::from_secs(2900),
        "{left:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_the_store_answers_for_another_key_is_not_used() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(flaky.clone());
    let first = cache_on(&api, Settings::default(), Arc::clone(&store));
    let token = first.access_token().await.unwrap();
    flaky.answers_for_another_key.store(true, Ordering::SeqCst);
    let second = cache_on(&api, Settings::default(), Arc::clone(&store));
    let own = second.access_token().await.unwrap();
    assert_ne!(own.expose_secret(), token.expose_secret());
    assert_eq!(api.calls(Endpoint::Password), 2, "it logged in for itself");
}

#[tokio::test(start_paused = true)]
async fn replicas_starting_together_log_in_once() {
    let api = FakeApi::new(Reply::Token(3600));
    let replicas = replicas(&api, &shared(), 8);
    let tokens = all_tokens(&replicas).await;
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert_eq!(api.calls(Endpoint::Password), 1);
}

#[tokio::test(start_paused = true)]
async fn a_401_across_replicas_is_healed_by_one_refresh() {
    let api = FakeApi::new(Reply::Token(3600));
    let replicas = replicas(&api, &shared(), 8);
    let before = all_tokens(&replicas).await;
    for round in 1..=3 {
        let waits: Vec<_> = replicas
            .iter()
            .map(|r| {
                let generation = r.current_generation().unwrap();
                match r.after_unauthorized(generation, 0) {
                    AfterUnauthorized::Wait(wait) => wait,
                    _ => panic!("a 401 must start or join a refresh"),
                }
            })
            .collect();
        let mut healed = Vec::new();
        for wait in waits {
            healed.push(wait.await.unwrap().header.clone());
        }
        assert!(healed.iter().all(|t| *t == healed[0]));
        assert_ne!(healed[0].to_str().unwrap(), format!("Bearer {}", before[0]));
        for r in &replicas {
            r.accepted(r.current_generation().unwrap());
        }
        assert_eq!(
            api.calls(Endpoint::Refresh),
            round,
            "one refresh per revocation"
        );
    }
    assert_eq!(api.calls(Endpoint::Password), 1);
    assert_eq!(api.reused(), 0);
}

#[tokio::test(start_paused = true)]
async fn proactive_refresh_across_replicas_is_one_per_lifetime_and_never_blocks() {
    let api = FakeApi::new(Reply::Token(600));
    let settings = Settings {
        refresh_before_expiry: Duration::from_secs(60),
        ..Settings::default()
    };
    let replicas = replicas_with(&api, &shared(), 4, settings);
    all_tokens(&replicas).await;
    // Five lifetimes of steady traffic.
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        for r in &replicas {
            assert!(
                matches!(r.lookup(), Lookup::Valid { .. }),
                "a request had to wait"
            );
        }
    }
    let refreshes = api.calls(Endpoint::Refresh);
    // A refresh every 540 s or a little less (jitter): 5 or 6 in 3000 s,
    // for the whole fleet.
    assert!((5..=6).contains(&refreshes), "{refreshes} refreshes");
    assert_eq!(api.calls(Endpoint::Password), 1);
    assert_eq!(api.reused(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_lease_left_by_a_dead_holder_stalls_the_others_for_at_most_its_short_time_to_live() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = shared();
    let replica = cache_on(&api, Settings::default(), Arc::clone(&store));
    let generation = replica.access_token().await.unwrap().0.generation;
    // A holder that took the lease, as any holder does, and died: it is
    // never renewed nor released.
    let ttl = LeaseTimings::default().ttl;
    let dead = store
        .try_lease(&key(), ttl)
        .await
        .unwrap()
        .expect("the lease is free");
    std::mem::forget(dead);
    let AfterUnauthorized::Wait(wait) = replica.after_unauthorized(generation, 0) else {
        panic!("a 401 must refresh");
    };
    let started = tokio::time::Instant::now();
    let token = wait.await.unwrap();
    let stalled = started.elapsed();
    assert!(
        stalled >= ttl,
        "waited for the lease to expire: {stalled:?}"
    );
    assert!(stalled <= Duration::from_secs(3), "{stalled:?}");
    assert_eq!(token.generation, generation + 1);
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    let stats = replica.stats();
    assert_eq!((stats.lease_waits, stats.long_lease_waits), (1, 1));
}

/// Waiters that would look again only after 2.5 to 5 s.
fn slow_looks() -> Settings {
    Settings {
        lease: LeaseTimings {
            poll_min: Duration::from_secs(5),
            poll_max: Duration::from_secs(5),
            ..LeaseTimings::default()
        },
        ..Settings::default()
    }
}

/// How long two replicas, one waiting for the other's 200 ms login, take
/// to hold the same token.
async fn time_to_share_a_login(store: Arc<dyn TokenStore>) -> Duration {
    let api = FakeApi::with_delay(Reply::Token(3600), Duration::from_millis(200));
    let fleet = replicas_with(&api, &store, 2, slow_looks());
    let started = tokio::time::Instant::now();
    let tokens = all_tokens(&fleet).await;
    assert_eq!(tokens[0], tokens[1]);
    assert_eq!(api.calls(Endpoint::Password), 1);
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_woken_by_the_holders_save_not_by_its_next_look() {
    // The memory store announces the save: the waiter takes the token at
    // once, seconds before its next look.
    let took = time_to_share_a_login(shared()).await;
    assert!(took < Duration::from_millis(300), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_store_without_announcements_or_whose_feed_ended_is_polled() {
    let polled = time_to_share_a_login(Arc::new(FlakyStore::default())).await;
    assert!(polled >= Duration::from_millis(2_500), "{polled:?}");
    let ended = FlakyStore::default();
    ended.feed_ends.store(true, Ordering::SeqCst);
    let took = time_to_share_a_login(Arc::new(ended)).await;
    assert!(
        (Duration::from_millis(2_500)..Duration::from_secs(6)).contains(&took),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_short_wait_for_a_live_holder_is_counted_but_not_long() {
    let api = FakeApi::with_delay(Reply::Token(3600), Duration::from_millis(200));
    let store = shared();
    let fleet = replicas(&api, &store, 2);
    let tokens = all_tokens(&fleet).await;
    assert_eq!(tokens[0], tokens[1]);
    let waits: Vec<_> = fleet.iter().map(|r| r.stats()).collect();
    assert_eq!(waits.iter().map(|s| s.lease_waits).sum::<u64>(), 1);
    assert_eq!(waits.iter().map(|s| s.long_lease_waits).sum::<u64>(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_holder_renews_its_short_lease_through_a_slow_auth_api_call() {
    // Each call takes four times the lease's time to live.
    let api = FakeApi::with_delay(Reply::Token(3600), Duration::from_secs(10));
    let store = shared();
    let fleet = replicas_with(
        &api,
        &store,
        3,
        Settings {
            auth_timeout: Duration::from_secs(20),
            ..Settings::default()
        },
    );
    let tokens = all_tokens(&fleet).await;
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(api.calls(Endpoint::Password), 1, "the lease never lapsed");
}

/// The password, like a refresh token, is sent only under a lease the
/// store has just confirmed.
#[tokio::test(start_paused = true)]
async fn the_password_is_not_sent_when_the_lease_was_lost() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    flaky.loses_leases.store(true, Ordering::SeqCst);
    let replica = cache_on(&api, Settings::default(), Arc::new(flaky.clone()));
    let error = replica.access_token().await.unwrap_err();
    assert!(
        error.store_error().map(|e| e.kind()) == Some(StoreErrorKind::Contended),
        "{error:?}"
    );
    assert_eq!(api.calls(Endpoint::Password), 0);
}

/// Redis restarted empty in the middle of a rotation: the holder puts its
/// new token back, and the replica that still holds the rotated refresh
/// token adopts it instead of sending that token.
#[tokio::test(start_paused = true)]
async fn a_store_that_lost_its_data_mid_rotation_gets_the_newest_token_back() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(flaky.clone());
    let fleet = replicas(&api, &store, 2);
    all_tokens(&fleet).await;
    flaky.wipes_before_token_save.store(true, Ordering::SeqCst);
    let wait = refresh_after_401(&fleet[0]);
    let rotated = wait.await.unwrap();
    assert_eq!(rotated.origin, Origin::Store, "put back");
    let wait = refresh_after_401(&fleet[1]);
    assert_eq!(wait.await.unwrap().access_token(), rotated.access_token());
    assert_eq!(api.reused(), 0, "{:?}", api.forms());
    assert_eq!(
        (api.calls(Endpoint::Password), api.calls(Endpoint::Refresh)),
        (1, 1)
    );
}

/// A store that lost its data vouches for no refresh token: a replica
/// holding one from before logs in with the password, once for the fleet,
/// rather than send a token another replica may have rotated.
#[tokio::test(start_paused = true)]
async fn a_store_that_lost_its_data_is_not_trusted_with_a_refresh_token_from_memory() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = shared();
    let fleet = replicas(&api, &store, 3);
    all_tokens(&fleet).await;
    store.remove(&key()).await.unwrap();
    for replica in &fleet {
        let wait = refresh_after_401(replica);
        wait.await.unwrap();
    }
    let tokens = all_tokens(&fleet).await;
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert_eq!(api.calls(Endpoint::Refresh), 0, "{:?}", api.forms());
    assert_eq!(api.calls(Endpoint::Password), 2, "one login for the fleet");
}

/// The rotation's holder could not put its token back (the store stayed
/// away): the replica still holding the rotated token logs in instead of
/// sending it.
#[tokio::test(start_paused = true)]
async fn a_rotation_lost_with_the_stores_data_costs_a_login_not_a_spent_token() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(flaky.clone());
    let fleet = replicas(&api, &store, 2);
    all_tokens(&fleet).await;
    flaky.wipes_before_token_save.store(true, Ordering::SeqCst);
    flaky.fails_token_saves.store(u32::MAX, Ordering::SeqCst);
    let wait = refresh_after_401(&fleet[0]);
    assert_eq!(wait.await.unwrap().origin, Origin::Local);
    flaky.fails_token_saves.store(0, Ordering::SeqCst);
    let wait = refresh_after_401(&fleet[1]);
    wait.await.unwrap();
    assert_eq!(api.reused(), 0, "{:?}", api.forms());
    assert_eq!(api.calls(Endpoint::Password), 2);
}

/// Stored data cannot break the arithmetic: a record at the generation
/// limit fails as corrupt, and the cache goes on backing off rather than
/// losing its flight to a panic.
#[tokio::test(start_paused = true)]
async fn a_record_at_the_generation_limit_fails_as_corrupt_without_a_panic() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = shared();
    let lease = store
        .try_lease(&key(), Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    let record = TokenRecord::new(
        key(),
        TokenRecord::MAX_GENERATION,
        "stored-access",
        Some("stored-refresh"),
        crate::clock::wall_now() + Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .unwrap();
    assert!(store.save(&lease, &record, None).await.unwrap());
    store.release(lease).await.unwrap();
    let replica = cache_on(&api, Settings::default(), Arc::clone(&store));
    let adopted = replica.access_token().await.unwrap();
    assert_eq!(adopted.0.version, TokenRecord::MAX_GENERATION);
    for _ in 0..2 {
        let wait = refresh_after_401(&replica);
        let Err(error) = wait.await else {
            panic!("no generation after the limit");
        };
        assert!(
            error.store_error().map(|e| e.kind()) == Some(StoreErrorKind::Corrupt),
            "{error:?}"
        );
        tokio::time::advance(Duration::from_secs(600)).await;
    }
    assert_eq!(
        api.calls(Endpoint::Refresh) + api.calls(Endpoint::Password),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn a_rotation_whose_answer_was_lost_costs_one_password_login_for_the_fleet() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Token(3600)).then(Reply::CommitThenDown);
    let settings = Settings {
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(1),
        },
        ..Settings::default()
    };
    let replicas = replicas_with(&api, &shared(), 4, settings);
    all_tokens(&replicas).await;
    // The first replica's refresh is committed by the Auth API; its answer is lost.
    let wait = refresh_after_401(&replicas[0]);
    assert!(wait.await.is_err());
    tokio::time::advance(Duration::from_secs(2)).await;
    // Every replica then meets the revoked token: one password login heals them all.
    let waits: Vec<_> = replicas
        .iter()
        .map(
            |r| match r.after_unauthorized(r.current_generation().unwrap(), 0) {
                AfterUnauthorized::Wait(wait) => wait,
                _ => panic!("a 401 must start or join a refresh"),
            },
        )
        .collect();
    for wait in waits {
        wait.await.unwrap();
    }
    // The refresh token whose answer was lost may have been rotated: it is
    // never sent again, and one password login heals the fleet.
    assert_eq!(api.calls(Endpoint::Password), 2, "{:?}", api.forms());
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    assert_eq!(api.reused(), 0, "{:?}", api.forms());
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_token_is_kept_out_of_the_store() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Token(3600))
        .then(Reply::Status(401))
        .then(Reply::Status(503));
    let replicas = replicas(&api, &shared(), 2);
    all_tokens(&replicas).await;
    let wait = refresh_after_401(&replicas[0]);
    assert!(wait.await.is_err(), "the password fallback failed");
    // Another replica meets the same 401 once that failure's notice has
    // passed: it must not send the refused token.
    tokio::time::advance(Duration::from_secs(1)).await;
    let wait = refresh_after_401(&replicas[1]);
    wait.await.unwrap();
    assert_eq!(api.calls(Endpoint::Refresh), 1, "{:?}", api.forms());
    assert_eq!(api.calls(Endpoint::Password), 3);
}

#[tokio::test(start_paused = true)]
async fn a_stored_token_within_the_clock_skew_margin_of_expiry_is_not_used() {
    let api = FakeApi::new(Reply::Token(600));
    let store = shared();
    let first = cache_on(&api, Settings::default(), Arc::clone(&store));
    first.access_token().await.unwrap();
    // 10 s left: less than the margin (30 s, at most a tenth of the lifetime).
    tokio::time::advance(Duration::from_secs(590)).await;
    let late = cache_on(&api, Settings::default(), Arc::clone(&store));
    late.access_token().await.unwrap();
    assert_eq!(api.calls(Endpoint::Refresh), 1, "refreshed, not adopted");
    assert_eq!(api.calls(Endpoint::Password), 1);
}

#[tokio::test(start_paused = true)]
async fn with_the_store_down_valid_tokens_serve_and_nothing_refreshes() {
    let api = FakeApi::new(Reply::Token(600));
    let flaky = FlakyStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(flaky.clone());
    let settings = Settings {
        refresh_before_expiry: Duration::from_secs(60),
        backoff: Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(5),
        },
        ..Settings::default()
    };
    let replica = cache_on(&api, settings.clone(), Arc::clone(&store));
    replica.access_token().await.unwrap();
    flaky.down.store(true, Ordering::SeqCst);
    // Through the refresh window to expiry: requests are served, no Auth API call.
    for _ in 0..59 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(matches!(replica.lookup(), Lookup::Valid { .. }));
    }
    assert_eq!(api.calls(Endpoint::Refresh), 0);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let error = replica.access_token().await.unwrap_err();
    assert!(
        error.store_error().map(|e| e.kind()) == Some(StoreErrorKind::Unavailable),
        "{error:?}"
    );
    assert!(error.is_transient());
    // A new process without any token fails fast too.
    let cold = cache_on(&api, settings, Arc::clone(&store));
    let error = cold.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store, "{error:?}");
    assert_eq!(api.calls(Endpoint::Password), 1);
    // The store returns: after the backoff, the fleet converges on it.
    flaky.down.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(5)).await;
    let token = replica.access_token().await.unwrap();
    let other = cold.access_token().await;
    let other = match other {
        Ok(other) => other,
        Err(_) => {
            tokio::time::advance(Duration::from_secs(5)).await;
            cold.access_token().await.unwrap()
        }
    };
    assert_eq!(token.expose_secret(), other.expose_secret());
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    assert_eq!(api.calls(Endpoint::Password), 1);
}

#[tokio::test(start_paused = true)]
async fn the_degraded_mode_logs_in_locally_and_converges_when_the_store_returns() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(flaky.clone());
    let degraded = Settings {
        local_login_on_store_outage: true,
        ..Settings::default()
    };
    let healthy = cache_on(&api, Settings::default(), Arc::clone(&store));
    healthy.access_token().await.unwrap();
    flaky.down.store(true, Ordering::SeqCst);
    let local = cache_on(&api, degraded, Arc::clone(&store));
    let own = local.access_token().await.unwrap();
    assert_eq!(api.calls(Endpoint::Password), 2, "a local login");
    flaky.down.store(false, Ordering::SeqCst);
    // The next time the local token needs renewing, the store's is used.
    local.invalidate();
    let converged = local.access_token().await.unwrap();
    let stored = healthy.access_token().await.unwrap();
    assert_ne!(converged.expose_secret(), own.expose_secret());
    assert_eq!(converged.expose_secret(), stored.expose_secret());
    assert_eq!(api.calls(Endpoint::Password), 2);
    assert_eq!(api.calls(Endpoint::Refresh), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_token_is_not_sent_when_the_lease_was_lost() {
    let api = FakeApi::new(Reply::Token(3600));
    // A look that marks takes the lease in the same step: here the holder
    // marks apart, and confirms the lease before it sends.
    let flaky = FlakyStore::default();
    flaky.marks_apart.store(true, Ordering::SeqCst);
    let replica = cache_on(&api, Settings::default(), Arc::new(flaky.clone()));
    let generation = replica.access_token().await.unwrap().0.generation;
    flaky.loses_leases.store(true, Ordering::SeqCst);
    let AfterUnauthorized::Wait(wait) = replica.after_unauthorized(generation, 0) else {
        panic!("a 401 must refresh");
    };
    let Err(error) = wait.await else {
        panic!("a lost lease must not refresh");
    };
    assert!(
        error.store_error().map(|e| e.kind()) == Some(StoreErrorKind::Contended),
        "{error:?}"
    );
    assert_eq!(api.calls(Endpoint::Refresh), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_swap_keeps_the_new_token_in_this_process() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    flaky.refuses_writes.store(true, Ordering::SeqCst);
    let replica = cache_on(&api, Settings::default(), Arc::new(flaky.clone()));
    let token = replica.access_token().await.unwrap();
    // The store never took it: a chain of this process's own.
    assert_eq!(token.0.origin, Origin::Local);
    assert_eq!(token.0.version, 1);
    assert!(matches!(replica.lookup(), Lookup::Valid { .. }));
    assert!(
        flaky
            .inner
            .load(&StoreKey::new("http://127.0.0.1:1/api/v1", "user"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_outage_retries_on_its_own_short_schedule_and_leaves_the_auth_api_backoff_alone() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Status(503));
    let flaky = FlakyStore::default();
    let settings = Settings {
        backoff: Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(10),
        },
        ..Settings::default()
    };
    let cache = cache_on(&api, settings, Arc::new(flaky.clone()));
    // One Auth API failure: a backoff of 5 to 10 s.
    let first = cache.access_token().await.unwrap_err();
    assert!(first.status().is_some(), "{first:?}");
    tokio::time::advance(Duration::from_secs(10)).await;
    // Then a long store outage: every attempt says the store is the cause
    // and is due again within half a second, however many there were.
    flaky.down.store(true, Ordering::SeqCst);
    for _ in 0..40 {
        let error = cache.access_token().await.unwrap_err();
        assert!(error.kind() == ErrorKind::Store, "{error:?}");
        let wait = error.next_attempt_in().unwrap();
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert_eq!(error.to_string(), "token store unavailable: flaky store");
        tokio::time::advance(wait).await;
    }
    // The store is back: the next need within a second is served, with no
    // Auth API backoff grown by the store's failures.
    flaky.down.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(500)).await;
    cache.access_token().await.unwrap();
    assert_eq!(api.calls(Endpoint::Password), 2);
}

#[tokio::test(start_paused = true)]
async fn a_401_during_a_store_outage_is_passed_through_as_the_stores() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let cache = cache_on(&api, Settings::default(), Arc::new(flaky.clone()));
    let token = cache.access_token().await.unwrap();
    flaky.down.store(true, Ordering::SeqCst);
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(token.0.generation, 0) else {
        panic!("a first 401 starts a flight");
    };
    let Err(error) = wait.await else {
        panic!("no token without the store");
    };
    assert!(error.kind() == ErrorKind::Store, "{error:?}");
    assert!(matches!(
        cache.after_unauthorized(token.0.generation, 0),
        AfterUnauthorized::PassThrough
    ));
    let stats = cache.stats();
    assert_eq!(stats.unauthorized_passed_through, 1);
    assert_eq!(stats.failures(ErrorKind::Store), 1);
}

/// A save that fails once after a rotation is retried under the lease: the
/// store holds the new token, and no replica sends the spent one or logs in.
#[tokio::test(start_paused = true)]
async fn a_save_failing_once_after_a_rotation_is_retried_under_the_lease() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(flaky.clone());
    let fleet = replicas(&api, &store, 3);
    for replica in &fleet {
        replica.access_token().await.unwrap();
    }
    flaky.fails_token_saves.store(1, Ordering::SeqCst);
    let wait = refresh_after_401(&fleet[0]);
    let healed = wait.await.unwrap();
    assert_eq!(healed.origin, Origin::Store, "saved on the second try");
    for replica in &fleet[1..] {
        let wait = refresh_after_401(replica);
        assert_eq!(wait.await.unwrap().access_token(), healed.access_token());
    }
    assert_eq!(api.reused(), 0, "{:?}", api.forms());
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    assert_eq!(api.calls(Endpoint::Password), 1);
}

/// A store that takes no new token for longer than the holder retries: the
/// token stays with the process that obtained it, and the next replica to
/// need one logs in with the password instead of sending the spent refresh
/// token; the first one's own chain goes on.
#[tokio::test(start_paused = true)]
async fn a_refresh_whose_save_failed_never_resends_the_spent_stored_refresh_token() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(flaky.clone());
    let fleet = replicas(&api, &store, 2);
    let replica = &fleet[0];
    replica.access_token().await.unwrap();
    fleet[1].access_token().await.unwrap();
    // The proactive refresh is answered, but its save fails for longer
    // than the holder retries.
    flaky.fails_token_saves.store(u32::MAX, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(3400)).await;
    assert!(matches!(replica.lookup(), Lookup::Valid { .. }));
    settle().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    flaky.fails_token_saves.store(0, Ordering::SeqCst);
    // The other replica's token expires: the stored record has no refresh
    // token left to send.
    tokio::time::advance(Duration::from_secs(200)).await;
    fleet[1].access_token().await.unwrap();
    assert_eq!(api.calls(Endpoint::Password), 2, "{:?}", api.forms());
    // The first replica's next refresh window, on its own chain's token.
    tokio::time::advance(Duration::from_secs(3150)).await;
    assert!(matches!(replica.lookup(), Lookup::Valid { .. }));
    settle().await;
    assert_eq!(
        api.reused(),
        0,
        "a rotated refresh token was sent again: {:?}",
        api.forms()
    );
    assert_eq!(api.calls(Endpoint::Password), 2, "{:?}", api.forms());
}

/// The same state, met by a 401 within minutes of the refresh: the previous
/// access token, still in the store, is not taken for a newer one.
#[tokio::test(start_paused = true)]
async fn a_401_after_a_failed_save_is_not_healed_with_the_previous_token() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let replica = cache_on(&api, Settings::default(), Arc::new(flaky.clone()));
    let first = replica.access_token().await.unwrap();
    flaky.fails_token_saves.store(u32::MAX, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(3400)).await;
    assert!(matches!(replica.lookup(), Lookup::Valid { .. }));
    settle().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    flaky.fails_token_saves.store(0, Ordering::SeqCst);
    let refreshed = replica.access_token().await.unwrap();
    assert_ne!(refreshed.expose_secret(), first.expose_secret());
    // The refreshed token meets an early expiry.
    let AfterUnauthorized::Wait(wait) = replica.after_unauthorized(refreshed.0.generation, 0)
    else {
        panic!("a 401 must refresh");
    };
    let healed = wait.await.unwrap();
    assert_ne!(
        healed.access_token(),
        first.expose_secret(),
        "the 401 was healed with the token the refresh had replaced"
    );
}

/// The degraded mode is for an unreachable store only: a process that lost
/// the lease right before sending its refresh token (another process took
/// over) does not log in with the password on its own.
#[tokio::test(start_paused = true)]
async fn a_lost_lease_in_degraded_mode_does_not_log_in_with_the_password() {
    let api = FakeApi::new(Reply::Token(3600));
    let flaky = FlakyStore::default();
    let settings = Settings {
        local_login_on_store_outage: true,
        ..Settings::default()
    };
    let replica = cache_on(&api, settings, Arc::new(flaky.clone()));
    let generation = replica.access_token().await.unwrap().0.generation;
    flaky.loses_leases.store(true, Ordering::SeqCst);
    let AfterUnauthorized::Wait(wait) = replica.after_unauthorized(generation, 0) else {
        panic!("a 401 must refresh");
    };
    let _ = wait.await;
    assert_eq!(
        api.calls(Endpoint::Password),
        1,
        "a contended lease led to a local password login: {:?}",
        api.forms()
    );
    assert_eq!(
        api.calls(Endpoint::Refresh),
        0,
        "the look's marking was made, but the lease was lost after it"
    );
}

/// Nor does a lease held elsewhere for longer than the waiter's patience (a
/// holder with a longer Auth API timeout, or a slow one).
#[tokio::test(start_paused = true)]
async fn a_long_held_lease_in_degraded_mode_does_not_log_in_with_the_password() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = shared();
    let settings = Settings {
        local_login_on_store_outage: true,
        ..Settings::default()
    };
    let key = StoreKey::new("http://127.0.0.1:1/api/v1", "user");
    let held = store
        .try_lease(&key, Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();
    let replica = cache_on(&api, settings, Arc::clone(&store));
    let _ = replica.access_token().await;
    assert_eq!(
        api.calls(Endpoint::Password),
        0,
        "logged in while another process held the lease"
    );
    drop(held);
}

/// A proactive refresh whose refresh token is refused and whose password
/// fallback fails leaves a "spent" record (generation + 1, the same access
/// token, no refresh token): the process that wrote it does not adopt it
/// as a token another process obtained.
#[tokio::test(start_paused = true)]
async fn a_process_does_not_adopt_its_own_spent_record() {
    let api = FakeApi::new(Reply::Status(503));
    api.then(Reply::Token(3600)).then(Reply::Status(401));
    let replica = cache_on(&api, Settings::default(), shared());
    let first = replica.access_token().await.unwrap();
    tokio::time::advance(Duration::from_secs(3400)).await;
    for _ in 0..10 {
        let _ = replica.lookup();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let stats = replica.stats();
    let current = replica.access_token().await.unwrap();
    assert!(
        stats.tokens_adopted == 0 && current.0.generation == first.0.generation,
        "adopted its own record: {} adopted, generation {} -> {} for the same access token {}",
        stats.tokens_adopted,
        first.0.generation,
        current.0.generation,
        current.expose_secret() == first.expose_secret(),
    );
}

/// A record written by a host whose clock is far ahead (or read after this
/// host's clock stepped back) is used for no longer than the lifetime it
/// was issued with.
#[tokio::test(start_paused = true)]
async fn an_adopted_token_lasts_no_longer_than_its_lifetime() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = shared();
    let key = StoreKey::new("http://127.0.0.1:1/api/v1", "user");
    let lifetime = Duration::from_secs(3600);
    let skewed = wall_now() + Duration::from_secs(10 * 365 * 86_400);
    let record = TokenRecord::new(key.clone(), 1, "eyA", Some("eyR"), skewed, lifetime).unwrap();
    let lease = store.try_lease(&key, lifetime).await.unwrap().unwrap();
    assert!(store.save(&lease, &record, None).await.unwrap());
    store.release(lease).await.unwrap();
    let replica = cache_on(&api, Settings::default(), Arc::clone(&store));
    let adopted = replica.access_token().await.unwrap();
    assert!(
        adopted.expires_in() <= lifetime,
        "adopted for {:?}, issued for {lifetime:?}",
        adopted.expires_in()
    );
}

/// A lease holder's failed call (503, 429 with `Retry-After`, a rejected
/// password) is shared through the store: the replicas waiting on it do not
/// repeat it before its backoff ends.
#[tokio::test(start_paused = true)]
async fn a_failure_of_the_lease_holder_is_not_repeated_by_every_waiter() {
    let api = FakeApi::new(Reply::Status(503));
    api.then(Reply::Token(3600));
    let replicas = replicas(&api, &shared(), 4);
    all_tokens(&replicas).await;
    let waits: Vec<_> = replicas
        .iter()
        .map(
            |r| match r.after_unauthorized(r.current_generation().unwrap(), 0) {
                AfterUnauthorized::Wait(wait) => wait,
                _ => panic!("a 401 must start or join a refresh"),
            },
        )
        .collect();
    for wait in waits {
        assert!(wait.await.is_err());
    }
    assert_eq!(
        api.calls(Endpoint::Refresh),
        1,
        "one need, one failing refresh for the fleet: {:?}",
        api.forms()
    );
}

/// A rejected password is sent once for a cold fleet, not once per replica.
#[tokio::test(start_paused = true)]
async fn a_rejected_password_is_sent_once_for_a_cold_fleet() {
    let api = FakeApi::new(Reply::Status(401));
    let replicas = replicas(&api, &shared(), 4);
    let calls: Vec<_> = replicas
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.access_token().await.is_err() })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap());
    }
    assert_eq!(
        api.calls(Endpoint::Password),
        1,
        "the rejected password was sent by every replica"
    );
}

/// A fleet restarted with a corrected password, within the longest backoff
/// of the previous run's rejection. The first replica finds the lease free
/// and logs in; the others wait on that (successful) login. They must not
/// fail on the notice the previous run left: it is about a call made before
/// they started waiting, not the one they waited on.
#[tokio::test(start_paused = true)]
async fn a_stale_rejection_notice_does_not_fail_a_restarted_fleet_with_a_corrected_password() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Status(401));
    let store = shared();
    let previous_run = cache_as(
        Credentials::new("user", "wrong"),
        &api,
        Settings::default(),
        Arc::clone(&store),
    );
    let error = previous_run.access_token().await.unwrap_err();
    assert!(error.kind() == ErrorKind::InvalidCredentials, "{error:?}");
    drop(previous_run);
    tokio::time::advance(Duration::from_secs(30)).await;
    let restarted: Vec<_> = (0..4)
        .map(|_| {
            cache_as(
                Credentials::new("user", "corrected"),
                &api,
                Settings::default(),
                Arc::clone(&store),
            )
        })
        .collect();
    let calls: Vec<_> = restarted
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.access_token().await.map(|_| ()) })
        })
        .collect();
    let mut failed = Vec::new();
    for call in calls {
        if let Err(error) = call.await.unwrap() {
            failed.push(error.to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 4 restarted replicas failed on the previous run's notice: {failed:?}",
        failed.len()
    );
    assert_eq!(api.calls(Endpoint::Password), 2, "one login per run");
}

/// A transient failure's notice written by a host whose clock is ten
/// minutes ahead (or read after this host's clock stepped back) holds
/// other replicas back for no longer than the backoff it asked for, as an
/// adopted token lasts no longer than its lifetime.
#[tokio::test(start_paused = true)]
async fn a_failure_notice_holds_back_no_longer_than_the_backoff_it_asked_for() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = shared();
    let key = StoreKey::new("http://127.0.0.1:1/api/v1", "user");
    let replica = cache_on(&api, Settings::default(), Arc::clone(&store));
    let holder = store
        .try_lease(&key, Duration::from_secs(15))
        .await
        .unwrap()
        .unwrap();
    let waiting = {
        let replica = replica.clone();
        tokio::spawn(async move { replica.access_token().await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The holder's refresh got a 503: it asks for half a second, by a
    // clock ten minutes ahead.
    let asked = Duration::from_millis(500);
    let skew = Duration::from_secs(600);
    let written =
        FailureNotice::new(key.clone(), None, asked, ErrorKind::AuthApiUnavailable).encode();
    let mut skewed: serde_json::Value = serde_json::from_slice(&written).unwrap();
    let until_ms = skewed["until_ms"].as_u64().unwrap() + skew.as_secs() * 1000;
    skewed["until_ms"] = until_ms.into();
    let notice = FailureNotice::decode(&serde_json::to_vec(&skewed).unwrap()).unwrap();
    store.save_failure(&holder, &notice).await.unwrap();
    store.release(holder).await.unwrap();
    let error = waiting.await.unwrap().unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    tokio::time::advance(Duration::from_secs(5)).await;
    let after = replica.access_token().await.map(|_| ());
    assert!(
        after.is_ok(),
        "still held back 5 s after a notice asking for {asked:?}: {after:?} (first error: {error})"
    );
}

/// A longest backoff of `Duration::MAX` ("never send a rejected password
/// again") is saturated elsewhere; sharing the rejection must not panic the
/// flight (which turns the error into `NoRuntime` and leaves the lease to
/// expire).
#[tokio::test(start_paused = true)]
async fn a_rejection_with_a_huge_longest_backoff_is_shared_without_a_panic() {
    let api = FakeApi::new(Reply::Status(401));
    let settings = Settings {
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::MAX,
        },
        ..Settings::default()
    };
    let replica = cache_on(&api, settings, shared());
    let error = replica.access_token().await.unwrap_err();
    assert!(error.kind() == ErrorKind::InvalidCredentials, "{error:?}");
}

/// A [`MemoryStore`] whose writes can land and then answer with an error,
/// as a store whose reply is lost (or whose timeout fires after the write)
/// does.
#[derive(Debug, Clone, Default)]
struct AmbiguousStore {
    inner: MemoryStore,
    /// Saves of a new token (a record with a refresh token) that land, then
    /// fail.
    token_saves_land_then_fail: Arc<AtomicU32>,
    /// Markings (a record without a refresh token) that land, then fail.
    marks_land_then_fail: Arc<AtomicU32>,
    /// Every save of a new token fails without landing.
    token_saves_fail: Arc<AtomicBool>,
}

fn take_one(count: &AtomicU32) -> bool {
    count
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl TokenStore for AmbiguousStore {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        self.inner.load(key)
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        self.inner.try_lease(key, ttl)
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.renew(lease, ttl)
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.release(lease)
    }

    fn save<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let lost = || {
                Err(StoreError::unavailable(
                    "ambiguous store",
                    std::io::Error::other("reply lost"),
                ))
            };
            if record.has_refresh_token() && self.token_saves_fail.load(Ordering::SeqCst) {
                return lost();
            }
            let saved = self.inner.save(lease, record, expected).await?;
            let ambiguous = if record.has_refresh_token() {
                take_one(&self.token_saves_land_then_fail)
            } else {
                take_one(&self.marks_land_then_fail)
            };
            if saved && ambiguous {
                return lost();
            }
            Ok(saved)
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.remove(key)
    }
}

/// A 401 for `replica`'s current token: it starts or joins a refresh.
fn refresh_after_401(replica: &TokenCache) -> crate::token::TokenWait {
    let generation = replica.current_generation().unwrap();
    match replica.after_unauthorized(generation, 0) {
        AfterUnauthorized::Wait(wait) => wait,
        _ => panic!("a 401 must start or join a refresh"),
    }
}

/// A 401 for `replica`'s current token, after it was accepted once.
fn heal(replica: &TokenCache) -> crate::token::TokenWait {
    replica.accepted(replica.current_generation().unwrap());
    refresh_after_401(replica)
}

/// A save that landed but answered with an error is read back and counts
/// as saved: the chain stays the store's, and its refresh token is never
/// sent by two replicas.
#[tokio::test(start_paused = true)]
async fn a_save_whose_answer_was_lost_is_recognised_and_no_refresh_token_is_sent_twice() {
    let api = FakeApi::new(Reply::Token(3600));
    let ambiguous = AmbiguousStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(ambiguous.clone());
    let fleet = replicas(&api, &store, 2);
    let (a, b) = (&fleet[0], &fleet[1]);
    a.access_token().await.unwrap();
    b.access_token().await.unwrap();
    ambiguous
        .token_saves_land_then_fail
        .store(1, Ordering::SeqCst);
    let rotated = heal(a).await.unwrap();
    assert_eq!(rotated.origin, Origin::Store, "read back as saved");
    let adopted = heal(b).await.unwrap();
    assert_eq!(adopted.access_token(), rotated.access_token());
    ambiguous.token_saves_fail.store(true, Ordering::SeqCst);
    heal(b).await.unwrap();
    ambiguous.token_saves_fail.store(false, Ordering::SeqCst);
    let _ = heal(a).await;
    assert_eq!(
        api.reused(),
        0,
        "a refresh token was sent twice by the fleet: {:?}",
        api.forms()
    );
}

/// A marking that landed but answered with an error is read back and the
/// refresh goes on: no password login for an unspent refresh token.
#[tokio::test(start_paused = true)]
async fn a_marking_whose_answer_was_lost_is_recognised() {
    let api = FakeApi::new(Reply::Token(3600));
    let ambiguous = AmbiguousStore::default();
    let store: Arc<dyn TokenStore> = Arc::new(ambiguous.clone());
    let replica = cache_on(&api, Settings::default(), Arc::clone(&store));
    replica.access_token().await.unwrap();
    ambiguous.marks_land_then_fail.store(1, Ordering::SeqCst);
    heal(&replica).await.unwrap();
    assert_eq!(
        (api.calls(Endpoint::Password), api.calls(Endpoint::Refresh)),
        (1, 1),
        "{:?}",
        api.forms()
    );
}

/// At the generation limit nothing is sent: a password login whose token
/// could not be stored would be thrown away, again after every backoff.
#[tokio::test(start_paused = true)]
async fn a_record_at_the_generation_limit_does_not_send_the_password_for_nothing() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = shared();
    let lease = store
        .try_lease(&key(), Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    let record = TokenRecord::new(
        key(),
        TokenRecord::MAX_GENERATION,
        "stored-access",
        None,
        crate::clock::wall_now(),
        Duration::from_secs(3600),
    )
    .unwrap();
    assert!(store.save(&lease, &record, None).await.unwrap());
    store.release(lease).await.unwrap();
    let replica = cache_on(&api, Settings::default(), Arc::clone(&store));
    for _ in 0..2 {
        let error = replica.access_token().await.unwrap_err();
        assert!(
            error.store_error().map(|e| e.kind()) == Some(StoreErrorKind::Corrupt),
            "{error:?}"
        );
        tokio::time::advance(Duration::from_secs(600)).await;
    }
    assert_eq!(api.calls(Endpoint::Password), 0);
}

/// Only a refresh the Auth API answered with a status, or one that never
/// connected, leaves its refresh token to send again.
#[tokio::test]
async fn a_refresh_token_is_kept_only_when_the_auth_api_surely_did_not_take_it() {
    use http_body_util::Full;
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri: http::Uri = format!(
        "http://{}/api/v1/auth/refresh",
        closed.local_addr().unwrap()
    )
    .parse()
    .unwrap();
    drop(closed);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let refused = client
        .request(
            http::Request::post(uri.clone())
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(not_taken(&Error::unreachable(
        Endpoint::Refresh,
        &uri,
        refused
    )));
    let dropped = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    assert!(!not_taken(&Error::unreachable(
        Endpoint::Refresh,
        &uri,
        dropped
    )));
    assert!(!not_taken(&Error::malformed(
        Endpoint::Refresh,
        &uri,
        "not json"
    )));
    let timeout = Error::timeout(Endpoint::Refresh, &uri, Duration::from_secs(1));
    assert!(!not_taken(&timeout));
    let unavailable = Error::unexpected_status(
        Endpoint::Refresh,
        &uri,
        http::StatusCode::SERVICE_UNAVAILABLE,
        None,
    );
    assert!(not_taken(&unavailable));
}

/// A [`MemoryStore`] that counts the reads, saves, looks and markings made
/// through it, and can hand out the subscriptions of a feed of its own (one
/// that never hears the store's saves, or an interrupted one) instead of
/// the store's.
#[derive(Debug, Clone, Default)]
struct CountingStore {
    inner: MemoryStore,
    loads: Arc<AtomicU32>,
    renews: Arc<AtomicU32>,
    looks: Arc<AtomicU32>,
    markings: Arc<AtomicU32>,
    own_feed: Option<crate::store::ChangeFeed>,
    /// Reports a look's marking as not written, as a Redis whose replicas
    /// did not acknowledge it in time does.
    hides_markings: bool,
    /// Reports every look that took the lease as marked, whatever it found.
    claims_markings: bool,
    /// Every record saved through it, encoded.
    saved: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    /// Every marked record a look carried, encoded.
    carried: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl TokenStore for CountingStore {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key)
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        self.inner.try_lease(key, ttl)
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.renews.fetch_add(1, Ordering::SeqCst);
        self.inner.renew(lease, ttl)
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.release(lease)
    }

    fn save<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.saved.lock().unwrap().push(record.encode().to_vec());
        self.inner.save(lease, record, expected)
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.remove(key)
    }

    fn look<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        marking: Option<&'a crate::store::Marking>,
    ) -> BoxFuture<'a, Result<crate::store::Look, StoreError>> {
        self.looks.fetch_add(1, Ordering::SeqCst);
        if let Some(marking) = marking {
            let marked = marking.marked().encode().to_vec();
            self.carried.lock().unwrap().push(marked);
        }
        Box::pin(async move {
            let mut look = self.inner.look(key, ttl, marking).await?;
            if self.claims_markings && look.lease.is_some() {
                look.marked = true;
            }
            if look.marked {
                self.markings.fetch_add(1, Ordering::SeqCst);
                if self.hides_markings {
                    // As long as a replica is waited for: a marking made
                    // again now would carry a later expiry.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    look.marked = false;
                }
            }
            Ok(look)
        })
    }

    fn changes(&self, key: &StoreKey) -> Option<crate::store::Changes> {
        match &self.own_feed {
            Some(feed) => Some(feed.subscribe()),
            None => self.inner.changes(key),
        }
    }
}

/// What the second replica's heal read: (loads, looks).
type Reads = (u32, u32);

/// Two replicas on `store` with one token; the first heals a 401, then
/// the second gets a 401 for the token both had. Returns the second's
/// healed header, the first's, and what the second's heal read.
async fn heal_one_then_the_other(
    api: &Arc<FakeApi>,
    store: &CountingStore,
) -> (http::HeaderValue, http::HeaderValue, Reads) {
    let shared: Arc<dyn TokenStore> = Arc::new(store.clone());
    let [first, second] = [0, 1].map(|_| cache_on(api, Settings::default(), Arc::clone(&shared)));
    all_tokens(&[first.clone(), second.clone()]).await;
    let heal = |cache: &TokenCache| match cache
        .after_unauthorized(cache.current_generation().unwrap(), 0)
    {
        AfterUnauthorized::Wait(wait) => wait,
        _ => panic!("a 401 must start or join a refresh"),
    };
    let healed_first = heal(&first).await.unwrap().header.clone();
    let counts = || {
        (
            store.loads.load(Ordering::SeqCst),
            store.looks.load(Ordering::SeqCst),
        )
    };
    let before = counts();
    let healed_second = heal(&second).await.unwrap().header.clone();
    let after = counts();
    let reads = (after.0 - before.0, after.1 - before.1);
    (healed_second, healed_first, reads)
}

#[tokio::test(start_paused = true)]
async fn a_401_after_another_replica_healed_it_takes_the_announced_token_without_reading_the_store()
{
    let api = FakeApi::new(Reply::Token(3600));
    let store = CountingStore::default();
    let (second, first, reads) = heal_one_then_the_other(&api, &store).await;
    assert_eq!(second, first, "both use the one refreshed token");
    assert_eq!(reads, (0, 0), "the second replica read nothing");
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    assert_eq!(api.calls(Endpoint::Password), 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_live_feed_a_replica_reads_the_record_before_it_tries_the_lease() {
    let api = FakeApi::new(Reply::Token(3600));
    let feed = crate::store::ChangeFeed::new();
    feed.interrupted();
    let store = CountingStore {
        own_feed: Some(feed),
        ..CountingStore::default()
    };
    let (second, first, reads) = heal_one_then_the_other(&api, &store).await;
    assert_eq!(second, first);
    assert_eq!(reads, (1, 0), "one read, and the lease left alone");
    assert_eq!(api.calls(Endpoint::Refresh), 1);
}

#[tokio::test(start_paused = true)]
async fn with_a_live_feed_that_missed_the_save_a_replica_uses_what_its_look_finds_and_frees_the_lease()
 {
    let api = FakeApi::new(Reply::Token(3600));
    // A live feed that hands over records but never hears this store's
    // saves, as one whose message is still on its way.
    let feed = crate::store::ChangeFeed::new();
    feed.announce_saved(unrelated_record());
    let store = CountingStore {
        own_feed: Some(feed),
        ..CountingStore::default()
    };
    let (second, first, reads) = heal_one_then_the_other(&api, &store).await;
    assert_eq!(second, first, "the look's record was used");
    assert_eq!(reads, (0, 1), "one look, no read before it");
    assert_eq!(
        store.markings.load(Ordering::SeqCst),
        1,
        "only the first replica's look marked: the second's found a newer record"
    );
    assert_eq!(api.calls(Endpoint::Refresh), 1, "no second refresh");
    // The lease the look took is given back in a task of its own.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let lease = store.inner.try_lease(&key(), Duration::from_secs(1)).await;
    assert!(lease.unwrap().is_some(), "the lease was freed");
}

#[tokio::test(start_paused = true)]
async fn a_look_claiming_a_marking_over_another_record_is_not_believed() {
    let api = FakeApi::new(Reply::Token(3600));
    // The second replica's look finds the first's new record, not the one
    // its marking expected: a store that says it marked anyway is wrong.
    let feed = crate::store::ChangeFeed::new();
    feed.announce_saved(unrelated_record());
    let store = CountingStore {
        own_feed: Some(feed),
        claims_markings: true,
        ..CountingStore::default()
    };
    let (second, first, _) = heal_one_then_the_other(&api, &store).await;
    assert_eq!(second, first, "the record the look found was used");
    assert_eq!(api.calls(Endpoint::Refresh), 1, "no second refresh");
}

/// A replica heals a 401 on `store` alone: the refresh token it sends is
/// marked as sent by the look that takes the lease, the lease is not
/// confirmed again, and the only save is the new token's.
async fn heal_alone_marking_with_the_look(store: &CountingStore) {
    let api = FakeApi::new(Reply::Token(3600));
    let shared: Arc<dyn TokenStore> = Arc::new(store.clone());
    let cache = cache_on(&api, Settings::default(), shared);
    all_tokens(std::slice::from_ref(&cache)).await;
    let before = (
        store.saved.lock().unwrap().len(),
        store.markings.load(Ordering::SeqCst),
    );
    let renews = store.renews.load(Ordering::SeqCst);
    let healing = match cache.after_unauthorized(cache.current_generation().unwrap(), 0) {
        AfterUnauthorized::Wait(wait) => wait,
        _ => panic!("a 401 must start a refresh"),
    };
    healing.await.unwrap();
    let after = (
        store.saved.lock().unwrap().len(),
        store.markings.load(Ordering::SeqCst),
    );
    assert_eq!(
        api.calls(Endpoint::Refresh),
        1,
        "healed with the refresh token"
    );
    assert_eq!(api.calls(Endpoint::Password), 1, "the first login only");
    assert_eq!(after.1 - before.1, 1, "the look marked the refresh token");
    assert_eq!(after.0 - before.0, 1, "one save: the new token's");
    assert_eq!(
        store.renews.load(Ordering::SeqCst),
        renews,
        "no confirmation: the lease was taken with the marking"
    );
    let stored = store.inner.load(&key()).await.unwrap().unwrap();
    assert!(
        stored.refresh_token().is_some(),
        "the new refresh token is stored"
    );
}

#[tokio::test(start_paused = true)]
async fn with_a_live_feed_the_look_that_takes_the_lease_marks_the_refresh_token() {
    heal_alone_marking_with_the_look(&CountingStore::default()).await;
}

#[tokio::test(start_paused = true)]
async fn without_a_live_feed_the_look_marks_the_record_just_read() {
    let feed = crate::store::ChangeFeed::new();
    feed.interrupted();
    let store = CountingStore {
        own_feed: Some(feed),
        ..CountingStore::default()
    };
    heal_alone_marking_with_the_look(&store).await;
}

#[tokio::test(start_paused = true)]
async fn a_marking_the_look_did_not_confirm_is_written_again_as_it_was() {
    let api = FakeApi::new(Reply::Token(3600));
    let store = CountingStore {
        hides_markings: true,
        ..CountingStore::default()
    };
    let shared: Arc<dyn TokenStore> = Arc::new(store.clone());
    let cache = cache_on(&api, Settings::default(), shared);
    all_tokens(std::slice::from_ref(&cache)).await;
    let AfterUnauthorized::Wait(healing) =
        cache.after_unauthorized(cache.current_generation().unwrap(), 0)
    else {
        panic!("a 401 must start a refresh");
    };
    healing.await.unwrap();
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    let carried = store.carried.lock().unwrap().clone();
    let saved = store.saved.lock().unwrap().clone();
    assert_eq!(carried.len(), 1, "one look carried a marking");
    // The holder's own marking is the look's, byte for byte: a store that
    // already holds it (and waits for a replica again) counts it as the
    // same write.
    assert!(
        saved.contains(&carried[0]),
        "the same marking written again"
    );
}

/// A record of another user, which no cache here takes.
fn unrelated_record() -> TokenRecord {
    let lifetime = Duration::from_secs(3600);
    let other = StoreKey::new("http://127.0.0.1:1/api/v1", "someone else");
    let expires = crate::clock::wall_now() + lifetime;
    TokenRecord::new(other, 1, "theirs", Some("r"), expires, lifetime).unwrap()
}
