//! gRPC through the layer: a real tonic channel to a real tonic server on
//! loopback whose interceptor accepts exactly the mock Auth API's tokens.

mod support;

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, uri::PathAndQuery};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use simacan_auth::{
    SimacanAuth, SimacanAuthLayer, TokenScope,
    mock::{MockAuthApi, TokenValidator},
};
use support::{bounded, layer_for, mock};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{
    Code, Status,
    body::Body,
    server::NamedService,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint, Server},
};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    health_client::HealthClient,
};
use tower::{BoxError, Layer, Service, ServiceBuilder, util::BoxCloneService};

const COLLECT: &str = "/simacan.test.Upload/Collect";
const ECHO: &str = "/simacan.test.Echo/Echo";

/// A client-streaming method: collects the `service` fields of the request
/// messages and answers with how many arrived.
#[derive(Clone, Default)]
struct Collect {
    received: Arc<Mutex<Vec<String>>>,
}

impl NamedService for Collect {
    const NAME: &'static str = "simacan.test.Upload";
}

impl Service<Request<Body>> for Collect {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let received = self.received.clone();
        Box::pin(async move {
            let method = tower::service_fn(
                move |request: tonic::Request<tonic::Streaming<HealthCheckRequest>>| {
                    let received = received.clone();
                    async move {
                        let mut stream = request.into_inner();
                        let mut count = 0;
                        let mut names = Vec::new();
                        while let Some(message) = stream.message().await? {
                            names.push(message.service);
                            count += 1;
                        }
                        *received.lock().unwrap() = names;
                        Ok::<_, Status>(tonic::Response::new(HealthCheckResponse { status: count }))
                    }
                },
            );
            let codec =
                tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default();
            Ok(tonic::server::Grpc::new(codec)
                .client_streaming(method, request)
                .await)
        })
    }
}

/// A bidirectional method: answers each request message with one response,
/// and sends its headers before any message arrives, so it waits for the
/// client.
#[derive(Clone, Default)]
struct Echo;

impl NamedService for Echo {
    const NAME: &'static str = "simacan.test.Echo";
}

type Echoes = Pin<Box<dyn tokio_stream::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

impl Service<Request<Body>> for Echo {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(async move {
            let method = tower::service_fn(
                |request: tonic::Request<tonic::Streaming<HealthCheckRequest>>| async move {
                    use tokio_stream::StreamExt;
                    let echoes = request.into_inner().map(|message| {
                        message.map(|_| HealthCheckResponse {
                            status: ServingStatus::Serving as i32,
                        })
                    });
                    Ok::<_, Status>(tonic::Response::new(Box::pin(echoes) as Echoes))
                },
            );
            let codec =
                tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default();
            Ok(tonic::server::Grpc::new(codec)
                .streaming(method, request)
                .await)
        })
    }
}

/// Rejects a call with UNAUTHENTICATED unless the mock issued its token.
fn auth_interceptor(
    validator: TokenValidator,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, Status> + Clone {
    move |request: tonic::Request<()>| {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        match validator.check(header) {
            true => Ok(request),
            false => Err(Status::unauthenticated("invalid token")),
        }
    }
}

/// A tonic server with the health service, `Collect` and `Echo`, behind the
/// interceptor.
async fn grpc_server(mock: &MockAuthApi) -> (SocketAddr, Collect) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let collect = Collect::default();
    let interceptor = auth_interceptor(mock.validator());
    let server = Server::builder()
        .add_service(InterceptedService::new(health, interceptor.clone()))
        .add_service(InterceptedService::new(
            collect.clone(),
            interceptor.clone(),
        ))
        .add_service(InterceptedService::new(Echo, interceptor))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    (addr, collect)
}

async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    bounded(endpoint.connect()).await.unwrap()
}

async fn channel(addr: SocketAddr, layer: &SimacanAuthLayer) -> SimacanAuth<Channel> {
    ServiceBuilder::new()
        .layer(layer.clone())
        .service(connect(addr).await)
}

async fn check(client: &mut HealthClient<SimacanAuth<Channel>>) -> Result<i32, Status> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    bounded(client.check(request))
        .await
        .map(|r| r.into_inner().status)
}

/// A health check with a fresh token, and one after the token was revoked.
async fn serving_before_and_after_revocation(mock: &MockAuthApi, addr: SocketAddr) {
    let mut client = HealthClient::new(channel(addr, &layer_for(mock)).await);
    let serving = ServingStatus::Serving as i32;
    assert_eq!(check(&mut client).await.unwrap(), serving);
    mock.revoke_access_tokens();
    assert_eq!(check(&mut client).await.unwrap(), serving);
}

#[tokio::test]
async fn a_unary_call_is_healed_after_unauthenticated() {
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    serving_before_and_after_revocation(&mock, addr).await;
    let counts = mock.counts();
    assert_eq!((counts.password, counts.refresh), (1, 1));
    assert_eq!((counts.target, counts.target_unauthorized), (3, 1));
}

#[tokio::test]
async fn a_client_outside_its_channel_gets_the_token_whatever_the_scope() {
    // A generated client sends path-only URIs, and the channel picks the
    // host: the scope cannot apply, so the token goes along.
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    let scope = TokenScope::hosts(["*.services.simacan.test"]).unwrap();
    let svc = channel(addr, &layer_for(&mock).token_scope(scope)).await;
    let mut client = HealthClient::new(svc.clone());
    let serving = ServingStatus::Serving as i32;
    assert_eq!(check(&mut client).await.unwrap(), serving);
    // Given an origin outside the scope, the same client gets no token, and
    // UNAUTHENTICATED is the caller's.
    let origin = format!("http://{addr}").parse().unwrap();
    let mut outside = HealthClient::with_origin(svc, origin);
    let status = check(&mut outside).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let counts = mock.counts();
    assert_eq!((counts.password, counts.refresh), (1, 0));
    assert_eq!((counts.target, counts.target_unauthorized), (2, 1));
}

#[tokio::test]
async fn concurrent_unauthenticated_calls_share_one_refresh() {
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    let client = HealthClient::new(channel(addr, &layer_for(&mock)).await);
    check(&mut client.clone()).await.unwrap();
    mock.revoke_access_tokens();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { check(&mut client).await })
        })
        .collect();
    for call in calls {
        assert!(bounded(call).await.unwrap().is_ok());
    }
    assert_eq!(mock.counts().refresh, 1);
}

#[tokio::test]
async fn unauthenticated_on_the_replay_goes_to_the_caller() {
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    let mut client = HealthClient::new(channel(addr, &layer_for(&mock)).await);
    check(&mut client).await.unwrap();
    mock.set_target_rejects_every_token(true);
    let status = check(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(mock.counts().refresh, 1);
}

async fn collect(
    svc: SimacanAuth<Channel>,
    messages: impl tokio_stream::Stream<Item = HealthCheckRequest> + Send + 'static,
) -> Result<i32, Status> {
    let mut grpc = tonic::client::Grpc::new(svc);
    bounded(grpc.ready())
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let path = PathAndQuery::from_static(COLLECT);
    bounded(grpc.client_streaming(tonic::Request::new(messages), path, codec))
        .await
        .map(|r| r.into_inner().status)
}

fn named(names: &[&str]) -> Vec<HealthCheckRequest> {
    names
        .iter()
        .map(|n| HealthCheckRequest {
            service: (*n).to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_client_streaming_call_is_healed_after_unauthenticated() {
    let mock = mock().await;
    let (addr, server) = grpc_server(&mock).await;
    let svc = channel(addr, &layer_for(&mock)).await;
    assert_eq!(
        collect(svc.clone(), tokio_stream::iter(named(&["warm"])))
            .await
            .unwrap(),
        1
    );
    mock.revoke_access_tokens();

    // Messages trickle in: the server rejects on headers before it has read
    // them all, and the replay must send every one exactly once.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let call = tokio::spawn(collect(
        svc,
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let names = ["trip-1", "trip-2", "trip-3", "trip-4", "trip-5"];
    for (i, message) in named(&names).into_iter().enumerate() {
        tx.send(message).await.unwrap();
        if i == 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(tx);
    assert_eq!(bounded(call).await.unwrap().unwrap(), 5);
    assert_eq!(*server.received.lock().unwrap(), names);
    let counts = mock.counts();
    assert_eq!((counts.refresh, counts.target_unauthorized), (1, 1));
}

/// An HTTP/2 server on loopback that answers each request with the frames
/// `answer` sends down the channel it is given, after the response head it
/// returns; `answer` is told whether `validator` accepts the request's token.
async fn frames_server<A>(validator: TokenValidator, answer: A) -> SocketAddr
where
    A: Fn(bool, Sender) -> http::response::Builder + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            // Headers and trailers go out in separate writes.
            stream.set_nodelay(true).unwrap();
            let validator = validator.clone();
            let answer = answer.clone();
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let header = request
                        .headers()
                        .get("authorization")
                        .map(|v| v.as_bytes().to_vec());
                    let accepted = validator.check(header.as_deref());
                    let answer = answer.clone();
                    async move {
                        let _ = request.into_body().collect().await;
                        let (tx, rx) = tokio::sync::mpsc::channel(2);
                        let head = answer(accepted, tx).header("content-type", "application/grpc");
                        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
                        Ok::<_, Infallible>(head.body(body.boxed()).unwrap())
                    }
                });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// Where a [`frames_server`] answer sends its body's frames.
type Sender = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// A gRPC server that answers a refused token with headers, no message and,
/// `late` after the headers, trailers carrying UNAUTHENTICATED, instead of a
/// trailers-only response.
async fn trailers_server(validator: TokenValidator, late: Duration) -> SocketAddr {
    frames_server(validator, move |accepted, tx| {
        let mut trailers = HeaderMap::new();
        let mut frames = Vec::new();
        if accepted {
            // HealthCheckResponse { status: SERVING }, length-prefixed.
            frames.push(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1])));
            trailers.insert("grpc-status", "0".parse().unwrap());
        } else {
            trailers.insert("grpc-status", "16".parse().unwrap());
            trailers.insert("grpc-message", "token%20refused".parse().unwrap());
        }
        frames.push(Frame::trailers(trailers));
        tokio::spawn(async move {
            for frame in frames {
                if frame.is_trailers() && !accepted {
                    tokio::time::sleep(late).await;
                }
                let _ = tx.send(Ok(frame)).await;
            }
        });
        Response::builder()
    })
    .await
}

#[tokio::test]
async fn unauthenticated_in_trailers_after_an_empty_body_is_healed() {
    let mock = mock().await;
    let addr = trailers_server(mock.validator(), Duration::ZERO).await;
    serving_before_and_after_revocation(&mock, addr).await;
    let counts = mock.counts();
    assert_eq!((counts.refresh, counts.target_unauthorized), (1, 1));
}

/// What the caller of a health check sees.
async fn check_named(
    client: &mut HealthClient<SimacanAuth<Channel>>,
    service: &str,
) -> Result<i32, Status> {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    bounded(client.check(request))
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn a_unary_call_waits_briefly_for_unauthenticated_in_late_trailers() {
    let mock = mock().await;
    // Late enough not to be there when the headers are, well within the
    // window the layer waits once a request was sent in full.
    let addr = trailers_server(mock.validator(), Duration::from_millis(10)).await;
    serving_before_and_after_revocation(&mock, addr).await;
    let counts = mock.counts();
    assert_eq!((counts.refresh, counts.target_unauthorized), (1, 1));
}

#[tokio::test]
async fn unauthenticated_in_trailers_on_the_replay_and_in_the_cooldown_reaches_the_caller() {
    let mock = mock().await;
    let addr = trailers_server(mock.validator(), Duration::ZERO).await;
    let mut client = HealthClient::new(channel(addr, &layer_for(&mock)).await);
    check(&mut client).await.unwrap();
    mock.set_target_rejects_every_token(true);

    // The replay is refused too: the caller gets the server's own status.
    let status = check(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "token refused");
    assert_eq!(mock.counts().refresh, 1);

    // In the cooldown the refusal is passed through without a refresh.
    let status = check(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "token refused");
    let counts = mock.counts();
    assert_eq!((counts.refresh, counts.target_unauthorized), (1, 3));
}

#[tokio::test]
async fn unauthenticated_in_trailers_for_a_body_that_cannot_be_replayed_reaches_the_caller() {
    let mock = mock().await;
    let addr = trailers_server(mock.validator(), Duration::ZERO).await;
    let layer = layer_for(&mock).replay_body_limit(0);
    let mut client = HealthClient::new(channel(addr, &layer).await);
    let serving = ServingStatus::Serving as i32;
    assert_eq!(check_named(&mut client, "trips").await.unwrap(), serving);
    mock.revoke_access_tokens();

    // The message is over the limit, so the refusal goes to the caller, as
    // sent and without a replay.
    let status = check_named(&mut client, "trips").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "token refused");
    let counts = mock.counts();
    assert_eq!((counts.target, counts.target_unauthorized), (2, 1));
}

/// Whether the layer kept a caller waiting for a response it already had:
/// `arrived` is set, below the layer, when the channel answers with a gRPC
/// response that has no status in its headers (one the layer peeks at);
/// `held` is set, above the layer, when the layer's future is still pending
/// on a poll after that.
#[derive(Clone, Default)]
struct HoldWatch {
    arrived: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
}

type Watched = BoxCloneService<Request<Body>, Response<Body>, BoxError>;

impl HoldWatch {
    fn around(&self, channel: Channel, layer: &SimacanAuthLayer) -> Watched {
        let arrived = self.arrived.clone();
        let below = ServiceBuilder::new()
            .map_future(move |future| {
                let arrived = arrived.clone();
                async move {
                    let response: Response<Body> = future.await?;
                    if !response.headers().contains_key("grpc-status") {
                        arrived.store(true, Ordering::SeqCst);
                    }
                    Ok::<_, tonic::transport::Error>(response)
                }
            })
            .service(channel);
        let (arrived, held) = (self.arrived.clone(), self.held.clone());
        ServiceBuilder::new()
            .boxed_clone()
            .map_future(
                move |future: simacan_auth::future::ResponseFuture<_, Body>| {
                    let (arrived, held) = (arrived.clone(), held.clone());
                    async move {
                        let mut future = pin!(future);
                        std::future::poll_fn(|cx| {
                            let polled = future.as_mut().poll(cx);
                            if polled.is_pending() && arrived.load(Ordering::SeqCst) {
                                held.store(true, Ordering::SeqCst);
                            }
                            polled
                        })
                        .await
                    }
                },
            )
            .service(layer.layer(below))
    }

    fn arrived(&self) -> bool {
        self.arrived.load(Ordering::SeqCst)
    }

    fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }
}

/// Opens an `Echo` stream whose first message is sent only once the
/// response has arrived, then checks that it is answered.
async fn echo_after_the_response(svc: Watched) {
    let mut grpc = tonic::client::Grpc::new(svc);
    bounded(grpc.ready()).await.unwrap();
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let messages = tokio_stream::wrappers::ReceiverStream::new(rx);
    let path = PathAndQuery::from_static(ECHO);
    let response = bounded(grpc.streaming(tonic::Request::new(messages), path, codec))
        .await
        .unwrap();
    let mut echoes = response.into_inner();
    tx.send(HealthCheckRequest::default()).await.unwrap();
    let echo = bounded(echoes.message()).await.unwrap().unwrap();
    assert_eq!(echo.status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn a_bidi_stream_whose_server_waits_for_the_client_is_handed_over_at_once() {
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    let watch = HoldWatch::default();
    echo_after_the_response(watch.around(connect(addr).await, &layer_for(&mock))).await;
    assert!(watch.arrived(), "the response was peekable");
    assert!(!watch.held(), "the layer held the response back");
}

#[tokio::test]
async fn the_replay_of_a_bidi_stream_whose_server_waits_is_handed_over_at_once() {
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    let channel = connect(addr).await;
    let layer = layer_for(&mock);
    check(&mut HealthClient::new(layer.layer(channel.clone())))
        .await
        .unwrap();
    mock.revoke_access_tokens();

    // Refused on headers before the client sent anything; the replay is
    // accepted, and its server waits for the client.
    let watch = HoldWatch::default();
    echo_after_the_response(watch.around(channel, &layer)).await;
    assert!(watch.arrived(), "the replay's response was peekable");
    assert!(!watch.held(), "the layer held the replay's response back");
    let counts = mock.counts();
    assert_eq!((counts.refresh, counts.target_unauthorized), (1, 1));
    // Handed over before anything told acceptance from a refusal in late
    // trailers: not counted as healed.
    assert_eq!(layer.stats().unauthorized_healed, 0);
}

#[tokio::test]
async fn other_grpc_errors_never_refresh() {
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    let svc = channel(addr, &layer_for(&mock)).await;
    let mut grpc = tonic::client::Grpc::new(svc);
    bounded(grpc.ready()).await.unwrap();
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let path = PathAndQuery::from_static("/simacan.test.Missing/Method");
    let status = bounded(grpc.unary(
        tonic::Request::new(HealthCheckRequest::default()),
        path,
        codec,
    ))
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(mock.counts().refresh, 0);
}

#[tokio::test]
async fn a_server_streaming_call_is_healed_after_unauthenticated() {
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    let mut client = HealthClient::new(channel(addr, &layer_for(&mock)).await);
    check(&mut client).await.unwrap();
    mock.revoke_access_tokens();
    let mut updates = bounded(client.watch(HealthCheckRequest {
        service: String::new(),
    }))
    .await
    .unwrap()
    .into_inner();
    let first = bounded(updates.message()).await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let counts = mock.counts();
    assert_eq!((counts.refresh, counts.target_unauthorized), (1, 1));
}

#[tokio::test]
async fn auth_failures_reach_a_generated_client_as_meaningful_codes() {
    let mock = mock().await;
    let (addr, _) = grpc_server(&mock).await;
    // Rejected credentials: UNAUTHENTICATED, with the typed error as source.
    let wrong = SimacanAuthLayer::new(simacan_auth::Credentials::new(
        simacan_auth::mock::USERNAME,
        "wrong",
    ))
    .environment(mock.environment());
    let mut client = HealthClient::new(channel(addr, &wrong).await);
    for _ in 0..2 {
        let status = check(&mut client).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        let source = std::error::Error::source(&status)
            .and_then(|e| e.downcast_ref::<simacan_auth::Error>());
        assert!(
            source.map(simacan_auth::Error::kind)
                == Some(simacan_auth::ErrorKind::InvalidCredentials),
            "{source:?}"
        );
    }
    // An Auth API outage: UNAVAILABLE.
    mock.respond_next(
        simacan_auth::mock::Route::Password,
        Response::builder().status(503).body(String::new()).unwrap(),
    );
    let mut client = HealthClient::new(channel(addr, &layer_for(&mock)).await);
    let status = check(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(mock.counts().target, 0, "nothing was sent without a token");
}

#[tokio::test]
async fn unauthenticated_calls_healed_count_whether_refused_in_headers_or_trailers() {
    let mock = mock().await;
    let (headers, _) = grpc_server(&mock).await;
    let trailers = trailers_server(mock.validator(), Duration::ZERO).await;
    for addr in [headers, trailers] {
        let layer = layer_for(&mock);
        let mut client = HealthClient::new(channel(addr, &layer).await);
        check(&mut client).await.unwrap();
        mock.revoke_access_tokens();
        check(&mut client).await.unwrap();
        let stats = layer.stats();
        assert_eq!((stats.unauthorized, stats.unauthorized_healed), (1, 1));
        assert_eq!(stats.refreshes, 1);
    }
}

/// How long a server-streaming call through `layer` takes to hand its
/// response over, with a token already in hand.
async fn time_to_open_a_watch(layer: &SimacanAuthLayer, addr: SocketAddr) -> Duration {
    let mut client = HealthClient::new(channel(addr, layer).await);
    bounded(layer.access_token()).await.unwrap();
    let start = std::time::Instant::now();
    let updates = bounded(client.watch(HealthCheckRequest::default()))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    drop(updates);
    elapsed
}

#[tokio::test]
async fn a_server_stream_whose_first_message_is_late_waits_for_the_peek_window_at_most() {
    let mock = mock().await;
    let late = Duration::from_secs(4);
    let window = Duration::from_millis(500);
    let addr = late_watch_server(mock.validator(), late).await;
    let windowed = layer_for(&mock).grpc_peek_window(window);
    let waited = time_to_open_a_watch(&windowed, addr).await;
    assert!(
        waited >= window && waited < late / 2,
        "handed over when the window ends, not at the first message: {waited:?}"
    );
    let no_window = layer_for(&mock).grpc_peek_window(Duration::ZERO);
    let at_once = time_to_open_a_watch(&no_window, addr).await;
    assert!(
        at_once < window,
        "handed over at once without a window: {at_once:?}"
    );
}

/// A watch server: a refused token gets a trailers-only UNAUTHENTICATED
/// response at once; an accepted one gets the response headers at once and
/// its first message `late` after them, then OK in the trailers.
async fn late_watch_server(validator: TokenValidator, late: Duration) -> SocketAddr {
    frames_server(validator, move |accepted, tx| {
        if !accepted {
            // No frames: the channel closes with `tx`.
            return Response::builder().header("grpc-status", "16");
        }
        tokio::spawn(async move {
            tokio::time::sleep(late).await;
            // HealthCheckResponse { status: SERVING }, length-prefixed.
            let message = Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1]);
            let _ = tx.send(Ok(Frame::data(message))).await;
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let _ = tx.send(Ok(Frame::trailers(trailers))).await;
        });
        Response::builder()
    })
    .await
}

/// A watch whose first message comes later than the peek window is handed
/// over undecided. A token obtained to heal a refusal, then used only by
/// such watches, is proven by them all the same: when it is revoked in
/// turn, its refusal is healed, not taken for a refresh that did not help.
#[tokio::test]
async fn a_healed_token_used_only_by_late_watches_is_healed_again_after_a_revocation() {
    let mock = mock().await;
    let addr = late_watch_server(mock.validator(), Duration::from_millis(300)).await;
    let layer = layer_for(&mock);
    let mut client = HealthClient::new(channel(addr, &layer).await);
    let watch = |client: &mut HealthClient<SimacanAuth<Channel>>| {
        let mut client = client.clone();
        async move {
            let mut updates = bounded(client.watch(HealthCheckRequest::default()))
                .await?
                .into_inner();
            let first = bounded(updates.message()).await?;
            assert!(first.is_some());
            Ok::<_, Status>(())
        }
    };
    watch(&mut client).await.unwrap();
    mock.revoke_access_tokens();
    // Healed: refused in headers, refreshed, replayed, answered in full.
    watch(&mut client).await.unwrap();
    for _ in 0..3 {
        watch(&mut client).await.unwrap();
    }
    assert_eq!(mock.counts().refresh, 1);
    mock.revoke_access_tokens();
    let again = watch(&mut client).await;
    assert!(
        again.is_ok(),
        "a refresh that helped was taken for one that did not: {again:?}, stats {:?}",
        layer.stats()
    );
    assert_eq!(mock.counts().refresh, 2);
}
