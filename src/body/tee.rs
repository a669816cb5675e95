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
/// [`ReplayBody`](super::ReplayBody) and the [module docs](self).
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{combinators::BoxBody, BodyExt, Full};
/// use simacan_auth::body::ReplayBody;
///
/// let body: BoxBody<Bytes, std::convert::Infallible> = Full::new(Bytes::from("abc")).boxed();
/// let (_send_now, replay) = body.prepare_replay(1024);
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
