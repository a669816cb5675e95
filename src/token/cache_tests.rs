//! The cache's rules, driven by an in-memory Auth API on tokio's paused clock.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};
use zeroize::Zeroizing;

use super::*;
use crate::{
    token::client::{RawResponse, Transport},
    Endpoint,
};

/// What the fake Auth API answers to one call.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// A fresh token pair valid for this many seconds.
    Token(u64),
    Status(u16),
    /// A transport failure.
    Down,
}

/// An Auth API in memory: scripted replies, a delay per call, and a record of
/// every form it received.
struct FakeApi {
    script: Mutex<VecDeque<Reply>>,
    otherwise: Reply,
    delay: Duration,
    issued: AtomicUsize,
    calls: Mutex<Vec<(Endpoint, String)>>,
}

impl FakeApi {
    fn new(otherwise: Reply) -> Arc<Self> {
        Self::with_delay(otherwise, Duration::from_millis(50))
    }

    fn with_delay(otherwise: Reply, delay: Duration) -> Arc<Self> {
        Arc::new(FakeApi {
            script: Mutex::new(VecDeque::new()),
            otherwise,
            delay,
            issued: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn then(self: &Arc<Self>, reply: Reply) -> &Arc<Self> {
        self.script.lock().unwrap().push_back(reply);
        self
    }

    fn calls(&self, endpoint: Endpoint) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| *e == endpoint)
            .count()
    }

    fn forms(&self) -> Vec<(Endpoint, String)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Transport for FakeApi {
    fn post_form(
        &self,
        endpoint: Endpoint,
        _uri: Uri,
        form: Zeroizing<String>,
    ) -> BoxFuture<'static, Result<RawResponse, Error>> {
        self.calls
            .lock()
            .unwrap()
            .push((endpoint, form.to_string()));
        let reply = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(self.otherwise);
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let (status, body) = match reply {
                Reply::Token(secs) => (
                    200,
                    format!(
                        r#"{{"access_token":"access-{n}","refresh_token":"refresh-{n}","token_type":"bearer","expires_in":{secs}}}"#
                    ),
                ),
                Reply::Status(status) => (status, String::new()),
                Reply::Down => {
                    return Err(Error::unreachable(
                        endpoint,
                        std::io::Error::other("connection refused"),
                    ))
                }
            };
            Ok(RawResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: HeaderMap::new(),
                body: Bytes::from(body),
            })
        })
    }
}

fn cache(api: &Arc<FakeApi>) -> TokenCache {
    cache_with(api, Settings::default())
}

fn cache_with(api: &Arc<FakeApi>, settings: Settings) -> TokenCache {
    TokenCache::with_transport(
        Credentials::new("user", "pw"),
        Environment::custom("http://127.0.0.1:1/api/v1").unwrap(),
        settings,
        api.clone(),
    )
}

fn header_of(lookup: Lookup) -> String {
    match lookup {
        Lookup::Valid { header, .. } => header.to_str().unwrap().to_owned(),
        Lookup::Wait(_) => panic!("expected a valid token, had to wait"),
        Lookup::Failed(e) => panic!("expected a valid token, got {e}"),
    }
}

async fn settle() {
    // Lets spawned flights run; the paused clock advances through their delay.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

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
    assert!(
        matches!(error, Error::UnexpectedStatus { status, .. } if status == StatusCode::SERVICE_UNAVAILABLE)
    );
    for _ in 0..10 {
        match cache.lookup() {
            Lookup::Failed(Error::UnexpectedStatus { .. }) => {}
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
async fn rejected_password_is_not_retried_until_the_longest_backoff() {
    let api = FakeApi::new(Reply::Status(401));
    let cache = cache(&api);
    for _ in 0..20 {
        assert!(matches!(
            cache.access_token().await,
            Err(Error::InvalidCredentials)
        ));
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
    let AfterUnauthorized::Wait(wait) = cache.after_unauthorized(first.0.generation) else {
        panic!("a 401 for the current token must refresh");
    };
    let second = wait.await.unwrap();
    match cache.after_unauthorized(first.0.generation) {
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
        .map(|_| match cache.after_unauthorized(generation) {
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
    cache.access_token().await.unwrap();
    cache.replay_unauthorized();
    let generation = cache.current_generation().unwrap();
    for _ in 0..10 {
        assert!(matches!(
            cache.after_unauthorized(generation),
            AfterUnauthorized::PassThrough
        ));
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(matches!(
        cache.after_unauthorized(generation),
        AfterUnauthorized::Wait(_)
    ));
    settle().await;
    assert_eq!(api.calls(Endpoint::Refresh), 1);
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
    assert!(
        matches!(
            error,
            Error::Timeout {
                endpoint: Endpoint::Password,
                ..
            }
        ),
        "{error:?}"
    );
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
        Arc::new(Garbage),
    );
    assert!(matches!(
        cache.access_token().await,
        Err(Error::MalformedResponse {
            endpoint: Endpoint::Password,
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn huge_settings_saturate_instead_of_overflowing() {
    let api = FakeApi::new(Reply::Status(503));
    let settings = Settings {
        unauthorized_cooldown: Duration::MAX,
        backoff: Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
        },
        refresh_before_expiry: Duration::MAX,
        auth_timeout: Duration::MAX,
    };
    let cache = cache_with(&api, settings);
    assert!(cache.access_token().await.is_err());
    cache.replay_unauthorized();
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
