//! The cost of the lazy replay copy of a streaming body: draining a
//! `BoxBody` of 1 KiB, 64 KiB and 1 MiB (8 KiB frames) as the first attempt
//! sends it, with and without the tee, and draining the replay afterwards.
//!
//! ```text
//! cargo bench --bench replay_copy
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use common::poll_now;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body::Frame;
use http_body_util::{BodyExt, combinators::BoxBody};
use simacan_auth::body::ReplayBody;

const FRAME: usize = 8 * 1024;

/// A body that yields its frames at once, one per poll.
struct Frames(VecDeque<Bytes>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
    }
}

fn streaming(data: &Bytes) -> BoxBody<Bytes, Infallible> {
    let frames = (0..data.len())
        .step_by(FRAME)
        .map(|at| data.slice(at..(at + FRAME).min(data.len())))
        .collect();
    Frames(frames).boxed()
}

/// Reads every frame; returns the bytes seen.
fn drain(mut body: BoxBody<Bytes, Infallible>) -> usize {
    let mut seen = 0;
    while let Some(frame) = poll_now(body.frame()) {
        seen += frame.unwrap().data_ref().map_or(0, Bytes::len);
    }
    seen
}

fn replay_copy(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay_copy");
    for size in [1024, 64 * 1024, 1024 * 1024] {
        let data = Bytes::from(vec![42u8; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("plain", size), &data, |b, data| {
            b.iter(|| assert_eq!(drain(streaming(data)), size))
        });
        group.bench_with_input(BenchmarkId::new("teed", size), &data, |b, data| {
            b.iter(|| {
                let mut now = streaming(data);
                let replay = now.prepare_replay(2 * 1024 * 1024);
                assert_eq!(drain(now), size);
                replay.unwrap()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("teed_and_replayed", size),
            &data,
            |b, data| {
                b.iter(|| {
                    let mut now = streaming(data);
                    let replay = now.prepare_replay(2 * 1024 * 1024);
                    assert_eq!(drain(now), size);
                    let again = BoxBody::replay(replay.unwrap()).unwrap();
                    assert_eq!(drain(again), size);
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = replay_copy
}
criterion_main!(benches);
