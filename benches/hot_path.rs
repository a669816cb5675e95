//! Time per request with a warm token, against what a user could assemble
//! instead: no layer at all, tower-http's static `AddAuthorization` (the
//! floor for "add a header"), and `AddAuthorization` under tower's `Retry`
//! with a policy that clones the request to replay it on 401. Also the same
//! per-request work on all cores at once, with the token read through the
//! crate's `ArcSwap` and through an `RwLock`, to show the read path does not
//! contend.
//!
//! ```text
//! cargo bench --bench hot_path
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{
    sync::{Arc, RwLock},
    thread,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{header::AUTHORIZATION, HeaderValue, Request};
use simacan_auth::SimacanAuthLayer;
use tower::{retry::RetryLayer, Layer, ServiceBuilder};
use tower_http::auth::AddAuthorizationLayer;

fn per_request(c: &mut Criterion, layer: &SimacanAuthLayer) {
    let mut group = c.benchmark_group("per_request");
    let mut bare = Noop;
    group.bench_function("bare", |b| {
        b.iter(|| call_now(&mut bare, realistic_request()))
    });
    let mut static_header = AddAuthorizationLayer::bearer(STATIC_TOKEN).layer(Noop);
    group.bench_function("add_authorization", |b| {
        b.iter(|| call_now(&mut static_header, realistic_request()))
    });
    let mut with_retry = ServiceBuilder::new()
        .layer(RetryLayer::new(ReplayOn401 { attempts_left: 1 }))
        .layer(AddAuthorizationLayer::bearer(STATIC_TOKEN))
        .service(Noop);
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

/// The per-request token read of a layer, behind either lock-free `ArcSwap`
/// or an `RwLock`: read, check expiry, clone the header, set it.
trait TokenRead: Send + Sync + 'static {
    fn authorize<B>(&self, request: &mut Request<B>);
}

impl TokenRead for ArcSwap<Token> {
    fn authorize<B>(&self, request: &mut Request<B>) {
        let token = self.load();
        assert!(Instant::now() < token.expires_at);
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.header.clone());
    }
}

impl TokenRead for RwLock<Token> {
    fn authorize<B>(&self, request: &mut Request<B>) {
        let token = self.read().unwrap();
        assert!(Instant::now() < token.expires_at);
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.header.clone());
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

/// Runs `iters` requests split over `threads` threads; returns the wall time.
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

fn throughput(c: &mut Criterion, layer: &SimacanAuthLayer, runtime: &tokio::runtime::Runtime) {
    let threads = thread::available_parallelism().map_or(2, usize::from);
    let mut group = c.benchmark_group(format!("all_cores_{threads}_threads"));
    let arc_swap = Arc::new(ArcSwap::from_pointee(token()));
    group.bench_function("arc_swap_token", |b| {
        b.iter_custom(|iters| {
            let token = arc_swap.clone();
            on_threads(threads, iters, move || {
                let mut request = realistic_request();
                token.authorize(&mut request);
                call_now(&mut Noop, request);
            })
        })
    });
    let rw_lock = Arc::new(RwLock::new(token()));
    group.bench_function("rw_lock_token", |b| {
        b.iter_custom(|iters| {
            let token = rw_lock.clone();
            on_threads(threads, iters, move || {
                let mut request = realistic_request();
                token.authorize(&mut request);
                call_now(&mut Noop, request);
            })
        })
    });
    let simacan = layer.layer(Noop);
    let handle = runtime.handle().clone();
    group.bench_function("simacan_auth", |b| {
        b.iter_custom(|iters| {
            let (svc, handle) = (simacan.clone(), handle.clone());
            on_threads(threads, iters, move || {
                let _inside = handle.enter();
                call_now(&mut svc.clone(), realistic_request());
            })
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime
        .block_on(simacan_auth::mock::MockAuthApi::start())
        .unwrap();
    let layer = runtime.block_on(warm_layer(&mock));
    let _inside = runtime.enter();
    per_request(c, &layer);
    throughput(c, &layer, &runtime);
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
