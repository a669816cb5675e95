//! Auth API faults over real HTTP on loopback, against the mock: connections
//! dropped mid-response, a rotation committed and its answer lost, 429 with
//! and without `Retry-After`, and a 401 arriving during a proactive refresh.
//!
//! Timing runs on a paused clock held still (see `support::hold_clock`), so
//! backoffs and delays pass only when a test advances the clock, and every
//! await is bounded by wall-clock time.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::Full;
use hyper::body::Incoming;
use simacan_auth::ErrorKind;
use simacan_auth::{
    Endpoint,
    mock::{Fault, MockAuthApi, Route},
};
use support::*;
use tower::{BoxError, ServiceExt};

/// The layer's backoff in these tests: the first failure waits ½–1 × this.
const BACKOFF: Duration = Duration::from_secs(1);
/// Less than the shortest first backoff.
const WITHIN_BACKOFF: Duration = Duration::from_millis(400);
/// More than the longest first backoff.
const PAST_BACKOFF: Duration = Duration::from_millis(1100);

async fn call(svc: &Authed, mock: &MockAuthApi) -> Result<Response<Incoming>, BoxError> {
    let request = Request::get(mock.url("/trips"))
        .body(Full::<Bytes>::default())
        .unwrap();
    bounded_wall(svc.clone().oneshot(request)).await
}

async fn status(svc: &Authed, mock: &MockAuthApi) -> StatusCode {
    call(svc, mock).await.expect("a response").status()
}

/// A service whose token has been obtained, with the test backoff.
async fn logged_in(mock: &MockAuthApi) -> Authed {
    let svc = client_through(&layer_for(mock).backoff(BACKOFF, BACKOFF));
    assert_eq!(status(&svc, mock).await, StatusCode::OK);
    svc
}

fn too_many_requests(retry_after: Option<&str>) -> Response<String> {
    let mut response = Response::builder().status(StatusCode::TOO_MANY_REQUESTS);
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds);
    }
    response.body(String::new()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_login_cut_off_mid_response_is_a_typed_error_that_backs_off_then_recovers() {
    let _held = hold_clock();
    for fault in [Fault::Close, Fault::CutBody, Fault::CommitThenClose] {
        let mock = mock().await;
        mock.fail_next(Route::Password, fault);
        let svc = client_through(&layer_for(&mock).backoff(BACKOFF, BACKOFF));

        let error = call(&svc, &mock).await.unwrap_err();
        let error = auth_error(&error);
        assert!(
            (error.kind() == ErrorKind::AuthApiUnavailable
                && error.endpoint() == Some(Endpoint::Password)),
            "{fault:?}: {error:?}"
        );
        assert!(error.is_transient(), "{fault:?}");

        tokio::time::advance(WITHIN_BACKOFF).await;
        let again = call(&svc, &mock).await.unwrap_err();
        assert!(
            auth_error(&again).kind() == ErrorKind::AuthApiUnavailable,
            "{fault:?}: the last error, fast"
        );
        assert_eq!(
            mock.counts().password,
            1,
            "{fault:?}: no login during the backoff"
        );

        tokio::time::advance(PAST_BACKOFF - WITHIN_BACKOFF).await;
        assert_eq!(status(&svc, &mock).await, StatusCode::OK, "{fault:?}");
        let counts = mock.counts();
        assert_eq!(counts.password, 2, "{fault:?}");
        assert_eq!(counts.target, 1, "{fault:?}: nothing sent without a token");
    }
}

/// A refresh whose connection dropped before its answer may or may not
/// have been rotated: its refresh token is never sent again, and the next
/// attempt, after the backoff, logs in with the password once.
#[tokio::test(start_paused = true)]
async fn a_refresh_dropped_before_its_answer_is_never_sent_again() {
    let _held = hold_clock();
    let mock = mock().await;
    let svc = logged_in(&mock).await;
    mock.revoke_access_tokens();
    mock.fail_next(Route::Refresh, Fault::Close);

    let error = call(&svc, &mock).await.unwrap_err();
    assert!(
        (auth_error(&error).kind() == ErrorKind::AuthApiUnavailable
            && auth_error(&error).endpoint() == Some(Endpoint::Refresh)),
        "{error:?}"
    );
    tokio::time::advance(WITHIN_BACKOFF).await;
    assert_ne!(status(&svc, &mock).await, StatusCode::OK);
    assert_eq!(mock.counts().refresh, 1, "no refresh during the backoff");

    tokio::time::advance(PAST_BACKOFF - WITHIN_BACKOFF).await;
    assert_eq!(status(&svc, &mock).await, StatusCode::OK);
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1);
    assert_eq!((counts.refresh_rejected, counts.refresh_reused), (0, 0));
    assert_eq!(
        counts.password, 2,
        "one login instead of a possibly spent token"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rotation_committed_then_lost_recovers_through_exactly_one_password_login() {
    let _held = hold_clock();
    for fault in [Fault::CommitThenClose, Fault::CutBody] {
        let mock = mock().await;
        let svc = logged_in(&mock).await;
        mock.revoke_access_tokens();
        mock.fail_next(Route::Refresh, fault);

        let error = call(&svc, &mock).await.unwrap_err();
        assert!(
            (auth_error(&error).kind() == ErrorKind::AuthApiUnavailable
                && auth_error(&error).endpoint() == Some(Endpoint::Refresh)),
            "{fault:?}: {error:?}"
        );
        assert_eq!(mock.counts().password, 1, "{fault:?}");

        tokio::time::advance(PAST_BACKOFF).await;
        assert_eq!(status(&svc, &mock).await, StatusCode::OK, "{fault:?}");
        let counts = mock.counts();
        assert_eq!(
            counts.refresh_reused, 0,
            "{fault:?}: the lost rotation's token is never sent again"
        );
        assert_eq!(counts.refresh, 1, "{fault:?}");
        assert_eq!(counts.password, 2, "{fault:?}: one password login");

        // No loop: ten quiet minutes of requests call the Auth API no more,
        // and the next early expiry is healed by a plain refresh.
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(60)).await;
            assert_eq!(status(&svc, &mock).await, StatusCode::OK, "{fault:?}");
        }
        let quiet = mock.counts();
        assert_eq!(
            (quiet.password, quiet.refresh, quiet.target_unauthorized),
            (counts.password, counts.refresh, counts.target_unauthorized),
            "{fault:?}"
        );
        mock.revoke_access_tokens();
        assert_eq!(status(&svc, &mock).await, StatusCode::OK, "{fault:?}");
        let last = mock.counts();
        assert_eq!(
            (last.password, last.refresh, last.refresh_reused),
            (2, 2, 0),
            "{fault:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_refresh_429_with_retry_after_waits_that_long_and_never_sends_the_password() {
    let _held = hold_clock();
    let mock = mock().await;
    // A backoff far shorter than the Retry-After.
    let svc = client_through(
        &layer_for(&mock).backoff(Duration::from_millis(100), Duration::from_secs(60)),
    );
    assert_eq!(status(&svc, &mock).await, StatusCode::OK);
    mock.revoke_access_tokens();
    mock.respond_next(Route::Refresh, too_many_requests(Some("5")));

    let error = call(&svc, &mock).await.unwrap_err();
    let error = auth_error(&error);
    assert!(
        (error.endpoint() == Some(Endpoint::Refresh)
            && error.status() == Some(StatusCode::TOO_MANY_REQUESTS)),
        "{error:?}"
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(5)));
    assert!(error.is_transient());

    for _ in 0..49 {
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_ne!(status(&svc, &mock).await, StatusCode::OK);
    }
    assert_eq!(mock.counts().refresh, 1, "nothing before Retry-After ends");
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(status(&svc, &mock).await, StatusCode::OK);
    let counts = mock.counts();
    assert_eq!(counts.refresh, 2);
    assert_eq!(counts.password, 1, "a refresh 429 never sends the password");
}

#[tokio::test(start_paused = true)]
async fn a_refresh_429_without_retry_after_waits_the_backoff_and_never_sends_the_password() {
    let _held = hold_clock();
    let mock = mock().await;
    let svc = logged_in(&mock).await;
    mock.revoke_access_tokens();
    mock.respond_next(Route::Refresh, too_many_requests(None));

    let error = call(&svc, &mock).await.unwrap_err();
    let error = auth_error(&error);
    assert!(
        error.status() == Some(StatusCode::TOO_MANY_REQUESTS),
        "{error:?}"
    );
    // No Retry-After: the time to the next attempt is the layer's own
    // first backoff, at most a second, told to the millisecond.
    let told = error.next_attempt_in().unwrap();
    assert!(
        told > Duration::ZERO && told <= Duration::from_secs(1),
        "{told:?}"
    );
    tokio::time::advance(WITHIN_BACKOFF).await;
    assert_ne!(status(&svc, &mock).await, StatusCode::OK);
    assert_eq!(mock.counts().refresh, 1, "no refresh during the backoff");
    tokio::time::advance(PAST_BACKOFF - WITHIN_BACKOFF).await;
    assert_eq!(status(&svc, &mock).await, StatusCode::OK);
    let counts = mock.counts();
    assert_eq!((counts.refresh, counts.password), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_login_429_with_retry_after_is_not_retried_before_it_ends() {
    let _held = hold_clock();
    let mock = mock().await;
    mock.respond_next(Route::Password, too_many_requests(Some("5")));
    let svc = client_through(
        &layer_for(&mock).backoff(Duration::from_millis(100), Duration::from_secs(60)),
    );
    let error = call(&svc, &mock).await.unwrap_err();
    assert_eq!(
        auth_error(&error).retry_after(),
        Some(Duration::from_secs(5))
    );
    tokio::time::advance(Duration::from_millis(4900)).await;
    let again = call(&svc, &mock).await.unwrap_err();
    assert!(auth_error(&again).status() == Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(mock.counts().password, 1);
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(status(&svc, &mock).await, StatusCode::OK);
    assert_eq!(mock.counts().password, 2);
}

#[tokio::test(start_paused = true)]
async fn an_early_expiry_401_joins_the_proactive_refresh_in_flight() {
    let _held = hold_clock();
    let mock = mock().await;
    // Refreshed proactively 20 to 22 s before its 60 s expiry.
    mock.set_token_lifetime(Duration::from_secs(60));
    let layer = layer_for(&mock).refresh_before_expiry(Duration::from_secs(20));
    let svc = client_through(&layer);
    assert_eq!(status(&svc, &mock).await, StatusCode::OK);
    let before = mock.target_requests()[0].headers[AUTHORIZATION].clone();

    // Into the refresh window: the next request starts the proactive refresh
    // and is itself sent with the still-valid token.
    mock.set_delay(Route::Refresh, Duration::from_secs(2));
    tokio::time::advance(Duration::from_secs(45)).await;
    assert_eq!(status(&svc, &mock).await, StatusCode::OK);
    settle_until(|| mock.counts().refresh == 1).await;

    // The token expires early while that refresh is in flight.
    mock.revoke_access_tokens();
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let svc = svc.clone();
            let request = Request::get(mock.url("/trips"))
                .body(Full::<Bytes>::default())
                .unwrap();
            tokio::spawn(svc.oneshot(request))
        })
        .collect();
    settle_until(|| mock.counts().target_unauthorized == 5).await;
    assert!(
        calls.iter().all(|call| !call.is_finished()),
        "the 401s wait for the refresh in flight"
    );
    assert_eq!(mock.counts().refresh, 1);

    tokio::time::advance(Duration::from_secs(2)).await;
    for call in calls {
        let response = bounded_wall(call).await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1, "the 401s joined the proactive refresh");
    assert_eq!(counts.password, 1);
    assert_eq!(counts.target_unauthorized, 5);
    assert_eq!(counts.target, 2 + 5 + 5, "each 401 replayed once");
    let replayed = mock.target_requests();
    assert!(
        replayed[7..]
            .iter()
            .all(|r| r.authorized && r.headers[AUTHORIZATION] != before)
    );
}

/// A `Retry-After` longer than the backoff's longest wait is honoured all
/// the same: never sooner than the Auth API asked (up to an hour).
#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_longest_backoff_is_honoured() {
    let _held = hold_clock();
    let mock = mock().await;
    let unavailable = Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header("retry-after", "600")
        .body(String::new())
        .unwrap();
    mock.respond_next(Route::Password, unavailable);
    let svc = client_through(&layer_for(&mock));
    let error = call(&svc, &mock).await.unwrap_err();
    assert_eq!(
        auth_error(&error).retry_after(),
        Some(Duration::from_secs(600))
    );
    tokio::time::advance(Duration::from_secs(590)).await;
    let again = call(&svc, &mock).await.unwrap_err();
    assert_eq!(
        auth_error(&again).next_attempt_in(),
        Some(Duration::from_secs(10))
    );
    assert_eq!(mock.counts().password, 1, "nothing before Retry-After ends");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(status(&svc, &mock).await, StatusCode::OK);
}
