//! The request path against real servers over loopback: the `poll_ready`
//! contract across a replay, and a caller that gives up while the layer
//! refreshes.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use support::{bounded, layer_for, mock};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::{BoxError, Layer, Service, ServiceExt};

type Streamed = BoxBody<Bytes, BoxError>;

#[tokio::test]
async fn the_poll_ready_contract_holds_for_the_first_attempt_and_the_replay() {
    let mock = mock().await;
    let layer = layer_for(&mock);
    let (inner, mut handle) = tower_test::mock::pair::<Request<Full<Bytes>>, Response<String>>();
    handle.allow(1);
    let mut svc = layer.layer(inner);
    bounded(svc.ready()).await.unwrap();
    let call = tokio::spawn(
        svc.call(
            Request::get("http://127.0.0.1/x")
                .body(Full::default())
                .unwrap(),
        ),
    );
    // Cold start: the call reaches the inner service once logged in.
    let (request, respond) = bounded(handle.next_request()).await.unwrap();
    assert!(request.headers().contains_key("authorization"));
    // Not allowed again yet: a replay that skipped poll_ready would panic.
    respond.send_response(Response::builder().status(401).body(String::new()).unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!call.is_finished(), "the replay waits for poll_ready");
    handle.allow(1);
    let (replayed, respond) = bounded(handle.next_request()).await.unwrap();
    assert_ne!(
        request.headers()["authorization"],
        replayed.headers()["authorization"]
    );
    assert!(
        replayed.headers()["authorization"].is_sensitive(),
        "sensitive on the replay too"
    );
    respond.send_response(Response::new("ok".to_owned()));
    let response = bounded(call).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.counts().refresh, 1);
}

/// A caller that gives up while the layer refreshes after a 401 lets go of
/// the streaming source the replay had taken over (its producer sees the
/// channel closed).
#[tokio::test]
async fn a_caller_dropped_while_refreshing_lets_go_of_the_stream() {
    let mock = mock().await;
    let client: Client<HttpConnector, Streamed> =
        Client::builder(TokioExecutor::new()).build_http();
    let svc = layer_for(&mock).layer(client);
    let warm = Request::get(mock.url("/warm"))
        .body(Full::default().map_err(Into::into).boxed())
        .unwrap();
    bounded(svc.clone().oneshot(warm)).await.unwrap();
    mock.revoke_access_tokens();
    mock.set_delay(simacan_auth::mock::Route::Refresh, Duration::from_secs(5));

    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(8);
    let body = StreamBody::new(ReceiverStream::new(rx)).boxed();
    let call = tokio::spawn(
        svc.clone()
            .oneshot(Request::post(mock.url("/u")).body(body).unwrap()),
    );
    tx.send(Ok(Frame::data(Bytes::from_static(b"part"))))
        .await
        .unwrap();
    while mock.counts().target_unauthorized == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!call.is_finished(), "waiting for the refresh");
    assert!(!tx.is_closed(), "the replay holds the source");
    call.abort();
    let _ = call.await;
    bounded(tx.closed()).await;
}
