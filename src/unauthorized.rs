//! The peek at a gRPC response's trailers, for the refusal a server sends
//! there: headers, no message, and trailers with UNAUTHENTICATED
//! (`grpc-status: 16`). [`heal::classify`](crate::heal::classify) settles
//! every other response by its head, and asks for this peek
//! ([`Class::InTrailers`](crate::heal::Class::InTrailers)) only for an
//! `application/grpc` response with no status in its headers whose body is
//! a `tonic::body::Body` (feature `tonic`). The first frame is always put
//! back in front of the body, so a response handed to the caller is the one
//! the server sent, refusal or not.
//!
//! How long the peek may wait depends on the request: only once its body
//! was sent in full can the server not be waiting for the client, and only
//! then is the first frame awaited, for at most the layer's
//! [`grpc_peek_window`](crate::SimacanAuthLayer::grpc_peek_window). While the
//! request body may still be streaming (a bidirectional or client stream),
//! the first frame is polled once, and the response is handed over at once
//! when it is not ready.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use tokio::time::Sleep;

/// Whether a gRPC response with a body of type `R` can be peeked at.
#[cfg(feature = "tonic")]
pub(crate) fn peekable<R: 'static>() -> bool {
    std::any::TypeId::of::<R>() == std::any::TypeId::of::<tonic::body::Body>()
}

#[cfg(not(feature = "tonic"))]
pub(crate) fn peekable<R: 'static>() -> bool {
    false
}

/// What a peek at the first frame of a gRPC response found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Only a `tonic::body::Body` can be peeked at, and decided.
#[cfg_attr(not(feature = "tonic"), allow(dead_code))]
pub(crate) enum Peeked {
    /// Trailers with UNAUTHENTICATED: the token was refused.
    Refused,
    /// A message, other trailers, or the end: the token was accepted.
    Accepted,
    /// Nothing yet, and no more waiting: handed over undecided.
    Undecided,
}

/// Polls the first frame of a gRPC response body and puts it back in front
/// of the body; `Undecided` when it is not ready and there is no `window`
/// to wait in or the window has passed.
pub(crate) fn poll_peek<R: 'static>(
    response: &mut Response<R>,
    window: Option<Pin<&mut Sleep>>,
    cx: &mut Context<'_>,
) -> Poll<Peeked> {
    #[cfg(feature = "tonic")]
    {
        let body: &mut dyn std::any::Any = response.body_mut();
        if let Some(body) = body.downcast_mut::<tonic::body::Body>() {
            let decided = |refused| match refused {
                true => Peeked::Refused,
                false => Peeked::Accepted,
            };
            return match (tonic_peek::poll(body, cx), window) {
                (Poll::Ready(refused), _) => Poll::Ready(decided(refused)),
                (Poll::Pending, Some(window)) => {
                    std::future::Future::poll(window, cx).map(|()| Peeked::Undecided)
                }
                (Poll::Pending, None) => Poll::Ready(Peeked::Undecided),
            };
        }
    }
    let _ = (response, window, cx);
    Poll::Ready(Peeked::Undecided)
}

#[cfg(feature = "tonic")]
mod tonic_peek {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use bytes::Bytes;
    use http_body::{Body as _, Frame, SizeHint};
    use tonic::body::Body;

    type Polled = Option<Result<Frame<Bytes>, tonic::Status>>;

    /// Whether the first frame is trailers with UNAUTHENTICATED. The frame is
    /// put back whatever it is: a refusal may still reach the caller (the
    /// replay was refused too, the cooldown is on, the body cannot be
    /// replayed), and must then carry its status.
    pub(super) fn poll(body: &mut Body, cx: &mut Context<'_>) -> Poll<bool> {
        let first = std::task::ready!(Pin::new(&mut *body).poll_frame(cx));
        let refused = matches!(&first, Some(Ok(frame))
            if frame.trailers_ref().is_some_and(crate::heal::trailers_refuse));
        let rest = std::mem::replace(body, Body::empty());
        *body = Body::new(Prepended {
            first: Some(first),
            rest,
        });
        Poll::Ready(refused)
    }

    /// A body with its first frame put back in front.
    struct Prepended {
        first: Option<Polled>,
        rest: Body,
    }

    impl http_body::Body for Prepended {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Polled> {
            match self.first.take() {
                Some(first) => Poll::Ready(first),
                None => Pin::new(&mut self.rest).poll_frame(cx),
            }
        }

        fn is_end_stream(&self) -> bool {
            match &self.first {
                Some(first) => first.is_none(),
                None => self.rest.is_end_stream(),
            }
        }

        fn size_hint(&self) -> SizeHint {
            let first = match &self.first {
                Some(Some(Ok(frame))) => frame.data_ref().map_or(0, |d| d.len() as u64),
                Some(_) => return SizeHint::with_exact(0),
                None => 0,
            };
            let rest = self.rest.size_hint();
            let mut hint = SizeHint::new();
            hint.set_lower(rest.lower().saturating_add(first));
            if let Some(upper) = rest.upper().and_then(|u| u.checked_add(first)) {
                hint.set_upper(upper);
            }
            hint
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonic_bodies_can_be_peeked_at() {
        assert!(!peekable::<()>());
        assert!(!peekable::<String>());
        assert_eq!(peekable::<tonic::body::Body>(), cfg!(feature = "tonic"));
    }

    #[cfg(feature = "tonic")]
    mod peek {
        use std::time::Duration;

        use bytes::Bytes;
        use http::HeaderMap;
        use http_body::{Body as _, Frame};
        use http_body_util::{BodyExt, StreamBody};
        use tokio::sync::mpsc;
        use tokio_stream::wrappers::ReceiverStream;

        use super::super::*;
        use crate::heal::GRPC_STATUS;

        /// The gRPC status code UNAUTHENTICATED.
        const UNAUTHENTICATED: &str = "16";

        type Sender = mpsc::Sender<Result<Frame<Bytes>, tonic::Status>>;

        /// A gRPC response whose body yields what is sent on the channel.
        fn grpc_response() -> (Sender, Response<tonic::body::Body>) {
            let (tx, rx) = mpsc::channel(4);
            let body = tonic::body::Body::new(StreamBody::new(ReceiverStream::new(rx)));
            (tx, Response::new(body))
        }

        fn trailers(status: &str) -> Frame<Bytes> {
            let mut trailers = HeaderMap::new();
            trailers.insert(GRPC_STATUS, status.parse().unwrap());
            Frame::trailers(trailers)
        }

        async fn peek(
            response: &mut Response<tonic::body::Body>,
            mut window: Option<Pin<Box<Sleep>>>,
        ) -> Peeked {
            let peek = std::future::poll_fn(|cx| {
                poll_peek(response, window.as_mut().map(Pin::as_mut), cx)
            });
            tokio::time::timeout(Duration::from_secs(10), peek)
                .await
                .expect("the peek hung")
        }

        async fn status_in_trailers(response: Response<tonic::body::Body>) -> String {
            let body = response.into_body().collect().await.unwrap();
            let status = body.trailers().and_then(|t| t.get(GRPC_STATUS));
            status.unwrap().to_str().unwrap().to_owned()
        }

        #[tokio::test]
        async fn a_refusal_in_trailers_is_put_back() {
            let (tx, mut response) = grpc_response();
            tx.send(Ok(trailers(UNAUTHENTICATED))).await.unwrap();
            drop(tx);
            assert_eq!(peek(&mut response, None).await, Peeked::Refused);
            assert_eq!(status_in_trailers(response).await, UNAUTHENTICATED);
        }

        #[tokio::test]
        async fn anything_else_is_put_back() {
            let (tx, mut response) = grpc_response();
            tx.send(Ok(Frame::data(Bytes::from_static(b"msg"))))
                .await
                .unwrap();
            tx.send(Ok(trailers("0"))).await.unwrap();
            drop(tx);
            assert_eq!(peek(&mut response, None).await, Peeked::Accepted);
            assert_eq!(response.body().size_hint().lower(), 3);
            let body = response.into_body().collect().await.unwrap();
            assert_eq!(body.trailers().unwrap()[GRPC_STATUS], "0");
            assert_eq!(body.to_bytes(), "msg");
        }

        #[tokio::test(start_paused = true)]
        async fn without_a_window_a_frame_that_is_not_ready_is_not_awaited() {
            let (tx, mut response) = grpc_response();
            let start = tokio::time::Instant::now();
            assert_eq!(peek(&mut response, None).await, Peeked::Undecided);
            assert_eq!(start.elapsed(), Duration::ZERO);
            // Handed over unpeeked: the refusal still reaches the caller.
            tx.send(Ok(trailers(UNAUTHENTICATED))).await.unwrap();
            drop(tx);
            assert_eq!(status_in_trailers(response).await, UNAUTHENTICATED);
        }

        /// The layer's default window.
        const PEEK_WINDOW: Duration = Duration::from_millis(100);

        #[test]
        fn the_window_is_the_layers_default() {
            let settings = crate::token::Settings::default();
            assert_eq!(settings.grpc_peek_window, PEEK_WINDOW);
        }

        #[tokio::test(start_paused = true)]
        async fn a_window_bounds_the_wait_for_the_first_frame() {
            let (_tx, mut response) = grpc_response();
            let start = tokio::time::Instant::now();
            let window = Box::pin(tokio::time::sleep(PEEK_WINDOW));
            assert_eq!(peek(&mut response, Some(window)).await, Peeked::Undecided);
            assert_eq!(start.elapsed(), PEEK_WINDOW);
        }
    }
}
