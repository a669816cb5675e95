//! The lazy tee behind streaming replays.
//!
//! The body sent now ([`Tee`]) forwards each frame as it is read and keeps a
//! reference to it (a `Bytes` clone, not a byte copy) while a replay can
//! still follow. As soon as none can (the copy would pass the limit, the
//! source failed or sent a frame after its trailers, or the replay handle
//! was dropped because the response was accepted), it lets go of the
//! frames it kept and forwards the rest without keeping any.
//!
//! Frames shorter than [`COPIED_BELOW`] are copied instead, into one run
//! with the short frames next to them, and empty frames are not kept at
//! all: whatever the framing, what is kept stays within a small factor of
//! the data bytes, which the limit bounds.
//!
//! The source lives in a state shared with the replay handle
//! ([`StreamReplay`]), and is polled under its lock, one whole frame at a
//! time. Taking the replay therefore never waits for the first attempt to
//! let go: it takes the frames recorded so far and the source itself, at a
//! frame boundary, and wakes the first attempt's body, which then ends (so
//! its connection can finish or be closed rather than wait on a source it
//! no longer has). The replay ([`Replayed`]) sends the recorded frames, then
//! the rest of the source. Every byte read from the source is recorded
//! before it is forwarded, so a replay can neither skip nor repeat one.
//!
//! Size hints come from the source, whatever it claims (a bound near
//! `u64::MAX`, one the data does not keep to), so their arithmetic saturates
//! and keeps `lower <= upper`.

use std::{
    collections::VecDeque,
    fmt,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// Splits `source` into the body to send now and its replay handle, or
/// returns it untouched when its size hint already exceeds `limit`.
pub(crate) fn tee<B>(source: B, limit: usize) -> Result<(Tee<B>, StreamReplay<B>), B>
where
    B: Body<Data = Bytes> + Unpin,
{
    if !fits(source.size_hint().lower(), limit) {
        return Err(source);
    }
    let shared = Arc::new(Mutex::new(State {
        source: Some(source),
        recorded: VecDeque::new(),
        recorded_bytes: 0,
        limit,
        replayable: true,
        first_attempt: None,
    }));
    let replay = StreamReplay {
        shared: Arc::clone(&shared),
    };
    Ok((Tee { shared }, replay))
}

/// Whether a body of `len` bytes fits in `limit`, on any pointer width: the
/// tee's check of a size hint, and that of the bodies copied for a replay.
pub(super) fn fits(len: u64, limit: usize) -> bool {
    usize::try_from(len).is_ok_and(|len| len <= limit)
}

struct State<B> {
    /// `None` once read to the end or taken by the replay.
    source: Option<B>,
    recorded: VecDeque<Recorded>,
    recorded_bytes: usize,
    limit: usize,
    /// Whether a replay can still be taken. Once it cannot (the copy passed
    /// the limit, the source failed, the replay handle took over or was
    /// dropped), nothing is recorded and nothing recorded is kept.
    replayable: bool,
    /// The first attempt's body while it waits on the source: the source
    /// would wake it, but once taken over it wakes only the replay.
    first_attempt: Option<Waker>,
}

/// Data frames shorter than this are copied into runs rather than kept by
/// reference: each entry kept costs about this much besides its bytes.
const COPIED_BELOW: usize = 512;

enum Recorded {
    /// A frame's buffer, shared with the frame sent.
    Data(Bytes),
    /// Short frames, copied one after another.
    Copied(BytesMut),
    Trailers(HeaderMap),
}

impl<B> State<B> {
    fn record(&mut self, frame: &Frame<Bytes>) {
        if !self.replayable {
            return;
        }
        // Trailers end a body: a frame after them breaks its contract.
        if let Some(Recorded::Trailers(_)) = self.recorded.back() {
            return self.give_up();
        }
        if let Some(data) = frame.data_ref() {
            match self.recorded_bytes.checked_add(data.len()) {
                Some(total) if total <= self.limit => {
                    self.recorded_bytes = total;
                    self.keep(data);
                }
                _ => self.give_up(),
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            self.recorded
                .push_back(Recorded::Trailers(trailers.clone()));
        }
    }

    /// Keeps `data` for the replay: by reference, or copied onto the run of
    /// short frames it follows.
    fn keep(&mut self, data: &Bytes) {
        if data.is_empty() {
            return;
        }
        if data.len() >= COPIED_BELOW {
            self.recorded.push_back(Recorded::Data(data.clone()));
            return;
        }
        match self.recorded.back_mut() {
            Some(Recorded::Copied(run)) => run.extend_from_slice(data),
            _ => self
                .recorded
                .push_back(Recorded::Copied(BytesMut::from(&data[..]))),
        }
    }

    /// No replay can follow: stop recording and let go of the frames.
    fn give_up(&mut self) {
        self.replayable = false;
        self.recorded = VecDeque::new();
        self.recorded_bytes = 0;
        self.first_attempt = None;
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
            Poll::Ready(Some(Err(_))) => state.give_up(),
            Poll::Ready(None) => state.source = None,
            Poll::Pending if state.replayable => match &mut state.first_attempt {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            },
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
/// Dropping it says no replay will follow: the body being sent lets go of
/// the frames it kept for one and keeps no more.
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
    /// when the copy overflowed or the source failed. The first attempt's
    /// body is woken and ends.
    pub(crate) fn take(self) -> Option<Replayed<B>> {
        let mut state = lock(&self.shared);
        if !state.replayable {
            return None;
        }
        state.replayable = false;
        let replayed = Replayed {
            recorded: std::mem::take(&mut state.recorded),
            recorded_bytes: u64_of(std::mem::take(&mut state.recorded_bytes)),
            rest: state.source.take(),
        };
        let first_attempt = state.first_attempt.take();
        drop(state);
        if let Some(waker) = first_attempt {
            waker.wake();
        }
        Some(replayed)
    }
}

impl<B> Drop for StreamReplay<B> {
    fn drop(&mut self) {
        lock(&self.shared).give_up();
    }
}

impl<B: Body> StreamReplay<B> {
    /// Whether the first attempt read the source to its end (and so holds
    /// all of it when the copy did not overflow).
    pub(crate) fn source_ended(&self) -> bool {
        let state = lock(&self.shared);
        state.replayable && state.source.as_ref().is_none_or(Body::is_end_stream)
    }
}

impl<B> fmt::Debug for StreamReplay<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("StreamReplay")
            .field("recorded_bytes", &state.recorded_bytes)
            .field("replayable", &state.replayable)
            .finish_non_exhaustive()
    }
}

/// The body of a replay: the recorded frames, then the rest of the source.
pub(crate) struct Replayed<B> {
    recorded: VecDeque<Recorded>,
    /// The data bytes left in `recorded`.
    recorded_bytes: u64,
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
                Recorded::Data(data) => {
                    self.recorded_bytes = self.recorded_bytes.saturating_sub(u64_of(data.len()));
                    Frame::data(data)
                }
                Recorded::Copied(run) => {
                    self.recorded_bytes = self.recorded_bytes.saturating_sub(u64_of(run.len()));
                    Frame::data(run.freeze())
                }
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
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        plus(rest, self.recorded_bytes)
    }
}

/// `hint` grown by `bytes`, saturating at `u64::MAX`, with `lower <= upper`
/// whatever `hint` holds.
fn plus(hint: SizeHint, bytes: u64) -> SizeHint {
    let lower = hint.lower().saturating_add(bytes);
    let mut sum = SizeHint::new();
    if let Some(upper) = hint.upper() {
        sum.set_upper(upper.saturating_add(bytes).max(lower));
    }
    sum.set_lower(lower);
    sum
}

fn u64_of(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use proptest::prelude::*;

    use super::*;

    /// A body from a script: chunks, optional trailers, optional exact size
    /// hint, and `Pending` before every other frame. A hostile hint, when
    /// set, is claimed whatever the data.
    struct Scripted {
        chunks: VecDeque<Bytes>,
        trailers: Option<HeaderMap>,
        /// With an exact hint, the data bytes left: kept as frames are
        /// read, so that a hint costs the same whatever the frame count.
        exact: Option<u64>,
        hostile: Option<SizeHint>,
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
                hostile: None,
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
                if let Some(left) = &mut self.exact {
                    *left -= chunk.len() as u64;
                }
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
        }

        fn size_hint(&self) -> SizeHint {
            if let Some(hint) = self.hostile {
                return hint;
            }
            self.exact.map_or_else(SizeHint::new, SizeHint::with_exact)
        }
    }

    /// A hint with any bounds a body can claim. `SizeHint` itself refuses
    /// `lower > upper`, so such a pair is clamped; the data need not match.
    fn claimed(lower: u64, upper: Option<u64>) -> SizeHint {
        let mut hint = SizeHint::new();
        if let Some(upper) = upper {
            hint.set_upper(upper);
        }
        hint.set_lower(upper.map_or(lower, |upper| lower.min(upper)));
        hint
    }

    /// Bounds from anywhere in `u64`, often at its ends.
    fn bound() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..2048u64,
            (u64::MAX - 64)..=u64::MAX,
            Just(u64::MAX),
            any::<u64>()
        ]
    }

    /// The next frame; every poll first asks for the size hint, which must
    /// not panic and must keep `lower <= upper`.
    fn next<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Option<Frame<Bytes>>
    where
        B::Error: fmt::Debug,
    {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let hint = body.size_hint();
            assert!(hint.upper().is_none_or(|upper| upper >= hint.lower()));
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
            limit in prop_oneof![0usize..800, Just(usize::MAX)],
            read_before_401 in 0usize..20,
            trailers in any::<bool>(),
            exact_hint in any::<bool>(),
            hostile in prop::option::weighted(0.7, (bound(), prop::option::of(bound()))),
        ) {
            let original: Vec<u8> = chunks.concat();
            let mut source = Scripted::new(&chunks, trailers, exact_hint);
            source.hostile = hostile.map(|(lower, upper)| claimed(lower, upper));
            let claimed_lower = source.size_hint().lower();
            let (mut first, replay) = match tee(source, limit) {
                Ok(split) => split,
                Err(_) => {
                    // Only a size hint over the limit skips the tee.
                    prop_assert!(claimed_lower > limit as u64);
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
                    if exact_hint && hostile.is_none() {
                        prop_assert_eq!(replayed.size_hint().exact(), Some(original.len() as u64));
                    }
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
    fn a_replays_size_hint_saturates_near_u64_max() {
        let chunks = [b"abc".to_vec(), b"de".to_vec()];
        for hint in [claimed(0, Some(u64::MAX)), SizeHint::with_exact(u64::MAX)] {
            // A bound that does not shrink as the body yields.
            let mut source = Scripted::new(&chunks, false, false);
            source.hostile = Some(hint);
            let (mut first, replay) = tee(source, usize::MAX).ok().unwrap();
            assert_eq!(drain(&mut first, 1).0, b"abc");
            let replayed = replay.take().unwrap();
            assert_eq!(replayed.size_hint().upper(), Some(u64::MAX));
            assert_eq!(replayed.size_hint().lower(), hint.lower().max(3));
        }
    }

    #[test]
    fn short_and_empty_frames_are_kept_in_few_entries() {
        let mut chunks = vec![Vec::new(); 10_000];
        chunks.extend((0..10_000).map(|i| vec![u8::try_from(i % 251).unwrap()]));
        chunks.push(vec![9; COPIED_BELOW]);
        chunks.extend((0..1_000).map(|_| b"ab".to_vec()));
        let expected: Vec<u8> = chunks.concat();
        let (mut first, replay) = tee(Scripted::new(&chunks, false, true), expected.len())
            .ok()
            .unwrap();
        assert_eq!(drain(&mut first, usize::MAX).0, expected);
        assert_eq!(
            lock(&replay.shared).recorded.len(),
            3,
            "a run, the long frame, a run"
        );
        let mut replayed = replay.take().unwrap();
        assert_eq!(drain(&mut replayed, usize::MAX).0, expected);
    }

    #[test]
    fn with_a_limit_of_zero_empty_frames_are_not_kept() {
        let chunks = vec![Vec::new(); 100_000];
        let (mut first, replay) = tee(Scripted::new(&chunks, false, true), 0).ok().unwrap();
        assert!(drain(&mut first, usize::MAX).0.is_empty());
        assert!(lock(&replay.shared).recorded.is_empty());
        let mut replayed = replay.take().unwrap();
        assert!(drain(&mut replayed, usize::MAX).0.is_empty());
    }

    #[test]
    fn recorded_chunks_share_the_source_buffers() {
        let chunk = Bytes::from(vec![7u8; COPIED_BELOW]);
        let source = Scripted {
            chunks: VecDeque::from([chunk.clone()]),
            trailers: None,
            exact: None,
            hostile: None,
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

    /// A waker that counts its wakes.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_takeover_wakes_the_first_attempt_and_ends_it() {
        let (_tx, rx) =
            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
        let source =
            http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let (mut first, replay) = tee(source, 100).ok().unwrap();
        let wakes = Arc::new(Wakes(Default::default()));
        let waker = Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut first).poll_frame(&mut cx).is_pending());
        let _replayed = replay.take().unwrap();
        assert_eq!(
            wakes.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "woken by the takeover"
        );
        assert!(matches!(
            Pin::new(&mut first).poll_frame(&mut cx),
            Poll::Ready(None)
        ));
    }

    /// Chunk data that counts its drops.
    struct Tracked {
        data: Vec<u8>,
        drops: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl AsRef<[u8]> for Tracked {
        fn as_ref(&self) -> &[u8] {
            &self.data
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn dropping_the_replay_releases_the_frames_and_streaming_goes_on() {
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let dropped = || drops.load(std::sync::atomic::Ordering::SeqCst);
        let chunks = (0..4u8).map(|i| {
            Bytes::from_owner(Tracked {
                data: vec![i; COPIED_BELOW],
                drops: Arc::clone(&drops),
            })
        });
        let mut source = Scripted::new(&[], true, false);
        source.chunks = chunks.collect();
        let (mut first, replay) = tee(source, 4 * COPIED_BELOW).ok().unwrap();
        assert_eq!(
            drain(&mut first, 2).0,
            [[0; COPIED_BELOW], [1; COPIED_BELOW]].concat()
        );
        assert_eq!(dropped(), 0, "kept for a replay");
        drop(replay);
        assert_eq!(dropped(), 2, "let go once no replay can follow");
        let (rest, trailers) = drain(&mut first, usize::MAX);
        assert_eq!(
            rest,
            [[2; COPIED_BELOW], [3; COPIED_BELOW]].concat(),
            "streaming goes on"
        );
        assert!(trailers.is_some());
        assert_eq!(dropped(), 4, "later frames are not kept");
        assert!(next(&mut first).is_none());
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

    /// A body that sends many trailers frames (no data), against the
    /// contract that trailers end a body.
    struct ManyTrailers(usize);

    impl Body for ManyTrailers {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0 == 0 {
                return Poll::Ready(None);
            }
            self.0 -= 1;
            let mut trailers = HeaderMap::new();
            trailers.insert("x-n", "1".parse().unwrap());
            Poll::Ready(Some(Ok(Frame::trailers(trailers))))
        }
    }

    #[test]
    fn repeated_trailers_frames_are_not_kept_without_bound() {
        let (mut first, replay) = tee(ManyTrailers(100_000), 0).ok().unwrap();
        let (data, _) = drain(&mut first, usize::MAX);
        assert!(data.is_empty());
        let kept = lock(&replay.shared).recorded.len();
        assert_eq!(
            kept, 0,
            "frames after the trailers: nothing kept, no replay"
        );
        assert!(replay.take().is_none());
    }
}
