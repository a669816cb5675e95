//! Streaming request bodies through the layer over real HTTP/1.1 and HTTP/2:
//! replays are byte-for-byte, whatever the server read before its 401.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::Frame;
use http_body_util::{
    combinators::{BoxBody, UnsyncBoxBody},
    BodyExt, Full, StreamBody,
};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use simacan_auth::{mock::MockAuthApi, SimacanAuth, SimacanAuthLayer};
use support::{bounded, layer_for, mock};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::{BoxError, Layer, ServiceExt};

type Streamed = BoxBody<Bytes, BoxError>;
type Sender = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

#[derive(Clone, Copy, Debug)]
enum Protocol {
    Http1,
    Http2,
}

fn client<B>(protocol: Protocol) -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = Client::builder(TokioExecutor::new());
    if let Protocol::Http2 = protocol {
        builder.http2_only(true);
    }
    builder.build_http()
}

fn through(
    layer: &SimacanAuthLayer,
    protocol: Protocol,
) -> SimacanAuth<Client<HttpConnector, Streamed>> {
    layer.layer(client(protocol))
}

/// A body fed frame by frame from the test.
fn channel_body() -> (Sender, Streamed) {
    let (tx, rx) = mpsc::channel(16);
    (tx, BodyExt::boxed(StreamBody::new(ReceiverStream::new(rx))))
}

async fn send_chunk(tx: &Sender, chunk: &[u8]) {
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk))))
        .await
        .unwrap();
}

fn chunks(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| (0..size).map(|j| (i * 31 + j) as u8).collect())
        .collect()
}

/// Waits for a spawned call, asserts 200 and returns the echoed body.
async fn echoed<E: std::fmt::Debug>(
    call: tokio::task::JoinHandle<Result<http::Response<hyper::body::Incoming>, E>>,
    protocol: Protocol,
) -> Bytes {
    let response = bounded(call).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{protocol:?}");
    bounded(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes()
}

async fn warm(svc: &SimacanAuth<Client<HttpConnector, Streamed>>, mock: &MockAuthApi) {
    let request = Request::get(mock.url("/warm"))
        .body(Full::default().map_err(Into::into).boxed())
        .unwrap();
    let response = bounded(svc.clone().oneshot(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn replay_of_a_stream_revoked_mid_flight(protocol: Protocol) {
    let mock = mock().await;
    mock.set_target_reads_body_first(true);
    let svc = through(&layer_for(&mock), protocol);
    warm(&svc, &mock).await;

    let parts = chunks(6, 1000);
    let (tx, body) = channel_body();
    let request = Request::post(mock.url("/uploads")).body(body).unwrap();
    let call = tokio::spawn(svc.clone().oneshot(request));
    for (i, chunk) in parts.iter().enumerate() {
        if i == 3 {
            mock.revoke_access_tokens();
        }
        send_chunk(&tx, chunk).await;
    }
    drop(tx);
    let echoed = echoed(call, protocol).await;
    assert_eq!(echoed, parts.concat(), "{protocol:?}: byte for byte");
    let counts = mock.counts();
    assert_eq!(
        (counts.refresh, counts.target_unauthorized),
        (1, 1),
        "{protocol:?}"
    );
    let recorded = mock.target_requests();
    assert_eq!(recorded.last().unwrap().body, parts.concat());
}

#[tokio::test]
async fn a_stream_revoked_mid_flight_is_replayed_byte_for_byte_http1() {
    replay_of_a_stream_revoked_mid_flight(Protocol::Http1).await;
}

#[tokio::test]
async fn a_stream_revoked_mid_flight_is_replayed_byte_for_byte_http2() {
    replay_of_a_stream_revoked_mid_flight(Protocol::Http2).await;
}

async fn replay_after_a_rejection_before_the_body_was_read(protocol: Protocol) {
    let mock = mock().await;
    let svc = through(&layer_for(&mock), protocol);
    warm(&svc, &mock).await;
    mock.revoke_access_tokens();

    let parts = chunks(5, 700);
    let (tx, body) = channel_body();
    let request = Request::post(mock.url("/uploads")).body(body).unwrap();
    let call = tokio::spawn(svc.clone().oneshot(request));
    // The first part may or may not be read before the 401 comes back; the
    // rest is written only after it has.
    send_chunk(&tx, &parts[0]).await;
    while mock.counts().target_unauthorized == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for chunk in &parts[1..] {
        send_chunk(&tx, chunk).await;
    }
    drop(tx);
    let echoed = echoed(call, protocol).await;
    assert_eq!(
        echoed,
        parts.concat(),
        "{protocol:?}: read part, then the rest"
    );
    assert_eq!(mock.counts().refresh, 1);
}

#[tokio::test]
async fn a_rejection_before_the_body_was_read_replays_the_whole_body_http1() {
    replay_after_a_rejection_before_the_body_was_read(Protocol::Http1).await;
}

#[tokio::test]
async fn a_rejection_before_the_body_was_read_replays_the_whole_body_http2() {
    replay_after_a_rejection_before_the_body_was_read(Protocol::Http2).await;
}

#[tokio::test]
async fn a_body_over_the_limit_passes_the_401_through_and_still_refreshes() {
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let mock = mock().await;
        mock.set_target_reads_body_first(true);
        let svc = through(&layer_for(&mock).replay_body_limit(1024), protocol);
        warm(&svc, &mock).await;
        mock.revoke_access_tokens();
        let (tx, body) = channel_body();
        let call = tokio::spawn(
            svc.clone()
                .oneshot(Request::post(mock.url("/uploads")).body(body).unwrap()),
        );
        for chunk in chunks(4, 1000) {
            send_chunk(&tx, &chunk).await;
        }
        drop(tx);
        let response = bounded(call).await.unwrap().unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{protocol:?}: never a truncated replay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            mock.counts().refresh,
            1,
            "{protocol:?}: refreshed for the next request"
        );
        warm(&svc, &mock).await;
        assert_eq!(mock.counts().refresh, 1, "{protocol:?}");
    }
}

#[tokio::test]
async fn a_body_whose_size_hint_exceeds_the_limit_is_not_teed() {
    let mock = mock().await;
    let svc = through(&layer_for(&mock).replay_body_limit(1024), Protocol::Http1);
    warm(&svc, &mock).await;
    mock.revoke_access_tokens();
    let big = Full::new(Bytes::from(vec![1u8; 4096]))
        .map_err(Into::into)
        .boxed();
    let response = bounded(
        svc.clone()
            .oneshot(Request::post(mock.url("/uploads")).body(big).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let small = Full::new(Bytes::from(vec![1u8; 1024]))
        .map_err(Into::into)
        .boxed();
    mock.revoke_access_tokens();
    let response = bounded(
        svc.clone()
            .oneshot(Request::post(mock.url("/uploads")).body(small).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "within the limit it is replayed"
    );
}

#[tokio::test]
async fn trailers_are_preserved_on_replay() {
    let mock = mock().await;
    mock.set_target_reads_body_first(true);
    let svc = through(&layer_for(&mock), Protocol::Http2);
    warm(&svc, &mock).await;
    let (tx, body) = channel_body();
    let call = tokio::spawn(
        svc.clone()
            .oneshot(Request::post(mock.url("/uploads")).body(body).unwrap()),
    );
    send_chunk(&tx, b"first half, ").await;
    mock.revoke_access_tokens();
    send_chunk(&tx, b"second half").await;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "sha256=abc".parse().unwrap());
    tx.send(Ok(Frame::trailers(trailers.clone())))
        .await
        .unwrap();
    drop(tx);
    let response = bounded(call).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let recorded = mock.target_requests();
    let (rejected, replayed) = (&recorded[recorded.len() - 2], &recorded[recorded.len() - 1]);
    assert!(!rejected.authorized && replayed.authorized);
    assert_eq!(rejected.trailers.as_ref(), Some(&trailers));
    assert_eq!(replayed.trailers.as_ref(), Some(&trailers));
    assert_eq!(replayed.body, "first half, second half");
}

#[tokio::test]
async fn unsync_box_bodies_are_replayed_too() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let svc = layer.layer(client::<UnsyncBoxBody<Bytes, BoxError>>(Protocol::Http1));
    let body = || {
        let stream = tokio_stream::iter(
            [b"one ".as_slice(), b"two ", b"three"]
                .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c)))),
        );
        StreamBody::new(stream).boxed_unsync()
    };
    let response = bounded(
        svc.clone()
            .oneshot(Request::post(mock.url("/u")).body(body()).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    mock.revoke_access_tokens();
    let response = bounded(svc.oneshot(Request::post(mock.url("/u")).body(body()).unwrap()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = bounded(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(echoed, "one two three");
    assert_eq!(mock.counts().refresh, 1);
}

#[tokio::test]
async fn axum_bodies_are_replayed_too() {
    let mock = mock().await;
    mock.set_target_reads_body_first(true);
    let svc = layer_for(&mock).layer(client::<axum::body::Body>(Protocol::Http2));
    let (tx, rx) = mpsc::channel::<Result<Bytes, BoxError>>(4);
    let body = axum::body::Body::from_stream(ReceiverStream::new(rx));
    let call = tokio::spawn(svc.oneshot(Request::post(mock.url("/u")).body(body).unwrap()));
    tx.send(Ok(Bytes::from_static(b"streamed "))).await.unwrap();
    // The first request logs in; revoke its token while the body streams.
    while mock.counts().password == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mock.revoke_access_tokens();
    tx.send(Ok(Bytes::from_static(b"through axum")))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(echoed(call, Protocol::Http2).await, "streamed through axum");
    assert_eq!(mock.counts().refresh, 1);
}
