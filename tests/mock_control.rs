//! The mock's control API in process, over real HTTP: each endpoint does
//! what the handle's method of the same job does, bad calls are answered
//! 400 with a JSON error, and the Auth API and target API are untouched by
//! it. Also the builder's fixed address and credentials.

mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use simacan_auth::mock::{Counts, MockAuthApi, PASSWORD, USERNAME};
use support::{HttpClient, bounded, client, mock};

/// A call's status, headers and JSON body (`Null` when the body is not
/// JSON).
struct Answered {
    status: StatusCode,
    headers: http::HeaderMap,
    json: serde_json::Value,
}

async fn answered(response: Response<Incoming>) -> Answered {
    let (parts, body) = response.into_parts();
    let body = bounded(body.collect()).await.unwrap().to_bytes();
    Answered {
        status: parts.status,
        headers: parts.headers,
        json: serde_json::from_slice(&body).unwrap_or_default(),
    }
}

async fn call(
    client: &HttpClient,
    method: Method,
    url: String,
    body: &str,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::from(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    bounded(client.request(request)).await
}

/// A control call that must be answered.
async fn control(
    client: &HttpClient,
    mock: &MockAuthApi,
    method: Method,
    path: &str,
    body: &str,
) -> Answered {
    let url = format!("{}{path}", mock.control_url());
    answered(call(client, method, url, body).await.unwrap()).await
}

/// A control change that must succeed.
async fn post(client: &HttpClient, mock: &MockAuthApi, path: &str, body: &str) {
    let answer = control(client, mock, Method::POST, path, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.json);
    assert_eq!(answer.json, serde_json::json!({ "ok": true }));
}

fn counts_json(counts: Counts) -> serde_json::Value {
    serde_json::json!({
        "password": counts.password,
        "password_rejected": counts.password_rejected,
        "refresh": counts.refresh,
        "refresh_rejected": counts.refresh_rejected,
        "refresh_reused": counts.refresh_reused,
        "target": counts.target,
        "target_unauthorized": counts.target_unauthorized,
    })
}

async fn grant(
    client: &HttpClient,
    mock: &MockAuthApi,
    path: &str,
    form: &[(&str, &str)],
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let request = Request::post(format!("{}{path}", mock.base_url()))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::from(body))
        .unwrap();
    bounded(client.request(request)).await
}

async fn login(client: &HttpClient, mock: &MockAuthApi) -> Answered {
    let form = [("username", USERNAME), ("password", PASSWORD)];
    answered(grant(client, mock, "/auth/password", &form).await.unwrap()).await
}

async fn refresh(client: &HttpClient, mock: &MockAuthApi, token: &str) -> Answered {
    let form = [("refresh_token", token)];
    answered(grant(client, mock, "/auth/refresh", &form).await.unwrap()).await
}

async fn target(client: &HttpClient, mock: &MockAuthApi, access_token: &str) -> StatusCode {
    let request = Request::get(mock.url("/trips"))
        .header(header::AUTHORIZATION, format!("Bearer {access_token}"))
        .body(Full::default())
        .unwrap();
    bounded(client.request(request)).await.unwrap().status()
}

fn field(answer: &Answered, name: &str) -> String {
    answer.json[name].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn counts_are_the_handles_reused_refresh_tokens_included_and_reset_reads_then_zeroes() {
    let mock = mock().await;
    let client = client();
    let first = field(&login(&client, &mock).await, "refresh_token");
    assert_eq!(refresh(&client, &mock, &first).await.status, StatusCode::OK);
    let reused = refresh(&client, &mock, &first).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);

    let counts = control(&client, &mock, Method::GET, "/counts", "").await;
    assert_eq!(counts.status, StatusCode::OK);
    assert_eq!(counts.json, counts_json(mock.counts()));
    assert_eq!(counts.json["refresh_reused"], 1);
    assert_eq!(counts.json["password"], 1);

    let reset = control(&client, &mock, Method::POST, "/counts/reset", "").await;
    assert_eq!(reset.json, counts.json, "the counts as they were");
    assert_eq!(mock.counts(), Counts::default());

    // Counted again from zero, the spent token's second reuse too.
    assert_eq!(
        refresh(&client, &mock, &first).await.status,
        StatusCode::UNAUTHORIZED
    );
    let counts = control(&client, &mock, Method::GET, "/counts", "").await;
    assert_eq!(
        (
            &counts.json["refresh"],
            &counts.json["refresh_rejected"],
            &counts.json["refresh_reused"]
        ),
        (&1.into(), &1.into(), &1.into())
    );
    assert_eq!(counts.json["password"], 0);
}

#[tokio::test]
async fn revoke_expire_and_lifetime_act_on_the_tokens() {
    let mock = mock().await;
    let client = client();
    let pair = login(&client, &mock).await;
    let access = field(&pair, "access_token");
    assert_eq!(target(&client, &mock, &access).await, StatusCode::OK);

    post(&client, &mock, "/revoke-access-tokens", "").await;
    assert_eq!(
        target(&client, &mock, &access).await,
        StatusCode::UNAUTHORIZED
    );
    post(&client, &mock, "/expire-refresh-tokens", "{}").await;
    let refused = refresh(&client, &mock, &field(&pair, "refresh_token")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(mock.counts().refresh_reused, 0, "expired, not reused");

    post(&client, &mock, "/token-lifetime", r#"{"secs": 4}"#).await;
    let short = login(&client, &mock).await;
    assert_eq!(short.json["expires_in"], 4);
    assert_eq!(
        target(&client, &mock, &field(&short, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn respond_next_answers_the_next_calls_with_the_status_and_retry_after() {
    let mock = mock().await;
    let client = client();
    let script = r#"{"route": "password", "status": 503, "retry_after": 2, "times": 2}"#;
    post(&client, &mock, "/respond-next", script).await;
    for _ in 0..2 {
        let outage = login(&client, &mock).await;
        assert_eq!(outage.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(outage.headers[header::RETRY_AFTER], "2");
    }
    assert_eq!(login(&client, &mock).await.status, StatusCode::OK);

    let script = r#"{"route": "refresh", "status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT", "body": "{\"error\":\"slow down\"}"}"#;
    post(&client, &mock, "/respond-next", script).await;
    let limited = refresh(&client, &mock, "any").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limited.headers[header::RETRY_AFTER],
        "Wed, 21 Oct 2015 07:28:00 GMT"
    );
    assert_eq!(limited.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(limited.json["error"], "slow down");

    let script =
        r#"{"route": "password", "status": 502, "body": "<html>", "content_type": "text/html"}"#;
    post(&client, &mock, "/respond-next", script).await;
    let proxy = login(&client, &mock).await;
    assert_eq!(
        (proxy.status, &proxy.headers[header::CONTENT_TYPE]),
        (StatusCode::BAD_GATEWAY, &"text/html".parse().unwrap())
    );
    assert!(!proxy.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(
        (mock.counts().password, mock.counts().refresh),
        (4, 1),
        "scripted calls are counted"
    );
}

#[tokio::test]
async fn fail_next_drops_the_connection() {
    let mock = mock().await;
    let client = client();
    let script = r#"{"route": "password", "fault": "close", "times": 2}"#;
    post(&client, &mock, "/fail-next", script).await;
    let form = [("username", USERNAME), ("password", PASSWORD)];
    for _ in 0..2 {
        let error = grant(&client, &mock, "/auth/password", &form)
            .await
            .unwrap_err();
        assert!(!error.is_connect(), "connected, then dropped: {error:?}");
    }
    let pair = login(&client, &mock).await;
    assert_eq!(pair.status, StatusCode::OK);

    post(
        &client,
        &mock,
        "/fail-next",
        r#"{"route": "refresh", "fault": "commit_then_close"}"#,
    )
    .await;
    let token = field(&pair, "refresh_token");
    let form = [("refresh_token", token.as_str())];
    assert!(grant(&client, &mock, "/auth/refresh", &form).await.is_err());
    refresh(&client, &mock, &token).await;
    assert_eq!(
        mock.counts().refresh_reused,
        1,
        "the rotation was committed"
    );
}

#[tokio::test]
async fn delay_adds_latency_to_the_route_alone() {
    let mock = mock().await;
    let client = client();
    let access = field(&login(&client, &mock).await, "access_token");
    post(
        &client,
        &mock,
        "/delay",
        r#"{"route": "target", "ms": 300}"#,
    )
    .await;
    let started = Instant::now();
    assert_eq!(target(&client, &mock, &access).await, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let started = Instant::now();
    assert_eq!(login(&client, &mock).await.status, StatusCode::OK);
    let counts = control(&client, &mock, Method::GET, "/counts", "").await;
    assert_eq!(counts.status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "neither the Auth API nor the control API waits"
    );

    post(&client, &mock, "/delay", r#"{"route": "target", "ms": 0}"#).await;
    let started = Instant::now();
    target(&client, &mock, &access).await;
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn target_switches_and_recorded_requests() {
    let mock = mock().await;
    let client = client();
    let access = field(&login(&client, &mock).await, "access_token");
    let upload = Request::post(mock.url("/trips?day=1"))
        .header(header::AUTHORIZATION, format!("Bearer {access}"))
        .body(Full::from("{\"trip\":1}"))
        .unwrap();
    assert_eq!(
        bounded(client.request(upload)).await.unwrap().status(),
        StatusCode::OK
    );
    let recorded = control(&client, &mock, Method::GET, "/target-requests", "").await;
    let recorded = recorded.json.as_array().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["method"], "POST");
    assert_eq!(recorded[0]["path"], "/trips?day=1");
    assert_eq!(recorded[0]["body"], "{\"trip\":1}");
    assert_eq!(recorded[0]["authorized"], true);
    assert_eq!(
        recorded[0]["headers"]["authorization"],
        serde_json::json!([format!("Bearer {access}")])
    );

    post(
        &client,
        &mock,
        "/target",
        r#"{"rejects_every_token": true}"#,
    )
    .await;
    assert_eq!(
        target(&client, &mock, &access).await,
        StatusCode::UNAUTHORIZED
    );
    post(
        &client,
        &mock,
        "/target",
        r#"{"rejects_every_token": false, "recording": false}"#,
    )
    .await;
    assert_eq!(target(&client, &mock, &access).await, StatusCode::OK);
    assert_eq!(mock.target_requests().len(), 2, "the third was not kept");
    assert_eq!(mock.counts().target, 3);
}

#[tokio::test]
async fn bad_calls_are_answered_with_a_json_error_and_change_nothing() {
    let mock = mock().await;
    let client = client();
    let bad = [
        (Method::POST, "/token-lifetime", "", "invalid json body"),
        (
            Method::POST,
            "/token-lifetime",
            "{secs: 4}",
            "invalid json body",
        ),
        (
            Method::POST,
            "/token-lifetime",
            r#"{"secs": 0}"#,
            "secs must be from 1 to",
        ),
        (
            Method::POST,
            "/token-lifetime",
            r#"{"secs": 18446744073709551615}"#,
            "secs must be from 1 to",
        ),
        (
            Method::POST,
            "/token-lifetime",
            r#"{"secs": -1}"#,
            "invalid json body",
        ),
        (
            Method::POST,
            "/token-lifetime",
            r#"{"sec": 4}"#,
            "unknown field `sec`",
        ),
        (
            Method::POST,
            "/delay",
            r#"{"route": "login", "ms": 1}"#,
            "unknown variant `login`",
        ),
        (
            Method::POST,
            "/delay",
            r#"{"route": "target"}"#,
            "missing field `ms`",
        ),
        (
            Method::POST,
            "/fail-next",
            r#"{"route": "refresh", "fault": "explode"}"#,
            "unknown variant `explode`",
        ),
        (
            Method::POST,
            "/fail-next",
            r#"{"route": "refresh", "fault": "close", "times": 0}"#,
            "times must be at least 1",
        ),
        (
            Method::POST,
            "/respond-next",
            r#"{"route": "password", "status": 99}"#,
            "not between 200 and 599",
        ),
        (
            Method::POST,
            "/respond-next",
            r#"{"route": "password", "status": 1000}"#,
            "not between 200 and 599",
        ),
        (
            Method::POST,
            "/respond-next",
            r#"{"route": "password", "status": 503, "retry_after": "a\nb"}"#,
            "retry_after",
        ),
        (
            Method::POST,
            "/respond-next",
            r#"{"route": "password", "status": 503, "times": 100000000}"#,
            "times must be at most",
        ),
        (
            Method::POST,
            "/revoke-access-tokens",
            r#"{"all": true}"#,
            "unknown field `all`",
        ),
        (Method::POST, "/target", "[]", "invalid json body"),
        (Method::POST, "/target", "\u{fffd}", "invalid json body"),
    ];
    for (method, path, body, says) in bad {
        let answer = control(&client, &mock, method, path, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(
            answer.headers[header::CONTENT_TYPE],
            "application/json",
            "{path} {body}"
        );
        let error = answer.json["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{path} {body}: {error}");
    }

    let wrong_method = control(&client, &mock, Method::GET, "/revoke-access-tokens", "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers[header::ALLOW], "POST");
    let unknown = control(&client, &mock, Method::GET, "/nope", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.json["error"]
            .as_str()
            .unwrap()
            .contains("/_mock/nope")
    );
    let huge = "x".repeat(100 * 1024);
    let too_large = control(&client, &mock, Method::POST, "/target", &huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Nothing was changed, counted or queued: the mock answers as new.
    let pair = login(&client, &mock).await;
    assert_eq!(pair.status, StatusCode::OK);
    assert_eq!(pair.json["expires_in"], 3600);
    let counts = mock.counts();
    assert_eq!(counts.password, 1);
    let mut others = counts;
    others.password = 0;
    assert_eq!(others, Counts::default(), "nothing else was counted");
}

#[tokio::test]
async fn the_control_api_is_not_reachable_through_the_auth_api_and_leaves_it_alone() {
    let mock = mock().await;
    let client = client();
    let through_auth = call(
        &client,
        Method::GET,
        format!("{}/auth/_mock/counts", mock.base_url()),
        "",
    )
    .await
    .unwrap();
    assert_eq!(through_auth.status(), StatusCode::NOT_FOUND);
    let through_base = call(
        &client,
        Method::GET,
        format!("{}/_mock/counts", mock.base_url()),
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        through_base.status(),
        StatusCode::UNAUTHORIZED,
        "the target API's, without a token"
    );
    let lookalike = call(&client, Method::GET, mock.url("/_mockery"), "")
        .await
        .unwrap();
    assert_eq!(lookalike.status(), StatusCode::UNAUTHORIZED);
    control(&client, &mock, Method::GET, "", "").await;
    control(&client, &mock, Method::GET, "/counts", "").await;
    let counts = mock.counts();
    assert_eq!(
        (counts.target, counts.target_unauthorized),
        (2, 2),
        "control calls are not counted"
    );
    let mut others = counts;
    (others.target, others.target_unauthorized) = (0, 0);
    assert_eq!(others, Counts::default(), "nothing else was counted");
}

#[tokio::test]
async fn describe_names_the_urls_and_the_credentials() {
    let mock = mock().await;
    let client = client();
    let info = control(&client, &mock, Method::GET, "", "").await;
    assert_eq!(info.json["auth_url"], mock.base_url());
    assert_eq!(info.json["control_url"], mock.control_url());
    assert_eq!(info.json["target_url"], mock.url(""));
    assert_eq!(info.json["username"], USERNAME);
    assert_eq!(info.json["password"], PASSWORD);
}

#[tokio::test]
async fn the_builder_binds_the_address_and_credentials_given() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let mock = MockAuthApi::builder()
        .listen(addr)
        .credentials("ops@example.com", "s3cret")
        .start()
        .await
        .unwrap();
    assert_eq!(mock.addr(), addr);
    assert_eq!(mock.base_url(), format!("http://{addr}/api/v1"));

    let taken = MockAuthApi::builder().listen(addr).start().await;
    assert_eq!(taken.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
    let public: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let refused = MockAuthApi::builder().listen(public).start().await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );

    let client = client();
    let default = login(&client, &mock).await;
    assert_eq!(
        default.status,
        StatusCode::UNAUTHORIZED,
        "other credentials"
    );
    let form = [("username", "ops@example.com"), ("password", "s3cret")];
    let own = grant(&client, &mock, "/auth/password", &form)
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let layer =
        simacan_auth::SimacanAuthLayer::new(mock.credentials()).environment(mock.environment());
    bounded(layer.access_token())
        .await
        .expect("the handle's credentials");
}
