//! Time per request with a warm token, against what a user could assemble
//! instead: no layer at all, tower-http's static `AddAuthorization` (the
//! floor for "add a header"), and `AddAuthorization` under tower's `Retry`
//! with a policy that clones the request to replay it on 401. Also the same
//! token read of the same layer design through `ArcSwap` (as in the crate)
//! and through an `RwLock`, on one thread and on all cores, to show the read
//! path does not contend; and the layer's own throughput on all cores.
//!
//! ```text
//! cargo bench --bench hot_path
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{
    hint::black_box,
    sync::{Arc, RwLock},
    thread,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use common::*;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use http::{HeaderValue, Request};
use http_body_util::Full;
use simacan_auth::SimacanAuthLayer;
use tower::{Layer, Service};

fn per_request(c: &mut Criterion, layer: &SimacanAuthLayer) {
    let mut group = c.benchmark_group("per_request");
    let mut bare = Noop;
    group.bench_function("bare", |b| {
        b.iter(|| call_now(&mut bare, realistic_request()))
    });
    let mut static_header = add_authorization();
    group.bench_function("add_authorization", |b| {
        b.iter(|| call_now(&mut static_header, realistic_request()))
    });
    let mut with_retry = add_authorization_retry();
    group.bench_function("add_authorization_retry", |b| {
        b.iter(|| call_now(&mut with_retry, realistic_request()))
    });
    let mut simacan = layer.layer(Noop);
    group.bench_function("simacan_auth", |b| {
        b.iter(|| call_now(&mut simacan, realistic_request()))
    });
    group.finish();
}

/// A token as a layer would hold it.
struct Token {
    header: HeaderValue,
    expires_at: Instant,
}

/// The per-request token read of a layer design, behind lock-free `ArcSwap`
/// or behind an `RwLock`: read, check expiry, take the header's length (a
/// stand-in for using it without cloning, so that only the lock is measured).
trait TokenRead: Send + Sync + 'static {
    fn read(&self) -> usize;
}

impl TokenRead for ArcSwap<Token> {
    fn read(&self) -> usize {
        let token = self.load();
        assert!(Instant::now() < token.expires_at);
        token.header.len()
    }
}

impl TokenRead for RwLock<Token> {
    fn read(&self) -> usize {
        let token = self.read().unwrap();
        assert!(Instant::now() < token.expires_at);
        token.header.len()
    }
}

fn token() -> Token {
    let mut header = HeaderValue::from_str(&format!("Bearer {STATIC_TOKEN}")).unwrap();
    header.set_sensitive(true);
    Token {
        header,
        expires_at: Instant::now() + Duration::from_secs(3600),
    }
}

/// Runs `iters` operations split over `threads` threads; returns the wall
/// time, so that the reported time per operation is the inverse of the
/// throughput of all threads together.
fn on_threads(
    threads: usize,
    iters: u64,
    work: impl Fn() + Send + Sync + Clone + 'static,
) -> Duration {
    let per_thread = iters / threads as u64 + 1;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let work = work.clone();
            thread::spawn(move || (0..per_thread).for_each(|_| work()))
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    started.elapsed()
}

fn bench_reads<T: TokenRead>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    token: T,
) {
    let token = Arc::new(token);
    group.bench_function(format!("{name}/1_thread"), |b| {
        b.iter(|| black_box(token.read()))
    });
    group.bench_function(format!("{name}/{threads}_threads"), |b| {
        b.iter_custom(|iters| {
            let token = token.clone();
            on_threads(threads, iters, move || {
                black_box(token.read());
            })
        })
    });
}

/// Requests through clones of `svc`, on one thread and on all cores.
fn bench_calls<S>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, threads: usize, svc: S)
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + Sync + 'static,
    S::Error: std::fmt::Debug,
{
    let single = svc.clone();
    group.bench_function(format!("{name}/1_thread"), |b| {
        b.iter(|| call_now(&mut single.clone(), realistic_request()))
    });
    group.bench_function(format!("{name}/{threads}_threads"), |b| {
        b.iter_custom(|iters| {
            let svc = svc.clone();
            on_threads(threads, iters, move || {
                call_now(&mut svc.clone(), realistic_request());
            })
        })
    });
}

fn throughput(c: &mut Criterion, layer: &SimacanAuthLayer) {
    let threads = thread::available_parallelism().map_or(2, usize::from);
    let mut group = c.benchmark_group("token_read");
    bench_reads(
        &mut group,
        "arc_swap",
        threads,
        ArcSwap::from_pointee(token()),
    );
    bench_reads(&mut group, "rw_lock", threads, RwLock::new(token()));
    group.finish();

    let mut group = c.benchmark_group("throughput");
    let with_retry = add_authorization_retry();
    bench_calls(&mut group, "add_authorization_retry", threads, with_retry);
    bench_calls(&mut group, "simacan_auth", threads, layer.layer(Noop));
    group.finish();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mock, layer) = warm_setup(&runtime);
    let _inside = runtime.enter();
    per_request(c, &layer);
    throughput(c, &layer);
    let mut probe = layer.layer(Noop);
    call_now(&mut probe, realistic_request());
    assert_eq!(
        mock.counts().password,
        1,
        "the token stayed warm throughout"
    );
}

criterion_group! {
    name = hot_path;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(hot_path);
