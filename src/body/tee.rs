//! The lazy tee behind streaming replays.
//!
//! The body sent now ([`Tee`]) forwards each frame as it is read and keeps a
//! reference to it (a `Bytes` clone, not a byte copy) until the copy would
//! pass the limit; then the copy is dropped and forwarding goes on.
//!
//! The source lives in a state shared with the replay handle
//! ([`StreamReplay`]), and is polled under its lock, one whole frame at a
//! time. Taking the replay therefore never waits for the first attempt to
//! let go: it takes the frames recorded so far and the source itself, at a
//! frame boundary, and the first attempt's body ends. The replay
//! ([`Replayed`]) sends the recorded frames, then the rest of the source.
//! Every byte read from the source is recorded before it is forwarded, so a
//! replay can neither skip nor repeat one.

use std::{
    collections::VecDeque,
    fmt,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// Splits `source` into the body to send now and its replay handle, or
/// returns it untouched when its size hint already exceeds `limit`.
pub(crate) fn tee<B>(source: B, limit: usize) -> Result<(Tee<B>, StreamReplay<B>), B>
where
    B: Body<Data = Bytes> + Unpin,
{
    if source.size_hint().lower() > limit as u64 {
        return Err(source);
    }
    let shared = Arc::new(Mutex::new(State {
        source: Some(source),
        recorded: VecDeque::new(),
        recorded_bytes: 0,
        limit,
        overflowed: false,
        failed: false,
        taken: false,
    }));
    let replay = StreamReplay {
        shared: Arc::clone(&shared),
    };
    Ok((Tee { shared }, replay))
}

struct State<B> {
    /// `None` once read to the end or taken by the replay.
    source: Option<B>,
    recorded: VecDeque<Recorded>,
    recorded_bytes: usize,
    limit: usize,
    /// The copy passed the limit and was dropped: no replay.
    overflowed: bool,
    /// The source failed: no replay.
    failed: bool,
    /// The replay took over: the first attempt's body has ended.
    taken: bool,
}

enum Recorded {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl<B> State<B> {
    fn record(&mut self, frame: &Frame<Bytes>) {
        if self.overflowed {
            return;
        }
        if let Some(data) = frame.data_ref() {
            if self.recorded_bytes + data.len() > self.limit {
                self.overflowed = true;
                self.recorded = VecDeque::new();
                self.recorded_bytes = 0;
                return;
            }
            self.recorded_bytes += data.len();
            self.recorded.push_back(Recorded::Data(data.clone()));
        } else if let Some(trailers) = frame.trailers_ref() {
            self.recorded
                .push_back(Recorded::Trailers(trailers.clone()));
        }
    }
}

fn lock<B>(shared: &Mutex<State<B>>) -> MutexGuard<'_, State<B>> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The body sent on the first attempt. See the [module docs](self).
pub(crate) struct Tee<B> {
    shared: Arc<Mutex<State<B>>>,
}

impl<B> Body for Tee<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut state = lock(&self.shared);
        let Some(source) = state.source.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(source).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => state.record(frame),
            Poll::Ready(Some(Err(_))) => state.failed = true,
            Poll::Ready(None) => state.source = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.shared)
            .source
            .as_ref()
            .is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.shared)
            .source
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// What is kept to replay a streaming body: see
/// [`ReplayBody`](super::ReplayBody) and the [body module docs](super).
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{combinators::BoxBody, BodyExt, Full};
/// use simacan_auth::body::ReplayBody;
///
/// let mut body: BoxBody<Bytes, std::convert::Infallible> = Full::new(Bytes::from("abc")).boxed();
/// let replay = body.prepare_replay(1024);
/// let _replay: simacan_auth::body::StreamReplay<_> = replay.unwrap();
/// ```
pub struct StreamReplay<B> {
    shared: Arc<Mutex<State<B>>>,
}

impl<B> StreamReplay<B> {
    /// Takes over: the recorded frames and the rest of the source, or `None`
    /// when the copy overflowed or the source failed.
    pub(crate) fn take(self) -> Option<Replayed<B>> {
        let mut state = lock(&self.shared);
        if state.overflowed || state.failed || state.taken {
            return None;
        }
        state.taken = true;
        Some(Replayed {
            recorded: std::mem::take(&mut state.recorded),
            rest: state.source.take(),
        })
    }
}

impl<B: Body> StreamReplay<B> {
    /// Whether the first attempt read the source to its end (and so holds
    /// all of it when the copy did not overflow).
    pub(crate) fn source_ended(&self) -> bool {
        let state = lock(&self.shared);
        !state.failed && !state.taken && state.source.as_ref().is_none_or(Body::is_end_stream)
    }
}

impl<B> fmt::Debug for StreamReplay<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("StreamReplay")
            .field("recorded_bytes", &state.recorded_bytes)
            .field("overflowed", &state.overflowed)
            .finish_non_exhaustive()
    }
}

/// The body of a replay: the recorded frames, then the rest of the source.
pub(crate) struct Replayed<B> {
    recorded: VecDeque<Recorded>,
    rest: Option<B>,
}

impl<B> Body for Replayed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(recorded) = self.recorded.pop_front() {
            return Poll::Ready(Some(Ok(match recorded {
                Recorded::Data(data) => Frame::data(data),
                Recorded::Trailers(trailers) => Frame::trailers(trailers),
            })));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recorded.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let recorded: u64 = self
            .recorded
            .iter()
            .map(|r| match r {
                Recorded::Data(data) => data.len() as u64,
                Recorded::Trailers(_) => 0,
            })
            .sum();
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + recorded);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + recorded);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use proptest::prelude::*;

    use super::*;

    /// A body from a script: chunks, optional trailers, optional exact size
    /// hint, and `Pending` before every other frame.
    struct Scripted {
        chunks: VecDeque<Bytes>,
        trailers: Option<HeaderMap>,
        exact: Option<u64>,
        pending_next: bool,
    }

    impl Scripted {
        fn new(chunks: &[Vec<u8>], trailers: bool, exact_hint: bool) -> Self {
            let total: usize = chunks.iter().map(Vec::len).sum();
            Scripted {
                chunks: chunks.iter().map(|c| Bytes::from(c.clone())).collect(),
                trailers: trailers.then(|| {
                    let mut t = HeaderMap::new();
                    t.insert("x-checksum", "abc".parse().unwrap());
                    t
                }),
                exact: exact_hint.then_some(total as u64),
                pending_next: true,
            }
        }
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.pending_next = !self.pending_next;
            if !self.pending_next {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Some(chunk) = self.chunks.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
        }

        fn size_hint(&self) -> SizeHint {
            let left: usize = self.chunks.iter().map(Bytes::len).sum();
            self.exact
                .map_or_else(SizeHint::new, |_| SizeHint::with_exact(left as u64))
        }
    }

    fn next<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Option<Frame<Bytes>>
    where
        B::Error: fmt::Debug,
    {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(&mut cx) {
                return frame.map(|f| f.unwrap());
            }
        }
    }

    /// Reads up to `frames` frames; returns the data and the trailers read.
    fn drain<B: Body<Data = Bytes> + Unpin>(
        body: &mut B,
        frames: usize,
    ) -> (Vec<u8>, Option<HeaderMap>)
    where
        B::Error: fmt::Debug,
    {
        let (mut data, mut trailers) = (Vec::new(), None);
        for _ in 0..frames {
            let Some(frame) = next(body) else { break };
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        (data, trailers)
    }

    proptest! {
        #[test]
        fn a_replay_never_duplicates_or_drops_a_byte(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..16),
            limit in 0usize..800,
            read_before_401 in 0usize..20,
            trailers in any::<bool>(),
            exact_hint in any::<bool>(),
        ) {
            let original: Vec<u8> = chunks.concat();
            let source = Scripted::new(&chunks, trailers, exact_hint);
            let (mut first, replay) = match tee(source, limit) {
                Ok(split) => split,
                Err(_) => {
                    // Only a size hint over the limit skips the tee.
                    prop_assert!(exact_hint && original.len() > limit);
                    return Ok(());
                }
            };
            let (sent, _) = drain(&mut first, read_before_401);
            prop_assert!(original.starts_with(&sent), "the first attempt sent a prefix");
            let replayed = replay.take();
            if replayed.is_some() {
                prop_assert!(next(&mut first).is_none(), "the first attempt ends once taken over");
            }
            match replayed {
                None => prop_assert!(sent.len() > limit, "replay refused within the limit"),
                Some(mut replayed) => {
                    prop_assert!(sent.len() <= limit);
                    let (data, seen_trailers) = drain(&mut replayed, usize::MAX);
                    prop_assert_eq!(data, original);
                    prop_assert_eq!(seen_trailers.is_some(), trailers);
                    prop_assert!(next(&mut replayed).is_none());
                }
            }
        }

        #[test]
        fn past_the_limit_the_stream_still_flows_whole(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 1..16),
            limit in 0usize..200,
        ) {
            let original: Vec<u8> = chunks.concat();
            let (mut first, replay) = tee(Scripted::new(&chunks, true, false), limit).ok().unwrap();
            let (sent, trailers) = drain(&mut first, usize::MAX);
            prop_assert_eq!(&sent, &original);
            prop_assert!(trailers.is_some());
            prop_assert_eq!(replay.take().is_some(), original.len() <= limit);
        }
    }

    #[test]
    fn recorded_chunks_share_the_source_buffers() {
        let chunk = Bytes::from(vec![7u8; 100]);
        let source = Scripted {
            chunks: VecDeque::from([chunk.clone()]),
            trailers: None,
            exact: None,
            pending_next: true,
        };
        let (mut first, replay) = tee(source, 1000).ok().unwrap();
        let sent = next(&mut first).unwrap().into_data().unwrap();
        let mut replayed = replay.take().unwrap();
        let again = next(&mut replayed).unwrap().into_data().unwrap();
        assert_eq!(sent.as_ptr(), chunk.as_ptr());
        assert_eq!(
            again.as_ptr(),
            chunk.as_ptr(),
            "the copy is a reference, not a byte copy"
        );
    }

    #[test]
    fn a_dropped_first_attempt_leaves_the_rest_to_the_replay() {
        let chunks = [b"ab".to_vec(), b"cd".to_vec(), b"ef".to_vec()];
        let (mut first, replay) = tee(Scripted::new(&chunks, false, true), 100).ok().unwrap();
        assert_eq!(drain(&mut first, 1).0, b"ab");
        drop(first);
        let mut replayed = replay.take().unwrap();
        assert_eq!(replayed.size_hint().exact(), Some(6));
        assert_eq!(drain(&mut replayed, usize::MAX).0, b"abcdef");
    }

    #[test]
    fn a_failed_source_cannot_be_replayed() {
        struct Failing;
        impl Body for Failing {
            type Data = Bytes;
            type Error = &'static str;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
                Poll::Ready(Some(Err("reset")))
            }
        }
        let (mut first, replay) = tee(Failing, 100).ok().unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            Pin::new(&mut first).poll_frame(&mut cx),
            Poll::Ready(Some(Err("reset")))
        ));
        assert!(replay.take().is_none());
    }
}
