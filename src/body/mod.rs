//! Request bodies that can be sent again.
//!
//! To heal a 401 the layer sends the request a second time, so it keeps a
//! replay of the body while the first attempt is in flight.
//! [`ReplayBody`] splits a body into the one to send now and a replay of
//! it:
//!
//! - Bodies whose clone shares the bytes (`Full<Bytes>`,
//!   `Full<&'static [u8]>`, [`Empty`]) are cloned, whatever their size.
//! - Bodies whose clone copies the bytes (`String`, [`Full`] of any other
//!   data, such as `BytesMut`) are cloned only up to the limit.
//! - Streaming bodies ([`BoxBody`], [`UnsyncBoxBody`], `tonic::body::Body`
//!   with feature `tonic`, `axum::body::Body` with feature `axum`) are
//!   teed lazily: each frame is forwarded as it is read, and a reference to
//!   it (a `Bytes` clone, not a copy) is kept, with the trailers, for a
//!   replay (frames under 512 bytes are copied into one run instead, and
//!   empty ones are not kept, so the copy stays close to its data bytes). Nothing is buffered up front and no latency is added. A body
//!   whose size hint exceeds the limit is not teed at all; one that grows
//!   past it while streaming drops its copy and streams on. Either way a 401
//!   then reaches the caller, never an error or a truncated replay. Once the
//!   response is accepted no replay can follow: the copy is let go at once
//!   and the rest streams without one, however long the stream lasts.
//! - When the server answers 401 before reading the whole body (auth is
//!   checked on headers), the replay sends the part already read and then
//!   the rest of the original stream. The replay takes the stream over at a
//!   frame boundary, so it never waits for the first attempt to let go, and
//!   never sends a byte twice or drops one. The first attempt's body then
//!   ends, so its connection finishes (or, when the body announced a
//!   length, is closed) rather than wait for a server timeout.
//!
//! A body type the layer does not know can join by implementing the trait;
//! returning `None` for the replay means "never replay": a 401 then reaches
//! the caller, and the token is still refreshed for the next request.
//! Implementing [`ReplayBody::is_sent_in_full`] as well lets the layer wait
//! briefly for a gRPC refusal in trailers once the body was sent.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use simacan_auth::body::ReplayBody;
//!
//! let mut body = Full::new(Bytes::from_static(b"{\"trip\":1}"));
//! let replay = body.prepare_replay(1024);
//! let again = Full::<Bytes>::replay(replay.unwrap()).unwrap();
//! # let _ = (body, again);
//! ```

mod tee;

use std::any::TypeId;

use bytes::{Buf, Bytes};
use http_body::Body as _;
use http_body_util::{
    Empty, Full,
    combinators::{BoxBody, UnsyncBoxBody},
};

pub use tee::StreamReplay;
use tee::{Tee, fits, tee};

/// A body that can be sent again. See the [module docs](self).
///
/// # Example
///
/// A body type of your own that never replays:
///
/// ```
/// use simacan_auth::body::ReplayBody;
///
/// struct OneShot(String);
///
/// impl ReplayBody for OneShot {
///     type Replay = std::convert::Infallible;
///
///     fn prepare_replay(&mut self, _limit: usize) -> Option<Self::Replay> {
///         None
///     }
///
///     fn replay(replay: Self::Replay) -> Option<Self> {
///         match replay {}
///     }
/// }
/// ```
pub trait ReplayBody: Sized {
    /// What is kept of the body to send it again.
    type Replay;

    /// Keeps what is needed to send the body again, when it can be replayed,
    /// turning `self` into the body to send now (a streaming body becomes
    /// its tee). `limit` is the most bytes the layer may hold for a replay
    /// ([`SimacanAuthLayer::replay_body_limit`](crate::SimacanAuthLayer::replay_body_limit));
    /// bodies that are shared rather than copied may ignore it.
    fn prepare_replay(&mut self, limit: usize) -> Option<Self::Replay>;

    /// The body to send again, or `None` when it can no longer be rebuilt.
    fn replay(replay: Self::Replay) -> Option<Self>;

    /// Whether the body `replay` was prepared from has been sent in full:
    /// read to its end, or whole from the start, so that none of it waits
    /// for the response. A replay built from `replay` must then be whole
    /// too.
    ///
    /// For a gRPC response without a status in its headers, the layer waits
    /// a short while for the first frame (trailers with UNAUTHENTICATED are
    /// a refusal) only when this is `true`: while the request body may still
    /// be streaming, the server may be waiting for the client, and the
    /// response is handed over at once instead (see the [`future`
    /// module](crate::future)). `true` for `Full`, `Empty` and `String`, and
    /// for a teed streaming body once its source was read to the end.
    /// Defaults to `false`, which never delays a call but may let a refusal
    /// sent in trailers after the headers reach the caller unhealed.
    ///
    /// # Example
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{combinators::BoxBody, BodyExt, Full};
    /// use simacan_auth::body::ReplayBody;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut body: BoxBody<Bytes, std::convert::Infallible> = Full::new(Bytes::from("abc")).boxed();
    /// let replay = body.prepare_replay(1024).unwrap();
    /// assert!(!BoxBody::is_sent_in_full(&replay));
    /// body.collect().await.unwrap();
    /// assert!(BoxBody::is_sent_in_full(&replay));
    /// # }
    /// ```
    fn is_sent_in_full(_replay: &Self::Replay) -> bool {
        false
    }
}

/// Cloned for the replay. `Full<Bytes>` and `Full<&'static [u8]>` share
/// their bytes when cloned, so they are always replayable and cost no copy;
/// any other data (`BytesMut`, `VecDeque<u8>`, …) is copied by its clone,
/// so only when its length is within the limit.
///
/// # Example
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use http_body_util::Full;
/// use simacan_auth::body::ReplayBody;
///
/// let mut shared = Full::new(Bytes::from(vec![0u8; 4096]));
/// assert!(shared.prepare_replay(1024).is_some(), "shared: always");
/// let mut copied = Full::new(BytesMut::zeroed(4096));
/// assert!(copied.prepare_replay(1024).is_none(), "copied: up to the limit");
/// assert!(copied.prepare_replay(4096).is_some());
/// ```
impl<D> ReplayBody for Full<D>
where
    D: Buf + Clone + 'static,
{
    type Replay = Full<D>;

    fn prepare_replay(&mut self, limit: usize) -> Option<Self::Replay> {
        let replayable =
            shares_on_clone::<D>() || self.size_hint().exact().is_some_and(|len| fits(len, limit));
        replayable.then(|| self.clone())
    }

    fn replay(replay: Self::Replay) -> Option<Self> {
        Some(replay)
    }

    fn is_sent_in_full(_: &Self::Replay) -> bool {
        true
    }
}

impl<D> ReplayBody for Empty<D> {
    type Replay = ();

    fn prepare_replay(&mut self, _limit: usize) -> Option<Self::Replay> {
        Some(())
    }

    fn replay((): Self::Replay) -> Option<Self> {
        Some(Empty::new())
    }

    fn is_sent_in_full((): &Self::Replay) -> bool {
        true
    }
}

/// A `String` is copied for the replay, so only up to the limit.
impl ReplayBody for String {
    type Replay = String;

    fn prepare_replay(&mut self, limit: usize) -> Option<Self::Replay> {
        (self.len() <= limit).then(|| self.clone())
    }

    fn replay(replay: Self::Replay) -> Option<Self> {
        Some(replay)
    }

    fn is_sent_in_full(_: &Self::Replay) -> bool {
        true
    }
}

/// Whether cloning `D` shares its bytes rather than copying them. Decided
/// at compile time for each `D`, so `Full<Bytes>` pays nothing for it.
fn shares_on_clone<D: 'static>() -> bool {
    let data = TypeId::of::<D>();
    data == TypeId::of::<Bytes>() || data == TypeId::of::<&'static [u8]>()
}

/// Replaces `body` with its tee wrapped back into the body type, or leaves
/// it unreplayable when its size hint exceeds `limit`.
fn tee_into<B>(
    body: &mut B,
    limit: usize,
    wrap: impl FnOnce(Tee<B>) -> B,
) -> Option<StreamReplay<B>>
where
    B: http_body::Body<Data = Bytes> + Unpin + Default,
{
    match tee(std::mem::take(body), limit) {
        Ok((tee, replay)) => {
            *body = wrap(tee);
            Some(replay)
        }
        Err(untouched) => {
            *body = untouched;
            None
        }
    }
}

/// Teed lazily; see the [module docs](self).
impl<E: 'static> ReplayBody for BoxBody<Bytes, E> {
    type Replay = StreamReplay<Self>;

    fn prepare_replay(&mut self, limit: usize) -> Option<Self::Replay> {
        tee_into(self, limit, BoxBody::new)
    }

    fn replay(replay: Self::Replay) -> Option<Self> {
        replay.take().map(BoxBody::new)
    }

    fn is_sent_in_full(replay: &Self::Replay) -> bool {
        replay.source_ended()
    }
}

/// Teed lazily; see the [module docs](self).
impl<E: 'static> ReplayBody for UnsyncBoxBody<Bytes, E> {
    type Replay = StreamReplay<Self>;

    fn prepare_replay(&mut self, limit: usize) -> Option<Self::Replay> {
        tee_into(self, limit, UnsyncBoxBody::new)
    }

    fn replay(replay: Self::Replay) -> Option<Self> {
        replay.take().map(UnsyncBoxBody::new)
    }

    fn is_sent_in_full(replay: &Self::Replay) -> bool {
        replay.source_ended()
    }
}

/// Teed lazily; see the [module docs](self).
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl ReplayBody for tonic::body::Body {
    type Replay = StreamReplay<Self>;

    fn prepare_replay(&mut self, limit: usize) -> Option<Self::Replay> {
        tee_into(self, limit, tonic::body::Body::new)
    }

    fn replay(replay: Self::Replay) -> Option<Self> {
        replay.take().map(tonic::body::Body::new)
    }

    fn is_sent_in_full(replay: &Self::Replay) -> bool {
        replay.source_ended()
    }
}

/// Teed lazily; see the [module docs](self).
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl ReplayBody for axum_core::body::Body {
    type Replay = StreamReplay<Self>;

    fn prepare_replay(&mut self, limit: usize) -> Option<Self::Replay> {
        tee_into(self, limit, axum_core::body::Body::new)
    }

    fn replay(replay: Self::Replay) -> Option<Self> {
        replay.take().map(axum_core::body::Body::new)
    }

    fn is_sent_in_full(replay: &Self::Replay) -> bool {
        replay.source_ended()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use http_body_util::BodyExt;

    async fn bytes_of<B: http_body::Body>(body: B) -> Bytes
    where
        B::Error: std::fmt::Debug,
    {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn full_replays_the_same_bytes_without_copying() {
        let data = Bytes::from_static(b"payload");
        let mut now = Full::new(data.clone());
        let replay = now.prepare_replay(0);
        let again = Full::<Bytes>::replay(replay.unwrap()).unwrap();
        assert_eq!(bytes_of(now).await, data);
        let replayed = bytes_of(again).await;
        assert_eq!(replayed, data);
        assert_eq!(replayed.as_ptr(), data.as_ptr());
    }

    #[tokio::test]
    async fn shared_data_replays_whatever_its_size() {
        let mut now = Full::new(Bytes::from(vec![7u8; 100]));
        let again = Full::<Bytes>::replay(now.prepare_replay(10).unwrap()).unwrap();
        assert_eq!(bytes_of(again).await, bytes_of(now).await);
        let mut now = Full::new(b"static payload".as_slice());
        let again = Full::replay(now.prepare_replay(0).unwrap()).unwrap();
        assert_eq!(bytes_of(again).await, "static payload");
    }

    #[tokio::test]
    async fn copied_data_replays_up_to_the_limit() {
        let mut now = Full::new(BytesMut::from(&b"hello"[..]));
        let again = Full::replay(now.prepare_replay(5).unwrap()).unwrap();
        assert_eq!(bytes_of(again).await, "hello");
        assert_eq!(bytes_of(now).await, "hello");
        let mut now = Full::new(BytesMut::from(&b"hello!"[..]));
        assert!(now.prepare_replay(5).is_none(), "over the limit");
        assert_eq!(bytes_of(now).await, "hello!", "sent untouched");
        let mut now = Full::new(std::collections::VecDeque::from(b"queued".to_vec()));
        assert!(now.prepare_replay(5).is_none());
        assert!(now.prepare_replay(6).is_some());
    }

    #[tokio::test]
    async fn empty_replays_empty() {
        let mut now = Empty::<Bytes>::new();
        let replay = now.prepare_replay(0);
        assert!(bytes_of(now).await.is_empty());
        replay.unwrap();
        assert!(
            bytes_of(Empty::<Bytes>::replay(()).unwrap())
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn only_a_body_read_to_its_end_is_sent_in_full() {
        let mut full = Full::new(Bytes::from_static(b"whole"));
        assert!(Full::is_sent_in_full(&full.prepare_replay(0).unwrap()));
        let mut empty = Empty::<Bytes>::new();
        assert!(Empty::<Bytes>::is_sent_in_full(
            &empty.prepare_replay(0).unwrap()
        ));
        let mut string = String::from("whole");
        assert!(String::is_sent_in_full(&string.prepare_replay(5).unwrap()));

        // Sent in full once its data is read, even before its end is polled.
        let mut boxed = BoxBody::new(Full::new(Bytes::from_static(b"whole")));
        let replay = boxed.prepare_replay(1024).unwrap();
        assert!(!BoxBody::is_sent_in_full(&replay));
        boxed.frame().await.unwrap().unwrap();
        assert!(BoxBody::is_sent_in_full(&replay));

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, String>>(2);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut streaming = BoxBody::new(http_body_util::StreamBody::new(stream));
        let replay = streaming.prepare_replay(1024).unwrap();
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"part"))))
            .await
            .unwrap();
        let first = streaming.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "part");
        assert!(!BoxBody::is_sent_in_full(&replay), "more may follow");
        drop(tx);
        assert!(streaming.frame().await.is_none());
        assert!(BoxBody::is_sent_in_full(&replay));
    }

    #[tokio::test]
    async fn a_failed_body_is_not_sent_in_full() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, String>>(1);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut streaming = BoxBody::new(http_body_util::StreamBody::new(stream));
        let replay = streaming.prepare_replay(1024).unwrap();
        tx.send(Err("reset".to_owned())).await.unwrap();
        assert!(streaming.frame().await.unwrap().is_err());
        assert!(!BoxBody::is_sent_in_full(&replay));
    }

    #[tokio::test]
    async fn string_replays_up_to_the_limit() {
        let mut now = String::from("hello");
        let replay = now.prepare_replay(5);
        assert_eq!(bytes_of(now).await, "hello");
        assert_eq!(String::replay(replay.unwrap()).unwrap(), "hello");
        let mut now = String::from("hello!");
        let replay = now.prepare_replay(5);
        assert_eq!(now, "hello!");
        assert!(replay.is_none());
    }
}
