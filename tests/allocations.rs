//! Heap allocations per request: the layer must allocate no more than the
//! hand-assembled `AddAuthorization` + `Retry` composition, which does less.
//!
//! A counting global allocator; one test in this binary, so nothing else
//! allocates while it counts.

#[path = "../benches/common/mod.rs"]
mod common;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use common::*;
use tower::Layer;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUESTS: usize = 1000;

/// Allocations per request through `svc`, request construction included.
fn allocations_per_request<S>(mut svc: S) -> f64
where
    S: tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>>,
    S::Error: std::fmt::Debug,
{
    // Warm up: first clones of shared buffers are allowed to allocate once.
    for _ in 0..10 {
        call_now(&mut svc, realistic_request());
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..REQUESTS {
        call_now(&mut svc, realistic_request());
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / REQUESTS as f64
}

#[test]
fn the_layer_allocates_no_more_than_add_authorization_with_retry() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mock, layer) = warm_setup(&runtime);
    let _inside = runtime.enter();

    let bare = allocations_per_request(Noop);
    let add_authorization = allocations_per_request(add_authorization());
    let with_retry = allocations_per_request(add_authorization_retry());
    let simacan = allocations_per_request(layer.layer(Noop));
    println!(
        "allocations per request: bare {bare}, AddAuthorization {add_authorization}, AddAuthorization+Retry {with_retry}, SimacanAuth {simacan}"
    );

    assert!(
        simacan <= with_retry,
        "SimacanAuth {simacan} > AddAuthorization+Retry {with_retry}"
    );
    // The copy of the headers kept for a replay is all the layer adds.
    assert!(
        simacan > add_authorization,
        "the replay copy is expected to cost something"
    );
    assert_eq!(mock.counts().password, 1);
}
