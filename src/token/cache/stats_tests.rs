//! What the cache counts, driven by an in-memory Auth API on tokio's paused
//! clock.

use super::*;
use crate::{
    Endpoint, ErrorKind,
    store::MemoryStore,
    token::{backoff::Backoff, fake_api::*},
};

/// Bounds an await: on the paused clock a lost wake-up would hang silently.
async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3600), future)
        .await
        .expect("the test hung")
}

#[tokio::test(start_paused = true)]
async fn token_age_grows_with_the_clock_and_time_to_expiry_shrinks() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let stats = cache.stats();
    assert_eq!((stats.token_age, stats.token_expires_in), (None, None));
    bounded(cache.access_token()).await.unwrap();
    let stats = cache.stats();
    assert_eq!(stats.token_age, Some(Duration::ZERO));
    assert_eq!(stats.token_expires_in, Some(Duration::from_secs(3600)));
    tokio::time::advance(Duration::from_secs(100)).await;
    let stats = cache.stats();
    assert_eq!(stats.token_age, Some(Duration::from_secs(100)));
    assert_eq!(stats.token_expires_in, Some(Duration::from_secs(3500)));
    cache.invalidate();
    assert_eq!(cache.stats().token_expires_in, Some(Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn concurrent_first_lookups_count_one_login() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let waits: Vec<_> = (0..20)
        .map(|_| match cache.lookup() {
            Lookup::Wait(wait) => wait,
            _ => panic!("a cold cache must wait"),
        })
        .collect();
    for wait in waits {
        bounded(wait).await.unwrap();
    }
    let stats = cache.stats();
    assert_eq!(stats.logins, 1);
    assert_eq!(stats.refreshes + stats.password_fallbacks, 0);
    assert_eq!(stats.failures_total(), 0);
}

#[tokio::test(start_paused = true)]
async fn requests_with_a_valid_token_count_nothing() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    bounded(cache.access_token()).await.unwrap();
    let before = cache.stats();
    for _ in 0..100 {
        let Lookup::Valid { generation, .. } = cache.lookup() else {
            panic!("the token is valid");
        };
        cache.accepted(generation);
    }
    assert_eq!(cache.stats(), before);
}

#[tokio::test(start_paused = true)]
async fn refreshes_after_401s_count_once_and_every_401_counts() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let generation = bounded(cache.access_token()).await.unwrap().0.generation;
    let waits: Vec<_> = (0..5)
        .map(|_| match cache.after_unauthorized(generation, 0) {
            AfterUnauthorized::Wait(wait) => wait,
            _ => panic!("expected to wait for the refresh"),
        })
        .collect();
    for wait in waits {
        bounded(wait).await.unwrap();
    }
    let stats = cache.stats();
    assert_eq!((stats.logins, stats.refreshes), (1, 1));
    assert_eq!(stats.unauthorized, 5);
    assert_eq!(
        stats.unauthorized_passed_through, 0,
        "each waits for the refresh"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_token_counts_a_fallback_not_a_refresh() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Token(3600)).then(Reply::Status(401));
    let cache = cache(&api);
    bounded(cache.access_token()).await.unwrap();
    cache.invalidate();
    bounded(cache.access_token()).await.unwrap();
    let stats = cache.stats();
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    assert_eq!(
        (stats.logins, stats.refreshes, stats.password_fallbacks),
        (1, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_another_replica_obtained_counts_as_adopted() {
    let api = FakeApi::new(Reply::Token(3600));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let first = cache_on(&api, Settings::default(), Arc::clone(&store));
    let second = cache_on(&api, Settings::default(), store);
    bounded(first.access_token()).await.unwrap();
    bounded(second.access_token()).await.unwrap();
    assert_eq!(api.calls(Endpoint::Password), 1);
    let (first, second) = (first.stats(), second.stats());
    assert_eq!((first.logins, first.tokens_adopted), (1, 0));
    assert_eq!((second.logins, second.tokens_adopted), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn failures_count_by_kind_once_each_and_show_the_backoff() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Status(503)).then(Reply::Down);
    let cache = cache_with(
        &api,
        Settings {
            backoff: Backoff {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(10),
            },
            ..Settings::default()
        },
    );
    assert!(bounded(cache.access_token()).await.is_err());
    // Requests failing fast during the backoff are no new failures.
    for _ in 0..5 {
        assert!(matches!(cache.lookup(), Lookup::Failed(_)));
    }
    let stats = cache.stats();
    assert_eq!(stats.failures(ErrorKind::AuthApiUnavailable), 1);
    assert_eq!(stats.failures_total(), 1);
    assert_eq!(stats.consecutive_failures, 1);
    let left = stats.backoff_remaining.expect("backing off");
    assert!(
        left >= Duration::from_secs(5) && left <= Duration::from_secs(10),
        "{left:?}"
    );
    tokio::time::advance(left).await;
    assert_eq!(cache.stats().backoff_remaining, None);
    assert!(bounded(cache.access_token()).await.is_err());
    let stats = cache.stats();
    assert_eq!(
        stats.failures(ErrorKind::AuthApiUnavailable),
        2,
        "a 503, then a refused connection"
    );
    assert_eq!(stats.consecutive_failures, 2);
    assert!(stats.backoff_remaining.is_some());
    tokio::time::advance(Duration::from_secs(10)).await;
    bounded(cache.access_token()).await.unwrap();
    let stats = cache.stats();
    assert_eq!((stats.logins, stats.failures_total()), (1, 2));
    assert_eq!(stats.consecutive_failures, 0);
    assert_eq!(stats.backoff_remaining, None);
}

#[tokio::test(start_paused = true)]
async fn passed_through_401s_count_in_the_cooldown() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let first = bounded(cache.access_token()).await.unwrap().0.generation;
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(first, 0) else {
        panic!("a 401 for the current token must refresh");
    };
    let healing = bounded(wait).await.unwrap().generation;
    let _ = cache.after_unauthorized(healing, 1);
    for _ in 0..3 {
        assert!(matches!(
            cache.after_unauthorized(healing, 0),
            AfterUnauthorized::PassThrough
        ));
    }
    let stats = cache.stats();
    assert_eq!(stats.unauthorized, 4);
    assert_eq!(stats.replays_refused, 1);
    assert_eq!(stats.unauthorized_passed_through, 4, "1 replay + 3 cooled");
}

#[tokio::test(start_paused = true)]
async fn passed_through_401s_count_in_the_backoff() {
    // A failed refresh backs off; a 401 meanwhile passes through.
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Token(3600)).then(Reply::Status(502));
    let cache = cache(&api);
    let generation = bounded(cache.access_token()).await.unwrap().0.generation;
    cache.invalidate();
    assert!(bounded(cache.access_token()).await.is_err());
    assert!(matches!(
        cache.after_unauthorized(generation, 0),
        AfterUnauthorized::PassThrough
    ));
    let stats = cache.stats();
    assert_eq!(
        (stats.unauthorized, stats.unauthorized_passed_through),
        (1, 1)
    );
    assert_eq!(stats.replays_refused, 0);
}
