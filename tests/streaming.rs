//! Streaming request bodies through the layer over real HTTP/1.1 and HTTP/2:
//! replays are byte-for-byte, whatever the server read before its 401.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::Frame;
use http_body_util::{
    BodyExt, Full, StreamBody,
    combinators::{BoxBody, UnsyncBoxBody},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use simacan_auth::{SimacanAuth, SimacanAuthLayer, mock::MockAuthApi};
use support::{bounded, layer_for, mock};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::{BoxError, Layer, Service, ServiceExt};

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

/// Trailers reach the server on the first attempt and on the replay; over
/// HTTP/1.1 the replay goes out chunked, not with a `content-length` that
/// would drop them.
async fn trailers_are_preserved_on_replay(protocol: Protocol) {
    let mock = mock().await;
    mock.set_target_reads_body_first(true);
    let svc = through(&layer_for(&mock), protocol);
    warm(&svc, &mock).await;
    let (tx, body) = channel_body();
    let request = Request::post(mock.url("/uploads"))
        .header("trailer", "x-checksum")
        .body(body)
        .unwrap();
    let call = tokio::spawn(svc.clone().oneshot(request));
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
    assert_eq!(response.status(), StatusCode::OK, "{protocol:?}");
    let recorded = mock.target_requests();
    let (rejected, replayed) = (&recorded[recorded.len() - 2], &recorded[recorded.len() - 1]);
    assert!(!rejected.authorized && replayed.authorized);
    assert_eq!(replayed.body, "first half, second half");
    assert_eq!(
        rejected.trailers.as_ref(),
        Some(&trailers),
        "{protocol:?}: the first attempt carried its trailers"
    );
    assert_eq!(
        replayed.trailers.as_ref(),
        Some(&trailers),
        "{protocol:?}: the replay lost its trailers; it went out with content-length: {:?}, \
         transfer-encoding: {:?}",
        replayed.headers.get("content-length"),
        replayed.headers.get("transfer-encoding"),
    );
}

#[tokio::test]
async fn trailers_are_preserved_on_replay_over_http1() {
    trailers_are_preserved_on_replay(Protocol::Http1).await;
}

#[tokio::test]
async fn trailers_are_preserved_on_replay_over_http2() {
    trailers_are_preserved_on_replay(Protocol::Http2).await;
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

/// A bare HTTP/1.1 server that answers on the request head, as nginx does
/// (401 without a valid token, 200 with one), then drains the body and
/// reports what it read and how the body ended.
mod early_answer {
    use simacan_auth::mock::TokenValidator;
    use tokio::{
        io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
        net::{TcpListener, TcpStream},
        sync::mpsc,
        task::JoinHandle,
    };

    use super::bounded;

    #[derive(Debug)]
    pub enum Event {
        /// A request head arrived; the answer was sent at once.
        Head { authorized: bool },
        /// Body bytes read.
        Data { authorized: bool, len: usize },
        /// The body ended: complete, or cut off by the connection closing.
        Body {
            authorized: bool,
            body: Vec<u8>,
            complete: bool,
        },
    }

    pub struct Server {
        url: String,
        events: mpsc::UnboundedReceiver<Event>,
        seen: Vec<Event>,
        accept: JoinHandle<()>,
    }

    impl Server {
        pub async fn start(validator: TokenValidator) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let (tx, events) = mpsc::unbounded_channel();
            let accept = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, validator.clone(), tx.clone()));
                }
            });
            Server {
                url,
                events,
                seen: Vec::new(),
                accept,
            }
        }

        pub fn url(&self, path: &str) -> String {
            format!("{}{path}", self.url)
        }

        /// The first event, in order of arrival, that `wanted` picks.
        pub async fn wait_for(&mut self, wanted: impl Fn(&Event) -> bool) -> Event {
            if let Some(i) = self.seen.iter().position(&wanted) {
                return self.seen.remove(i);
            }
            loop {
                let event = bounded(self.events.recv()).await.expect("server runs");
                if wanted(&event) {
                    return event;
                }
                self.seen.push(event);
            }
        }

        /// Waits until `len` body bytes of accepted requests have been read.
        pub async fn read_accepted(&mut self, len: usize) {
            let mut read = 0;
            while read < len {
                if let Event::Data { len, .. } = self
                    .wait_for(|e| {
                        matches!(
                            e,
                            Event::Data {
                                authorized: true,
                                ..
                            }
                        )
                    })
                    .await
                {
                    read += len;
                }
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.accept.abort();
        }
    }

    enum Framing {
        Chunked,
        Length(usize),
    }

    async fn serve(
        stream: TcpStream,
        validator: TokenValidator,
        events: mpsc::UnboundedSender<Event>,
    ) {
        let mut stream = BufReader::new(stream);
        // Keep-alive: one request after another until the client closes.
        while let Some((authorization, framing)) = read_head(&mut stream).await {
            let authorized = validator.check(authorization.as_deref().map(str::as_bytes));
            let _ = events.send(Event::Head { authorized });
            let status = if authorized {
                "200 OK"
            } else {
                "401 Unauthorized"
            };
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            let mut body = Vec::new();
            let complete = read_body(&mut stream, framing, &mut body, |len| {
                let _ = events.send(Event::Data { authorized, len });
            })
            .await;
            let _ = events.send(Event::Body {
                authorized,
                body,
                complete,
            });
            if !complete {
                return;
            }
        }
    }

    /// The `authorization` header and the body framing, or `None` at the end
    /// of the connection.
    async fn read_head(stream: &mut BufReader<TcpStream>) -> Option<(Option<String>, Framing)> {
        let mut authorization = None;
        let mut framing = Framing::Length(0);
        let mut line = String::new();
        stream.read_line(&mut line).await.ok().filter(|&n| n > 0)?;
        loop {
            line.clear();
            stream.read_line(&mut line).await.ok().filter(|&n| n > 0)?;
            let Some((name, value)) = line.trim_end().split_once(':') else {
                return Some((authorization, framing));
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.to_owned()),
                "transfer-encoding" if value.eq_ignore_ascii_case("chunked") => {
                    framing = Framing::Chunked
                }
                "content-length" => framing = Framing::Length(value.parse().ok()?),
                _ => {}
            }
        }
    }

    /// Reads the body into `body`; `false` when the connection closed first.
    async fn read_body(
        stream: &mut BufReader<TcpStream>,
        framing: Framing,
        body: &mut Vec<u8>,
        mut read: impl FnMut(usize),
    ) -> bool {
        let mut line = String::new();
        match framing {
            Framing::Length(len) => {
                while body.len() < len {
                    let mut buf = vec![0; (len - body.len()).min(16 * 1024)];
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => {
                            body.extend_from_slice(&buf[..n]);
                            read(n);
                        }
                    }
                }
                true
            }
            Framing::Chunked => loop {
                line.clear();
                if !matches!(stream.read_line(&mut line).await, Ok(n) if n > 0) {
                    return false;
                }
                let size = line.trim_end().split(';').next().unwrap_or_default();
                let Ok(size) = usize::from_str_radix(size, 16) else {
                    return false;
                };
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        line.clear();
                        match stream.read_line(&mut line).await {
                            Ok(n) if n > 0 && line.trim_end().is_empty() => return true,
                            Ok(n) if n > 0 => {}
                            _ => return false,
                        }
                    }
                }
                let mut chunk = vec![0; size + 2];
                if stream.read_exact(&mut chunk).await.is_err() {
                    return false;
                }
                body.extend_from_slice(&chunk[..size]);
                read(size);
            },
        }
    }
}

/// A streamed body that announces its length, so HTTP/1.1 sends it with a
/// `content-length` instead of chunked.
struct WithLength {
    inner: Streamed,
    remaining: u64,
}

impl http_body::Body for WithLength {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            let len = frame.data_ref().map_or(0, |d| d.len() as u64);
            self.remaining = self.remaining.saturating_sub(len);
        }
        polled
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// An upload refused on its head while it streams: the replay takes the
/// stream over, and the first attempt's body must end then (chunked: with
/// its last chunk; with a length: by closing the connection), or its
/// connection waits until the server times out.
async fn a_first_attempt_taken_over_ends(with_length: bool) {
    let mock = mock().await;
    let mut server = early_answer::Server::start(mock.validator()).await;
    let layer = layer_for(&mock);
    bounded(layer.access_token()).await.unwrap();
    mock.revoke_access_tokens();
    let svc = through(&layer, Protocol::Http1);

    let parts = chunks(4, 500);
    let (tx, mut body) = channel_body();
    if with_length {
        let remaining = parts.concat().len() as u64;
        body = WithLength {
            inner: body,
            remaining,
        }
        .boxed();
    }
    let request = Request::post(server.url("/uploads")).body(body).unwrap();
    let call = tokio::spawn(svc.oneshot(request));
    send_chunk(&tx, &parts[0]).await;
    // Once the replay's head arrives, the replay has taken the stream over
    // and the first attempt waits on a source it no longer has.
    server
        .wait_for(|e| matches!(e, early_answer::Event::Head { authorized: true }))
        .await;
    for chunk in &parts[1..] {
        send_chunk(&tx, chunk).await;
    }
    drop(tx);

    let first = server
        .wait_for(|e| {
            matches!(
                e,
                early_answer::Event::Body {
                    authorized: false,
                    ..
                }
            )
        })
        .await;
    let early_answer::Event::Body { body, complete, .. } = first else {
        unreachable!()
    };
    assert!(
        parts.concat().starts_with(&body),
        "the first attempt sent a prefix"
    );
    assert_eq!(
        complete, !with_length,
        "chunked ends with its last chunk; a cut-short length closes the connection"
    );

    let response = bounded(call).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let replayed = server
        .wait_for(|e| {
            matches!(
                e,
                early_answer::Event::Body {
                    authorized: true,
                    ..
                }
            )
        })
        .await;
    let early_answer::Event::Body { body, complete, .. } = replayed else {
        unreachable!()
    };
    assert!(complete);
    assert_eq!(body, parts.concat(), "the replay is byte for byte");
    assert_eq!(mock.counts().refresh, 1);
}

#[tokio::test]
async fn a_chunked_first_attempt_ends_once_the_replay_takes_over() {
    a_first_attempt_taken_over_ends(false).await;
}

#[tokio::test]
async fn a_sized_first_attempt_is_closed_once_the_replay_takes_over() {
    a_first_attempt_taken_over_ends(true).await;
}

/// Chunk data that counts its drops.
struct Tracked {
    data: Vec<u8>,
    drops: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Tracked {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Whether `condition` holds within a second, checked every few milliseconds.
async fn eventually(condition: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

/// An upload answered 200 on its head streams on after the caller has the
/// response, as a long gRPC stream does. No replay can follow, so no frame
/// may be kept for one, even while the completed response future lives on.
#[tokio::test]
async fn frames_are_let_go_once_the_response_is_accepted() {
    let mock = mock().await;
    let mut server = early_answer::Server::start(mock.validator()).await;
    let mut svc = through(&layer_for(&mock), Protocol::Http1);
    let drops = Arc::new(AtomicUsize::new(0));
    let tracked = |i: u8| {
        Frame::data(Bytes::from_owner(Tracked {
            data: vec![i; 1000],
            drops: Arc::clone(&drops),
        }))
    };
    let (tx, body) = channel_body();
    let request = Request::post(server.url("/uploads")).body(body).unwrap();
    bounded(svc.ready()).await.unwrap();
    // Kept after it completes, as by a caller polling it by reference.
    let mut call = std::pin::pin!(svc.call(request));
    tx.send(Ok(tracked(0))).await.unwrap();
    let response = bounded(call.as_mut()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for i in 1..8 {
        tx.send(Ok(tracked(i))).await.unwrap();
    }
    server.read_accepted(8 * 1000).await;
    // The client drops each chunk once written; nothing else may keep one.
    let released = eventually(|| drops.load(Ordering::SeqCst) == 8).await;
    assert!(
        released,
        "{} of 8 sent frames let go while the stream is open",
        drops.load(Ordering::SeqCst)
    );
    drop(tx);
    let sent = server
        .wait_for(|e| {
            matches!(
                e,
                early_answer::Event::Body {
                    authorized: true,
                    ..
                }
            )
        })
        .await;
    let early_answer::Event::Body { body, complete, .. } = sent else {
        unreachable!()
    };
    assert!(complete);
    let expected: Vec<u8> = (0..8).flat_map(|i| [i; 1000]).collect();
    assert_eq!(body, expected, "streaming goes on unchanged");
}
