//! The refusal detection on arbitrary response heads, and the first-frame
//! peek of gRPC bodies on arbitrary first frames: a response is refused
//! exactly when it is a 401, or a gRPC 200 whose `grpc-status` (in the
//! headers, or in trailers that come first) is `16`; a peeked body that is
//! not refused is put back frame for frame.
#![no_main]

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame};
use libfuzzer_sys::{arbitrary, fuzz_target};
use simacan_auth::fuzzing::{poll_peek, verdict, Verdict};

#[derive(arbitrary::Arbitrary, Debug)]
enum Status {
    Ok,
    Unauthorized,
    Other(u16),
}

#[derive(arbitrary::Arbitrary, Debug)]
enum Value {
    Sixteen,
    Text(Vec<u8>),
}

#[derive(arbitrary::Arbitrary, Debug)]
enum Name {
    GrpcStatus,
    ContentType,
    Text(Vec<u8>),
}

#[derive(arbitrary::Arbitrary, Debug)]
enum ContentType {
    Grpc,
    GrpcProto,
    Text(Vec<u8>),
}

#[derive(arbitrary::Arbitrary, Debug)]
enum Scripted {
    Data(Vec<u8>),
    Trailers(Vec<(Name, Value)>),
    Error,
}

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    status: Status,
    content_type: Option<ContentType>,
    headers: Vec<(Name, Value)>,
    frames: Vec<Scripted>,
    /// How many times the body answers `Pending` before its first frame.
    pending_first: u8,
}

fn name(name: &Name) -> Option<HeaderName> {
    match name {
        Name::GrpcStatus => Some(HeaderName::from_static("grpc-status")),
        Name::ContentType => Some(http::header::CONTENT_TYPE),
        Name::Text(bytes) => HeaderName::from_bytes(bytes).ok(),
    }
}

fn value(value: &Value) -> Option<HeaderValue> {
    match value {
        Value::Sixteen => Some(HeaderValue::from_static("16")),
        Value::Text(bytes) => HeaderValue::from_bytes(bytes).ok(),
    }
}

fn header_map(pairs: &[(Name, Value)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in pairs {
        if let (Some(n), Some(v)) = (name(n), value(v)) {
            map.append(n, v);
        }
    }
    map
}

/// What the body is scripted to yield.
#[derive(Clone, Debug, PartialEq)]
enum Yielded {
    Data(Bytes),
    Trailers(HeaderMap),
    Error,
}

struct Source {
    frames: VecDeque<Yielded>,
    pending: u8,
}

impl Body for Source {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if self.pending > 0 {
            self.pending -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(self.frames.pop_front().map(|frame| match frame {
            Yielded::Data(data) => Ok(Frame::data(data)),
            Yielded::Trailers(trailers) => Ok(Frame::trailers(trailers)),
            Yielded::Error => Err(tonic::Status::internal("reset")),
        }))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

fn is_sixteen(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"16")
}

fuzz_target!(|input: Input| {
    let status = match input.status {
        Status::Ok => StatusCode::OK,
        Status::Unauthorized => StatusCode::UNAUTHORIZED,
        Status::Other(code) => match StatusCode::from_u16(code) {
            Ok(status) => status,
            Err(_) => return,
        },
    };
    let mut headers = header_map(&input.headers);
    if let Some(content_type) = &input.content_type {
        let value = match content_type {
            ContentType::Grpc => Some(HeaderValue::from_static("application/grpc")),
            ContentType::GrpcProto => Some(HeaderValue::from_static("application/grpc+proto")),
            ContentType::Text(bytes) => HeaderValue::from_bytes(bytes).ok(),
        };
        if let Some(value) = value {
            headers.insert(http::header::CONTENT_TYPE, value);
        }
    }
    let frames: VecDeque<Yielded> = input
        .frames
        .iter()
        .map(|frame| match frame {
            Scripted::Data(data) => Yielded::Data(Bytes::from(data.clone())),
            Scripted::Trailers(pairs) => Yielded::Trailers(header_map(pairs)),
            Scripted::Error => Yielded::Error,
        })
        .collect();

    let is_grpc = status == StatusCode::OK
        && headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let expected = if status == StatusCode::UNAUTHORIZED || (is_grpc && is_sixteen(&headers)) {
        Verdict::Refused
    } else if is_grpc && !headers.contains_key("grpc-status") {
        Verdict::PeekTrailers
    } else {
        Verdict::Accepted
    };

    // Only tonic bodies are peeked.
    let mut plain = Response::new(());
    *plain.status_mut() = status;
    *plain.headers_mut() = headers.clone();
    let plain_expected = match expected {
        Verdict::PeekTrailers => Verdict::Accepted,
        other => other,
    };
    assert_eq!(verdict(&plain), plain_expected);

    let body = tonic::body::Body::new(Source {
        frames: frames.clone(),
        pending: input.pending_first,
    });
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    let found = verdict(&response);
    assert_eq!(found, expected);
    if found != Verdict::PeekTrailers {
        return;
    }

    let _entered = runtime().enter();
    // A window that does not pass: the runtime is never driven.
    let mut window = Box::pin(tokio::time::sleep(Duration::from_secs(3600)));
    let mut cx = Context::from_waker(Waker::noop());
    let refused = loop {
        if let Poll::Ready(refused) = poll_peek(&mut response, window.as_mut(), &mut cx) {
            break refused;
        }
    };
    let first_refuses = matches!(frames.front(), Some(Yielded::Trailers(t)) if is_sixteen(t));
    assert_eq!(refused, first_refuses);
    if refused {
        return;
    }

    // Put back untouched: the same frames, in order.
    let body = response.body_mut();
    let mut seen = Vec::new();
    loop {
        let claims_end = body.is_end_stream();
        let frame = loop {
            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(&mut cx) {
                break frame;
            }
        };
        let Some(frame) = frame else { break };
        assert!(!claims_end, "a frame after is_end_stream");
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => seen.push(Yielded::Data(data)),
                Err(frame) => seen.push(Yielded::Trailers(frame.into_trailers().unwrap())),
            },
            Err(_) => {
                seen.push(Yielded::Error);
                break;
            }
        }
    }
    let mut expected_frames: Vec<Yielded> = Vec::new();
    for frame in frames {
        let stop = frame == Yielded::Error;
        expected_frames.push(frame);
        if stop {
            break;
        }
    }
    assert_eq!(seen, expected_frames);
});
