//! The streaming tee, through the public `ReplayBody` on `BoxBody`: a
//! scripted source (any chunking, trailers, a failure, `Pending`s, truthful
//! size hints), a replay limit, and a 401 that takes the replay after any
//! number of frames. Checks that the first attempt sends a prefix of the
//! source, that a replay is refused exactly when the copy passed the limit
//! or the source failed, that a replay sends the source whole and in order,
//! and that every size hint and end-of-stream answer is true.
#![no_main]

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use libfuzzer_sys::{arbitrary, fuzz_target};
use simacan_auth::body::ReplayBody;

#[derive(arbitrary::Arbitrary, Debug)]
enum Hint {
    /// Nothing known.
    Unknown,
    /// The exact number of bytes left.
    Exact,
    /// A lower bound `under` below and an upper bound `over` above what is
    /// left.
    Loose { under: u64, over: u64 },
}

#[derive(arbitrary::Arbitrary, Debug)]
struct Script {
    chunks: Vec<Vec<u8>>,
    trailers: bool,
    /// The source fails after this many data frames, if it has that many.
    fail_after: Option<u8>,
    /// Which polls answer `Pending` first (cycled; never twice in a row).
    pending: Vec<bool>,
    hint: Hint,
    limit: u16,
    /// Frames the server reads before it answers 401; `None`: no 401.
    read_before_401: Option<u8>,
    /// Whether the first attempt is dropped before the replay is taken.
    drop_first: bool,
}

#[derive(Debug)]
struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the source failed")
    }
}

impl std::error::Error for Failed {}

/// The source body, played from a script.
struct Source {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    fail_after: Option<usize>,
    sent: usize,
    pending: Vec<bool>,
    polls: usize,
    pended: bool,
    hint: (u64, u64),
    exact: bool,
    known: bool,
}

impl Source {
    fn left(&self) -> u64 {
        let left = match self.fail_after {
            Some(n) => self.chunks.iter().take(n.saturating_sub(self.sent)),
            None => self.chunks.iter().take(usize::MAX),
        };
        left.map(|c| c.len() as u64).sum()
    }
}

impl Body for Source {
    type Data = Bytes;
    type Error = Failed;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Failed>>> {
        let polls = self.polls;
        self.polls += 1;
        let pend = !self.pending.is_empty() && self.pending[polls % self.pending.len()];
        if pend && !self.pended {
            self.pended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pended = false;
        if self.fail_after == Some(self.sent) {
            self.fail_after = None;
            self.chunks.clear();
            self.trailers = None;
            return Poll::Ready(Some(Err(Failed)));
        }
        if let Some(chunk) = self.chunks.pop_front() {
            self.sent += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none() && self.fail_after.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let left = self.left();
        if self.exact {
            return SizeHint::with_exact(left);
        }
        let mut hint = SizeHint::new();
        if self.known {
            hint.set_lower(left.saturating_sub(self.hint.0));
            hint.set_upper(left.saturating_add(self.hint.1));
        }
        hint
    }
}

/// What a body yields, frame by frame.
#[derive(Debug, Default, PartialEq)]
struct Drained {
    data: Vec<u8>,
    trailers: bool,
    failed: bool,
    frames: usize,
}

/// Polls `body` for up to `frames` frames, checking its size hint and
/// end-of-stream against the `left` data bytes still to come. Returns what
/// it yielded and whether it ended (or failed).
fn drain<B>(body: &mut B, frames: usize, left: u64) -> (Drained, bool)
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut drained = Drained::default();
    while drained.frames < frames {
        let remaining = left - drained.data.len() as u64;
        let hint = body.size_hint();
        assert!(
            hint.lower() <= remaining,
            "lower {} > {remaining}",
            hint.lower()
        );
        if let Some(upper) = hint.upper() {
            assert!(upper >= remaining, "upper {upper} < {remaining}");
        }
        let claims_end = body.is_end_stream();
        let frame = loop {
            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(&mut cx) {
                break frame;
            }
        };
        match frame {
            None => return (drained, true),
            Some(_) if claims_end => panic!("a frame after is_end_stream"),
            Some(Ok(frame)) => {
                drained.frames += 1;
                match frame.into_data() {
                    Ok(data) => drained.data.extend_from_slice(&data),
                    Err(frame) => {
                        assert!(frame.is_trailers());
                        drained.trailers = true;
                    }
                }
            }
            Some(Err(_)) => {
                drained.failed = true;
                return (drained, true);
            }
        }
    }
    (drained, false)
}

fuzz_target!(|script: Script| {
    let chunks: VecDeque<Bytes> = script.chunks.into_iter().map(Bytes::from).collect();
    let fail_after = script
        .fail_after
        .map(usize::from)
        .filter(|n| *n <= chunks.len());
    let good_chunks = fail_after.unwrap_or(chunks.len());
    let original: Vec<u8> = chunks.iter().take(good_chunks).flatten().copied().collect();
    let total = original.len() as u64;
    let has_trailers = script.trailers && fail_after.is_none();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    let (exact, known, hint) = match script.hint {
        Hint::Unknown => (false, false, (0, 0)),
        Hint::Exact => (true, true, (0, 0)),
        Hint::Loose { under, over } => (false, true, (under, over)),
    };
    let source = Source {
        chunks,
        trailers: script.trailers.then_some(trailers),
        fail_after,
        sent: 0,
        pending: script.pending,
        polls: 0,
        pended: false,
        hint,
        exact,
        known,
    };
    let lower_at_start = source.size_hint().lower();
    let limit = usize::from(script.limit);
    let mut first: BoxBody<Bytes, Failed> = BoxBody::new(source);

    let Some(replay) = first.prepare_replay(limit) else {
        assert!(
            lower_at_start > limit as u64,
            "refused to tee within the limit"
        );
        let (untouched, _) = drain(&mut first, usize::MAX, total);
        assert_eq!(untouched.data, original, "an untouched body is sent whole");
        return;
    };

    // The first attempt, until the server answers 401 (or to its end).
    let Some(before_401) = script.read_before_401 else {
        let (sent, ended) = drain(&mut first, usize::MAX, total);
        assert!(ended);
        assert_eq!(sent.data, original);
        assert_eq!(sent.trailers, has_trailers);
        assert_eq!(sent.failed, fail_after.is_some());
        return;
    };
    let (sent, _) = drain(&mut first, usize::from(before_401), total);
    assert!(
        original.starts_with(&sent.data),
        "the first attempt sends a prefix"
    );
    if script.drop_first {
        drop(first);
        first = BoxBody::new(Empty::new().map_err(|never| match never {}));
    }

    let must_refuse = sent.failed || sent.data.len() > limit;
    let Some(mut replayed) = BoxBody::<Bytes, Failed>::replay(replay) else {
        assert!(
            must_refuse,
            "a replay within the limit was refused: {sent:?}"
        );
        return;
    };
    assert!(
        !must_refuse,
        "a replay past the limit or of a failed source"
    );
    let (after, ended) = drain(&mut first, usize::MAX, 0);
    assert!(
        ended && after == Drained::default(),
        "the first attempt ends once taken over"
    );

    // The replay: what the first attempt sent, then the rest of the source.
    let (whole, ended) = drain(&mut replayed, usize::MAX, total);
    assert!(ended);
    assert_eq!(whole.data, original, "the replay sends the source whole");
    assert_eq!(whole.trailers, has_trailers);
    assert_eq!(whole.failed, fail_after.is_some());
});
