//! The core layer over real HTTP against the mock Simacan Auth API.

mod support;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::{Empty, Full};
use simacan_auth::ErrorKind;
use simacan_auth::{
    Credentials, Endpoint, Environment, Error, SimacanAuth, SimacanAuthLayer,
    mock::{Counts, Route},
    store::{MemoryStore, StoreKey, TokenStore},
};
use support::*;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

#[tokio::test]
async fn cold_start_burst_shares_one_login() {
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    let statuses = burst(&svc, &mock.url("/trips"), 60).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "one login for the whole burst");
    assert_eq!(counts.refresh, 0);
    assert_eq!(counts.target, 60);
    assert_eq!(counts.target_unauthorized, 0);
}

#[tokio::test]
async fn login_percent_encodes_the_credentials() {
    // The mock's password is "p@ss w0rd&=%+": a naive form body would fail.
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    assert_eq!(mock.counts().password_rejected, 0);
}

#[tokio::test]
async fn every_request_carries_the_bearer_token_replacing_any_other() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let svc = client_through(&layer);
    let request = Request::get(mock.url("/trips"))
        .header(AUTHORIZATION, "Basic dXNlcjpwdw==")
        .header(AUTHORIZATION, "Bearer stale")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&svc, request).await.unwrap().status(), StatusCode::OK);
    let token = layer.access_token().await.unwrap();
    let recorded = &mock.target_requests()[0];
    let values: Vec<_> = recorded.headers.get_all(AUTHORIZATION).iter().collect();
    assert_eq!(values, [&format!("Bearer {}", token.expose_secret())]);
}

#[tokio::test]
async fn the_header_is_marked_sensitive() {
    let mock = mock().await;
    let seen = Arc::new(Mutex::new(None));
    let inner = {
        let seen = seen.clone();
        service_fn(move |request: Request<Empty<Bytes>>| {
            *seen.lock().unwrap() = request
                .headers()
                .get(AUTHORIZATION)
                .map(|v| v.is_sensitive());
            async { Ok::<_, Infallible>(Response::new(())) }
        })
    };
    let svc = layer_for(&mock).layer(inner);
    bounded(svc.oneshot(Request::new(Empty::new())))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(true));
}

#[tokio::test]
async fn clones_of_a_layer_and_its_services_share_one_token() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let a = client_through(&layer);
    let b = client_through(&layer.clone());
    let c = a.clone();
    for svc in [&a, &b, &c] {
        assert_eq!(get_status(svc, &mock.url("/trips")).await, StatusCode::OK);
    }
    assert!(layer.access_token().await.is_ok());
    assert_eq!(mock.counts().password, 1);
}

#[tokio::test]
async fn layers_configured_after_cloning_share_one_login_and_one_refresh_chain() {
    let mock = mock().await;
    let base = layer_for(&mock);
    let replicas = [
        client_through(&base.clone().auth_timeout(Duration::from_secs(5))),
        client_through(&base.clone().unauthorized_cooldown(Duration::from_secs(1))),
        client_through(&base),
    ];
    for svc in &replicas {
        assert_eq!(
            burst(svc, &mock.url("/trips"), 5).await,
            [StatusCode::OK; 5]
        );
    }
    mock.revoke_access_tokens();
    for svc in &replicas {
        assert_eq!(
            burst(svc, &mock.url("/trips"), 5).await,
            [StatusCode::OK; 5]
        );
    }
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "one login for the configured clones");
    assert_eq!(counts.refresh, 1, "one refresh for the revocation");
    assert_eq!(counts.refresh_rejected, 0);
}

#[tokio::test]
async fn separately_made_layers_keep_separate_tokens() {
    // Two `SimacanAuthLayer::new` are two token states, as two processes are.
    let mock = mock().await;
    for _ in 0..2 {
        let svc = client_through(&layer_for(&mock));
        assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    }
    assert_eq!(mock.counts().password, 2);
}

#[tokio::test]
async fn early_expiry_is_healed_by_one_refresh_for_a_burst() {
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    mock.set_delay(Route::Refresh, Duration::from_millis(100));
    let statuses = burst(&svc, &mock.url("/trips"), 40).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1, "one refresh for all concurrent 401s");
    assert_eq!(counts.password, 1);
    assert_eq!(counts.refresh_rejected, 0);
    assert!(counts.target_unauthorized >= 1 && counts.target_unauthorized <= 40);
    assert_eq!(counts.target, 41 + counts.target_unauthorized);
}

#[tokio::test]
async fn replay_sends_the_same_method_uri_headers_and_body() {
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    let body = Bytes::from_static(br#"{"trip":"AMS-RTM","stops":3}"#);
    let request = Request::put(mock.url("/trips/42?dry_run=true"))
        .header("content-type", "application/json")
        .header("x-correlation-id", "abc-123")
        .body(Full::new(body.clone()))
        .unwrap();
    let response = send(&svc, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_of(response).await,
        body,
        "the target echoes what it read"
    );
    let recorded = mock.target_requests();
    let (rejected, replayed) = (&recorded[1], &recorded[2]);
    assert!(!rejected.authorized && replayed.authorized);
    assert_eq!(replayed.method, http::Method::PUT);
    assert_eq!(replayed.path, "/trips/42?dry_run=true");
    assert_eq!(replayed.headers["x-correlation-id"], "abc-123");
    assert_eq!(replayed.headers["content-type"], "application/json");
    assert_eq!(replayed.body, body);
    assert_ne!(
        rejected.headers[AUTHORIZATION],
        replayed.headers[AUTHORIZATION]
    );
}

#[derive(Clone, Debug, PartialEq)]
struct TraceId(u32);

#[tokio::test]
async fn replay_keeps_the_extensions() {
    let mock = mock().await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let attempts = attempts.clone();
        service_fn(move |request: Request<Full<Bytes>>| {
            let mut attempts = attempts.lock().unwrap();
            attempts.push(request.extensions().get::<TraceId>().cloned());
            let status = if attempts.len() == 1 {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            async move { Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap()) }
        })
    };
    let svc = layer_for(&mock).layer(inner);
    let mut request = Request::new(Full::default());
    request.extensions_mut().insert(TraceId(7));
    let response = bounded(svc.oneshot(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        *attempts.lock().unwrap(),
        [Some(TraceId(7)), Some(TraceId(7))]
    );
    assert_eq!(mock.counts().refresh, 1);
}

#[tokio::test]
async fn a_401_for_a_replaced_token_replays_without_another_refresh() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let first_token = layer
        .access_token()
        .await
        .unwrap()
        .expose_secret()
        .to_owned();
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let held = Arc::new(Mutex::new(Some(held)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let (held, seen) = (held.clone(), seen.clone());
        service_fn(move |request: Request<Full<Bytes>>| {
            let token = request.headers()[AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned();
            seen.lock().unwrap().push(token.clone());
            let gate = held.lock().unwrap().take();
            async move {
                // The first attempt is held until the token has been replaced.
                let status = match gate {
                    Some(gate) => {
                        gate.await.ok();
                        StatusCode::UNAUTHORIZED
                    }
                    None => StatusCode::OK,
                };
                Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
            }
        })
    };
    let svc = layer.layer(inner);
    let call = tokio::spawn(svc.oneshot(Request::new(Full::default())));
    while seen.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    layer.invalidate();
    let second_token = layer
        .access_token()
        .await
        .unwrap()
        .expose_secret()
        .to_owned();
    assert_ne!(first_token, second_token);
    release.send(()).unwrap();
    let response = bounded(call).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        mock.counts().refresh,
        1,
        "the 401 named a replaced token: no second refresh"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        [
            format!("Bearer {first_token}"),
            format!("Bearer {second_token}")
        ]
    );
}

#[tokio::test]
async fn a_401_on_the_replay_goes_to_the_caller() {
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.set_target_rejects_every_token(true);
    assert_eq!(
        get_status(&svc, &mock.url("/trips")).await,
        StatusCode::UNAUTHORIZED
    );
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1);
    assert_eq!(
        counts.target, 3,
        "first call, one rejected attempt, one replay"
    );
}

#[tokio::test]
async fn other_statuses_never_refresh() {
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    for status in [403, 404, 407, 500, 503] {
        let canned = Response::builder()
            .status(status)
            .body(String::new())
            .unwrap();
        mock.respond_next(Route::Target, canned);
        assert_eq!(get_status(&svc, &mock.url("/trips")).await.as_u16(), status);
    }
    assert_eq!(mock.counts().refresh, 0);
    assert_eq!(mock.counts().target, 5);
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_never_resends_the_old_one() {
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    for _ in 0..4 {
        mock.revoke_access_tokens();
        assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    }
    let counts = mock.counts();
    assert_eq!(counts.password, 1);
    assert_eq!(counts.refresh, 3);
    assert_eq!(
        counts.refresh_rejected, 0,
        "a spent refresh token would be rejected"
    );
}

#[tokio::test]
async fn rejected_refresh_token_falls_back_to_the_password_once() {
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    mock.expire_refresh_tokens();
    let statuses = burst(&svc, &mock.url("/trips"), 20).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1);
    assert_eq!(counts.refresh_rejected, 1);
    assert_eq!(counts.password, 2, "first login and one fallback");
}

#[tokio::test]
async fn invalid_grant_on_refresh_also_falls_back() {
    let mock = mock().await;
    let svc = client_through(&layer_for(&mock));
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    let invalid_grant = Response::builder()
        .status(400)
        .body(r#"{"error":"invalid_grant"}"#.to_owned())
        .unwrap();
    mock.respond_next(Route::Refresh, invalid_grant);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    assert_eq!(mock.counts().password, 2);
}

#[tokio::test]
async fn other_refresh_failures_do_not_send_the_password() {
    for status in [500, 502, 503, 429, 403] {
        let mock = mock().await;
        let svc = client_through(&layer_for(&mock));
        assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
        mock.revoke_access_tokens();
        mock.respond_next(
            Route::Refresh,
            Response::builder()
                .status(status)
                .body(String::new())
                .unwrap(),
        );
        let error = get(&svc, &mock.url("/trips")).await.unwrap_err();
        assert!(
            auth_error(&error).endpoint() == Some(Endpoint::Refresh)
                && auth_error(&error).status().map(|s| s.as_u16()) == Some(status),
            "{error}"
        );
        assert_eq!(mock.counts().password, 1, "status {status}");
    }
}

#[tokio::test]
async fn token_is_renewed_ahead_of_expiry_without_a_401_or_a_wait() {
    let mock = mock().await;
    mock.set_token_lifetime(Duration::from_secs(2));
    let layer = layer_for(&mock).refresh_before_expiry(Duration::from_secs(1));
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let first = layer
        .access_token()
        .await
        .unwrap()
        .expose_secret()
        .to_owned();
    mock.set_delay(Route::Refresh, Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the request waited for the refresh"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let second = layer
        .access_token()
        .await
        .unwrap()
        .expose_secret()
        .to_owned();
    assert_ne!(first, second);
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1);
    assert_eq!(counts.password, 1);
    assert_eq!(counts.target_unauthorized, 0);
}

#[tokio::test]
async fn expired_token_makes_requests_wait_for_the_refresh() {
    let mock = mock().await;
    mock.set_token_lifetime(Duration::from_secs(1));
    let layer = layer_for(&mock).refresh_before_expiry(Duration::ZERO);
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let statuses = burst(&svc, &mock.url("/trips"), 20).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1);
    assert_eq!(
        counts.target_unauthorized, 0,
        "nobody sent the expired token"
    );
}

#[tokio::test]
async fn a_replay_that_meets_a_second_early_expiry_is_healed_once_more() {
    type Hold = Arc<Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>;
    let mock = mock().await;
    let validator = mock.validator();
    let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let arrived = Arc::new(Mutex::new(Some(arrived_tx)));
    let hold: Hold = Arc::new(Mutex::new(Some(release_rx)));
    let tagged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // A target that checks tokens as the mock does; the replay of the
    // request tagged `x-hold` waits, before its token is checked, until the
    // test lets it go.
    let inner = service_fn(move |request: Request<Full<Bytes>>| {
        let (validator, arrived, hold) = (validator.clone(), arrived.clone(), hold.clone());
        let nth = request
            .headers()
            .contains_key("x-hold")
            .then(|| tagged.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
        async move {
            if nth == Some(2) {
                let _ = arrived.lock().unwrap().take().unwrap().send(());
                let release = hold.lock().unwrap().take().unwrap();
                let _ = release.await;
            }
            let authorization = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
            let status = if validator.check(authorization) {
                200
            } else {
                401
            };
            let response = Response::builder().status(status).body(()).unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    let svc = layer_for(&mock).layer(inner);
    let plain = || Request::new(Full::<Bytes>::default());
    let status = |r: Result<Response<()>, tower::BoxError>| r.unwrap().status();
    assert_eq!(
        status(bounded(svc.clone().oneshot(plain())).await),
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    let held = Request::builder()
        .header("x-hold", "1")
        .body(Full::<Bytes>::default())
        .unwrap();
    let held = tokio::spawn(svc.clone().oneshot(held));
    // The held request was refused and refreshed; its replay is held.
    bounded(arrived_rx).await.unwrap();
    // Another request succeeds with the new token; then it expires early too.
    assert_eq!(
        status(bounded(svc.clone().oneshot(plain())).await),
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    release_tx.send(()).unwrap();
    let response = bounded(held).await.unwrap();
    assert_eq!(
        status(response),
        StatusCode::OK,
        "the second 401 was healed too"
    );
    let counts = mock.counts();
    assert_eq!(counts.refresh, 2);
    assert_eq!(counts.password, 1);
}

#[tokio::test]
async fn a_resource_that_refuses_every_token_causes_no_refresh_storm() {
    let mock = mock().await;
    let layer = layer_for(&mock).unauthorized_cooldown(Duration::from_millis(500));
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.set_target_rejects_every_token(true);
    for _ in 0..15 {
        assert_eq!(
            get_status(&svc, &mock.url("/admin")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(mock.counts().refresh, 1, "only the first 401 refreshed");
    // After the cooldown a genuine early expiry heals again.
    mock.set_target_rejects_every_token(false);
    tokio::time::sleep(Duration::from_millis(550)).await;
    mock.revoke_access_tokens();
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    assert_eq!(mock.counts().refresh, 2);
}

/// Ten POSTs whose `String` bodies are over the replay limit, to a resource
/// that refuses every token; returns the mock's counts.
async fn unreplayable_posts_refused_everywhere(expire_refresh_tokens: bool) -> Counts {
    let mock = mock().await;
    let layer = layer_for(&mock).replay_body_limit(4);
    let svc = layer.layer(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<String>(),
    );
    let post = |path: &str| {
        Request::post(mock.url(path))
            .body(String::from("more than four bytes"))
            .unwrap()
    };
    let first = bounded(svc.clone().oneshot(post("/trips"))).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    mock.set_target_rejects_every_token(true);
    if expire_refresh_tokens {
        mock.expire_refresh_tokens();
    }
    for _ in 0..10 {
        let response = bounded(svc.clone().oneshot(post("/admin"))).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    mock.counts()
}

#[tokio::test]
async fn unreplayable_requests_to_a_resource_that_refuses_every_token_cause_no_refresh_storm() {
    let counts = unreplayable_posts_refused_everywhere(false).await;
    assert_eq!(counts.refresh, 1, "only the first 401 refreshed");
    assert_eq!(counts.password, 1);
}

#[tokio::test]
async fn unreplayable_requests_never_hammer_the_password_when_refresh_tokens_are_refused() {
    let counts = unreplayable_posts_refused_everywhere(true).await;
    assert_eq!(counts.refresh, 1);
    assert_eq!(counts.password, 2, "the first login and one fallback");
}

#[tokio::test]
async fn a_refresh_token_the_auth_api_refused_is_never_sent_again() {
    let mock = mock().await;
    let layer = layer_for(&mock).backoff(Duration::from_millis(100), Duration::from_millis(100));
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    mock.expire_refresh_tokens();
    mock.respond_next(
        Route::Password,
        Response::builder().status(503).body(String::new()).unwrap(),
    );
    // The refresh is refused and the fallback fails.
    let error = get(&svc, &mock.url("/trips")).await.unwrap_err();
    assert!(auth_error(&error).status().is_some());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let counts = mock.counts();
    assert_eq!(
        counts.refresh, 1,
        "the refused refresh token was sent again"
    );
    assert_eq!(counts.refresh_rejected, 1);
    assert_eq!(counts.password, 3);
}

#[tokio::test]
async fn a_login_outlives_a_caller_dropped_by_a_timeout() {
    let mock = mock().await;
    mock.set_delay(Route::Password, Duration::from_millis(300));
    let layer = layer_for(&mock);
    let svc = ServiceBuilder::new()
        .timeout(Duration::from_millis(50))
        .layer(layer.clone())
        .service(client());
    let error = bounded(
        svc.clone().oneshot(
            Request::get(mock.url("/trips"))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await
    .unwrap_err();
    assert!(error.is::<tower::timeout::error::Elapsed>());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = bounded(
        svc.oneshot(
            Request::get(mock.url("/trips"))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await;
    assert_eq!(response.unwrap().status(), StatusCode::OK);
    assert_eq!(mock.counts().password, 1, "the abandoned login was kept");
}

#[tokio::test]
async fn a_refresh_outlives_its_caller_and_keeps_the_rotated_token() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let plain = client_through(&layer);
    assert_eq!(
        get_status(&plain, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    mock.set_delay(Route::Refresh, Duration::from_millis(300));
    let hurried = ServiceBuilder::new()
        .timeout(Duration::from_millis(50))
        .layer(layer.clone())
        .service(client());
    let error = bounded(
        hurried.oneshot(
            Request::get(mock.url("/trips"))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await;
    assert!(error.unwrap_err().is::<tower::timeout::error::Elapsed>());
    tokio::time::sleep(Duration::from_millis(400)).await;
    mock.set_delay(Route::Refresh, Duration::ZERO);
    assert_eq!(
        get_status(&plain, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    assert_eq!(
        get_status(&plain, &mock.url("/trips")).await,
        StatusCode::OK
    );
    let counts = mock.counts();
    assert_eq!(counts.refresh, 2);
    assert_eq!(
        counts.refresh_rejected, 0,
        "the rotated refresh token was kept"
    );
    assert_eq!(counts.password, 1);
}

#[tokio::test]
async fn an_auth_outage_fails_fast_and_sends_nothing_without_a_token() {
    let mock = mock().await;
    let outage = Response::builder()
        .status(503)
        .header("retry-after", "60")
        .body(String::new())
        .unwrap();
    mock.respond_next(Route::Password, outage);
    let svc = client_through(&layer_for(&mock));
    for _ in 0..5 {
        let error = get(&svc, &mock.url("/trips")).await.unwrap_err();
        let error = auth_error(&error);
        assert!(
            (error.endpoint() == Some(Endpoint::Password) && error.status().is_some()),
            "{error}"
        );
        assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
        assert!(error.is_transient());
    }
    let counts = mock.counts();
    assert_eq!(
        counts.password, 1,
        "requests during the backoff do not call the auth api"
    );
    assert_eq!(counts.target, 0, "nothing is sent without a token");
}

#[tokio::test]
async fn the_backoff_ends_and_the_next_request_logs_in() {
    let mock = mock().await;
    mock.respond_next(
        Route::Password,
        Response::builder().status(502).body(String::new()).unwrap(),
    );
    let layer = layer_for(&mock).backoff(Duration::from_millis(100), Duration::from_millis(100));
    let svc = client_through(&layer);
    assert!(get(&svc, &mock.url("/trips")).await.is_err());
    assert!(get(&svc, &mock.url("/trips")).await.is_err());
    assert_eq!(mock.counts().password, 1);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    assert_eq!(mock.counts().password, 2);
}

#[tokio::test]
async fn wrong_credentials_are_not_retried_in_a_loop() {
    let mock = mock().await;
    let layer = SimacanAuthLayer::new(Credentials::new("planner@example.com", "wrong"))
        .environment(mock.environment());
    let svc = client_through(&layer);
    for _ in 0..10 {
        let error = get(&svc, &mock.url("/trips")).await.unwrap_err();
        let error = auth_error(&error);
        assert!(error.kind() == ErrorKind::InvalidCredentials);
        // The rejection and every error of the backoff after it tell when
        // the password is sent again: the longest backoff, 5 minutes.
        let left = error
            .next_attempt_in()
            .expect("the time until the next attempt");
        assert!(
            left > Duration::from_secs(290) && left <= Duration::from_secs(300),
            "{left:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with("simacan auth api rejected the username or password"),
            "{message}"
        );
    }
    let error = layer.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    assert!(error.next_attempt_in().is_some());
    let counts = mock.counts();
    assert_eq!(counts.password, 1);
    assert_eq!(counts.password_rejected, 1);
    assert_eq!(counts.target, 0);
}

#[tokio::test]
async fn a_closed_port_is_unreachable_at_the_full_url_with_the_cause_in_source() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let env = Environment::custom(format!("http://127.0.0.1:{port}/api/v1")).unwrap();
    let layer = SimacanAuthLayer::new(Credentials::new("u", "p")).environment(env);
    let error = bounded(layer.access_token()).await.unwrap_err();
    assert!(
        (error.kind() == ErrorKind::AuthApiUnavailable
            && error.endpoint() == Some(Endpoint::Password)),
        "{error:?}"
    );
    // The first backoff is half to all of one second, told to the
    // millisecond.
    assert_eq!(
        without_next_attempt(&error),
        format!("simacan auth api unreachable at http://127.0.0.1:{port}/api/v1/auth/password")
    );
    let refused = std::iter::successors(std::error::Error::source(&error), |e| e.source())
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    assert!(refused, "{}", with_causes(&error));
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_unreachable_at_the_full_url_with_the_cause_in_source() {
    // `.invalid` never resolves (RFC 6761).
    let env = Environment::custom("https://simacan-auth.invalid/api/v1").unwrap();
    let layer = SimacanAuthLayer::new(Credentials::new("u", "p")).environment(env);
    let error = bounded(layer.access_token()).await.unwrap_err();
    assert!(
        (error.kind() == ErrorKind::AuthApiUnavailable
            && error.endpoint() == Some(Endpoint::Password)),
        "{error:?}"
    );
    let message = error.to_string();
    assert_eq!(
        message,
        "simacan auth api unreachable at https://simacan-auth.invalid/api/v1/auth/password"
    );
    assert!(
        !message.contains("dns"),
        "the cause stays out of the message: {message}"
    );
    let causes = with_causes(&error);
    assert!(causes.contains("dns error"), "{causes}");
}

#[tokio::test]
async fn a_slow_auth_api_times_out() {
    let mock = mock().await;
    mock.set_delay(Route::Password, Duration::from_secs(5));
    let layer = layer_for(&mock).auth_timeout(Duration::from_millis(100));
    let error = bounded(layer.access_token()).await.unwrap_err();
    assert!(
        (error.is_timeout() && error.endpoint() == Some(Endpoint::Password)),
        "{error:?}"
    );
    assert_eq!(
        without_next_attempt(&error),
        format!(
            "simacan auth api did not answer {}/auth/password within 100ms",
            mock.base_url()
        )
    );
}

#[tokio::test]
async fn malformed_token_responses_are_typed_errors() {
    let bodies = [
        "<html>maintenance</html>".to_owned(),
        r#"{"access_token":"a","refresh_token":"r","token_type":"mac","expires_in":3600}"#.to_owned(),
        r#"{"access_token":"a","refresh_token":"r","token_type":"bearer","expires_in":0}"#.to_owned(),
        r#"{"access_token":"a\r\nx-injected: 1","refresh_token":"r","token_type":"bearer","expires_in":60}"#.to_owned(),
        r#"{"refresh_token":"r","token_type":"bearer","expires_in":60}"#.to_owned(),
    ];
    for body in bodies {
        let mock = mock().await;
        mock.respond_next(Route::Password, Response::new(body.clone()));
        let error = bounded(layer_for(&mock).access_token()).await.unwrap_err();
        assert!(
            (error.kind() == ErrorKind::UnexpectedResponse
                && error.endpoint() == Some(Endpoint::Password)),
            "{body}: {error:?}"
        );
    }
}

#[tokio::test]
async fn oversized_token_responses_are_refused() {
    let mock = mock().await;
    let huge = format!(
        r#"{{"access_token":"{}","refresh_token":"r","token_type":"bearer","expires_in":60}}"#,
        "a".repeat(200_000)
    );
    mock.respond_next(Route::Password, Response::new(huge));
    let error = bounded(layer_for(&mock).access_token()).await.unwrap_err();
    assert!(
        (error.kind() == ErrorKind::UnexpectedResponse
            && error.endpoint() == Some(Endpoint::Password)),
        "{error:?}"
    );
}

#[tokio::test]
async fn redirects_from_the_auth_api_are_not_followed() {
    let mock = mock().await;
    let redirect = Response::builder()
        .status(307)
        .header("location", mock.url("/api/v1/auth/password"))
        .body(String::new())
        .unwrap();
    mock.respond_next(Route::Password, redirect);
    let error = bounded(layer_for(&mock).access_token()).await.unwrap_err();
    assert!(
        error.status() == Some(StatusCode::TEMPORARY_REDIRECT),
        "{error:?}"
    );
    assert_eq!(mock.counts().password, 1);
}

#[tokio::test]
async fn invalidate_forces_a_refresh_not_a_login() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let before = layer
        .access_token()
        .await
        .unwrap()
        .expose_secret()
        .to_owned();
    layer.invalidate();
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let after = layer
        .access_token()
        .await
        .unwrap()
        .expose_secret()
        .to_owned();
    assert_ne!(before, after);
    assert_eq!((mock.counts().password, mock.counts().refresh), (1, 1));
}

#[tokio::test]
async fn the_id_token_is_exposed_but_never_sent_stored_or_shown() {
    let mock = mock().await;
    let store = MemoryStore::new();
    let first = layer_for(&mock).token_store(store.clone());
    let svc = client_through(&first);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let token = first.access_token().await.unwrap();
    let id_token = token
        .expose_id_token()
        .expect("the login answer carries an id_token")
        .to_owned();
    assert!(id_token.starts_with("ey") && id_token.split('.').count() == 3);
    assert_ne!(id_token, token.expose_secret());
    assert!(!format!("{token:?}").contains(&id_token));
    let sent = &mock.target_requests()[0];
    assert!(
        sent.headers
            .values()
            .all(|v| !String::from_utf8_lossy(v.as_bytes()).contains(&id_token))
    );

    // The store's record has no place for it: a layer that adopts the
    // token from the store has none.
    let key = StoreKey::new(mock.base_url(), mock.credentials().username());
    let record = bounded(store.load(&key)).await.unwrap().expect("stored");
    assert!(!String::from_utf8_lossy(&record.encode()).contains(&id_token));
    let second = layer_for(&mock).token_store(store);
    let adopted = second.access_token().await.unwrap();
    assert_eq!(adopted.expose_secret(), token.expose_secret());
    assert_eq!(adopted.expose_id_token(), None);
    assert_eq!(mock.counts().password, 1, "adopted, not logged in again");

    // A refresh answer carries a new one.
    first.invalidate();
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let refreshed = first.access_token().await.unwrap();
    assert_eq!(mock.counts().refresh, 1);
    let new_id_token = refreshed.expose_id_token().expect("the refresh answer too");
    assert_ne!(new_id_token, id_token);
    assert_eq!(
        token.expose_id_token(),
        Some(id_token.as_str()),
        "a token handed out keeps its own"
    );
}

#[tokio::test]
async fn errors_of_the_inner_service_pass_through_unchanged() {
    let mock = mock().await;
    #[derive(Debug)]
    struct Boom;
    impl std::fmt::Display for Boom {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("boom")
        }
    }
    impl std::error::Error for Boom {}
    let inner = service_fn(|_: Request<String>| async { Err::<Response<()>, _>(Boom) });
    let svc = layer_for(&mock).layer(inner);
    let error = bounded(svc.oneshot(Request::new(String::new())))
        .await
        .unwrap_err();
    assert!(error.is::<Boom>());
}

#[tokio::test]
async fn secrets_never_show_in_debug_errors_or_logs() {
    let logs = capture_logs();
    let mock = mock().await;
    let layer = layer_for(&mock);
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let first = layer.access_token().await.unwrap();
    mock.revoke_access_tokens();
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    mock.expire_refresh_tokens();
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    let last = layer.access_token().await.unwrap();
    mock.respond_next(
        Route::Refresh,
        Response::builder().status(503).body(String::new()).unwrap(),
    );
    layer.invalidate();
    let error = get(&svc, &mock.url("/trips")).await.unwrap_err();

    let shown = format!(
        "{layer:?} {svc:?} {first:?} {last:?} {error} {error:?} {}",
        String::from_utf8_lossy(&logs.lock().unwrap())
    );
    for secret in [
        simacan_auth::mock::PASSWORD,
        first.expose_secret(),
        last.expose_secret(),
        first.expose_id_token().unwrap(),
        last.expose_id_token().unwrap(),
    ] {
        assert!(!shown.contains(secret), "a secret leaked");
    }
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(text.contains("logged in"), "{text}");
    assert!(text.contains("refresh token rejected"), "{text}");
    assert!(text.contains("backing off"), "{text}");
    assert!(text.contains("replaying"), "{text}");
}

/// Sends every tracing event of this thread, at all levels, to a buffer.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Buffer(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is current-thread, so the flight tasks log here too.
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");
    buffer
}

#[test]
fn layer_service_and_future_are_clone_send_sync_debug() {
    fn assert_all<T: Clone + Send + Sync + std::fmt::Debug>() {}
    assert_all::<SimacanAuthLayer>();
    assert_all::<SimacanAuth<HttpClient>>();
    fn assert_send<T: Send>(_: &T) {}
    let svc = SimacanAuthLayer::new(Credentials::new("u", "p")).layer(client());
    let future = tower::Service::call(&mut svc.clone(), Request::new(Full::<Bytes>::default()));
    assert_send(&future);
}

#[test]
fn the_response_future_is_sync_when_the_inner_future_is() {
    fn assert_sync<T: Sync>(_: &T) {}
    let inner = service_fn(|_: Request<Full<Bytes>>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())))
    });
    let mut svc = SimacanAuthLayer::new(Credentials::new("u", "p")).layer(inner);
    let future = tower::Service::call(&mut svc, Request::new(Full::<Bytes>::default()));
    assert_sync(&future);
    // What needs it: a stack boxed with `boxed_clone_sync`.
    let boxed: tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, _> =
        ServiceBuilder::new()
            .boxed_clone_sync()
            .layer(SimacanAuthLayer::new(Credentials::new("u", "p")))
            .service(inner);
    fn assert_clone_send_sync<T: Clone + Send + Sync>(_: &T) {}
    assert_clone_send_sync(&boxed);
}

#[tokio::test]
async fn https_goes_through_rustls_and_fails_cleanly_against_a_plain_server() {
    // The mock speaks plain HTTP: a TLS handshake with it must fail as a
    // typed error, which shows the rustls connector is in the path, and
    // says what is likely wrong.
    let mock = mock().await;
    let env = Environment::custom(format!("https://{}/api/v1", mock.addr())).unwrap();
    // Directly, whatever proxy the environment running the tests names.
    let layer = SimacanAuthLayer::new(mock.credentials())
        .environment(env)
        .no_auth_proxy();
    let error = bounded(layer.access_token()).await.unwrap_err();
    assert!(
        (error.kind() == ErrorKind::AuthApiUnavailable
            && error.endpoint() == Some(Endpoint::Password)),
        "{error:?}"
    );
    assert_eq!(
        without_next_attempt(&error),
        format!(
            "simacan auth api unreachable at https://{}/api/v1/auth/password: the server does \
             not speak tls; is the auth api url plain http?",
            mock.addr()
        )
    );
    let causes = with_causes(&error);
    assert!(causes.contains("InvalidContentType"), "{causes}");
    assert_eq!(
        mock.counts().password,
        0,
        "no plaintext request was answered"
    );
}

/// The message of an error from the first backoff, whose next attempt must
/// be half to all of a second away.
fn without_next_attempt(error: &Error) -> String {
    let next = error.next_attempt_in().expect("the next attempt is told");
    assert!((500..=1000).contains(&next.as_millis()), "{next:?}");
    error.to_string()
}
