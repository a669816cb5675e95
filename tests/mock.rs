//! The mock Auth API's own knobs, over raw HTTP: reuse counting, scripted
//! faults and scripted delays behave as documented.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use simacan_auth::mock::{Fault, MockAuthApi, Route};
use support::{bounded, mock};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::BoxError;

type Raw = Client<HttpConnector, Full<Bytes>>;

fn raw_client() -> Raw {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn post_form(
    client: &Raw,
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

/// A successful grant's answer, as JSON.
async fn grant(response: Response<Incoming>) -> serde_json::Value {
    assert_eq!(response.status(), StatusCode::OK);
    let body = bounded(response.into_body().collect()).await.unwrap();
    serde_json::from_slice(&body.to_bytes()).unwrap()
}

async fn login(client: &Raw, mock: &MockAuthApi) -> String {
    let form = [
        ("username", simacan_auth::mock::USERNAME),
        ("password", simacan_auth::mock::PASSWORD),
    ];
    let response = post_form(client, mock, "/auth/password", &form).await;
    grant(response.unwrap()).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn refresh(
    client: &Raw,
    mock: &MockAuthApi,
    token: &str,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    post_form(client, mock, "/auth/refresh", &[("refresh_token", token)]).await
}

#[tokio::test]
async fn a_spent_refresh_token_is_counted_as_reused_unlike_unknown_or_expired_ones() {
    let mock = mock().await;
    let client = raw_client();
    let first = login(&client, &mock).await;
    let second = grant(refresh(&client, &mock, &first).await.unwrap()).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let again = refresh(&client, &mock, &first).await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    let counts = mock.counts();
    assert_eq!((counts.refresh_rejected, counts.refresh_reused), (1, 1));

    let unknown = refresh(&client, &mock, "eyJunknown").await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    mock.expire_refresh_tokens();
    let expired = refresh(&client, &mock, &second).await.unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let counts = mock.counts();
    assert_eq!(counts.refresh_rejected, 3);
    assert_eq!(
        counts.refresh_reused, 1,
        "unknown and expired tokens are not reuse"
    );
}

#[tokio::test]
async fn close_drops_the_connection_before_the_answer_and_has_no_effect() {
    let mock = mock().await;
    let client = raw_client();
    let token = login(&client, &mock).await;
    mock.fail_next(Route::Refresh, Fault::Close);
    let error = refresh(&client, &mock, &token).await.unwrap_err();
    assert!(!error.is_connect(), "connected, then dropped: {error:?}");
    assert_eq!(mock.counts().refresh, 1, "the call was counted");
    // The token was not spent.
    grant(refresh(&client, &mock, &token).await.unwrap()).await;
    assert_eq!(mock.counts().refresh_reused, 0);
}

#[tokio::test]
async fn commit_then_close_spends_the_refresh_token_and_loses_the_answer() {
    let mock = mock().await;
    let client = raw_client();
    let token = login(&client, &mock).await;
    mock.fail_next(Route::Refresh, Fault::CommitThenClose);
    assert!(refresh(&client, &mock, &token).await.is_err());
    let again = refresh(&client, &mock, &token).await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        mock.counts().refresh_reused,
        1,
        "the rotation was committed"
    );
}

#[tokio::test]
async fn cut_body_sends_the_head_and_half_the_body_then_drops_the_connection() {
    let mock = mock().await;
    let client = raw_client();
    let token = login(&client, &mock).await;
    mock.fail_next(Route::Refresh, Fault::CutBody);
    let response = refresh(&client, &mock, &token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let announced: usize = response.headers()[header::CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut body = response.into_body();
    let mut received = 0;
    let error = loop {
        match bounded(body.frame()).await {
            Some(Ok(frame)) => received += frame.into_data().map_or(0, |d| d.len()),
            Some(Err(error)) => break error,
            None => panic!("the body ended cleanly after {received} bytes"),
        }
    };
    let cause = std::error::Error::source(&error).and_then(|e| e.downcast_ref::<std::io::Error>());
    assert_eq!(
        cause.map(std::io::Error::kind),
        Some(std::io::ErrorKind::UnexpectedEof),
        "{error:?}"
    );
    assert_eq!(received, announced / 2, "half of {announced} bytes");
    let again = refresh(&client, &mock, &token).await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        mock.counts().refresh_reused,
        1,
        "the rotation was committed"
    );
}

#[tokio::test]
async fn a_fault_drops_the_whole_connection_on_http2_too() {
    let mock = mock().await;
    let client: Raw = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let get = || {
        client.request(
            Request::get(mock.url("/trips"))
                .body(Full::default())
                .unwrap(),
        )
    };
    let before = bounded(get()).await.unwrap();
    assert_eq!(before.version(), http::Version::HTTP_2);
    mock.fail_next(Route::Target, Fault::Close);
    assert!(bounded(get()).await.is_err());
    let after = bounded(get()).await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "answered again");
}

#[tokio::test]
async fn scripted_answers_and_faults_are_used_in_order() {
    let mock = mock().await;
    let client = raw_client();
    let outage = Response::builder().status(503).body(String::new()).unwrap();
    mock.respond_next(Route::Password, outage);
    mock.fail_next(Route::Password, Fault::Close);
    let form = [
        ("username", simacan_auth::mock::USERNAME),
        ("password", simacan_auth::mock::PASSWORD),
    ];
    let first = post_form(&client, &mock, "/auth/password", &form).await;
    assert_eq!(first.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        post_form(&client, &mock, "/auth/password", &form)
            .await
            .is_err()
    );
    grant(
        post_form(&client, &mock, "/auth/password", &form)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mock.counts().password, 3);
}

#[tokio::test]
async fn auth_delays_follow_the_script_over_both_grants_only() {
    let mock = mock().await;
    let client = raw_client();
    let seen = Arc::new(Mutex::new(Vec::new()));
    mock.set_auth_delays({
        let seen = seen.clone();
        move |n| {
            seen.lock().unwrap().push(n);
            if n == 2 {
                Duration::from_millis(150)
            } else {
                Duration::ZERO
            }
        }
    });
    let token = login(&client, &mock).await;
    let started = Instant::now();
    let response = refresh(&client, &mock, &token).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "call 2 is slow"
    );
    let token = grant(response).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = Request::get(mock.url("/trips"))
        .body(Full::default())
        .unwrap();
    bounded(client.request(target)).await.unwrap();
    grant(refresh(&client, &mock, &token).await.unwrap()).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [1, 2, 3],
        "target calls are not scripted"
    );
}

#[tokio::test]
async fn a_401_from_the_headers_still_reads_the_rest_of_the_upload() {
    type Streamed = BoxBody<Bytes, BoxError>;
    let mock = mock().await;
    let client: Client<HttpConnector, Streamed> =
        Client::builder(TokioExecutor::new()).build_http();
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    let request = Request::post(mock.url("/uploads"))
        .header(header::AUTHORIZATION, "Bearer made-up")
        .body(StreamBody::new(ReceiverStream::new(rx)).boxed())
        .unwrap();
    let call = tokio::spawn(client.request(request));
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    bounded(tx.send(Ok(Frame::data(chunk.clone()))))
        .await
        .unwrap();
    let response = bounded(call).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // More than socket buffers hold: only a server that reads takes it all.
    for _ in 0..32 {
        bounded(tx.send(Ok(Frame::data(chunk.clone()))))
            .await
            .expect("the connection still carries the upload");
    }
}
