//! The cache's rules, driven by an in-memory Auth API on tokio's paused clock.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};
use zeroize::Zeroizing;

use super::*;
use crate::{
    Endpoint,
    store::MemoryStore,
    token::{
        auth_api::transport::{BoxFuture, RawResponse, Transport},
        fake_api::*,
    },
};

#[tokio::test(start_paused = true)]
async fn concurrent_first_lookups_share_one_login() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let waits: Vec<_> = (0..50)
        .map(|_| match cache.lookup() {
            Lookup::Wait(wait) => wait,
            _ => panic!("a cold cache must wait"),
        })
        .collect();
    for wait in waits {
        let token = wait.await.unwrap();
        assert_eq!(token.header.to_str().unwrap(), "Bearer access-1");
    }
    assert_eq!(api.calls(Endpoint::Password), 1);
    assert_eq!(api.calls(Endpoint::Refresh), 0);
    assert_eq!(header_of(cache.lookup()), "Bearer access-1");
}

#[tokio::test(start_paused = true)]
async fn proactive_refresh_runs_in_the_background_without_blocking() {
    let api = FakeApi::with_delay(Reply::Token(600), Duration::from_secs(5));
    let cache = cache_with(
        &api,
        Settings {
            refresh_before_expiry: Duration::from_secs(60),
            ..Settings::default()
        },
    );
    cache.access_token().await.unwrap();
    tokio::time::advance(Duration::from_secs(540)).await;
    // Inside the refresh window: the old token is handed out at once...
    assert_eq!(header_of(cache.lookup()), "Bearer access-1");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(header_of(cache.lookup()), "Bearer access-1");
    assert_eq!(api.calls(Endpoint::Refresh), 1, "one background refresh");
    // ...until the refresh lands.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(header_of(cache.lookup()), "Bearer access-2");
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    assert_eq!(api.calls(Endpoint::Password), 1);
}

#[tokio::test(start_paused = true)]
async fn expired_token_waits_and_wakes_when_the_refresh_lands() {
    let api = FakeApi::with_delay(Reply::Token(60), Duration::from_secs(3));
    let cache = cache_with(
        &api,
        Settings {
            refresh_before_expiry: Duration::ZERO,
            ..Settings::default()
        },
    );
    cache.access_token().await.unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    let started = Instant::now();
    let token = cache.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), "access-2");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "woken exactly when the refresh landed"
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_rotates_and_never_resends_an_old_refresh_token() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    for _ in 0..4 {
        cache.invalidate();
        cache.access_token().await.unwrap();
    }
    let forms = api.forms();
    assert_eq!(forms[0].0, Endpoint::Password);
    let refreshes: Vec<&str> = forms[1..].iter().map(|(_, f)| f.as_str()).collect();
    assert_eq!(
        refreshes,
        [
            "refresh_token=refresh-1",
            "refresh_token=refresh-2",
            "refresh_token=refresh-3"
        ]
    );
    assert_eq!(cache.current_generation(), Some(4));
}

#[tokio::test(start_paused = true)]
async fn rejected_refresh_falls_back_to_the_password_once() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Token(3600)).then(Reply::Status(401));
    let cache = cache(&api);
    cache.access_token().await.unwrap();
    cache.invalidate();
    let token = cache.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), "access-3");
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    assert_eq!(api.calls(Endpoint::Password), 2);
}

#[tokio::test(start_paused = true)]
async fn other_refresh_failures_never_send_the_password() {
    for failure in [
        Reply::Status(500),
        Reply::Status(429),
        Reply::Status(403),
        Reply::Down,
    ] {
        let api = FakeApi::new(Reply::Token(3600));
        api.then(Reply::Token(3600)).then(failure);
        let cache = cache(&api);
        cache.access_token().await.unwrap();
        cache.invalidate();
        assert!(cache.access_token().await.is_err(), "{failure:?}");
        assert_eq!(api.calls(Endpoint::Password), 1, "{failure:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_and_fail_fast_in_between() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Status(503)).then(Reply::Status(503));
    let cache = cache_with(
        &api,
        Settings {
            backoff: Backoff {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(100),
            },
            ..Settings::default()
        },
    );
    let error = cache.access_token().await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    for _ in 0..10 {
        match cache.lookup() {
            Lookup::Failed(e) if e.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => {}
            _ => panic!("expected to fail fast during the backoff"),
        }
    }
    assert_eq!(api.calls(Endpoint::Password), 1);
    // First backoff is 5..=10 s; the second doubles to 10..=20 s.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(cache.access_token().await.is_err());
    assert_eq!(api.calls(Endpoint::Password), 2);
    tokio::time::advance(Duration::from_secs(9)).await;
    assert!(matches!(cache.lookup(), Lookup::Failed(_)));
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(cache.access_token().await.is_ok());
    assert_eq!(api.calls(Endpoint::Password), 3);
}

#[tokio::test(start_paused = true)]
async fn errors_during_a_backoff_say_how_long_until_the_next_attempt() {
    let backoff = Backoff {
        initial: Duration::from_secs(40),
        max: Duration::from_secs(40),
    };
    let slow = Duration::from_secs(60);
    let cases = [
        (
            "unreachable",
            FakeApi::new(Reply::Down),
            Duration::from_secs(30),
        ),
        (
            "503",
            FakeApi::new(Reply::Status(503)),
            Duration::from_secs(30),
        ),
        (
            "malformed",
            FakeApi::new(Reply::Status(200)),
            Duration::from_secs(30),
        ),
        (
            "timeout",
            FakeApi::with_delay(Reply::Down, slow),
            Duration::from_secs(2),
        ),
    ];
    for (case, api, auth_timeout) in cases {
        let cache = cache_with(
            &api,
            Settings {
                backoff,
                auth_timeout,
                ..Settings::default()
            },
        );
        let first = cache.access_token().await.unwrap_err();
        // The first backoff is 20..=40 s, told in whole seconds.
        let wait = first.next_attempt_in().map_or(0, |d| d.as_secs());
        assert!((20..=40).contains(&wait), "{case}: {first:?}");
        for elapsed in 1..wait {
            tokio::time::advance(Duration::from_secs(1)).await;
            let Lookup::Failed(error) = cache.lookup() else {
                panic!("{case}: expected to fail fast during the backoff");
            };
            assert_eq!(error.kind(), first.kind(), "{case}: the same failure");
            assert_eq!(
                error.to_string(),
                first.to_string(),
                "{case}: the same message"
            );
            let left = wait - elapsed;
            let told = error.next_attempt_in().unwrap();
            if left > 1 {
                assert_eq!(told, Duration::from_secs(left), "{case}");
            } else {
                // The last second: told to the millisecond.
                assert!(told > Duration::ZERO && told <= Duration::from_secs(1));
            }
        }
        assert_eq!(api.calls(Endpoint::Password), 1, "{case}");
        tokio::time::advance(Duration::from_secs(1)).await;
        let _ = cache.access_token().await;
        assert_eq!(
            api.calls(Endpoint::Password),
            2,
            "{case}: the backoff is over, the next attempt happens"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_from_the_auth_api_is_told_exactly() {
    struct Outage;
    impl Transport for Outage {
        fn post_form(
            &self,
            _: Endpoint,
            _: Uri,
            _: Zeroizing<String>,
        ) -> BoxFuture<'static, Result<RawResponse, Error>> {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, "60".parse().unwrap());
            Box::pin(async {
                Ok(RawResponse {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    headers,
                    body: Bytes::new(),
                })
            })
        }
    }
    let cache = TokenCache::with_transport(
        Credentials::new("u", "p"),
        Environment::custom("http://127.0.0.1:1/api/v1").unwrap(),
        Settings::default(),
        Arc::new(MemoryStore::new()),
        Arc::new(Outage),
    );
    let first = cache.access_token().await.unwrap_err();
    assert_eq!(first.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(first.next_attempt_in(), Some(Duration::from_secs(60)));
    tokio::time::advance(Duration::from_millis(400)).await;
    let Lookup::Failed(error) = cache.lookup() else {
        panic!("expected to fail fast during the backoff");
    };
    assert_eq!(
        error.to_string(),
        "simacan auth api answered http://127.0.0.1:1/api/v1/auth/password with \
         503 Service Unavailable"
    );
    tokio::time::advance(Duration::from_millis(600)).await;
    let Lookup::Failed(error) = cache.lookup() else {
        panic!("expected to fail fast during the backoff");
    };
    assert_eq!(error.next_attempt_in(), Some(Duration::from_secs(59)));
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(60)),
        "as the auth api sent it"
    );
}

#[tokio::test(start_paused = true)]
async fn rejected_password_is_not_retried_until_the_longest_backoff() {
    let api = FakeApi::new(Reply::Status(401));
    let cache = cache(&api);
    for waited in (0..200).step_by(10) {
        // Each error says how long is left of the longest backoff.
        let left = Duration::from_secs(300 - waited);
        let error = cache.access_token().await.unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::InvalidCredentials);
        assert_eq!(error.next_attempt_in(), Some(left));
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    assert_eq!(api.calls(Endpoint::Password), 1);
    tokio::time::advance(Duration::from_secs(300)).await;
    assert!(cache.access_token().await.is_err());
    assert_eq!(api.calls(Endpoint::Password), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_proactive_refresh_keeps_the_token_and_retries_after_the_backoff() {
    let api = FakeApi::new(Reply::Token(600));
    api.then(Reply::Token(600)).then(Reply::Status(502));
    let settings = Settings {
        refresh_before_expiry: Duration::from_secs(120),
        backoff: Backoff {
            initial: Duration::from_secs(20),
            max: Duration::from_secs(20),
        },
        ..Settings::default()
    };
    let cache = cache_with(&api, settings);
    cache.access_token().await.unwrap();
    tokio::time::sleep(Duration::from_secs(490)).await;
    assert_eq!(header_of(cache.lookup()), "Bearer access-1");
    settle().await;
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    for _ in 0..5 {
        assert_eq!(header_of(cache.lookup()), "Bearer access-1");
    }
    assert_eq!(
        api.calls(Endpoint::Refresh),
        1,
        "no retry during the backoff"
    );
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(header_of(cache.lookup()), "Bearer access-1");
    settle().await;
    assert_eq!(api.calls(Endpoint::Refresh), 2);
    assert_eq!(header_of(cache.lookup()), "Bearer access-3");
}

#[tokio::test(start_paused = true)]
async fn a_401_for_a_replaced_token_replays_without_refreshing() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let first = cache.access_token().await.unwrap();
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(first.0.generation, 0) else {
        panic!("a 401 for the current token must refresh");
    };
    let second = wait.await.unwrap();
    match cache.after_unauthorized(first.0.generation, 0) {
        AfterUnauthorized::Replay(token) => assert_eq!(token.generation, second.generation),
        _ => panic!("a 401 for a replaced token must replay with the current one"),
    }
    assert_eq!(api.calls(Endpoint::Refresh), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_401s_share_one_refresh() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let generation = cache.access_token().await.unwrap().0.generation;
    let waits: Vec<_> = (0..40)
        .map(|_| match cache.after_unauthorized(generation, 0) {
            AfterUnauthorized::Wait(wait) => wait,
            _ => panic!("expected to wait for the refresh"),
        })
        .collect();
    for wait in waits {
        assert_eq!(wait.await.unwrap().generation, generation + 1);
    }
    assert_eq!(api.calls(Endpoint::Refresh), 1);
}

#[tokio::test(start_paused = true)]
async fn cooldown_passes_401s_through_then_heals_again() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache_with(
        &api,
        Settings {
            unauthorized_cooldown: Duration::from_secs(10),
            ..Settings::default()
        },
    );
    let generation = cache.access_token().await.unwrap().0.generation;
    // A token obtained to heal a 401, refused on its replay.
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(generation, 0) else {
        panic!("a 401 for the current token must refresh");
    };
    let generation = wait.await.unwrap().generation;
    let _ = cache.after_unauthorized(generation, 1);
    for _ in 0..10 {
        assert!(matches!(
            cache.after_unauthorized(generation, 0),
            AfterUnauthorized::PassThrough
        ));
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(matches!(
        cache.after_unauthorized(generation, 0),
        AfterUnauthorized::Wait(_)
    ));
    settle().await;
    assert_eq!(
        api.calls(Endpoint::Refresh),
        2,
        "one refresh before the cooldown, one after"
    );
}

#[tokio::test(start_paused = true)]
async fn a_login_outlives_the_callers_that_gave_up() {
    let api = FakeApi::with_delay(Reply::Token(3600), Duration::from_secs(5));
    let cache = cache(&api);
    let gave_up = tokio::time::timeout(Duration::from_secs(1), cache.access_token()).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(header_of(cache.lookup()), "Bearer access-1");
    assert_eq!(api.calls(Endpoint::Password), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_outlives_its_callers_and_keeps_the_rotated_token() {
    let api = FakeApi::with_delay(Reply::Token(3600), Duration::from_secs(5));
    let cache = cache(&api);
    cache.access_token().await.unwrap();
    cache.invalidate();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), cache.access_token())
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(header_of(cache.lookup()), "Bearer access-2");
    cache.invalidate();
    cache.access_token().await.unwrap();
    assert_eq!(api.forms().last().unwrap().1, "refresh_token=refresh-2");
}

#[tokio::test(start_paused = true)]
async fn a_slow_auth_api_times_out() {
    let api = FakeApi::with_delay(Reply::Token(3600), Duration::from_secs(60));
    let cache = cache_with(
        &api,
        Settings {
            auth_timeout: Duration::from_secs(2),
            ..Settings::default()
        },
    );
    let error = cache.access_token().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.endpoint(), Some(Endpoint::Password));
}

#[tokio::test(start_paused = true)]
async fn malformed_token_responses_are_typed_errors() {
    struct Garbage;
    impl Transport for Garbage {
        fn post_form(
            &self,
            _: Endpoint,
            _: Uri,
            _: Zeroizing<String>,
        ) -> BoxFuture<'static, Result<RawResponse, Error>> {
            Box::pin(async {
                Ok(RawResponse {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                    body: Bytes::from_static(b"{\"access_token\":\"x\"}"),
                })
            })
        }
    }
    let cache = TokenCache::with_transport(
        Credentials::new("u", "p"),
        Environment::custom("http://127.0.0.1:1/api/v1").unwrap(),
        Settings::default(),
        Arc::new(MemoryStore::new()),
        Arc::new(Garbage),
    );
    let error = cache.access_token().await.unwrap_err();
    assert_eq!(error.kind(), crate::ErrorKind::UnexpectedResponse);
    assert_eq!(error.endpoint(), Some(Endpoint::Password));
    assert!(
        error.to_string().starts_with("malformed token response"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn huge_settings_saturate_instead_of_overflowing() {
    let api = FakeApi::new(Reply::Status(503));
    api.then(Reply::Token(3600)).then(Reply::Token(3600));
    let settings = Settings {
        unauthorized_cooldown: Duration::MAX,
        grpc_peek_window: Duration::MAX,
        backoff: Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
        },
        refresh_before_expiry: Duration::MAX,
        auth_timeout: Duration::MAX,
        max_clock_skew: Duration::MAX,
        local_login_on_store_outage: false,
        lease: crate::token::flight::LeaseTimings {
            ttl: Duration::MAX,
            renew_every: Duration::MAX,
            store_timeout: Duration::MAX,
            poll_min: Duration::MAX,
            poll_max: Duration::MAX,
            long_wait: Duration::MAX,
            save_patience: Duration::MAX,
            store_retry_min: Duration::MAX,
            store_retry_max: Duration::MAX,
        },
    };
    let cache = cache_with(&api, settings);
    let generation = cache.access_token().await.unwrap().0.generation;
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(generation, 0) else {
        panic!("a 401 for the current token must refresh");
    };
    let _ = cache.after_unauthorized(wait.await.unwrap().generation, 1);
    assert!(matches!(
        cache.after_unauthorized(generation + 1, 0),
        AfterUnauthorized::PassThrough
    ));
    cache.invalidate();
    assert!(cache.access_token().await.is_err());
    assert!(matches!(cache.lookup(), Lookup::Failed(_)));
}

#[tokio::test(start_paused = true)]
async fn the_refresh_window_follows_the_clock_exactly() {
    let api = FakeApi::new(Reply::Token(600));
    let cache = cache_with(
        &api,
        Settings {
            refresh_before_expiry: Duration::from_secs(60),
            ..Settings::default()
        },
    );
    cache.access_token().await.unwrap();
    tokio::time::advance(Duration::from_secs(541)).await;
    assert_eq!(header_of(cache.lookup()), "Bearer access-1");
    settle().await;
    assert_eq!(
        api.calls(Endpoint::Refresh),
        1,
        "the window opened: one background refresh"
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(
        matches!(cache.lookup(), Lookup::Valid { .. }),
        "the refreshed token is in place"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_obtained_for_a_401_and_refused_before_any_success_starts_the_cooldown() {
    // No replay is needed to tell that a refresh did not help: requests
    // whose bodies cannot be replayed must not each start a refresh.
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let first = cache.access_token().await.unwrap().0.generation;
    assert!(matches!(
        cache.after_unauthorized(first, 0),
        AfterUnauthorized::Wait(_)
    ));
    settle().await;
    let second = cache.current_generation().unwrap();
    for _ in 0..10 {
        assert!(matches!(
            cache.after_unauthorized(second, 0),
            AfterUnauthorized::PassThrough
        ));
    }
    assert_eq!(api.calls(Endpoint::Refresh), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_proven_by_an_accepted_request_is_refreshed_on_its_next_401() {
    // Early expiry again and again: each revocation is one refresh.
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let mut generation = cache.access_token().await.unwrap().0.generation;
    for refreshes in 1..=5 {
        let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(generation, 0) else {
            panic!("a 401 for a proven token must refresh");
        };
        generation = wait.await.unwrap().generation;
        cache.accepted(generation);
        assert_eq!(api.calls(Endpoint::Refresh), refreshes);
    }
}

#[tokio::test(start_paused = true)]
async fn a_replay_refused_with_a_superseded_token_starts_no_cooldown() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let first = cache.access_token().await.unwrap().0.generation;
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(first, 0) else {
        panic!("a 401 for the current token must refresh");
    };
    let healed = wait.await.unwrap().generation;
    // The token is replaced (expired, refreshed) before the replay's 401 lands.
    cache.invalidate();
    let current = cache.access_token().await.unwrap().0.generation;
    assert_ne!(current, healed);
    let _ = cache.after_unauthorized(healed, 1);
    assert!(
        matches!(
            cache.after_unauthorized(current, 0),
            AfterUnauthorized::Wait(_)
        ),
        "a 401 for the current token still refreshes"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_token_is_never_sent_again_when_the_fallback_fails() {
    let api = FakeApi::new(Reply::Token(3600));
    api.then(Reply::Token(3600))
        .then(Reply::Status(401))
        .then(Reply::Status(503));
    let cache = cache_with(
        &api,
        Settings {
            backoff: Backoff {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(2),
            },
            ..Settings::default()
        },
    );
    cache.access_token().await.unwrap();
    cache.invalidate();
    let error = cache.access_token().await.unwrap_err();
    assert!(error.status().is_some(), "{error:?}");
    tokio::time::advance(Duration::from_secs(2)).await;
    cache.access_token().await.unwrap();
    assert_eq!(
        api.calls(Endpoint::Refresh),
        1,
        "the refused refresh token was sent again: {:?}",
        api.forms()
    );
    assert_eq!(api.calls(Endpoint::Password), 3);
}

/// A runtime of its own with a paused clock, for tests that drop one
/// runtime and go on with the next.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// A cache on `api` whose 10-minute tokens are renewed in the background a
/// minute before they expire.
fn cache_renewing_a_minute_ahead(api: &Arc<FakeApi>) -> TokenCache {
    cache_with(
        api,
        Settings {
            refresh_before_expiry: Duration::from_secs(60),
            ..Settings::default()
        },
    )
}

#[test]
fn a_flight_lost_with_its_runtime_leaves_the_next_runtime_a_working_cache() {
    let api = FakeApi::with_delay(Reply::Token(600), Duration::from_secs(5));
    let cache = cache_renewing_a_minute_ahead(&api);
    let first = paused_runtime();
    first.block_on(async {
        cache.access_token().await.unwrap();
        tokio::time::advance(Duration::from_secs(550)).await;
        // Claims the proactive refresh; the flight is lost with the runtime.
        assert!(matches!(cache.lookup(), Lookup::Valid { .. }));
        tokio::task::yield_now().await;
    });
    drop(first);
    assert_eq!(api.calls(Endpoint::Refresh), 1);
    paused_runtime().block_on(async {
        // Each runtime has its own clock: pass the moment the flight was lost.
        tokio::time::advance(Duration::from_secs(560)).await;
        // The claim was given back: this runtime refreshes in the
        // background, once the lost flight's lease has expired.
        assert!(matches!(cache.lookup(), Lookup::Valid { .. }));
        tokio::time::sleep(Duration::from_secs(60)).await;
        // The lost flight had marked its refresh token as sent: it is not
        // sent again, and one password login recovers.
        assert_eq!(api.calls(Endpoint::Refresh), 1);
        assert_eq!(api.reused(), 0);
        assert_eq!(api.calls(Endpoint::Password), 2);
        assert_eq!(header_of(cache.lookup()), "Bearer access-3");
    });
}

#[test]
fn a_runtime_without_timers_gets_an_error_not_a_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    runtime.block_on(async {
        for _ in 0..3 {
            let error = cache.access_token().await.unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::NoRuntime);
        }
    });
    assert!(
        api.calls(Endpoint::Password) <= 1,
        "the failure backs off rather than panicking on every request"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replay_refused_after_its_token_was_accepted_elsewhere_is_healed_once_more() {
    // An early expiry again, between the refresh and the replay's arrival.
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let first = cache.access_token().await.unwrap().0.generation;
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(first, 0) else {
        panic!("a 401 for the current token must refresh");
    };
    let healed = wait.await.unwrap().generation;
    cache.accepted(healed);
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(healed, 1) else {
        panic!("a refused replay of a proven token must refresh again");
    };
    let again = wait.await.unwrap().generation;
    assert_eq!(api.calls(Endpoint::Refresh), 2);
    // The last replay allowed is not healed again.
    assert!(matches!(
        cache.after_unauthorized(again, MAX_REPLAYS),
        AfterUnauthorized::PassThrough
    ));
    assert_eq!(api.calls(Endpoint::Refresh), 2);
}

#[tokio::test(start_paused = true)]
async fn a_replay_refused_for_a_replaced_token_is_replayed_with_the_current_one() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let first = cache.access_token().await.unwrap().0.generation;
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(first, 0) else {
        panic!("a 401 for the current token must refresh");
    };
    let healed = wait.await.unwrap().generation;
    cache.invalidate();
    let current = cache.access_token().await.unwrap().0.generation;
    match cache.after_unauthorized(healed, 1) {
        AfterUnauthorized::Replay(token) => assert_eq!(token.generation, current),
        _ => panic!("a newer token exists: replay with it"),
    }
}

/// Tokio drops a task spawned onto a runtime that has shut down inside
/// `spawn`, while the spawner holds the cache's lock: the flight's guard
/// must not take that lock then (code still running in the runtime's
/// context after `shutdown_background`, a worker finishing a poll while the
/// runtime is dropped).
#[test]
fn a_lookup_on_a_runtime_that_has_shut_down_does_not_deadlock() {
    let api = FakeApi::new(Reply::Token(3600));
    let cache = cache(&api);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = runtime.handle().clone();
    runtime.shutdown_background();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _context = handle.enter();
        let failed = matches!(cache.lookup(), Lookup::Failed(_) | Lookup::Wait(_));
        let _ = done.send(failed);
    });
    assert!(
        finished.recv_timeout(Duration::from_secs(5)).is_ok(),
        "lookup deadlocked on the cache's own lock"
    );
}

/// A proactive refresh spawned onto a runtime that is dropped before the
/// task first runs (a `block_on` that returns at once, then the runtime is
/// dropped): the task is dropped unstarted, outside `spawn` and without the
/// cache's lock held. Its claim on the proactive refresh must be given back
/// as for a flight lost mid-way, so the next runtime refreshes in the
/// background rather than only once the token has expired.
#[test]
fn a_flight_dropped_unstarted_with_its_runtime_gives_back_the_proactive_refresh() {
    let api = FakeApi::with_delay(Reply::Token(600), Duration::from_secs(5));
    let cache = cache_renewing_a_minute_ahead(&api);
    let first = paused_runtime();
    first.block_on(async {
        cache.access_token().await.unwrap();
        tokio::time::advance(Duration::from_secs(550)).await;
        // Claims the proactive refresh and spawns its flight, which never
        // runs: this `block_on` returns first.
        assert!(matches!(cache.lookup(), Lookup::Valid { .. }));
    });
    drop(first);
    assert_eq!(api.calls(Endpoint::Refresh), 0, "the flight never ran");
    paused_runtime().block_on(async {
        tokio::time::advance(Duration::from_secs(560)).await;
        assert!(matches!(cache.lookup(), Lookup::Valid { .. }));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(
            api.calls(Endpoint::Refresh),
            1,
            "no background refresh in the refresh window: the token is left to expire"
        );
    });
}

/// A replica that waited on another's failed call waits as long as that
/// call's `Retry-After` asked, not its own first backoff.
#[tokio::test(start_paused = true)]
async fn a_peers_retry_after_holds_back_the_whole_fleet() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Outage(Arc<AtomicUsize>);
    impl Transport for Outage {
        fn post_form(
            &self,
            _: Endpoint,
            _: Uri,
            _: Zeroizing<String>,
        ) -> BoxFuture<'static, Result<RawResponse, Error>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let mut headers = HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, "600".parse().unwrap());
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(RawResponse {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    headers,
                    body: Bytes::new(),
                })
            })
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let store: Arc<dyn crate::store::TokenStore> = Arc::new(MemoryStore::new());
    let replicas: Vec<_> = (0..4)
        .map(|_| {
            TokenCache::with_transport(
                Credentials::new("u", "p"),
                Environment::custom("http://127.0.0.1:1/api/v1").unwrap(),
                Settings::default(),
                Arc::clone(&store),
                Arc::new(Outage(Arc::clone(&calls))),
            )
        })
        .collect();
    let tasks: Vec<_> = replicas
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.access_token().await.unwrap_err() })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap();
        let wait = e.next_attempt_in().expect("a backoff");
        assert!(
            wait > Duration::from_secs(590),
            "every replica waits out the Retry-After: {wait:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for the fleet");
    tokio::time::advance(Duration::from_secs(5)).await;
    for r in &replicas {
        let e = r.access_token().await.unwrap_err();
        assert!(
            e.next_attempt_in() > Some(Duration::from_secs(590)),
            "{e:?}"
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a replica called the auth api 5 s after a Retry-After: 600"
    );
}
