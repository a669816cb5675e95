//! Inputs the fuzz targets in `fuzz/` found, replayed through the public
//! API in the normal suite. The raw inputs are kept in `fuzz/regressions/`,
//! one folder per target.

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use simacan_auth::body::ReplayBody;

/// A source that says, truthfully, that it holds at most `u64::MAX` bytes.
struct AtMostU64Max(VecDeque<Bytes>);

impl Body for AtMostU64Max {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = SizeHint::new();
        hint.set_upper(u64::MAX);
        hint
    }
}

fn next<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Option<Bytes>
where
    B::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(frame) => frame.map(|f| f.unwrap().into_data().unwrap()),
        Poll::Pending => panic!("the source is always ready"),
    }
}

/// `fuzz/regressions/tee/crash-2d80f278e93107317ef194f5529e3be09d89afd3`:
/// a 401 after the first frame of a source whose upper size hint is
/// `u64::MAX`; the replay's size hint added the recorded bytes to that
/// bound and overflowed (a panic in debug builds, and in release builds a
/// wrapped bound below the lower one, which `SizeHint::set_upper` refuses
/// with a panic).
#[test]
fn a_replay_of_a_source_with_an_unbounded_upper_size_hint_has_a_true_size_hint() {
    let source = AtMostU64Max(VecDeque::from([
        Bytes::from_static(&[255]),
        Bytes::from_static(&[163, 153, 153, 0]),
    ]));
    let mut first: BoxBody<Bytes, Infallible> = BoxBody::new(source);
    let replay = first.prepare_replay(16_895).expect("teed");
    assert_eq!(next(&mut first).as_deref(), Some(&[255][..]));

    let mut replayed = BoxBody::replay(replay).expect("within the limit");
    let hint = replayed.size_hint();
    assert!(hint.lower() <= 5);
    assert!(hint.upper().is_none_or(|upper| upper >= 5));
    let mut all = Vec::new();
    while let Some(data) = next(&mut replayed) {
        all.extend_from_slice(&data);
    }
    assert_eq!(all, [255, 163, 153, 153, 0]);
}
