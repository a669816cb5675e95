//! `SimacanAuthLayer::stats` over real HTTP against the mock Simacan Auth
//! API: what each story of the demo counts.

mod support;

use std::time::Duration;

use http::{Request, StatusCode};
use simacan_auth::{Credentials, ErrorKind, SimacanAuthLayer, Stats};
use support::*;
use tower::{Layer, ServiceExt};

/// The counts of a layer that has not obtained a token nor seen a 401.
fn assert_untouched(stats: &Stats) {
    assert_eq!(
        [
            stats.logins,
            stats.refreshes,
            stats.password_fallbacks,
            stats.tokens_adopted,
            stats.unauthorized,
            stats.unauthorized_healed,
            stats.unauthorized_passed_through,
            stats.replays_refused,
            stats.unauthorized_errors,
            stats.failures_total(),
        ],
        [0; 10],
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_cold_burst_counts_one_login_and_shows_the_token() {
    let mock = mock().await;
    mock.set_token_lifetime(Duration::from_secs(600));
    let layer = layer_for(&mock);
    assert_untouched(&layer.stats());
    let statuses = burst(&client_through(&layer), &mock.url("/trips"), 25).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    let stats = layer.stats();
    assert_eq!(stats.logins, 1);
    assert_eq!(stats.refreshes + stats.password_fallbacks, 0);
    assert_eq!(stats.unauthorized, 0);
    assert_eq!(stats.failures_total(), 0);
    assert_eq!(stats.backoff_remaining, None);
    let age = stats.token_age.expect("a token");
    let left = stats.token_expires_in.expect("a token");
    assert!(age < Duration::from_secs(10), "{age:?}");
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
}

#[tokio::test]
async fn revoked_tokens_count_one_refresh_and_every_healed_401() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    let statuses = burst(&svc, &mock.url("/trips"), 12).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert_eq!(mock.counts().target_unauthorized, 12);
    let stats = layer.stats();
    assert_eq!((stats.logins, stats.refreshes), (1, 1));
    assert_eq!(stats.unauthorized, 12);
    assert_eq!(stats.unauthorized_healed, 12);
    assert_eq!(stats.unauthorized_passed_through, 0);
}

#[tokio::test]
async fn expired_refresh_tokens_count_one_password_fallback() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    mock.expire_refresh_tokens();
    let statuses = burst(&svc, &mock.url("/trips"), 10).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert_eq!(mock.counts().refresh_rejected, 1);
    let stats = layer.stats();
    assert_eq!(
        (stats.logins, stats.refreshes, stats.password_fallbacks),
        (1, 0, 1)
    );
    assert_eq!((stats.unauthorized, stats.unauthorized_healed), (10, 10));
}

#[tokio::test]
async fn a_resource_refusing_every_token_counts_its_401s_passed_through() {
    let mock = mock().await;
    let layer = layer_for(&mock).unauthorized_cooldown(Duration::from_secs(60));
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.set_target_rejects_every_token(true);
    for _ in 0..5 {
        let status = get_status(&svc, &mock.url("/admin")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let stats = layer.stats();
    assert_eq!(stats.refreshes, 1, "only the first 401 refreshed");
    assert_eq!(stats.unauthorized, 5, "first attempts refused");
    assert_eq!(stats.replays_refused, 1);
    assert_eq!(
        stats.unauthorized_passed_through, 5,
        "the refused replay and four in the cooldown"
    );
    assert_eq!(stats.unauthorized_healed, 0);
}

#[tokio::test]
async fn a_401_for_a_body_that_cannot_be_replayed_counts_as_passed_through() {
    let mock = mock().await;
    let layer = layer_for(&mock).replay_body_limit(4);
    let svc = layer.layer(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<String>(),
    );
    let post = || {
        Request::post(mock.url("/trips"))
            .body(String::from("more than four bytes"))
            .unwrap()
    };
    let first = bounded(svc.clone().oneshot(post())).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    mock.revoke_access_tokens();
    let refused = bounded(svc.clone().oneshot(post())).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let stats = layer.stats();
    assert_eq!(stats.unauthorized, 1);
    assert_eq!(stats.unauthorized_passed_through, 1);
    assert_eq!(stats.replays_refused, 0, "nothing was replayed");
    assert_eq!(stats.unauthorized_healed, 0);
    // The token is refreshed for the next request all the same.
    bounded(async {
        while layer.stats().refreshes == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(layer.stats().unauthorized_passed_through, 1);
}

#[tokio::test]
async fn a_rejected_password_counts_its_kind_once_and_shows_the_backoff() {
    let mock = mock().await;
    let layer = SimacanAuthLayer::new(Credentials::new("planner@example.com", "wrong"))
        .environment(mock.environment())
        .backoff(Duration::from_secs(1), Duration::from_secs(120));
    let svc = client_through(&layer);
    for _ in 0..5 {
        assert!(get(&svc, &mock.url("/trips")).await.is_err());
    }
    assert_eq!(mock.counts().password, 1);
    let stats = layer.stats();
    assert_eq!(stats.failures(ErrorKind::InvalidCredentials), 1);
    assert_eq!(
        stats.failures_total(),
        1,
        "fail-fast requests are no failures"
    );
    assert_eq!(stats.consecutive_failures, 1);
    assert_eq!(stats.logins, 0);
    assert_eq!(stats.token_age, None);
    let left = stats.backoff_remaining.expect("backing off");
    assert!(
        left > Duration::from_secs(110) && left <= Duration::from_secs(120),
        "rejected credentials wait the longest backoff: {left:?}"
    );
}

#[tokio::test]
async fn an_unreachable_auth_api_counts_as_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let environment =
        simacan_auth::Environment::custom(format!("http://127.0.0.1:{port}/api/v1")).unwrap();
    let layer = SimacanAuthLayer::new(Credentials::new("u", "p")).environment(environment);
    assert!(bounded(layer.access_token()).await.is_err());
    let stats = layer.stats();
    assert_eq!(stats.failures(ErrorKind::AuthApiUnavailable), 1);
    assert_eq!(stats.failures_total(), 1);
    assert!(stats.backoff_remaining.is_some());
}

#[tokio::test]
async fn clones_share_one_set_of_counts_and_a_configured_layer_has_its_own() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let clone = layer.clone();
    let configured = layer.clone().auth_timeout(Duration::from_secs(5));
    assert_eq!(
        get_status(&client_through(&clone), &mock.url("/trips")).await,
        StatusCode::OK
    );
    assert_eq!(layer.stats().logins, 1, "counted where the clone logged in");
    assert_eq!(configured.stats().logins, 0);
    // Its own token state takes the token from the layers' shared store.
    bounded(configured.access_token()).await.unwrap();
    let stats = configured.stats();
    assert_eq!((stats.logins, stats.tokens_adopted), (0, 1));
    assert_eq!(mock.counts().password, 1);
}

/// A 401 healed, one passed through, one whose refresh failed and one whose
/// replay failed: every 401 ends in exactly one of the three counts.
#[tokio::test]
async fn every_401_ends_healed_passed_through_or_as_an_error() {
    use std::{
        collections::HashSet,
        sync::{Arc, Mutex},
    };

    use http::Response;
    use hyper::body::Incoming;
    use simacan_auth::mock::Route;
    use tower::{BoxError, service_fn};

    let mock = mock().await;
    let layer = layer_for(&mock)
        .backoff(Duration::from_secs(60), Duration::from_secs(60))
        .unauthorized_cooldown(Duration::ZERO);
    // Requests carry an id; a second sending of one (a replay) fails in the
    // inner service while `fail_replays` is on.
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let fail_replays = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let inner = {
        let client = client();
        let (seen, fail_replays) = (seen.clone(), fail_replays.clone());
        service_fn(move |request: Request<_>| {
            let id = request.headers()["x-id"].to_str().unwrap().to_owned();
            let replay = !seen.lock().unwrap().insert(id);
            let fail = replay && fail_replays.load(std::sync::atomic::Ordering::SeqCst);
            let client = client.clone();
            async move {
                if fail {
                    return Err::<Response<Incoming>, BoxError>("the replay failed".into());
                }
                Ok(client.request(request).await?)
            }
        })
    };
    let svc = layer.layer(inner);
    let mut next_id = 0;
    let mut send = || {
        next_id += 1;
        let request = Request::get(mock.url("/trips"))
            .header("x-id", next_id.to_string())
            .body(http_body_util::Full::default())
            .unwrap();
        bounded(svc.clone().oneshot(request))
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);

    // Healed: the refresh and the replay succeed.
    mock.revoke_access_tokens();
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    // An error: the replay fails in the inner service.
    fail_replays.store(true, std::sync::atomic::Ordering::SeqCst);
    mock.revoke_access_tokens();
    assert_eq!(send().await.unwrap_err().to_string(), "the replay failed");
    // Passed through: the token obtained to heal was refused before it was
    // ever accepted (a cooldown, here of zero).
    mock.revoke_access_tokens();
    assert_eq!(send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // An error: the refresh fails (a failure of its own kind too).
    let outage = Response::builder().status(503).body(String::new()).unwrap();
    mock.respond_next(Route::Refresh, outage);
    let error = send().await.unwrap_err();
    assert_eq!(auth_error(&error).kind(), ErrorKind::AuthApiUnavailable);
    // Passed through: the Auth API is backing off.
    assert_eq!(send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    let stats = layer.stats();
    assert_eq!(stats.unauthorized, 5, "{stats:?}");
    assert_eq!(stats.unauthorized_healed, 1, "{stats:?}");
    assert_eq!(stats.unauthorized_errors, 2, "{stats:?}");
    assert_eq!(stats.unauthorized_passed_through, 2, "{stats:?}");
    assert_eq!(
        stats.unauthorized,
        stats.unauthorized_healed + stats.unauthorized_passed_through + stats.unauthorized_errors
    );
    assert_eq!(stats.failures(ErrorKind::AuthApiUnavailable), 1);
}
