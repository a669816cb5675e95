//! The reqwest middleware over real HTTP against the mock Simacan Auth API,
//! with real reqwest clients: alone, sharing a token state with the tower
//! layer, and in either order with `reqwest-retry`.

mod support;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Extensions, Method, Response, StatusCode, header::AUTHORIZATION};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::{RetryError, RetryTransientMiddleware, policies::ExponentialBackoff};
use simacan_auth::ErrorKind;
use simacan_auth::{
    Credentials, Error, SimacanAuthLayer, SimacanAuthMiddleware, TokenScope,
    mock::{MockAuthApi, Route},
    reqwest::tls_config,
};
use support::{bounded, hosts, layer_for, mock, with_causes};

/// A reqwest client set up as the module docs advise: rustls without a
/// provider of its own, given the crate's ring configuration.
fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        .no_proxy()
        .build()
        .expect("a client with the ring configuration")
}

fn client_with(middleware: SimacanAuthMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest_client())
        .with(middleware)
        .build()
}

fn client_for(mock: &MockAuthApi) -> ClientWithMiddleware {
    client_with(SimacanAuthMiddleware::new(&layer_for(mock)).client_uses_no_proxy(true))
}

async fn get_status(client: &ClientWithMiddleware, url: &str) -> StatusCode {
    bounded(client.get(url).send())
        .await
        .expect("request succeeds")
        .status()
}

/// Sends `n` GETs at once and returns the statuses.
async fn burst(client: &ClientWithMiddleware, url: &str, n: usize) -> Vec<StatusCode> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move { get_status(&client, &url).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(bounded(call).await.unwrap());
    }
    statuses
}

fn all_ok(statuses: &[StatusCode]) -> bool {
    statuses.iter().all(|s| *s == StatusCode::OK)
}

/// Waits until `done` holds, polling every few milliseconds.
async fn until(mut done: impl FnMut() -> bool) {
    bounded(async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test]
async fn cold_start_burst_shares_one_login() {
    let mock = mock().await;
    let client = client_for(&mock);
    let statuses = burst(&client, &mock.url("/trips"), 60).await;
    assert!(all_ok(&statuses), "{statuses:?}");
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "one login for the whole burst");
    assert_eq!(counts.refresh, 0);
    assert_eq!(counts.target, 60);
    assert_eq!(counts.target_unauthorized, 0);
}

#[tokio::test]
async fn every_request_carries_the_bearer_token_replacing_any_other() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let client = client_with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true));
    let response = bounded(
        client
            .get(mock.url("/trips"))
            .header(AUTHORIZATION, "Basic dXNlcjpwdw==")
            .header(AUTHORIZATION, "Bearer stale")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = layer.access_token().await.unwrap();
    let recorded = &mock.target_requests()[0];
    let values: Vec<_> = recorded.headers.get_all(AUTHORIZATION).iter().collect();
    assert_eq!(values, [&format!("Bearer {}", token.expose_secret())]);
}

/// Records, for every request it passes on, whether its `Authorization`
/// header is marked sensitive.
struct Sensitivity(Arc<Mutex<Vec<Option<bool>>>>);

#[async_trait]
impl Middleware for Sensitivity {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let sensitive = request
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.is_sensitive());
        self.0.lock().unwrap().push(sensitive);
        next.run(request, extensions).await
    }
}

#[tokio::test]
async fn the_header_is_marked_sensitive_on_the_first_attempt_and_the_replay() {
    let mock = mock().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = ClientBuilder::new(reqwest_client())
        .with(SimacanAuthMiddleware::new(&layer_for(&mock)).client_uses_no_proxy(true))
        .with(Sensitivity(seen.clone()))
        .build();
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    assert_eq!(*seen.lock().unwrap(), [Some(true); 3]);
}

#[tokio::test]
async fn early_expiry_is_healed_by_one_refresh_for_a_burst() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let client = client_with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true));
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    mock.set_delay(Route::Refresh, Duration::from_millis(100));
    let statuses = burst(&client, &mock.url("/trips"), 40).await;
    assert!(all_ok(&statuses), "{statuses:?}");
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1, "one refresh for all concurrent 401s");
    assert_eq!(counts.password, 1);
    assert_eq!(counts.refresh_rejected, 0);
    assert!(counts.target_unauthorized >= 1 && counts.target_unauthorized <= 40);
    assert_eq!(counts.target, 41 + counts.target_unauthorized);
    let stats = layer.stats();
    assert_eq!(stats.unauthorized, counts.target_unauthorized as u64);
    assert_eq!(stats.unauthorized_healed, stats.unauthorized);
    assert_eq!(stats.unauthorized_passed_through, 0);
}

#[tokio::test]
async fn replay_sends_the_same_method_url_headers_and_body() {
    let mock = mock().await;
    let client = client_for(&mock);
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    let body = Bytes::from_static(br#"{"trip":"AMS-RTM","stops":3}"#);
    let response = bounded(
        client
            .put(mock.url("/trips/42?dry_run=true"))
            .header("content-type", "application/json")
            .header("x-correlation-id", "abc-123")
            .body(body.clone())
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        bounded(response.bytes()).await.unwrap(),
        body,
        "the target echoes what it read"
    );
    let recorded = mock.target_requests();
    let (rejected, replayed) = (&recorded[1], &recorded[2]);
    assert!(!rejected.authorized && replayed.authorized);
    assert_eq!(replayed.method, Method::PUT);
    assert_eq!(replayed.path, "/trips/42?dry_run=true");
    assert_eq!(replayed.headers["x-correlation-id"], "abc-123");
    assert_eq!(replayed.headers["content-type"], "application/json");
    assert_eq!(replayed.body, body);
    assert_ne!(
        rejected.headers[AUTHORIZATION],
        replayed.headers[AUTHORIZATION]
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_never_resends_the_old_one() {
    let mock = mock().await;
    let client = client_for(&mock);
    for _ in 0..4 {
        mock.revoke_access_tokens();
        assert_eq!(
            get_status(&client, &mock.url("/trips")).await,
            StatusCode::OK
        );
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
    let client = client_for(&mock);
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    mock.expire_refresh_tokens();
    let statuses = burst(&client, &mock.url("/trips"), 20).await;
    assert!(all_ok(&statuses), "{statuses:?}");
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1);
    assert_eq!(counts.refresh_rejected, 1);
    assert_eq!(counts.password, 2, "first login and one fallback");
}

#[tokio::test]
async fn a_streamed_body_is_sent_once_its_401_goes_to_the_caller_and_the_token_is_still_refreshed()
{
    let mock = mock().await;
    let layer = layer_for(&mock);
    let client = client_with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true));
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    let chunks = ["upload ", "in ", "chunks"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
    let body = reqwest::Body::wrap_stream(tokio_stream::iter(chunks));
    let response = bounded(client.post(mock.url("/uploads")).body(body).send())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let stats = layer.stats();
    assert_eq!(
        (stats.unauthorized, stats.unauthorized_passed_through),
        (1, 1)
    );
    assert_eq!((stats.unauthorized_healed, stats.replays_refused), (0, 0));
    // The refresh started by that 401 lands for the next request.
    until(|| layer.stats().refreshes == 1).await;
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    let counts = mock.counts();
    assert_eq!(
        counts.target, 3,
        "the stream was sent once, and never replayed"
    );
    assert_eq!(
        counts.target_unauthorized, 1,
        "the next request had the new token"
    );
    assert_eq!((counts.password, counts.refresh), (1, 1));
}

#[tokio::test]
async fn a_resource_that_refuses_every_token_costs_one_refresh() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let client = client_with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true));
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.set_target_rejects_every_token(true);
    for _ in 0..10 {
        assert_eq!(
            get_status(&client, &mock.url("/trips")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let counts = mock.counts();
    assert_eq!(counts.refresh, 1, "the replay was refused too: cooldown");
    assert_eq!(counts.password, 1);
    assert_eq!(
        counts.target,
        1 + 2 + 9,
        "one replay, then 401s as they come"
    );
    let stats = layer.stats();
    assert_eq!(stats.unauthorized, 10);
    assert_eq!(stats.replays_refused, 1);
    assert_eq!(stats.unauthorized_passed_through, 10);
}

/// A gRPC-like target on loopback answering every request `200` with its
/// status in the headers (trailers-only): `0` for a token the mock accepts,
/// UNAUTHENTICATED (`16`) otherwise.
async fn trailers_only_grpc_target(mock: &MockAuthApi) -> SocketAddr {
    let validator = mock.validator();
    let app = axum::Router::new().fallback(move |headers: http::HeaderMap| {
        let accepted = validator.check(headers.get(AUTHORIZATION).map(|v| v.as_bytes()));
        let status = if accepted { "0" } else { "16" };
        std::future::ready([
            ("content-type", "application/grpc"),
            ("grpc-status", status),
        ])
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn grpc_unauthenticated_in_the_headers_is_healed_like_a_401() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let client = client_with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true));
    let url = format!(
        "http://{}/grpc.health.v1.Health/Check",
        trailers_only_grpc_target(&mock).await
    );
    let grpc_status = |response: reqwest::Response| response.headers()["grpc-status"].clone();
    let first = bounded(client.post(&url).send()).await.unwrap();
    assert_eq!(grpc_status(first), "0");
    mock.revoke_access_tokens();
    let healed = bounded(client.post(&url).send()).await.unwrap();
    assert_eq!(healed.status(), StatusCode::OK);
    assert_eq!(
        grpc_status(healed),
        "0",
        "replayed with the refreshed token"
    );
    let counts = mock.counts();
    assert_eq!((counts.password, counts.refresh), (1, 1));
    assert_eq!((counts.target, counts.target_unauthorized), (3, 1));
    let stats = layer.stats();
    assert_eq!((stats.unauthorized, stats.unauthorized_healed), (1, 1));
}

#[tokio::test]
async fn requests_outside_the_scope_are_sent_untouched() {
    let mock = mock().await;
    let layer = layer_for(&mock).token_scope(TokenScope::hosts(["api.example.com"]).unwrap());
    let client = client_with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true));
    let response = bounded(
        client
            .get(mock.url("/trips"))
            .header(AUTHORIZATION, "Bearer mine")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "its 401 is the caller's"
    );
    assert_eq!(
        mock.target_requests()[0].headers[AUTHORIZATION],
        "Bearer mine"
    );
    let counts = mock.counts();
    assert_eq!((counts.password, counts.refresh), (0, 0), "no login at all");
    assert_eq!(layer.stats().unauthorized, 0);
}

/// A client through `layer` that trusts the test certificate and reaches
/// the test hosts' names on loopback.
fn client_for_test_hosts(tls: &hosts::Tls, layer: &SimacanAuthLayer) -> ClientWithMiddleware {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let reqwest_client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config())
        .resolve(hosts::API, loopback)
        .resolve(hosts::OTHER, loopback)
        .build()
        .unwrap();
    ClientBuilder::new(reqwest_client)
        .with(SimacanAuthMiddleware::new(layer))
        .build()
}

#[tokio::test]
async fn the_scope_decides_by_the_url_over_https_and_plain_http() {
    let mock = mock().await;
    let tls = hosts::Tls::new();
    let api = hosts::Host::https(&tls, hosts::API, hosts::ok()).await;
    let other = hosts::Host::https(&tls, hosts::OTHER, hosts::ok()).await;
    let plain = hosts::Host::http(hosts::API, hosts::ok()).await;
    let layer = layer_for(&mock).token_scope(hosts::scope());
    let client = client_for_test_hosts(&tls, &layer);
    for host in [&api, &other, &plain] {
        assert_eq!(
            get_status(&client, &host.url("/trips")).await,
            StatusCode::OK
        );
    }
    let token = layer.access_token().await.unwrap();
    let bearer = format!("Bearer {}", token.expose_secret());
    assert_eq!(api.authorizations(), [vec![bearer]]);
    assert_eq!(other.authorizations(), [Vec::<String>::new()]);
    assert_eq!(
        plain.authorizations(),
        [Vec::<String>::new()],
        "plain http to a name that is not loopback"
    );
    assert_eq!(mock.counts().password, 1);
}

#[tokio::test]
async fn a_redirect_to_another_host_does_not_carry_the_token() {
    // reqwest follows redirects beneath the middleware, which sees the first
    // URL only; reqwest itself drops the header on a cross-origin hop.
    let mock = mock().await;
    let tls = hosts::Tls::new();
    let other = hosts::Host::https(&tls, hosts::OTHER, hosts::ok()).await;
    let to_other = hosts::redirect(StatusCode::FOUND, other.url("/elsewhere"));
    let api = hosts::Host::https(&tls, hosts::API, to_other).await;
    let layer = layer_for(&mock).token_scope(hosts::scope());
    let client = client_for_test_hosts(&tls, &layer);
    assert_eq!(
        get_status(&client, &api.url("/trips")).await,
        StatusCode::OK
    );
    assert_eq!(api.authorizations().len(), 1);
    assert_eq!(
        api.authorizations()[0].len(),
        1,
        "the first hop has the token"
    );
    assert_eq!(other.authorizations(), [Vec::<String>::new()]);
}

#[tokio::test]
async fn https_through_the_ring_configuration_verifies_certificates() {
    // The crate's configuration trusts Mozilla's roots, not the test's
    // self-signed certificate: the handshake, run with ring, must refuse it
    // as an error, not panic for want of a crypto provider.
    let tls = hosts::Tls::new();
    let api = hosts::Host::https(&tls, hosts::API, hosts::ok()).await;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        .resolve(hosts::API, SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();
    let error = bounded(client.get(api.url("/trips")).send())
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    let causes = with_causes(&error);
    assert!(causes.contains("certificate"), "{causes}");
    assert!(api.seen().is_empty());
}

#[tokio::test]
async fn a_failure_to_obtain_a_token_is_a_middleware_error_holding_the_typed_error() {
    let mock = mock().await;
    let layer = SimacanAuthLayer::new(Credentials::new("planner@example.com", "wrong"))
        .environment(mock.environment());
    let client = client_with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true));
    for _ in 0..3 {
        let error = bounded(client.get(mock.url("/trips")).send())
            .await
            .unwrap_err();
        let reqwest_middleware::Error::Middleware(error) = &error else {
            panic!("expected a middleware error, got {error:?}");
        };
        assert!(
            error.downcast_ref::<Error>().map(Error::kind) == Some(ErrorKind::InvalidCredentials),
            "{error:?}"
        );
    }
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "the backoff holds the password back");
    assert_eq!(counts.target, 0, "nothing is sent without a token");
}

#[tokio::test]
async fn an_auth_outage_fails_fast_and_says_when_to_try_again() {
    let mock = mock().await;
    mock.respond_next(
        Route::Password,
        Response::builder()
            .status(503)
            .header("retry-after", "60")
            .body(String::new())
            .unwrap(),
    );
    let client = client_for(&mock);
    for _ in 0..3 {
        let error = bounded(client.get(mock.url("/trips")).send())
            .await
            .unwrap_err();
        let auth = auth_error(&error);
        assert!(auth.is_transient(), "{auth}");
        assert_eq!(auth.retry_after(), Some(Duration::from_secs(60)));
    }
    assert_eq!(mock.counts().password, 1);
    assert_eq!(mock.counts().target, 0);
}

/// The typed error of a failure to obtain a token, directly in the
/// middleware error or, behind `reqwest-retry`, inside its `RetryError`.
fn auth_error(error: &reqwest_middleware::Error) -> &Error {
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("expected a middleware error, got {error:?}");
    };
    if let Some(auth) = error.downcast_ref::<Error>() {
        return auth;
    }
    let inner = match error.downcast_ref::<RetryError>() {
        Some(RetryError::Error(inner) | RetryError::WithRetries { err: inner, .. }) => inner,
        None => panic!("expected a simacan_auth::Error, got {error:?}"),
    };
    auth_error(inner)
}

#[tokio::test]
async fn a_layer_and_middlewares_made_from_it_share_one_login_and_one_refresh() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let hyper = support::client_through(&layer);
    let middlewares = [
        SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true),
        SimacanAuthMiddleware::new(&layer.clone()).client_uses_no_proxy(true),
        SimacanAuthMiddleware::new(&layer)
            .client_uses_no_proxy(true)
            .clone(),
    ];
    let [a, b, c] = middlewares.clone().map(client_with);
    let url = mock.url("/trips");
    for round in 0..2 {
        if round == 1 {
            mock.revoke_access_tokens();
            mock.set_delay(Route::Refresh, Duration::from_millis(100));
        }
        let statuses = tokio::join!(
            support::burst(&hyper, &url, 10),
            burst(&a, &url, 10),
            burst(&b, &url, 10),
            burst(&c, &url, 10),
        );
        let (tower, a, b, c) = statuses;
        assert!(all_ok(&tower), "{tower:?}");
        assert!(all_ok(&a) && all_ok(&b) && all_ok(&c), "{a:?} {b:?} {c:?}");
    }
    let counts = mock.counts();
    assert_eq!(
        counts.password, 1,
        "one login for tower and reqwest together"
    );
    assert_eq!(counts.refresh, 1, "one refresh for the revocation");
    let counted = |stats: simacan_auth::Stats| {
        (
            stats.logins,
            stats.refreshes,
            stats.unauthorized,
            stats.unauthorized_healed,
        )
    };
    let healed = counts.target_unauthorized as u64;
    assert_eq!(counted(layer.stats()), (1, 1, healed, healed));
    for middleware in &middlewares {
        assert_eq!(counted(middleware.layer().stats()), counted(layer.stats()));
    }
}

#[tokio::test]
async fn middlewares_made_from_separate_layers_keep_separate_tokens() {
    let mock = mock().await;
    let made =
        |_| client_with(SimacanAuthMiddleware::new(&layer_for(&mock)).client_uses_no_proxy(true));
    for client in (0..2).map(made) {
        assert_eq!(
            get_status(&client, &mock.url("/trips")).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        mock.counts().password,
        2,
        "two token states, as two processes"
    );
}

/// A retry policy quick enough for tests: up to five retries, milliseconds
/// apart.
fn retry() -> RetryTransientMiddleware<ExponentialBackoff> {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(5);
    RetryTransientMiddleware::new_with_policy(policy)
}

#[derive(Clone, Copy, Debug)]
enum Order {
    RetryOutsideAuth,
    AuthOutsideRetry,
}

fn with_retry(order: Order, layer: &SimacanAuthLayer) -> ClientWithMiddleware {
    let auth = SimacanAuthMiddleware::new(layer).client_uses_no_proxy(true);
    let builder = ClientBuilder::new(reqwest_client());
    match order {
        Order::RetryOutsideAuth => builder.with(retry()).with(auth),
        Order::AuthOutsideRetry => builder.with(auth).with(retry()),
    }
    .build()
}

/// A revoked token and three 503s among a burst of uploads, each with a
/// body of its own: every upload ends 200, one refresh heals the
/// revocation, and the target takes each body exactly once.
async fn retries_and_heals(order: Order) {
    const UPLOADS: usize = 12;
    const UNAVAILABLE: usize = 3;
    let mock = mock().await;
    let layer = layer_for(&mock);
    let client = with_retry(order, &layer);
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    for _ in 0..UNAVAILABLE {
        let unavailable = Response::builder().status(503).body(String::new()).unwrap();
        mock.respond_next(Route::Target, unavailable);
    }
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|i| {
            let (client, url) = (client.clone(), mock.url("/uploads"));
            tokio::spawn(async move {
                let response = bounded(client.post(url).body(format!("upload {i}")).send()).await;
                response.expect("request succeeds").status()
            })
        })
        .collect();
    for upload in uploads {
        assert_eq!(bounded(upload).await.unwrap(), StatusCode::OK, "{order:?}");
    }
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "{order:?}");
    assert_eq!(
        counts.refresh, 1,
        "{order:?}: one refresh for the revocation"
    );
    assert_eq!(
        counts.target,
        1 + UPLOADS + UNAVAILABLE + counts.target_unauthorized,
        "{order:?}: every 503 was retried and every 401 replayed, nothing more"
    );
    let mut taken: Vec<String> = mock
        .target_requests()
        .into_iter()
        .filter(|r| r.authorized && r.path == "/uploads")
        .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
        .collect();
    taken.sort();
    let mut expected: Vec<String> = (0..UPLOADS).map(|i| format!("upload {i}")).collect();
    expected.sort();
    assert_eq!(taken, expected, "{order:?}: each upload taken exactly once");
    let stats = layer.stats();
    assert_eq!(stats.unauthorized_passed_through, 0, "{order:?}");
    assert_eq!(stats.unauthorized_healed, stats.unauthorized, "{order:?}");
}

#[tokio::test]
async fn retry_outside_auth_retries_503s_and_heals_a_revocation_with_one_refresh() {
    retries_and_heals(Order::RetryOutsideAuth).await;
}

#[tokio::test]
async fn auth_outside_retry_retries_503s_and_heals_a_revocation_with_one_refresh() {
    retries_and_heals(Order::AuthOutsideRetry).await;
}

#[tokio::test]
async fn a_failure_to_obtain_a_token_is_not_retried_in_either_order() {
    for order in [Order::RetryOutsideAuth, Order::AuthOutsideRetry] {
        let mock = mock().await;
        let layer = SimacanAuthLayer::new(Credentials::new("planner@example.com", "wrong"))
            .environment(mock.environment());
        let client = with_retry(order, &layer);
        let error = bounded(client.get(mock.url("/trips")).send())
            .await
            .unwrap_err();
        assert!(
            auth_error(&error).kind() == ErrorKind::InvalidCredentials,
            "{order:?}: {error:?}"
        );
        assert_eq!(mock.counts().password, 1, "{order:?}");
        assert_eq!(mock.counts().target, 0, "{order:?}");
    }
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    let mock = mock().await;
    let middleware = SimacanAuthMiddleware::new(&layer_for(&mock)).client_uses_no_proxy(true);
    let client = client_with(middleware.clone());
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    let token = middleware.layer().access_token().await.unwrap();
    mock.respond_next(
        Route::Refresh,
        Response::builder().status(503).body(String::new()).unwrap(),
    );
    middleware.layer().invalidate();
    let error = bounded(client.get(mock.url("/trips")).send())
        .await
        .unwrap_err();
    let shown = format!("{middleware:?} {client:?} {error} {error:?}");
    assert!(shown.contains("SimacanAuthMiddleware"), "{shown}");
    for secret in [simacan_auth::mock::PASSWORD, token.expose_secret()] {
        assert!(!shown.contains(secret), "a secret leaked");
    }
}

#[test]
fn without_a_configuration_a_client_under_rustls_no_provider_panics() {
    // Why the module docs hand reqwest a configuration: with no provider
    // compiled in and none installed, reqwest cannot choose one.
    let built = std::panic::catch_unwind(reqwest::Client::new);
    assert!(built.is_err());
    assert!(
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config())
            .build()
            .is_ok()
    );
}

#[test]
fn the_middleware_is_clone_send_sync_debug() {
    fn assert_all<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_all::<SimacanAuthMiddleware>();
}

#[tokio::test]
async fn a_401_whose_refresh_fails_counts_as_an_error() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let client = client_with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true));
    assert_eq!(
        get_status(&client, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    mock.respond_next(
        Route::Refresh,
        Response::builder().status(503).body(String::new()).unwrap(),
    );
    bounded(client.get(mock.url("/trips")).send())
        .await
        .unwrap_err();
    let stats = layer.stats();
    assert_eq!(
        (
            stats.unauthorized,
            stats.unauthorized_errors,
            stats.unauthorized_healed + stats.unauthorized_passed_through
        ),
        (1, 1, 0),
        "{stats:?}"
    );
}
